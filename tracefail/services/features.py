"""Feature-extraction facade: pick traces, load the scorer, extract, store, record the run.

Idempotent per (trace, model, extractor version): traces already done are skipped, and each
trace's rows are written in one transaction when it is finished, so a killed run resumes where
it stopped. No printing here; callers get counts and one-line error messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tracefail.features.errors import FeatureError, ModelLoadError
from tracefail.model import Step
from tracefail.services.distributed import RayOptions
from tracefail.services.selection import UnknownTraceError, select_traces
from tracefail.store import Database
from tracefail.store import features as feature_store
from tracefail.store import runs as run_store
from tracefail.store import traces as trace_store

__all__ = ["FeatureError", "FeatureReport", "ModelLoadError", "extract_features"]


@dataclass
class FeatureReport:
    model: str = ""
    traces: int = 0  # extracted in this run
    skipped: int = 0  # already done for this model and extractor version
    steps: int = 0
    rows: int = 0
    tokens: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    run_id: str | None = None

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "traces": self.traces,
            "skipped": self.skipped,
            "steps": self.steps,
            "rows": self.rows,
            "tokens": self.tokens,
            "errors": len(self.errors),
            "elapsed_s": round(self.elapsed_s, 2),
            "tokens_per_s": round(self.tokens / self.elapsed_s, 1) if self.elapsed_s else None,
        }


def extract_features(
    db: Database,
    *,
    model: str | None = None,
    device: str = "auto",
    window: int = 2048,
    stride: int | None = None,
    layers: str = "all",
    trace_ids: list[str] | None = None,
    limit: int | None = None,
    filter_text: str = "",
    loaded=None,
    ray: RayOptions | None = None,
    on_start: Callable[[int, str], None] | None = None,
    on_trace: Callable[[str, int], None] | None = None,
    on_tokens: Callable[[int], None] | None = None,
) -> FeatureReport:
    """Extract and store features for the selected traces. `loaded` (a LoadedModel) skips loading;
    `ray` fans the extraction out over a Ray actor pool (the driver still does every write).

    Raises FeatureError (bad option, unknown trace, model that cannot load) before any work.
    """
    from tracefail.features.extract import ExtractConfig, Extractor
    from tracefail.features.loading import load_causal_lm

    try:
        selected = select_traces(db, trace_ids, limit, filter_text)
    except UnknownTraceError as exc:
        raise FeatureError(str(exc)) from None
    config = ExtractConfig(window=window, stride=stride, layers=layers)
    if ray is not None:
        from tracefail.services.distributed import feature_pool

        with feature_pool(ray, model, device, config) as pool:
            setup = _Setup(pool.name, pool.device, pool.layers)
            return _run(db, selected, config, setup, pool.run, on_start, on_trace)
    if loaded is None:
        loaded = load_causal_lm(model, device=device)
    extractor = Extractor(loaded, config)

    def local(items: Iterable[tuple[str, list[Step]]]) -> Iterator[tuple[str, Any, str | None]]:
        for trace_id, steps in items:
            try:
                result = extractor.extract(steps, on_tokens=on_tokens)
            except (FeatureError, RuntimeError, ValueError) as exc:
                text = str(exc).strip()
                yield trace_id, (None, 0, text.splitlines()[0] if text else repr(exc)), None
                continue
            yield trace_id, (result.rows, result.tokens, None), None

    setup = _Setup(loaded.name, loaded.device, extractor.layers)
    return _run(db, selected, config, setup, local, on_start, on_trace)


@dataclass(frozen=True)
class _Setup:
    name: str
    device: str
    layers: list[int]


# (trace_id, steps) pairs in -> (trace_id, (rows, tokens, extraction error), executor error) out
Executor = Callable[[Iterable[tuple[str, list[Step]]]], Iterator[tuple[str, Any, str | None]]]


def _run(
    db: Database,
    selected: list[str],
    config: Any,
    setup: _Setup,
    execute: Executor,
    on_start: Callable[[int, str], None] | None,
    on_trace: Callable[[str, int], None] | None,
) -> FeatureReport:
    """The one write path for every executor: each finished trace is stored in one transaction."""
    from tracefail.features.extract import EXTRACTOR_VERSION

    report = FeatureReport(model=setup.name)
    done = feature_store.done_traces(db, setup.name, EXTRACTOR_VERSION)
    pending = [t for t in selected if t not in done]
    report.skipped = len(selected) - len(pending)
    if on_start:
        on_start(len(pending), setup.name)
    run_config = {
        "model": setup.name,
        "device": setup.device,
        **config.as_dict(),
        "layers_resolved": setup.layers,
    }
    report.run_id = run_store.start_run(db, "features", run_config)
    n_steps: dict[str, int] = {}

    def inputs() -> Iterator[tuple[str, list[Step]]]:
        for trace_id in pending:
            steps = trace_store.get_steps(db, trace_id)
            n_steps[trace_id] = len(steps)
            yield trace_id, steps

    started = time.perf_counter()
    status = "interrupted"
    try:
        for trace_id, outcome, failure in execute(inputs()):
            rows, tokens, error = outcome if outcome is not None else (None, 0, failure)
            if rows is None:
                report.errors.append(f"{trace_id}: {error}")
                continue
            feature_store.replace_features(db, trace_id, setup.name, EXTRACTOR_VERSION, rows, report.run_id)
            report.traces += 1
            report.steps += n_steps[trace_id]
            report.rows += len(rows)
            report.tokens += tokens
            if on_trace:
                on_trace(trace_id, n_steps[trace_id])
        status = "done"
    finally:
        report.elapsed_s = time.perf_counter() - started
        run_store.finish_run(
            db,
            report.run_id,
            status=status,
            counts=report.as_dict(),
            n_errors=len(report.errors),
            tokens_in=report.tokens,
        )
    return report
