"""A step's whole text, or the conversation from it on, as messages: speaker, role, time and tokens,
tool calls pretty-printed and folded when long, each call and result naming its partner step.

Trace content is untrusted: it only reaches the screen through `tui.text` (literal text, control
characters shown as symbols); JSON is re-indented from the parsed value and highlighted as a Text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tracefail.services.tool_links import ToolLinks
from tracefail.tui.text import PREVIEW_CHARS, clean, literal, one_line

FOLD_LINES = 12  # tool arguments and JSON results longer than this are folded until `o`
CONVERSATION_STEPS = 30  # at most this many messages from the cursor on
CONVERSATION_CHARS = 12_000  # ... and about this much text, so long traces stay quick to draw


def pretty_json(raw: str) -> str | None:
    """`raw` re-indented when it is a JSON object or array (a string holding JSON is unwrapped
    once: some sources encode arguments twice), else None."""
    text = raw.strip()
    if not text or text[0] not in '[{"':
        return None
    try:
        value = json.loads(text)
        if isinstance(value, str) and value.strip()[:1] in ("{", "["):
            value = json.loads(value)
    except ValueError:
        return None
    if not isinstance(value, dict | list):
        return None
    return json.dumps(value, indent=2, ensure_ascii=False)


def _highlighted(code: str, expanded: bool) -> Text:
    lines = clean(code).splitlines()
    shown = lines if expanded else lines[:FOLD_LINES]
    text = Syntax("", "json", theme="ansi_dark", background_color="default").highlight("\n".join(shown))
    text.rstrip()
    if len(shown) < len(lines):
        text.append(f"\n… {len(lines) - len(shown)} more lines (o: show all)", style="italic dim")
    return text


def _payload(raw: str, expanded: bool) -> Text:
    pretty = pretty_json(raw)
    if pretty is not None:
        return _highlighted(pretty, expanded)
    return literal(raw, limit=None if expanded else PREVIEW_CHARS)


def _clock(value: Any) -> str | None:
    return value.strftime("%H:%M:%S") if isinstance(value, datetime) else None


def _duration(step: dict[str, Any]) -> str | None:
    start, end = step.get("start_ts"), step.get("end_ts")
    if not isinstance(start, datetime) or not isinstance(end, datetime) or end < start:
        return None
    seconds = (end - start).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _tokens(step: dict[str, Any]) -> str | None:
    tokens_in, tokens_out = step.get("tokens_in"), step.get("tokens_out")
    if tokens_in is None and tokens_out is None:
        return None
    return (
        f"{tokens_in if tokens_in is not None else '?'}→{tokens_out if tokens_out is not None else '?'} tok"
    )


class StepView(VerticalScroll):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)

    def compose(self) -> ComposeResult:
        yield Static(id="step")

    def show(
        self,
        steps: Sequence[dict[str, Any]],
        index: int,
        links: ToolLinks,
        colour_of: Callable[[dict[str, Any]], tuple[str, str]],
        feature: tuple[str, float] | None,
        expanded: bool,
        conversation: bool,
    ) -> None:
        """Draw step `index` (or, in conversation mode, the messages from it on); `colour_of` gives
        a step's speaker and colour; `feature` is the charted feature's value at `index`."""
        text = self.message_text(steps, index, links, colour_of, feature, expanded)
        if conversation:
            budget = CONVERSATION_CHARS - len(text.plain)
            for i in range(index + 1, min(len(steps), index + CONVERSATION_STEPS)):
                if budget <= 0:
                    text.append(f"\n\n… {len(steps) - i} more steps (move down to read on)", style="dim")
                    break
                text.append("\n\n")
                more = self.message_text(steps, i, links, colour_of, None, False)
                budget -= len(more.plain)
                text.append_text(more)
        self.query_one("#step", Static).update(text)
        self.scroll_home(animate=False)

    def message_text(
        self,
        steps: Sequence[dict[str, Any]],
        index: int,
        links: ToolLinks,
        colour_of: Callable[[dict[str, Any]], tuple[str, str]],
        feature: tuple[str, float] | None,
        expanded: bool,
    ) -> Text:
        step = steps[index]
        agent, colour = colour_of(step)
        text = Text()
        text.append("▌", style=colour)
        text.append(f"step {index} ", style="bold")
        text.append(one_line(agent, 40), style=f"bold {colour}")
        details = [step.get("role"), step.get("kind"), step.get("name"), step.get("model")]
        details += [_clock(step.get("start_ts")), _duration(step), _tokens(step)]
        text.append("  " + " · ".join(one_line(str(d), 30) for d in details if d), style="dim")
        failed = (step.get("status") or "").lower() == "error"
        if failed:
            text.append("  ✗ error", style="bold red")
        if feature is not None:
            text.append(f"  {feature[0]}={feature[1]:.3g}", style="cyan")
        if index in links.results:
            text.append_text(self._result_line(index, links, failed))
        text.append("\n")
        content = step.get("content") or ""
        if content:
            text.append_text(
                _payload(content, expanded)
                if index in links.results
                else literal(content, limit=None if expanded else PREVIEW_CHARS)
            )
        for k, call in enumerate(links.calls.get(index, [])):
            text.append("\n▶ call ", style="bold yellow")
            text.append(one_line(call.name, 60), style="bold")
            if call.id:
                text.append(f" [{one_line(call.id, 40)}]", style="dim")
            link = links.by_call.get((index, k))
            if link is not None:
                text.append(f"  → result at step {link.result_step}", style="green")
                if (steps[link.result_step].get("status") or "").lower() == "error":
                    text.append(" (error)", style="bold red")
            else:
                text.append("  → no result in this trace", style="dim")
            if call.arguments.strip():
                text.append("\n")
                text.append_text(_payload(call.arguments, expanded))
        for key, title in (("kept", "kept with the step"), ("kept_with_trace", "kept with the trace")):
            if step.get(key):  # metadata text: span attributes, tool definitions, system prompts
                text.append(f"\n\n{title}:\n", style="bold")
                text.append_text(literal(step[key], limit=None if expanded else PREVIEW_CHARS))
        return text

    @staticmethod
    def _result_line(index: int, links: ToolLinks, failed: bool) -> Text:
        link = links.by_result.get(index)
        line = Text("\n◀ result", style="bold green" if not failed else "bold red")
        if link is None:
            line.append(" of a tool call not found in this trace", style="dim")
            return line
        line.append(" of ", style="dim")
        line.append(one_line(link.tool, 60), style="bold")
        line.append(f" (call at step {link.call_step})", style="dim")
        line.append("  ✗ failed" if failed else "  ok", style="bold red" if failed else "green")
        return line

    def message(self, text: Text) -> None:
        """Show a notice in place of a step (e.g. while the corpus is busy)."""
        self.query_one("#step", Static).update(text)
