"""Step.split_from_log (the splitters' unvalidated constructor) builds the same step as the
validating constructor, with its own mutable defaults."""

from __future__ import annotations

from datetime import datetime

import pytest

from tracefail.model import Step, StepKind, ToolCall, Trace


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
def test_split_from_log_equals_the_validated_step(values: dict) -> None:
    step_idx, content = values["step_idx"], values["content"]
    rest = {k: v for k, v in values.items() if k not in ("step_idx", "content")}
    fast = Step.split_from_log(step_idx, content, **rest)
    checked = Step(step_idx=step_idx, content=content, **rest)
    assert fast == checked
    assert fast.model_dump() == checked.model_dump()
    assert fast.kind is StepKind.MESSAGE
    fast_steps = [Step.split_from_log(i, content, **rest) for i in range(step_idx + 1)]
    checked_steps = [Step(step_idx=i, content=content, **rest) for i in range(step_idx + 1)]
    assert (
        Trace(trace_id="t", source="s", steps=fast_steps).content_hash()
        == Trace(trace_id="t", source="s", steps=checked_steps).content_hash()
    )


def test_split_from_log_steps_do_not_share_their_lists_and_dicts() -> None:
    first, second = Step.split_from_log(0, "a"), Step.split_from_log(1, "b")
    first.metadata["x"] = 1
    first.tool_calls.append(ToolCall(name="search"))
    assert second.metadata == {} and second.tool_calls == []
