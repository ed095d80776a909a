"""StepColumns.steps (the splitters' unvalidated way to Step objects) builds the same steps as
the validating constructor, each with its own mutable defaults."""

from __future__ import annotations

from datetime import datetime

import pytest

from tracefail.model import Step, StepColumns, StepKind, ToolCall, Trace


@pytest.mark.parametrize(
    "values",
    [
        {"step_idx": 0, "content": ""},
        {
            "step_idx": 7,
            "content": "line one\nline two \u00e9",
            "agent": "Planner",
            "recipient": "Coder",
            "role": "assistant",
            "name": "INFO",
            "start_ts": datetime(2025, 3, 27, 1, 21, 11),
        },
    ],
)
def test_column_steps_equal_the_validated_steps(values: dict) -> None:
    step_idx, content = values["step_idx"], values["content"]
    rest = {k: v for k, v in values.items() if k not in ("step_idx", "content")}
    columns = StepColumns()
    for _ in range(step_idx + 1):
        columns.append(content, **rest)
    fast_steps = columns.steps()
    checked_steps = [Step(step_idx=i, content=content, **rest) for i in range(step_idx + 1)]
    assert fast_steps == checked_steps
    assert [s.model_dump() for s in fast_steps] == [s.model_dump() for s in checked_steps]
    assert all(s.kind is StepKind.MESSAGE for s in fast_steps)
    assert (
        Trace(trace_id="t", source="s", steps=fast_steps).content_hash()
        == Trace(trace_id="t", source="s", steps=checked_steps).content_hash()
        == Trace(trace_id="t", source="s").with_columns(columns).content_hash()
    )


def test_column_steps_do_not_share_their_lists_and_dicts() -> None:
    columns = StepColumns()
    columns.append("a")
    columns.append("b")
    first, second = columns.steps()
    first.metadata["x"] = 1
    first.tool_calls.append(ToolCall(name="search"))
    assert second.metadata == {} and second.tool_calls == []
