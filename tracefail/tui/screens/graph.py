"""Agent graph screen: who hands off to whom in one trace, with counts and loops."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tracefail.model import Step
from tracefail.services.browse import TraceView
from tracefail.tui.charts import bars
from tracefail.tui.text import one_line
from tracefail.tui.work import background


class GraphScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Agent graph"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", tooltip="Back to the trace.", id="graph.back")
    ]

    def __init__(self, view: TraceView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="graph-scroll"):
            yield Static("building the hand-off graph…", id="graph")
        yield Footer()

    def on_mount(self) -> None:
        background(self, self._build, self._show, group="graph")

    def action_back(self) -> None:
        self.app.pop_screen()

    def _build(self) -> Any:
        from tracefail.graph import handoff_graph

        steps = [
            Step(
                step_idx=s["step_idx"],
                agent=s["agent"],
                recipient=s["recipient"],
                role=s["role"],
                kind=s["kind"],
                name=s["name"],
                span_id=s["span_id"],
                parent_span_id=s["parent_span_id"],
            )
            for s in self.view.steps
        ]
        return handoff_graph(steps)

    def _show(self, graph: Any) -> None:
        import networkx as nx

        edges = sorted(
            ((u, v, _count(d)) for u, v, d in graph.edges(data=True)), key=lambda e: (-e[2], e[0], e[1])
        )
        text = Text()
        text.append(f"{one_line(self.view.trace_id, 100)}\n", style="bold")
        text.append(
            f"{graph.number_of_nodes()} agents · {graph.number_of_edges()} hand-off pairs · "
            f"{sum(e[2] for e in edges)} hand-offs\n\n",
            style="dim",
        )
        top = max((e[2] for e in edges), default=1)
        text.append("Hand-offs (from ⟶ to)\n", style="bold underline")
        text.append_text(
            bars(
                [(f"{one_line(u, 22)} ⟶ {one_line(v, 22)}", c / top, str(c)) for u, v, c in edges],
                width=30,
                label_width=48,
            )
        )
        loops = [c for c in nx.simple_cycles(graph, length_bound=4)] if edges else []
        text.append("\nLoops (agents that hand work back and forth)\n", style="bold underline")
        if loops:
            for cycle in sorted(loops, key=len)[:20]:
                text.append("  " + " ⟶ ".join(one_line(a, 24) for a in [*cycle, cycle[0]]) + "\n")
        else:
            text.append("  none\n", style="dim")
        table = Table(box=None, header_style="bold underline", title_justify="left")
        table.add_column("agent")
        table.add_column("steps", justify="right")
        table.add_column("hands off", justify="right")
        table.add_column("receives", justify="right")
        spoke: dict[str, int] = {}
        for step in self.view.steps:
            key = step["agent"] or step["role"] or "?"
            spoke[key] = spoke.get(key, 0) + 1
        for node in sorted(graph.nodes, key=lambda n: -spoke.get(n, 0)):
            out = sum(_count(d) for _, _, d in graph.out_edges(node, data=True))
            into = sum(_count(d) for _, _, d in graph.in_edges(node, data=True))
            table.add_row(Text(one_line(str(node), 40)), str(spoke.get(node, 0)), str(out), str(into))
        self.query_one("#graph", Static).update(Text.assemble(text, "\n"))
        self.query_one("#graph-scroll").mount(Static(table))


def _count(data: dict[str, Any]) -> int:
    return int(data.get("count", data.get("weight", 1)))
