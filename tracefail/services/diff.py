"""Compare two runs (typically a failed and a successful run of one task): where they diverge,
which steps only one has, which tool results differ, and what each run's labels say there."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tracefail.analysis.diff import AlignedStep, align, first_divergence
from tracefail.model import Step
from tracefail.services.selection import UnknownTraceError, resolve_ids
from tracefail.store import Database
from tracefail.store import labels as label_store
from tracefail.store import trace_view as view_store
from tracefail.store.traces import get_steps, trace_header

PREVIEW_CHARS = 300
# one character per row status, shared by `tracefail diff` and the TUI's diff screen
MARKS = {"same": " ", "changed": "~", "tool_result": "≠", "only_a": "-", "only_b": "+"}


class DiffError(ValueError):
    """A trace id that is not in the corpus; the message names it."""


@dataclass(frozen=True)
class RunLabel:
    """A present failure mode or a root-cause attribution of one run, placed against the divergence."""

    source: str
    what: str  # "mode 3.2" or "mistake by AGENT"
    steps: tuple[int, ...]  # evidence steps / the mistake step
    where: str  # "at", "before", "after" the divergent step, or "" without a step


@dataclass(frozen=True)
class RunSide:
    trace_id: str
    framework: str | None
    outcome: str
    n_steps: int
    divergent_step: int | None  # this run's step at the first divergence (None: only the other has one)
    divergent_text: str | None
    labels: tuple[RunLabel, ...]


@dataclass(frozen=True)
class RunDiff:
    a: RunSide
    b: RunSide
    rows: tuple[AlignedStep, ...]
    first_divergence: int | None  # index into rows; None when the runs are identical
    counts: dict[str, int]  # rows per status


def _preview(step: Step | None) -> str | None:
    if step is None:
        return None
    calls = " ".join(f"{c.name}({c.arguments})" for c in step.tool_calls)
    text = " ".join(f"{step.content} {calls}".split())
    return text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS else "")


def _where(steps: tuple[int, ...], divergent: int | None) -> str:
    if not steps or divergent is None:
        return ""
    if divergent in steps:
        return "at"
    return "before" if max(steps) < divergent else "after"


def _labels(db: Database, trace_id: str, divergent: int | None) -> tuple[RunLabel, ...]:
    found = []
    for row in view_store.trace_labels(db, trace_id).filter(present=True).iter_rows(named=True):
        steps = tuple(sorted(row["evidence_steps"] or ()))
        found.append(RunLabel(row["source"], f"mode {row['mode_id']}", steps, _where(steps, divergent)))
    for row in label_store.attributions(db, trace_id=trace_id).iter_rows(named=True):
        steps = () if row["step_idx"] is None else (int(row["step_idx"]),)
        what = f"mistake by {row['agent']}" if row["agent"] else "mistake"
        found.append(RunLabel(row["source"], what, steps, _where(steps, divergent)))
    return tuple(found)


def _side(db: Database, trace_id: str, steps: list[Step], divergent: int | None) -> RunSide:
    head = trace_header(db, trace_id) or {}
    step = next((s for s in steps if s.step_idx == divergent), None)
    return RunSide(
        trace_id,
        head.get("framework"),
        str(head.get("outcome", "unknown")),
        len(steps),
        divergent,
        _preview(step),
        _labels(db, trace_id, divergent),
    )


def diff_runs(db: Database, trace_a: str, trace_b: str) -> RunDiff:
    """Align two stored runs step by step (raises DiffError for an unknown trace id)."""
    try:
        trace_a, trace_b = resolve_ids(db, [trace_a, trace_b])
    except UnknownTraceError as exc:
        raise DiffError(str(exc)) from None
    steps_a, steps_b = get_steps(db, trace_a), get_steps(db, trace_b)
    rows = align(steps_a, steps_b)
    first = first_divergence(rows)
    at = rows[first] if first is not None else None
    return RunDiff(
        _side(db, trace_a, steps_a, at.a if at else None),
        _side(db, trace_b, steps_b, at.b if at else None),
        tuple(rows),
        first,
        dict(Counter(row.status for row in rows)),
    )
