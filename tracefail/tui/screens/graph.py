"""Agent graph screen: who hands off to whom in one trace, with counts and loops."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tracefail.services.stats import TraceGraph
from tracefail.tui.charts import bars
from tracefail.tui.text import one_line
from tracefail.tui.work import background

if TYPE_CHECKING:
    from tracefail.tui.app import TracefailApp


class GraphScreen(Screen[None]):
    """The hand-off graph `tracefail graph TRACE` builds, with the same flagged steps and the same
    (newest) attributed mistake agent."""

    BINDING_GROUP_TITLE = "Agent graph"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", tooltip="Back to the trace.", id="graph.back")
    ]

    def __init__(self, trace_id: str) -> None:
        super().__init__()
        self.trace_id = trace_id
        self.built: TraceGraph | None = None  # what is drawn, for tests

    @property
    def tf(self) -> TracefailApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="graph-scroll"):
            yield Static("building the hand-off graph…", id="graph")
        yield Footer()

    def on_mount(self) -> None:
        background(self, lambda: self.tf.service.graph(self.trace_id), self._show, group="graph")

    def action_back(self) -> None:
        self.app.pop_screen()

    def _show(self, built: TraceGraph) -> None:
        self.built = built
        graph, m = built.graph, built.measures
        edges = sorted(
            ((u, v, int(d["count"])) for u, v, d in graph.edges(data=True)), key=lambda e: (-e[2], e[0], e[1])
        )
        text = Text()
        text.append(f"{one_line(self.trace_id, 100)}\n", style="bold")
        text.append(
            f"{m.agents} agents · {m.handoffs} hand-offs ({m.distinct_handoffs} distinct) · "
            f"density {m.density:.2f}\n\n",
            style="dim",
        )
        top = max((e[2] for e in edges), default=1)
        text.append("Hand-offs (from ⟶ to)\n", style="bold underline")
        rows = [(f"{one_line(u, 22)} ⟶ {one_line(v, 22)}", c / top, str(c)) for u, v, c in edges]
        text.append_text(bars(rows, width=30, label_width=48) if rows else Text("  none\n", style="dim"))
        text.append("\nLoops (agents handing work back and forth)\n", style="bold underline")
        for cycle in m.cycles[:10]:
            text.append("  cycle: " + " ⟶ ".join(one_line(a, 24) for a in [*cycle, cycle[0]]) + "\n")
        for loop in m.loops:
            text.append(
                f"  repeated {loop.repeats}x at steps {loop.first_step}–{loop.last_step}: "
                + " ⟶ ".join(one_line(a, 24) for a in loop.agents)
                + "\n",
                style="yellow",
            )
        if not m.cycles and not m.loops:
            text.append("  none\n", style="dim")
        table = Table(box=None, header_style="bold underline")
        for column in ("agent", "steps", "hands off", "receives", "betweenness", ""):
            table.add_column(column, justify="left" if column in ("agent", "") else "right")
        for node, data in sorted(graph.nodes(data=True), key=lambda n: (-len(n[1]["steps"]), str(n[0]))):
            marks = Text()
            if data.get("mistake"):
                marks.append("✗ mistake agent ", style="bold red")
                marks.append(f"({built.mistake_source}) ", style="dim")
            if data.get("flagged_steps"):
                marks.append(f"⚑ {', '.join(map(str, data['flagged_steps'][:8]))}", style="yellow")
            table.add_row(
                Text(one_line(str(node), 40)),
                str(len(data["steps"])),
                str(m.out_degree.get(node, 0)),
                str(m.in_degree.get(node, 0)),
                f"{m.betweenness.get(node, 0.0):.2f}",
                marks,
            )
        self.query_one("#graph", Static).update(text)
        self.query_one("#graph-scroll").mount(Static(table))
