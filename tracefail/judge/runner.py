"""Resumable batch labeling: judge every trace not yet judged by this exact judge config.

The key is (trace, taxonomy version, judge config hash); the hash is the label source
`llm-judge:<hash>`. Each trace's labels and attribution are written in one transaction as soon
as it is judged, so a run killed at any moment loses at most the traces in flight, and the next
run skips exactly the traces already stored: no duplicates, nothing lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracefail.judge import calibration
from tracefail.judge.backend import Judge, JudgeError, JudgeResult, JudgeUnavailable
from tracefail.judge.prompt import TraceInput
from tracefail.model import Attribution, Label
from tracefail.store import Database
from tracefail.store.labels import (
    done_trace_ids,
    interrupt_stale_runs,
    latest_calibrations,
    save_judgements,
)
from tracefail.store.runs import config_hash, finish_run, start_run
from tracefail.store.traces import steps_of, trace_headers
from tracefail.taxonomy import TaxonomyFile, register

Progress = Callable[[int, int], None]
# (trace_id, input) pairs in -> batches of (trace_id, (result, judge error), executor error) out,
# each batch what finished together
Outcome = tuple[str, tuple[JudgeResult | None, JudgeError | None] | None, str | None]
Executor = Callable[[Iterable[tuple[str, TraceInput]]], Iterator[list[Outcome]]]
CHUNK = 64  # traces read from the corpus per query when feeding an executor


@dataclass
class LabelReport:
    run_id: str
    source: str
    requested: int = 0
    skipped: int = 0
    judged: int = 0
    labels: int = 0
    attributions: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    interrupted_runs: int = 0
    calibrated_modes: int = 0
    stopped: str | None = None  # why the run gave up early (the endpoint kept failing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "source": self.source,
            "requested": self.requested,
            "skipped": self.skipped,
            "judged": self.judged,
            "labels": self.labels,
            "attributions": self.attributions,
            "errors": len(self.errors),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "elapsed_s": round(self.elapsed_s, 2),
            "calibrated_modes": self.calibrated_modes,
            "stopped": self.stopped,
        }


def run_config(judge: Judge, taxonomy: TaxonomyFile, tasks: frozenset[str]) -> dict[str, Any]:
    tax = taxonomy.taxonomy
    return {
        "judge": judge.config(),
        "taxonomy": tax.id,
        "taxonomy_version": tax.version,
        "tasks": sorted(tasks),
    }


def judge_source(judge: Judge, taxonomy: TaxonomyFile, tasks: frozenset[str]) -> str:
    return f"llm-judge:{config_hash(run_config(judge, taxonomy, tasks))}"


def load_input(db: Database, trace_id: str) -> TraceInput:
    return load_inputs(db, [trace_id])[0]


def load_inputs(db: Database, trace_ids: Sequence[str]) -> list[TraceInput]:
    """What the judge reads, for several traces in two queries."""
    heads = trace_headers(db, trace_ids)
    steps = steps_of(db, trace_ids)
    inputs = []
    for trace_id in trace_ids:
        found = steps.get(trace_id, [])
        agents = sorted({s.agent for s in found if s.agent})
        task = heads.get(trace_id, {}).get("task")
        inputs.append(TraceInput(trace_id=trace_id, steps=found, task=task, agents=agents))
    return inputs


def to_rows(
    result: JudgeResult,
    taxonomy: TaxonomyFile,
    source: str,
    run_id: str,
    calibrations: dict[str, tuple[str, dict[str, float]]],
) -> tuple[list[Label], list[Attribution]]:
    """Verdict -> stored rows. A calibrated probability also decides `present` (at 0.5)."""
    verdict = result.verdict
    tax = taxonomy.taxonomy
    read = {
        "steps_read": verdict.steps_read,
        "truncated": verdict.truncated,
        "windows": result.details.get("windows", 1),
    }
    labels = []
    for mv in verdict.modes:
        cal = calibrations.get(mv.mode_id)
        probability = calibration.apply(mv.probability, cal[1]) if cal else mv.probability
        labels.append(
            Label(
                trace_id=verdict.trace_id,
                taxonomy_id=tax.id,
                taxonomy_version=tax.version,
                mode_id=mv.mode_id,
                present=probability >= 0.5 if cal else mv.present,
                probability=probability,
                raw_probability=mv.probability,
                evidence_steps=mv.evidence_steps,
                agent=mv.agent,
                rationale=mv.rationale,
                source=source,
                run_id=run_id,
                metadata={**read, "calibration": cal[0] if cal else None},
            )
        )
    attributions = []
    if verdict.root_cause_step is not None or verdict.root_cause_agent is not None:
        extra = {k: v for k, v in result.details.items() if k != "windows"}
        attributions.append(
            Attribution(
                trace_id=verdict.trace_id,
                agent=verdict.root_cause_agent,
                step_idx=verdict.root_cause_step,
                reason=verdict.summary or None,
                probability=verdict.root_cause_probability,
                source=source,
                run_id=run_id,
                metadata={**read, **extra, "index_base": 0},
            )
        )
    return labels, attributions


def label_corpus(
    db: Database,
    judge: Judge,
    taxonomy: TaxonomyFile,
    tasks: frozenset[str],
    trace_ids: Sequence[str],
    *,
    concurrency: int = 1,
    on_progress: Progress | None = None,
    execute: Executor | None = None,
) -> LabelReport:
    """Judge `trace_ids` in this process (asyncio, `concurrency` at once) or, with `execute`, on
    another executor (a Ray pool); either way each verdict is stored here, one trace at a time."""
    config = run_config(judge, taxonomy, tasks)
    source = f"llm-judge:{config_hash(config)}"
    interrupted = interrupt_stale_runs(db, "label", config_hash(config))
    register(db, taxonomy)
    run_id = start_run(db, "label", config)
    report = LabelReport(run_id=run_id, source=source, requested=len(trace_ids), interrupted_runs=interrupted)
    done = done_trace_ids(db, source)
    todo = [t for t in trace_ids if t not in done]
    report.skipped = len(trace_ids) - len(todo)
    tax = taxonomy.taxonomy
    calibrations = latest_calibrations(db, source, tax.id, tax.version)
    report.calibrated_modes = len(calibrations)
    started = time.monotonic()
    status = "failed"
    try:
        if execute is None:
            asyncio.run(
                _judge_all(db, judge, taxonomy, tasks, todo, concurrency, report, calibrations, on_progress)
            )
        else:
            _store_all(db, execute, taxonomy, todo, concurrency, report, calibrations, on_progress)
        status = "failed" if report.stopped else "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        report.elapsed_s = time.monotonic() - started
        report.cost_usd = judge.cost(report.tokens_in, report.tokens_out)
        finish_run(
            db,
            run_id,
            status=status,
            counts={**report.as_dict(), "error_messages": [f"{t}: {m}" for t, m in report.errors[:50]]},
            n_errors=len(report.errors),
            tokens_in=report.tokens_in,
            tokens_out=report.tokens_out,
            cost_usd=report.cost_usd,
        )
    return report


async def _judge_all(
    db: Database,
    judge: Judge,
    taxonomy: TaxonomyFile,
    tasks: frozenset[str],
    todo: list[str],
    concurrency: int,
    report: LabelReport,
    calibrations: dict,
    on_progress: Progress | None,
) -> None:
    bound = asyncio.Semaphore(max(1, concurrency))
    give_up_after = _give_up_after(concurrency)
    streak = 0

    async def one(trace_id: str) -> tuple[str, JudgeResult | None, JudgeError | None]:
        async with bound:
            try:
                trace = load_input(db, trace_id)
                return trace_id, await judge.judge(trace, taxonomy.taxonomy, tasks), None
            except JudgeError as exc:
                return trace_id, None, exc

    pending = [asyncio.ensure_future(one(t)) for t in todo]
    try:
        for number, future in enumerate(asyncio.as_completed(pending), start=1):
            trace_id, result, error = await future
            streak = streak + 1 if isinstance(error, JudgeUnavailable) else 0
            stored = _record(trace_id, result, error, taxonomy, report, calibrations)
            if stored is not None:
                save_judgements(db, [stored])
            if streak >= give_up_after:
                report.stopped = _stop_message(streak, error, len(todo) - number)
                break
            if on_progress:
                on_progress(number, len(todo))
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await judge.aclose()


def _give_up_after(concurrency: int) -> int:
    """Traces in flight fail together when the endpoint is down, so a streak of that size (and at
    least 3) means it is the endpoint, not the traces."""
    return max(3, concurrency)


def _stop_message(streak: int, error: object, not_sent: int) -> str:
    return (
        f"stopped after {streak} traces in a row failed at the endpoint ({error}); "
        f"{not_sent} traces were not sent, re-run to resume"
    )


def _record(
    trace_id: str,
    result: JudgeResult | None,
    error: JudgeError | str | None,
    taxonomy: TaxonomyFile,
    report: LabelReport,
    calibrations: dict,
) -> tuple[list[Label], list[Attribution]] | None:
    """One trace's rows to store, counted in the report; None (and the error counted) if it failed."""
    if result is None:
        report.errors.append((trace_id, str(error) or "unknown error"))
        if isinstance(error, JudgeError):  # a failed or invalid reply still cost its tokens
            report.tokens_in += error.tokens_in
            report.tokens_out += error.tokens_out
        return None
    labels, attributions = to_rows(result, taxonomy, report.source, report.run_id, calibrations)
    report.judged += 1
    report.labels += len(labels)
    report.attributions += len(attributions)
    report.tokens_in += result.tokens_in
    report.tokens_out += result.tokens_out
    return labels, attributions


