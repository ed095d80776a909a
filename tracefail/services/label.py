"""Label a corpus with an LLM judge, and calibrate its probabilities: the facade for CLI and TUI."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tracefail.judge.backend import TASKS, Judge
from tracefail.judge.ranker import RankerJudge
from tracefail.judge.registry import JudgeConfigError, JudgeSpec, create
from tracefail.judge.runner import LabelReport, Progress, label_corpus
from tracefail.services.distributed import RayOptions
from tracefail.services.selection import UnknownTraceError, select_traces
from tracefail.store import Database
from tracefail.taxonomy import DEFAULT_TAXONOMY, find


class LabelUsageError(ValueError):
    """A bad option combination; the message is one line for the user."""


def parse_tasks(text: str) -> frozenset[str]:
    tasks = frozenset(t.strip() for t in text.split(",") if t.strip())
    unknown = tasks - TASKS
    if not tasks or unknown:
        raise LabelUsageError(f"--task: unknown {sorted(unknown) or 'empty'}; use modes, attribution or both")
    return tasks


def build_judge(spec: JudgeSpec) -> Judge:
    """The registered backend `spec.spec` names (see tracefail.judge.backends)."""
    try:
        return create(spec)
    except JudgeConfigError as exc:
        raise LabelUsageError(str(exc)) from None


def _check_transfer(
    db: Database, ranker: RankerJudge, chosen: list[str], ray: bool, on_warning: Callable[[str], None] | None
) -> None:
    """A ranker on a corpus unlike its training corpus: warn, and mark its attributions."""
    from tracefail.services.attribution import transfer_check

    check = transfer_check(db, ranker.model, chosen)
    ranker.transfer = check.metadata()
    if check.validated:
        return
    if ray:
        raise LabelUsageError(f"--judge ranker with --ray cannot mark its attributions: {check.message}")
    if on_warning is not None:
        on_warning(check.message)


def label(
    db: Database,
    *,
    judge: JudgeSpec | Any,
    taxonomy: str = DEFAULT_TAXONOMY,
    tasks: str = "modes,attribution",
    traces: Sequence[str] | None = None,
    limit: int | None = None,
    filter_text: str = "",
    on_progress: Progress | None = None,
    ray: RayOptions | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> LabelReport:
    """Judge the chosen traces; traces already judged by the same config are skipped. With `ray`
    the judging fans out over Ray workers (each builds its own judge from the spec, so `judge`
    must be a JudgeSpec) and this process stores every verdict."""
    task_set = parse_tasks(tasks)
    loaded = find(taxonomy)
    backend = build_judge(judge) if isinstance(judge, JudgeSpec) else judge
    answers = getattr(backend, "tasks", TASKS)
    if not task_set <= answers:
        raise LabelUsageError(
            f"--judge {backend.config()['backend']} answers only --task {','.join(sorted(answers))}"
        )
    http = isinstance(judge, JudgeSpec) and judge.spec.startswith("openai")
    concurrency = judge.concurrency if http else 1
    try:
        chosen = select_traces(db, traces, limit, filter_text, failing_only=task_set == {"attribution"})
    except UnknownTraceError as exc:
        raise LabelUsageError(str(exc)) from None
    if isinstance(backend, RankerJudge):
        _check_transfer(db, backend, chosen, ray is not None, on_warning)
    if ray is None:
        return label_corpus(
            db, backend, loaded, task_set, chosen, concurrency=concurrency, on_progress=on_progress
        )
    if not isinstance(judge, JudgeSpec):
        raise LabelUsageError("a Ray run builds its judges from a JudgeSpec, not a judge object")
    from tracefail.services.distributed import judge_pool

    with judge_pool(ray, judge, loaded.taxonomy, task_set, concurrency if http else None) as pool:
        return label_corpus(
            db,
            backend,
            loaded,
            task_set,
            chosen,
            concurrency=pool.in_flight,
            on_progress=on_progress,
            attempt=pool.judge,
        )
