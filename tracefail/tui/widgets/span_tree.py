"""The span tree of a trace (OTel-style parent links), shown instead of the timeline with `t`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.widgets import Tree
from textual.widgets._tree import TreeNode

from tracefail.services.spans import SpanTiming
from tracefail.tui import waterfall
from tracefail.tui.text import one_line


class SpanTree(Tree[int]):
    """Each node's data is its step index; selecting a node is the screen's cue to go there."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("spans", id=id)

    def show(
        self,
        steps: list[dict[str, Any]],
        agent_of: Callable[[dict[str, Any]], str],
        colours: dict[str, str],
        spans: tuple[SpanTiming, ...] = (),
    ) -> None:
        """The tree; with `spans`, each node also shows its waterfall bar, duration, status,
        tokens and cost, and the slowest and failing spans are marked."""
        self.clear()
        nodes: dict[str, TreeNode[int]] = {}
        by_span = {s["span_id"]: s for s in steps if s["span_id"]}
        timings = {span.step_idx: span for span in spans}
        total_s = waterfall.total_seconds(spans)
        self.root.set_label(waterfall.LEGEND if timings else "spans")
        for step in steps:
            parent = nodes.get(step["parent_span_id"]) if step["parent_span_id"] in by_span else None
            label = Text(f"{step['step_idx']} ", style="dim")
            # compact, and lined up across depths, so the waterfall fits beside the tree
            timing = timings.get(step["step_idx"])
            name_width = max(6, 20 - 4 * timing.depth) if timing else 30
            label.append(
                one_line(step["name"] or step["kind"], name_width).ljust(name_width if timing else 0),
                style="bold",
            )
            agent = agent_of(step)
            label.append(
                f" {one_line(agent, 10 if timing else 20)}".ljust(11 if timing else 0), style=colours[agent]
            )
            if timing:
                label.append_text(waterfall.columns(timing, total_s))
            node = (parent or self.root).add(label, data=step["step_idx"], expand=True)
            if step["span_id"]:
                nodes[step["span_id"]] = node
        self.root.expand()