def _inputs(db: Database, todo: list[str]) -> Iterator[tuple[str, TraceInput]]:
    for start in range(0, len(todo), CHUNK):
        for trace in load_inputs(db, todo[start : start + CHUNK]):
            yield trace.trace_id, trace


def _store_all(
    db: Database,
    execute: Executor,
    taxonomy: TaxonomyFile,
    todo: list[str],
    concurrency: int,
    report: LabelReport,
    calibrations: dict,
    on_progress: Progress | None,
) -> None:
    """The driver side of a fanned-out run: inputs are read in chunks, and the verdicts that
    finished together are stored in one transaction of whole traces as they land."""
    give_up_after = _give_up_after(concurrency)
    streak = 0
    number = 0
    batches = execute(_inputs(db, todo))
    try:
        for batch in batches:
            rows = []
            for trace_id, outcome, failure in batch:
                number += 1
                result, error = outcome if outcome is not None else (None, failure)
                streak = streak + 1 if isinstance(error, JudgeUnavailable) else 0
                stored = _record(trace_id, result, error, taxonomy, report, calibrations)
                if stored is not None:
                    rows.append(stored)
                if streak >= give_up_after:
                    report.stopped = _stop_message(streak, error, len(todo) - number)
                    break
            save_judgements(db, rows)
            if report.stopped:
                break
            if on_progress:
                on_progress(number, len(todo))
    finally:
        close = getattr(batches, "close", None)
        if close:
            close()
