"""One step's whole text (escaped: trace content can never inject markup), with its tool calls."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tracefail.tui.text import PREVIEW_CHARS, literal, one_line


class StepView(VerticalScroll):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)

    def compose(self) -> ComposeResult:
        yield Static(id="step")

    def show(
        self,
        step: dict[str, Any],
        index: int,
        agent: str,
        colour: str,
        feature: tuple[str, float] | None,
        expanded: bool,
    ) -> None:
        """Draw step `index`; `feature` is the charted feature's value here; `expanded` shows all text."""
        text = Text()
        text.append(f"step {index} ", style="bold")
        text.append(one_line(agent, 40), style=f"bold {colour}")
        details = [step["role"], step["kind"], step["name"], step["status"]]
        text.append("  " + " · ".join(one_line(d, 30) for d in details if d), style="dim")
        if feature is not None:
            text.append(f"  {feature[0]}={feature[1]:.3g}", style="cyan")
        text.append("\n\n")
        limit = None if expanded else PREVIEW_CHARS
        text.append_text(literal(step["content"], limit=limit))
        if step["tool_calls"]:
            text.append("\n\ntool calls: ", style="bold")
            text.append_text(literal(step["tool_calls"], limit=limit))
        for key, title in (("kept", "kept with the step"), ("kept_with_trace", "kept with the trace")):
            if step.get(key):  # metadata text: span attributes, tool definitions, system prompts
                text.append(f"\n\n{title}:\n", style="bold")
                text.append_text(literal(step[key], limit=limit))
        self.query_one("#step", Static).update(text)
        self.scroll_home(animate=False)

    def message(self, text: Text) -> None:
        """Show a notice in place of a step (e.g. while the corpus is busy)."""
        self.query_one("#step", Static).update(text)
