"""Operations dashboard: tokens, cost, latency p50/p95, error and tool-failure rates per agent,
model, framework and day, each with its n: the numbers of `tracefail stats --section ops`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tracefail.services.ops import OVER_DAYS, Ops, ops_cells
from tracefail.tui.charts import sparkline
from tracefail.tui.text import one_line
from tracefail.tui.work import background

if TYPE_CHECKING:
    from tracefail.tui.app import TracefailApp

TITLES = {
    "agent": "per agent",
    "model": "per model",
    "session": "per session",
    "framework": "per framework",
    "day": "per day",
}
MAX_ROWS = 25  # per dimension, the rows with most steps (the latest days); the CLI has them all
SPARK = 24  # cells of a row's steps-per-day sparkline


class OpsScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Operations"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", tooltip="Back to the corpus.", id="ops.back")
    ]

    def __init__(self) -> None:
        super().__init__()
        self.built: Ops | None = None  # what is drawn, for tests

    @property
    def tf(self) -> TracefailApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with ScrollableContainer(id="ops-scroll"):  # tables keep their width and scroll sideways
            yield Static("counting tokens, latency and errors…", id="ops")
        yield Footer()

    def on_mount(self) -> None:
        background(self, lambda: _page(self.tf.service.ops()), self._show, group="ops")

    def action_back(self) -> None:
        self.app.pop_screen()

    def _show(self, page: tuple[Ops, Group, int]) -> None:
        self.built, shown, width = page
        static = self.query_one("#ops", Static)
        static.styles.width = width  # as wide as the widest table: a narrow terminal scrolls sideways
        static.update(shown)


def _page(built: Ops) -> tuple[Ops, Group, int]:
    """The dashboard's renderables and their unwrapped width, built in the worker (a corpus with
    25k sessions and days over years): the UI thread only draws them."""
    parts: list[Any] = [
        Text(
            f"Every figure with its n, rates with their Wilson 95% interval [low–high]; "
            f"cost from {built.prices_source}.",
            style="dim",
        )
    ]
    days = built.days()
    if len(days) > 1:
        by_day = {r["value"]: r for r in built.table.filter(dimension="day").iter_rows(named=True)}
        steps = [by_day[d]["steps"] if d in by_day else 0 for d in days]
        rates = [by_day[d]["error_rate"] if d in by_day else None for d in days]
        line = Text("steps per day ", style="bold")
        line.append_text(sparkline(steps, width=min(60, len(days))))
        line.append(f"  {days[0]} … {days[-1]}, {len(days)} days, n={sum(steps):,} steps", style="dim")
        errors = Text("error rate    ", style="bold")
        errors.append_text(sparkline(rates, width=min(60, len(days))))
        errors.append("  share of each day's steps; blank: a day without steps", style="dim")
        parts.extend([line, errors])
        if len(days) > SPARK:
            parts.append(
                Text(
                    f"each cell of a row's sparkline: the busiest of {len(days) / SPARK:.0f} days",
                    style="dim",
                )
            )
    for dimension, title in TITLES.items():
        found = built.table.filter(dimension=dimension)
        # the busiest agents, models, sessions and frameworks; the latest days
        rows = (
            found.tail(MAX_ROWS)
            if dimension == "day"
            else found.sort(["steps", "value"], descending=[True, False]).head(MAX_ROWS)
        )
        table = Table(title=title, title_justify="left", title_style="bold", expand=False)
        spark = dimension in OVER_DAYS and len(days) > 1
        for column in (
            "",
            "traces",
            "steps",
            "tokens in/out",
            "cost USD",
            "p50 ms",
            "p95 ms",
            "errors",
            "tool failures",
            *(["steps per day"] if spark else []),
        ):
            table.add_column(column, justify="left" if not column else "right")
        for r in rows.iter_rows(named=True):
            spark_cells = [sparkline(built.over_days(dimension, r["value"]), width=SPARK)] if spark else []
            table.add_row(
                one_line(r["value"], 28),
                f"{r['traces']:,}",
                f"{r['steps']:,}",
                *ops_cells(r).values(),
                *spark_cells,
            )
        if found.height > MAX_ROWS:
            kept = "latest" if dimension == "day" else "with most steps"
            table.caption = f"{MAX_ROWS} of {found.height:,} {kept}; all: tracefail stats --section ops"
        parts.append(table)
    page = Group(*parts)
    wide = Console(width=10_000)
    return built, page, Measurement.get(wide, wide.options, page).maximum
