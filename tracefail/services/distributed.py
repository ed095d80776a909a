"""Fan feature extraction and judging out over a Ray actor pool; the driver alone writes the corpus.

Ray (https://docs.ray.io) is an optional extra: `ray` is imported only when a run asks for it.
Each actor loads its model once and serves many traces; the driver keeps calls in flight and
stores results as they finish, exactly as the single-process run does (resumable, idempotent).
A crashed actor is restarted by Ray and its calls retried (`max_restarts`, `max_task_retries`);
a call that still fails becomes a one-line error for that trace. HTTP judges share one request
budget across all workers through a `Limiter` actor.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
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

LEASE_S = 1.0  # a worker reuses its leased slots this long before handing them back
CHECK_S = 2.0  # a request waiting this long for a slot makes the Limiter look for dead holders


class Limiter:
    """One request budget for every judge worker (a Ray async actor): `slots` requests open at
    once across the cluster, and a pause any worker's 429 imposes on all of them.

    Slots are leased to an owner (one worker incarnation) in batches, so a busy worker asks about
    once per LEASE_S instead of twice per request. An owner that died (or was restarted by Ray as
    a new incarnation) while holding slots is found when a request has waited CHECK_S, and its
    slots return to the budget."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        self.held: dict[str, int] = {}
        self.owners: dict[str, Any] = {}
        self.resume_at = 0.0
        self.changed = asyncio.Condition()

    def register(self, owner: str, actor: Any) -> None:
        self.owners[owner] = actor
        self.held.setdefault(owner, 0)

    async def acquire(self, owner: str, want: int) -> int:
        """Slots granted to `owner`, at least one and up to `want`, once any shared pause ends."""
        from tracefail.judge.budget import wait_until

        async with self.changed:
            while self.free <= 0:
                try:
                    await asyncio.wait_for(self.changed.wait(), CHECK_S)
                except TimeoutError:
                    await self._reclaim_dead()
            granted = min(max(1, want), self.free)
            self.free -= granted
            self.held[owner] = self.held.get(owner, 0) + granted
        await wait_until(lambda: self.resume_at)
        return granted

    async def release(self, owner: str, count: int) -> None:
        async with self.changed:
            count = min(count, self.held.get(owner, 0))  # a reclaimed owner's late release
            self.held[owner] = self.held.get(owner, 0) - count
            self.free += count
            self.changed.notify(count)

    def pause(self, owner: str, seconds: float) -> None:
        """Every worker stops starting requests for `seconds`; the Limiter grants none meanwhile."""
        self.resume_at = max(self.resume_at, time.monotonic() + seconds)
        for other, actor in self.owners.items():
            if other != owner:
                actor.pause.remote(other, seconds)

    def in_use(self) -> int:
        return sum(self.held.values())

    async def _reclaim_dead(self) -> None:
        """Give back the slots of owners that no longer run: their actor died, or Ray restarted it
        (a new incarnation has a new owner id)."""
        import ray

        for owner, actor in list(self.owners.items()):
            try:
                alive = await asyncio.wait_for(actor.owner.remote(), CHECK_S) == owner
            except ray.exceptions.RayActorError:
                alive = False
            except TimeoutError:
                alive = True  # busy, not dead
            if not alive:
                self.free += self.held.pop(owner, 0)
                del self.owners[owner]
                self.changed.notify_all()


