"""The browser application: owns the service, the corpus filter and the undo stack."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from tracefail.services.browse import BrowseService
from tracefail.services.filter_language import CorpusFilter
from tracefail.services.views import Receipt
from tracefail.tui.commands import BrowseCommands
from tracefail.tui.layout import TraceLayout, default_layout_file
from tracefail.tui.work import background

# seconds the browser keeps its read connection after the last read: a burst of filter changes
# opens the file once, and other processes can write it this long after the browser went idle
HOLD_S = 3.0


class TracefailApp(App[None]):
    """`tracefail browse`: corpus -> trace -> graph / stats, with human labels and undo."""

    CSS_PATH = "app.tcss"
    TITLE = "tracefail"
    COMMANDS = App.COMMANDS | {BrowseCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "question_mark,f1",
            "help",
            "Help",
            tooltip="List every key binding; again to close.",
            id="app.help",
        ),
        Binding("u", "undo", "Undo label", tooltip="Undo the last human label you wrote.", id="app.undo"),
        Binding("q", "quit", "Quit", tooltip="Leave tracefail browse.", id="app.quit"),
    ]

    def __init__(
        self,
        db_path: Path | str,
        user: str,
        export_dir: Path | None = None,
        ranker_path: Path | None = None,
        layout_file: Path | None = None,
        remember_layout: bool = False,
    ) -> None:
        super().__init__()
        # where the trace screen's layout is remembered (None: not kept); `browse` keeps it in the
        # user's config folder, tests in a file of their own or nowhere
        self.layout_file = layout_file or (default_layout_file() if remember_layout else None)
        self.trace_layout = TraceLayout.load(layout_file)
        self.service = BrowseService(db_path, user, hold_s=HOLD_S)
        self.export_dir = export_dir or Path.cwd()
        self.ranker_path = ranker_path  # orders the review queue (else one is fitted on the labels)
        self.corpus_filter = CorpusFilter()
        self.receipts: list[Receipt] = []
        self.writes = 0  # human writes and undos so far: the corpus list re-reads when it changed
        self.error: str | None = None  # why the corpus could not be opened at all (the app exits)
        self.sub_title = f"{Path(db_path).name} · labelling as {self.service.source}"

    def on_unmount(self) -> None:
        self.service.close()  # let go of the file at once, not after HOLD_S

    def cannot_open(self, message: str) -> None:
        """The corpus cannot be read at all (not a DuckDB file, corrupt, unreadable): an empty
        screen saying "loading…" helps nobody, so the browser ends and `tracefail browse`
        prints `message` as its one line."""
        self.error = message
        self.exit(return_code=1)

    def on_mount(self) -> None:
        from tracefail.tui.screens.corpus import CorpusScreen

        self.push_screen(CorpusScreen())

    def action_help(self) -> None:
        from tracefail.tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):  # the key that opened it closes it
            self.screen.dismiss(None)
        else:
            self.push_screen(HelpScreen())

    def remember(self, receipt: Receipt) -> None:
        self.receipts.append(receipt)
        self.writes += 1
        self.notify(f"saved: {receipt.description} (u undoes)", title="human label")

    def action_undo(self) -> None:
        if not self.receipts:
            self.notify("nothing to undo", severity="warning")
            return
        receipt = self.receipts.pop()

        def undone(removed: bool) -> None:
            self.writes += 1
            self.notify(f"undone: {receipt.description}" if removed else "already gone", title="undo")
            reload = getattr(self.screen, "reload", None)
            if callable(reload):
                reload()

        def busy(message: str) -> None:
            self.receipts.append(receipt)
            self.notify(f"corpus busy, undo kept for later: {message}", severity="error")

        background(
            self, lambda: self.service.undo(receipt), undone, group="write", exclusive=False, busy=busy
        )
