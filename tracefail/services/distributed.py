"""Fan feature extraction and judging out over a Ray actor pool; the driver alone writes the corpus.

Ray (https://docs.ray.io) is an optional extra: `ray` is imported only when a run asks for it.
Each actor loads its model once and serves many traces; the driver keeps a few calls in flight
per actor and yields results as they finish, so the caller stores each trace in its own
transaction exactly as the single-process run does (resumable, idempotent). A crashed actor is
restarted by Ray and its calls retried (`max_restarts`, `max_task_retries`); a call that still
fails becomes a one-line error for that trace. HTTP judges share one concurrency budget across
all workers through a `Limiter` actor.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tracefail.model import Step, Taxonomy

RESTARTS = 3  # a worker that dies is restarted this often, and its calls retried


class DistributedError(RuntimeError):
    """Ray is missing or cannot start / join the cluster; the message is one line."""


@dataclass(frozen=True)
class RayOptions:
    """How to fan out: join `address` (else start a local Ray), `workers` actors, GPUs per actor."""

    address: str | None = None
    workers: int = 2
    gpus_per_worker: float = 0.0


@contextmanager
def ray_session(options: RayOptions) -> Iterator[Any]:
    """The `ray` module, connected: joins `options.address`, reuses a session this process
    already has, or starts a local Ray sized for the workers (and shuts down what it started)."""
    try:
        import ray
    except ImportError:
        raise DistributedError("--ray needs Ray: pip install 'tracefail[ray]'") from None
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if options.address:
            kwargs["address"] = options.address
        else:
            kwargs["num_cpus"] = max(options.workers, 1)
            if options.gpus_per_worker:
                kwargs["num_gpus"] = math.ceil(options.gpus_per_worker * options.workers)
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = options.address or "a local Ray"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DistributedError(f"cannot start or join {where}: {first}") from None
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _actor_options(options: RayOptions, cpus: float = 1.0) -> dict[str, Any]:
    return {
        "num_cpus": cpus,
        "num_gpus": options.gpus_per_worker,
        "max_restarts": RESTARTS,
        "max_task_retries": RESTARTS,
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _stream(
    ray: Any, actors: list[Any], per_actor: int, method: str, items: Iterable[tuple[str, Any]]
) -> Iterator[list[tuple[str, Any, str | None]]]:
    """Batches of (key, result, None) or (key, None, error): every call finished by the time the
    driver looks. At most `per_actor` calls in flight per actor, and the next item is read only
    when a slot frees (inputs are never all loaded)."""
    pending = iter(items)
    in_flight: dict[Any, tuple[str, Any]] = {}

    def submit(actor: Any) -> None:
        item = next(pending, None)
        if item is not None:
            key, payload = item
            in_flight[getattr(actor, method).remote(payload)] = (key, actor)

    for actor in actors:
        for _ in range(per_actor):
            submit(actor)
    try:
        while in_flight:
            ray.wait(list(in_flight), num_returns=1)
            ready, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0)
            batch: list[tuple[str, Any, str | None]] = []
            for ref in ready:
                key, actor = in_flight.pop(ref)
                try:
                    batch.append((key, ray.get(ref), None))
                except ray.exceptions.RayError as exc:
                    batch.append((key, None, f"ray worker failed: {_first_line(exc)}"))
                submit(actor)
            yield batch
    finally:
        for ref in in_flight:
            ray.cancel(ref, force=False)


def _wait_ready(ray: Any, calls: list[Any]) -> list[Any]:
    """Every actor built (model loaded, judge made) before work starts; else the first reason."""
    from tracefail.features.errors import ModelLoadError

    try:
        return list(ray.get(calls))
    except ray.exceptions.RayActorError as exc:
        cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
        raise ModelLoadError(_first_line(cause)) from None


# --- features -------------------------------------------------------------------------------


class FeatureWorker:
    """One model load per actor; `extract` returns (rows, tokens, None) or (None, 0, error)."""

    def __init__(self, model: str | None, device: str, config: Any) -> None:
        from tracefail.features.extract import Extractor
        from tracefail.features.loading import load_causal_lm

        self.loaded = load_causal_lm(model, device=device)
        self.extractor = Extractor(self.loaded, config)

    def describe(self) -> tuple[str, str, list[int]]:
        return self.loaded.name, self.loaded.device, list(self.extractor.layers)

    def extract(self, steps: list[Step]) -> tuple[list[tuple[int, str, float]] | None, int, str | None]:
        from tracefail.features.errors import FeatureError

        try:
            result = self.extractor.extract(steps)
        except (FeatureError, RuntimeError, ValueError) as exc:
            return None, 0, _first_line(exc)
        return result.rows, result.tokens, None


@dataclass
class FeaturePool:
    """Started actors and what they loaded (the driver never loads the model itself)."""

    ray: Any
    actors: list[Any]
    name: str
    device: str
    layers: list[int]

    def run(self, items: Iterable[tuple[str, list[Step]]]) -> Iterator[tuple[str, Any, str | None]]:
        """(trace_id, (rows, tokens, error), None) per trace, or (trace_id, None, ray error)."""
        for batch in _stream(self.ray, self.actors, 2, "extract", items):
            yield from batch


@contextmanager
def feature_pool(options: RayOptions, model: str | None, device: str, config: Any) -> Iterator[FeaturePool]:
    """Start `options.workers` FeatureWorkers; a model that cannot load fails here, once."""
    with ray_session(options) as ray:
        remote = ray.remote(FeatureWorker).options(**_actor_options(options))
        actors = [remote.remote(model, device, config) for _ in range(max(1, options.workers))]
        name, dev, layers = _wait_ready(ray, [a.describe.remote() for a in actors])[0]
        try:
            yield FeaturePool(ray, actors, name, dev, layers)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)


# --- judging --------------------------------------------------------------------------------


class Limiter:
    """A global concurrency budget shared by every judge worker (a Ray async actor)."""

    def __init__(self, slots: int) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.held = 0
        self.most = 0

    async def acquire(self) -> None:
        await self.slots.acquire()
        self.held += 1
        self.most = max(self.most, self.held)

    def release(self) -> None:
        self.held -= 1
        self.slots.release()

    def peak(self) -> int:
        return self.most


class JudgeWorker:
    """Builds its judge from the spec (one model load or one HTTP client per actor)."""

    def __init__(self, spec: Any, taxonomy: Taxonomy, tasks: frozenset[str], limiter: Any) -> None:
        from tracefail.services.label import build_judge

        self.judge = build_judge(spec)
        self.taxonomy = taxonomy
        self.tasks = tasks
        self.limiter = limiter

    def ready(self) -> bool:
        return True

    async def run(self, trace: Any) -> tuple[Any, Any]:
        """(JudgeResult, None) or (None, JudgeError)."""
        from tracefail.judge.backend import JudgeError

        if self.limiter is not None:
            await self.limiter.acquire.remote()
        try:
            return await self.judge.judge(trace, self.taxonomy, self.tasks), None
        except JudgeError as exc:
            return None, exc
        finally:
            if self.limiter is not None:
                self.limiter.release.remote()


@dataclass
class JudgePool:
    ray: Any
    actors: list[Any]
    per_actor: int
    limiter: Any

    def run(self, items: Iterable[tuple[str, Any]]) -> Iterator[list[tuple[str, Any, str | None]]]:
        """Batches of (trace_id, (result, judge error), None) or (trace_id, None, ray error)."""
        return _stream(self.ray, self.actors, self.per_actor, "run", items)

    def peak_concurrency(self) -> int | None:
        return self.ray.get(self.limiter.peak.remote()) if self.limiter is not None else None


@contextmanager
def judge_pool(
    options: RayOptions, spec: Any, taxonomy: Taxonomy, tasks: frozenset[str], budget: int | None
) -> Iterator[JudgePool]:
    """HTTP judges (`budget` set): at most `budget` traces in flight across all workers, held by
    one Limiter; local judges (None): one trace at a time per worker, each on its own model copy."""
    with ray_session(options) as ray:
        workers = max(1, options.workers)
        http = budget is not None
        limiter = None
        if budget is not None:
            limiter = ray.remote(Limiter).options(num_cpus=0, max_concurrency=100_000).remote(budget)
        # a slot more than each worker's share keeps every worker busy while the Limiter holds the line
        per_actor = math.ceil(budget / workers) + 1 if budget is not None else 2
        remote = ray.remote(JudgeWorker).options(
            **_actor_options(options, cpus=0.5 if http else 1.0),
            max_concurrency=per_actor if http else 1,
        )
        actors = [remote.remote(spec, taxonomy, tasks, limiter) for _ in range(workers)]
        _wait_ready(ray, [a.ready.remote() for a in actors])
        try:
            yield JudgePool(ray, actors, per_actor, limiter)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            if limiter is not None:
                ray.kill(limiter)