class LeasedBudget:
    """A worker's share of the Limiter's budget (tracefail.judge.budget.Budget): slots are
    fetched in batches for the requests waiting here, reused while the lease is fresh, then
    handed back."""

    def __init__(self, limiter: Any, owner: str) -> None:
        self.limiter, self.owner = limiter, owner
        self.waiting: deque[asyncio.Future[None]] = deque()
        self.fetcher: asyncio.Task[None] | None = None
        self.fresh_until = 0.0
        self.resume_at = 0.0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        from tracefail.judge.budget import wait_until

        await self._take()
        try:
            await wait_until(lambda: self.resume_at)
            yield
        finally:
            self._give_back()

    def pause(self, seconds: float) -> None:
        self.resume_at = max(self.resume_at, time.monotonic() + seconds)
        self.limiter.pause.remote(self.owner, seconds)

    def paused_by_another(self, seconds: float) -> None:
        self.resume_at = max(self.resume_at, time.monotonic() + seconds)

    async def _take(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        self._fetch_soon()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back()  # granted just as we were cancelled
            raise

    def _fetch_soon(self) -> None:
        if self.waiting and (self.fetcher is None or self.fetcher.done()):
            self.fetcher = asyncio.ensure_future(self._fetch())

    async def _fetch(self) -> None:
        while self.waiting:
            granted = await self.limiter.acquire.remote(self.owner, len(self.waiting))
            self.fresh_until = time.monotonic() + LEASE_S
            for _ in range(granted):
                self._give_back(fresh=True)

    def _give_back(self, fresh: bool = False) -> None:
        """To a request waiting here while the lease is fresh, else back to the Limiter."""
        if fresh or time.monotonic() < self.fresh_until:
            while self.waiting:
                waiter = self.waiting.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self.limiter.release.remote(self.owner, 1)
        self._fetch_soon()


class JudgeWorker:
    """Builds its judge from the spec (one model load or one HTTP client per actor); an HTTP
    judge draws every request from the shared Limiter."""

    def __init__(self, spec: Any, taxonomy: Taxonomy, tasks: frozenset[str], limiter: Any) -> None:
        from tracefail.judge.http import OpenAIJudge
        from tracefail.services.label import build_judge

        self.judge = build_judge(spec)
        self.taxonomy = taxonomy
        self.tasks = tasks
        self.id = uuid.uuid4().hex  # this incarnation: a restarted actor is a new slot owner
        self.budget: LeasedBudget | None = None
        http = getattr(self.judge, "inner", self.judge)  # a strategy wraps the HTTP judge
        if limiter is not None and isinstance(http, OpenAIJudge):
            import ray

            limiter.register.remote(self.id, ray.get_runtime_context().current_actor)
            self.budget = http.budget = LeasedBudget(limiter, self.id)

    def owner(self) -> str:
        return self.id

    def pause(self, owner: str, seconds: float) -> None:
        if self.budget is not None and owner == self.id:
            self.budget.paused_by_another(seconds)

    async def run(self, trace: Any) -> tuple[Any, Any]:
        """(JudgeResult, None) or (None, JudgeError)."""
        from tracefail.judge.backend import JudgeError

        try:
            return await self.judge.judge(trace, self.taxonomy, self.tasks), None
        except JudgeError as exc:
            return None, exc


@dataclass
class JudgePool:
    """Started judge workers; `judge` sends one trace to the least busy one. The driver keeps
    `in_flight` traces out (twice the request budget, so a slot freed anywhere finds a request
    already waiting for it)."""

    ray: Any
    actors: list[Any]
    in_flight: int
    limiter: Any
    busy: list[int] = field(default_factory=list)

    async def judge(self, trace: Any) -> tuple[Any, Any]:
        """(result, None), (None, judge error), or (None, one line) when the worker failed."""
        if not self.busy:
            self.busy = [0] * len(self.actors)
        index = min(range(len(self.actors)), key=self.busy.__getitem__)
        self.busy[index] += 1
        try:
            return await self.actors[index].run.remote(trace)
        except self.ray.exceptions.RayError as exc:
            return None, f"ray worker failed: {_first_line(exc)}"
        finally:
            self.busy[index] -= 1


@contextmanager
def judge_pool(
    options: RayOptions, spec: Any, taxonomy: Taxonomy, tasks: frozenset[str], budget: int | None
) -> Iterator[JudgePool]:
    """HTTP judges (`budget` set): at most `budget` requests open across all workers, leased
    from one Limiter; local judges (None): one trace at a time per worker, each on its own model."""
    with ray_session(options) as ray:
        workers = max(1, options.workers)
        limiter = None
        if budget is not None:
            limiter = ray.remote(Limiter).options(num_cpus=0, max_concurrency=100_000).remote(budget)
        in_flight = 2 * (budget if budget is not None else workers)
        remote = ray.remote(JudgeWorker).options(
            **_actor_options(options, cpus=0.5 if budget is not None else 1.0),
            # an HTTP worker may hold every trace in flight, plus the Limiter's pause calls
            max_concurrency=in_flight + 4 if budget is not None else 1,
        )
        actors = [remote.remote(spec, taxonomy, tasks, limiter) for _ in range(workers)]
        _wait_ready(ray, [a.owner.remote() for a in actors])
        try:
            yield JudgePool(ray, actors, in_flight, limiter)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            if limiter is not None:
                ray.kill(limiter)
