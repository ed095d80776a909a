"""Window planning: every step token scored exactly once, windows bounded, long steps split."""

from __future__ import annotations

import pytest

from tracefail.features.errors import FeatureError
from tracefail.features.layout import Layout, StepSpan, plan_windows


def layout(*lengths: int, gap: int = 4) -> Layout:
    spans, position = [], 2
    for index, length in enumerate(lengths):
        position += gap
        spans.append(StepSpan(index, position, position + length))
        position += length
    return Layout(list(range(position + 2)), spans)


@pytest.mark.parametrize("window,stride", [(64, None), (64, 16), (128, 128), (256, 100)])
def test_every_step_token_is_scored_once(window, stride):
    plan = layout(10, 0, 150, 30, 400, 5, 60)
    windows = plan_windows(plan, window, stride)
    scored: dict[int, list[int]] = {}
    for w in windows:
        assert w.length <= window
        for piece in w.pieces:
            scored.setdefault(piece.step_idx, []).extend(range(piece.start, piece.end))
            # the piece's tokens are in the window, in order, after at least one context token
            assert w.to_window(piece.end) - w.to_window(piece.start) == piece.end - piece.start
            assert w.to_window(piece.start) >= 1
    for span in plan.spans:
        assert scored.get(span.step_idx, []) == list(range(span.start, span.end))


def test_long_step_is_split_in_order_with_preceding_context():
    plan = layout(20, 500, 20)
    windows = plan_windows(plan, 128, 64)
    parts = [p for w in windows for p in w.pieces if p.step_idx == 1]
    assert len(parts) > 1
    assert [p.part for p in parts] == list(range(len(parts)))
    for w in windows[1:]:
        assert w.ranges[0][0] == 0  # the anchor (start of the trace) stays in every window
        first = w.pieces[0]
        assert w.to_window(first.start) >= 128 - 64 - 16  # overlap minus anchor, at least


def test_a_short_trace_is_one_window_and_bad_options_fail():
    plan = layout(10, 20)
    assert len(plan_windows(plan, 2048)) == 1
    with pytest.raises(FeatureError):
        plan_windows(plan, 64, stride=0)
    with pytest.raises(FeatureError):
        plan_windows(plan, 8)


def test_a_tool_call_step_with_empty_content_is_scored_on_its_call():
    from tests.tiny_lm import build_tokenizer
    from tracefail.features.layout import render
    from tracefail.model import Step, ToolCall

    tokenizer = build_tokenizer()
    call = Step(
        step_idx=0, agent="coder", tool_calls=[ToolCall(id="c1", name="bash", arguments='{"cmd":"ls"}')]
    )
    result = Step(step_idx=1, agent="tool", tool_call_id="c1", content="denied", status="error")
    layout = render([call, result], tokenizer)
    text = [tokenizer.decode(layout.ids[s.start : s.end]) for s in layout.spans]
    assert text[0] == '[tool call bash({"cmd":"ls"}) id=c1]'
    assert text[1] == "[tool result for call c1]\ndenied\n[status: error]"
