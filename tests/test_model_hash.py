"""Content hashes must never change: stored corpora dedupe re-ingested files by them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tracefail.ingest import registry
from tracefail.model import Step, StepKind, ToolCall, Trace

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"

# Text json.dumps escapes or passes through in ways a hand-built encoder could get wrong.
ODD = 'é ü 中文 🎉 \U0010ffff \u2028\u2029 \x00\x01\x1f\x7f "quoted" back\\slash \t\n\r\b\f / </script>'
LONE = "\ud800 lone surrogate \udfff"  # orjson refuses these; json.dumps passes them through


def _hash_as_first_defined(trace: Trace) -> str:
    """The formula the first stored corpora were hashed with: one model_dump per step."""
    payload = json.dumps(
        {
            "task": trace.task,
            "steps": [s.model_dump(mode="json", exclude={"metadata"}) for s in trace.steps],
            "raw": trace.raw,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def _edge_traces() -> Iterator[Trace]:
    yield Trace(trace_id="e:empty", source="e")
    yield Trace(trace_id="e:raw", source="e", task=ODD, raw=ODD * 3)
    yield Trace(
        trace_id="e:lone",
        source="e",
        task=LONE,
        raw=ODD + LONE,
        steps=[Step(step_idx=0, content=LONE, tool_calls=[ToolCall(name=LONE, arguments=LONE)])],
    )
    yield Trace(
        trace_id="e:all",
        source="e",
        task="t",
        steps=[
            Step(step_idx=0, content=ODD, agent=ODD, role="user", metadata={"not": "hashed"}),
            Step(
                step_idx=1,
                agent="a",
                recipient="b",
                role="assistant",
                kind=StepKind.LLM,
                name="n",
                tool_calls=[ToolCall(id="c1", name="f", arguments='{"x": 1.5e-7}'), ToolCall(name="g")],
                tool_call_id="c0",
                span_id="s1",
                parent_span_id="s0",
                model="m",
                tokens_in=0,
                tokens_out=123456789012,
                start_ts=datetime(2024, 2, 29, 23, 59, 59, 999999),
                end_ts=datetime(1970, 1, 1),
                status="error",
            ),
            Step(
                step_idx=2,
                kind=StepKind.TOOL,
                start_ts=datetime(2024, 1, 1, 12, tzinfo=UTC),
                end_ts=datetime(2024, 1, 1, 12, 0, 0, 5000, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
            ),
        ],
    )


# Computed by the pydantic-dump content_hash that stored corpora were hashed with, before the
# byte-building rewrite.
PINNED = {
    "e:empty": "37bfa0b7f7b9dc7a5a83633b291e71fcf2c83c9364b70e3afce5cabc1c7dc78c",
    "e:raw": "2febd5bcab87da10c43ca939715038354a7be2e73d374966b064079ed0f97a88",
    "e:lone": "1e4ea80569324b291541a4a44c73abb55642a62933a566ffff86d8a3f622c66c",
    "e:all": "67dda4a2bcd7e1211c76c8fafa230f5f5ea1bb9299a4fec648ed091124a4e063",
}


@pytest.mark.parametrize("trace", list(_edge_traces()), ids=lambda t: t.trace_id)
def test_content_hash_is_pinned_on_escapes_times_and_tool_calls(trace: Trace) -> None:
    assert trace.content_hash() == _hash_as_first_defined(trace) == PINNED[trace.trace_id]


def test_content_hash_ignores_metadata_and_sees_every_hashed_field() -> None:
    base = list(_edge_traces())[-1]
    assert base.model_copy(update={"metadata": {"x": 1}}).content_hash() == base.content_hash()
    changed = base.steps[1].model_copy(update={"tokens_in": 1})
    other = base.model_copy(update={"steps": [base.steps[0], changed, base.steps[2]]})
    assert other.content_hash() != base.content_hash()


def test_content_hash_is_unchanged_on_every_shipped_sample() -> None:
    checked = 0
    for path in registry.expand([SAMPLES]):
        for item in registry.detect(path).parse(path):
            if isinstance(item, Trace):
                assert item.content_hash() == _hash_as_first_defined(item), path
                checked += 1
    assert checked >= 40  # every shipped format, not a vacuous pass


def test_content_hash_keeps_steps_that_share_short_fields_apart() -> None:
    """Steps encoded from one shared template: repeats, `%` in names, and times that are equal but
    print apart (aware ones across offsets) must each still write their own text."""
    noon = datetime(2024, 1, 1, 12, tzinfo=UTC)
    shifted = noon.astimezone(timezone(timedelta(hours=5, minutes=30)))  # == noon, prints apart
    naive = datetime(2025, 3, 27, 1, 21, 3)
    shared = {"agent": "50% Coder %s %b", "name": "INFO", "recipient": "Planner"}
    steps = [
        Step(step_idx=0, content="a", start_ts=naive, **shared),
        Step(step_idx=1, content="b %b", start_ts=naive, **shared),
        Step(step_idx=2, content="c", start_ts=noon, end_ts=noon, **shared),
        Step(step_idx=3, content="c", start_ts=shifted, end_ts=shifted, **shared),
        Step(step_idx=4, content=LONE, start_ts=naive.replace(fold=1), **shared),
        Step(step_idx=5, content="d", tool_calls=[ToolCall(name="f", arguments="%d")], **shared),
        Step(step_idx=6, content="e", **shared | {"agent": "Reviewer"}),
    ]
    trace = Trace(trace_id="e:shared", source="e", task="t", steps=steps)
    assert trace.content_hash() == _hash_as_first_defined(trace)
    swapped = [s.model_copy(update={"start_ts": t}) for s, t in zip(steps[2:4], (shifted, noon), strict=True)]
    other = trace.model_copy(update={"steps": [*steps[:2], *swapped, *steps[4:]]})
    assert other.content_hash() == _hash_as_first_defined(other) != trace.content_hash()


def test_content_hash_is_unchanged_past_the_template_cap() -> None:
    """More distinct agent/name combinations than the shared template cache holds: it is emptied
    and refilled mid-trace, and the trace after it still hashes as first defined."""
    steps = [Step(step_idx=i, content=f"c{i}", agent=f"agent {i}", name="n") for i in range(4200)]
    first = Trace(trace_id="e:many", source="e", steps=steps)
    second = Trace(trace_id="e:after", source="e", steps=steps[:3])
    for trace in (first, second):
        assert trace.content_hash() == _hash_as_first_defined(trace)
