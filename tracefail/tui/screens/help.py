"""Help screen: every key binding of every screen, generated from the BINDINGS themselves."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tracefail.services.filter_language import FILTER_HELP

PALETTE_NOTE = (
    "ctrl+p opens the command palette: type a verb (filter, sort, open, export, label, view, feature)."
)


def binding_groups() -> list[tuple[str, list[Binding]]]:
    """(group title, bindings) for the app and each screen, in the order a user meets them."""
    from tracefail.tui.app import TracefailApp
    from tracefail.tui.screens.clusters import ClustersScreen
    from tracefail.tui.screens.corpus import CorpusScreen
    from tracefail.tui.screens.diff import DiffScreen
    from tracefail.tui.screens.feature_picker import FeaturePicker
    from tracefail.tui.screens.graph import GraphScreen
    from tracefail.tui.screens.label_edit import LabelEditor
    from tracefail.tui.screens.ops import OpsScreen
    from tracefail.tui.screens.review import ReviewScreen
    from tracefail.tui.screens.stats import StatsScreen
    from tracefail.tui.screens.trace import TraceScreen
    from tracefail.tui.widgets.timeline import Timeline

    groups: list[tuple[str, list[Binding]]] = [
        (
            "Everywhere",
            [b for b in TracefailApp.BINDINGS if isinstance(b, Binding)]
            + [Binding("ctrl+p", "command_palette", "Command palette")],
        ),
    ]
    for screen in (
        CorpusScreen,
        TraceScreen,
        Timeline,
        GraphScreen,
        StatsScreen,
        DiffScreen,
        ClustersScreen,
        ReviewScreen,
        OpsScreen,
        LabelEditor,
        FeaturePicker,
    ):
        groups.append(
            (
                screen.BINDING_GROUP_TITLE or screen.__name__,
                [b for b in screen.BINDINGS if isinstance(b, Binding)],
            )
        )
    return groups


class HelpScreen(ModalScreen[None]):
    BINDING_GROUP_TITLE = "Help"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="help.close"),
        # a modal screen hides the app's keys: these are the app's, with the app's meaning
        Binding("question_mark,f1", "app.help", "Close", id="help.toggle"),
        Binding("q", "app.quit", "Quit", id="help.quit"),
    ]

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, show_header=False, padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for title, bindings in binding_groups():
            table.add_row(Text(title, style="bold underline magenta"), "")
            for binding in bindings:
                keys = binding.key.replace("question_mark", "?").replace("slash", "/").replace("plus", "+")
                table.add_row(keys, binding.tooltip or binding.description)
            table.add_row("", "")
        table.add_row(Text("Filter words", style="bold underline magenta"), FILTER_HELP)
        table.add_row("", PALETTE_NOTE)
        with VerticalScroll(id="help-body"):
            yield Static(Text("tracefail browse — keys", style="bold"), classes="form-title")
            yield Static(table)

    def action_close(self) -> None:
        self.dismiss(None)
