"""Corpus screen: the filtered, sorted trace table, fetched one page at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from tracefail.services.browse import StoreError
from tracefail.services.filter_language import (
    FILTER_HELP,
    SORT_COLUMNS,
    CorpusFilter,
    FilterError,
    format_filter,
    known_values,
    parse_filter,
    with_sort,
)
from tracefail.services.views import CorpusPage, Facets
from tracefail.tui.charts import sparkline
from tracefail.tui.mode_names import with_name
from tracefail.tui.text import one_line
from tracefail.tui.widgets.live_status import LiveStatus
from tracefail.tui.work import background

if TYPE_CHECKING:
    from tracefail.tui.app import TracefailApp

PAGE = 80  # rows per query (two screens); the next page loads when the cursor nears the end
LOOKAHEAD = 30  # rows before the end of what is loaded that trigger the next page
RETRY_S = 2.0
COLUMNS = [  # (key, title, width); keys in SORT_COLUMNS can be sorted by
    ("trace_id", "trace", 30),
    ("framework", "framework", 10),
    ("llm", "llm", 12),
    ("benchmark", "benchmark", 16),
    ("steps", "steps", 5),
    ("outcome", "outcome", 7),
    ("modes", "failure modes", 28),
    ("sources", "label sources", 18),
    ("spark", "uncertainty", 12),
]
OUTCOME_STYLE = {"failure": "red", "success": "green"}


class CorpusScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Corpus"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "slash", "focus_filter", "Filter", tooltip="Edit the filter / search words.", id="corpus.filter"
        ),
        Binding("escape", "clear_filter", "Clear", tooltip="Clear the filter.", id="corpus.clear"),
        Binding("s", "sort_next", "Sort", tooltip="Sort by the next column.", id="corpus.sort"),
        Binding("r", "reverse", "Reverse", tooltip="Reverse the sort order.", id="corpus.reverse"),
        Binding("S", "stats", "Stats", tooltip="Failure statistics of the selection.", id="corpus.stats"),
        Binding(
            "O",
            "ops",
            "Ops",
            tooltip="Tokens, cost, latency and error rates per agent, model, session, day.",
            id="corpus.ops",
        ),
        Binding("v", "review", "Review", tooltip="Failed traces worth labelling next.", id="corpus.review"),
        Binding("x", "export", "Export", tooltip="Write the selection as JSONL.", id="corpus.export"),
        Binding("R", "reload", "Refresh", tooltip="Re-read the corpus.", id="corpus.refresh"),
        Binding("space", "mark", "Mark", tooltip="Mark or unmark a trace to diff.", id="corpus.mark"),
        Binding(
            "d", "diff", "Diff", tooltip="Diff the two marked traces (or one and this).", id="corpus.diff"
        ),
        Binding(
            "C", "clusters", "Clusters", tooltip="Failure clusters, enter filters.", id="corpus.clusters"
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.total: int | None = None  # counted after the first page is shown
        self.corpus_size: int | None = None  # traces in the corpus, for "N matching of M"
        self.loaded = 0
        self.generation = 0  # bumped per filter; results of older generations are dropped
        self.last_page_short = False
        # a page is being read (not Textual's `loading`: over the screen it would disable it)
        self.fetching = False
        # the table takes the focus once its rows show: the first page's, and a submitted filter's
        self.focus_table = True
        self.busy: str | None = None
        self.spark_feature: str | None = None
        self.row_ids: list[str] = []  # trace id of each loaded table row
        self.marked: list[str] = []  # traces marked for a diff, oldest first (at most two)
        self.seen_writes = 0  # the app's human-write count when the rows were last read

    @property
    def tf(self) -> TracefailApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder=FILTER_HELP, id="filter")
        yield Static(id="filter-error")
        table: DataTable[Any] = DataTable(id="corpus", cursor_type="row", zebra_stripes=True)
        for key, title, width in COLUMNS:
            table.add_column(title, key=key, width=width)
        yield table
        yield Static("loading…", id="status")
        yield LiveStatus()
        yield Footer()

    def on_screen_resume(self) -> None:
        """Back from a trace where labels were written: re-read, so the row shows them (as `R`)."""
        if self.seen_writes != self.tf.writes:
            self.seen_writes = self.tf.writes
            self.reload()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

        def prepare() -> str | None:  # in the worker: the corpus opens, or why it cannot
            try:
                self.tf.service.prepare()
            except (StoreError, FileNotFoundError) as exc:
                return str(exc)
            return None

        background(self, prepare, self._prepared, group="corpus")

    def _prepared(self, error: str | None) -> None:
        if error is not None:
            self.tf.cannot_open(error)
        else:
            self.action_reload()

    def action_reload(self) -> None:
        """Read the corpus: the rows, and its size and filter values, which other processes
        (`ingest`, `serve`) change (after `R` the size had stayed as first counted)."""
        self.query_one(LiveStatus).loaded()
        self.reload()
        background(self, self.tf.service.facets, lambda _: None, group="facets", exclusive=False)
        background(
            self, lambda: self.tf.service.count(CorpusFilter()), self._sized, group="size"
        )  # exclusive: an older count never lands after a newer one

    def _sized(self, size: int) -> None:
        self.corpus_size = size
        self._status()

    # --- loading: page first, then the count and the sparklines, each in its own worker --------
    def reload(self) -> None:
        """Show the first page of the current filter, then its count (older loads are dropped).

        Once the corpus index is built, page and count come from memory at once; until then, and
        for free-text words not searched yet, a worker queries the file."""
        corpus_filter = self.tf.corpus_filter
        self.generation += 1
        generation = self.generation
        self.fetching = True
        self.total = None
        answered = self.tf.service.indexed_page_and_count(corpus_filter, PAGE)
        if answered is not None:  # from the in-memory index: milliseconds, no file access
            self._first_page(generation, answered[0])
            self._counted(generation, answered[1])
            return
        self._status()
        # Textual's loading indicator over the table (not over the screen: that would disable
        # the screen and rebuild the footer's keys twice) while the page is read from the file:
        # the old rows are not re-rendered meanwhile, and the worker has the GIL to itself
        self.query_one(DataTable).loading = True

        def on_page(page: CorpusPage) -> None:  # runs in the worker: hand the rows over at once
            self.app.call_from_thread(self._first_page, generation, page)

        background(
            self,
            lambda: self.tf.service.page_and_count(corpus_filter, PAGE, on_page),
            lambda total: self._counted(generation, total),
            group="corpus",
            busy=self._busy,
            failed=self._read_failed,
        )

    def _first_page(self, generation: int, page: CorpusPage) -> None:
        if generation != self.generation:
            return
        self.busy = None
        self._show_table()
        self.query_one(DataTable).clear()
        self.loaded = 0
        self.row_ids = []
        self._add(generation, page)

    @on(LiveStatus.Arrived)
    def _arrived(self) -> None:
        """Traces arrived from `serve`: show them at once unless the user is down the table."""
        if self.query_one(DataTable).cursor_row <= 0 and not self.fetching:
            self.action_reload()

    def _counted(self, generation: int, total: int) -> None:
        if generation == self.generation:
            self.total = total
            self._status()
        self._index()

    def _index(self) -> None:
        """Build the in-memory index once the screen shows something (and again after the corpus
        changed): later filter changes are answered from it without a query."""
        if self.tf.service.index_wanted:
            background(
                self,
                self.tf.service.build_index,
                lambda _: None,
                group="index",
                exclusive=False,
                busy=lambda _: None,  # the next filter change reads with SQL and asks again
            )

    def _more(self) -> None:
        exhausted = self.total is not None and self.loaded >= self.total
        if self.fetching or exhausted or self.last_page_short:
            return
        self.fetching = True
        corpus_filter, offset, generation = self.tf.corpus_filter, self.loaded, self.generation
        background(
            self,
            lambda: self.tf.service.page(corpus_filter, offset, PAGE),
            lambda page: self._add(generation, page),
            group="corpus-more",
            busy=self._busy,
            failed=self._read_failed,  # not left fetching: scrolling on tries this page again
        )

    def _add(self, generation: int, page: CorpusPage) -> None:
        if generation != self.generation or page.offset != self.loaded:
            return  # a page for an older filter
        self.fetching = False
        self.last_page_short = len(page.rows) < PAGE
        table = self.query_one(DataTable)
        # a first page: the rows that fit on screen first (the table measures every row it is
        # given before it paints), the rest after that frame
        fits = max(1, table.size.height) if page.offset == 0 else len(page.rows)
        self._append(generation, page.rows[:fits])
        if len(page.rows) > fits:
            self.call_after_refresh(self._append, generation, page.rows[fits:])
        self.loaded += len(page.rows)
        ids = [r["trace_id"] for r in page.rows]
        self.row_ids.extend(ids)
        self._status()
        # after the rows are on screen, so the sparkline query does not compete with their paint
        self.call_after_refresh(
            background,
            self,
            lambda: self.tf.service.sparks(ids),
            lambda found: self._sparks(generation, *found),
            group="sparks",
            exclusive=False,
        )
        if table.cursor_row >= self.loaded - LOOKAHEAD:  # the cursor moved on while this page loaded
            self._more()

    def _append(self, generation: int, rows: list[dict[str, Any]]) -> None:
        if generation != self.generation:
            return  # a page for an older filter
        table = self.query_one(DataTable)
        for row in rows:
            table.add_row(*self._cells(row), key=row["trace_id"])

    def _sparks(self, generation: int, feature: str | None, values: dict[str, list[float]]) -> None:
        if generation != self.generation or feature is None:
            return
        self.spark_feature = feature
        table = self.query_one(DataTable)
        for trace_id, series in values.items():
            if trace_id in table.rows:
                table.update_cell(trace_id, "spark", sparkline(series, 12))
        self._status()

    def _id_cell(self, trace_id: str) -> Text:
        if trace_id in self.marked:
            return Text("● " + one_line(trace_id, 28), style="bold magenta")
        return Text(one_line(trace_id, 30))

    def _cells(self, row: dict[str, Any]) -> list[Any]:
        return [
            self._id_cell(row["trace_id"]),
            Text(one_line(row["framework"], 10)),
            Text(one_line(row["llm"], 12)),
            Text(one_line(row["benchmark"], 16)),
            Text(str(row["n_steps"]), justify="right"),
            Text(row["outcome"], style=OUTCOME_STYLE.get(row["outcome"], "dim")),
            Text(one_line("; ".join(with_name(m) for m in row["modes"]), 28), style="bold yellow"),
            Text(
                one_line(" ".join(_short_sources(row["sources"], row["attribution_sources"])), 18),
                style="cyan",
            ),
            Text(""),  # the uncertainty sparkline arrives from its own worker
        ]

    def _busy(self, message: str) -> None:
        """Another process holds the corpus: say so, and read again in a moment."""
        self.busy = message
        self._read_failed()
        self.set_timer(RETRY_S, self.reload)

    def _read_failed(self) -> None:
        """The page could not be read (the error or the busy corpus is shown): the rows read
        before stay, uncovered, and the next try can start."""
        self.fetching = False
        self._show_table()
        self._status()

    def _show_table(self) -> None:
        """The table shown again (its loading indicator gone), focused if a filter asked for it."""
        table = self.query_one(DataTable)
        table.loading = False
        if self.focus_table:
            self.focus_table = False
            table.focus()

    def _status(self) -> None:
        f = self.tf.corpus_filter
        words = format_filter(f, brief=True) or "all traces"
        direction = "↓" if f.descending else "↑"
        if self.busy:
            text = Text(
                f"corpus busy, showing what was read before; retrying every {RETRY_S:g}s · ",
                style="bold yellow",
            )
            text.append(self.busy, style="yellow")
        else:
            text = Text()
            total = "…" if self.total is None else f"{self.total:,}"
            size = "…" if self.corpus_size is None else f"{self.corpus_size:,}"
            text.append(f"{total} matching of {size} traces", style="bold")
            text.append(f" · {words} · sorted by {f.sort} {direction}")
            if self.total == 0:
                text.append(" · no trace matches; esc clears the filter", style="bold yellow")
            if self.spark_feature:
                text.append(f" · sparkline: {self.spark_feature}", style="dim")
            if self.fetching:
                text.append(" · loading…", style="italic")
        self.query_one("#status", Static).update(text, layout=False)  # one line: no screen reflow

    # --- events ----------------------------------------------------------------------------------
    @on(DataTable.RowHighlighted)
    def _near_end(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= self.loaded - LOOKAHEAD:
            self._more()

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        from tracefail.tui.screens.trace import TraceScreen

        self.app.push_screen(TraceScreen(self.row_ids[event.cursor_row]))

    @on(DataTable.HeaderSelected)
    def _sort_by_header(self, event: DataTable.HeaderSelected) -> None:
        if event.column_key.value in SORT_COLUMNS:
            self.set_filter(with_sort(self.tf.corpus_filter, str(event.column_key.value)))

    @on(Input.Submitted, "#filter")
    def _apply(self, event: Input.Submitted) -> None:
        facets = self.tf.service.facets_cache
        error = self.query_one("#filter-error", Static)
        try:
            parsed = parse_filter(
                event.value,
                facets.categories if facets else None,
                modes=_known_modes(facets) if facets else None,
                features=facets.features if facets else None,
                values=known_values(facets) if facets else None,
            )
        except FilterError as exc:
            error.update(Text(f"filter not applied: {exc}", style="bold red"))
            error.display = True
            return
        error.display = False
        self.focus_table = True  # once its rows are shown: while they are read it is covered
        self.set_filter(
            replace(parsed, sort=self.tf.corpus_filter.sort, descending=self.tf.corpus_filter.descending)
            if "sort:" not in event.value
            else parsed
        )

    def set_filter(self, corpus_filter: CorpusFilter) -> None:
        self.tf.corpus_filter = corpus_filter
        self.reload()

    def current_trace(self) -> str | None:
        table = self.query_one(DataTable)
        return self.row_ids[table.cursor_row] if 0 <= table.cursor_row < len(self.row_ids) else None

    # --- actions ---------------------------------------------------------------------------------
    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        self.query_one("#filter-error", Static).display = False
        self.query_one(DataTable).focus()
        self.set_filter(
            CorpusFilter(sort=self.tf.corpus_filter.sort, descending=self.tf.corpus_filter.descending)
        )

    def action_sort_next(self) -> None:
        names = list(SORT_COLUMNS)
        current = self.tf.corpus_filter.sort
        self.set_filter(
            replace(
                self.tf.corpus_filter, sort=names[(names.index(current) + 1) % len(names)], descending=False
            )
        )

    def action_reverse(self) -> None:
        self.set_filter(replace(self.tf.corpus_filter, descending=not self.tf.corpus_filter.descending))

    def action_stats(self) -> None:
        from tracefail.tui.screens.stats import StatsScreen

        self.app.push_screen(StatsScreen())

    def action_ops(self) -> None:
        from tracefail.tui.screens.ops import OpsScreen

        self.app.push_screen(OpsScreen())

    def action_review(self) -> None:
        from tracefail.tui.screens.review import ReviewScreen

        self.app.push_screen(ReviewScreen(self.tf.ranker_path))

    def action_mark(self) -> None:
        """Toggle the mark of the trace under the cursor; a third mark drops the oldest."""
        trace_id = self.current_trace()
        if trace_id is None:
            return
        before = set(self.marked)
        if trace_id in self.marked:
            self.marked.remove(trace_id)
        else:
            self.marked = [*self.marked, trace_id][-2:]
        table = self.query_one(DataTable)
        for changed in before ^ set(self.marked):
            if changed in table.rows:
                table.update_cell(changed, "trace_id", self._id_cell(changed))

    def action_diff(self) -> None:
        """Diff the two marked traces, or the one marked and the one under the cursor."""
        from tracefail.tui.screens.diff import DiffScreen

        current = self.current_trace()
        pair = self.marked if len(self.marked) == 2 else [*self.marked, current]
        if len(pair) != 2 or None in pair or pair[0] == pair[1]:
            self.notify("mark two traces with space (or one, then d on the other)", severity="warning")
            return
        self.app.push_screen(DiffScreen(str(pair[0]), str(pair[1])))

    def action_clusters(self) -> None:
        from tracefail.tui.screens.clusters import ClustersScreen

        def chosen(trace_ids: tuple[str, ...] | None) -> None:
            if trace_ids:
                sort, descending = self.tf.corpus_filter.sort, self.tf.corpus_filter.descending
                self.set_filter(CorpusFilter(trace_ids=trace_ids, sort=sort, descending=descending))

        self.app.push_screen(ClustersScreen(), chosen)

    def action_export(self) -> None:
        corpus_filter = self.tf.corpus_filter
        target = self.tf.export_dir / f"tracefail-selection-{datetime.now():%Y%m%d-%H%M%S}.jsonl"

        def done(count: int) -> None:
            self.notify(f"{count:,} traces written to {target}", title="export")

        background(self, lambda: self.tf.service.export_jsonl(corpus_filter, target), done, group="export")


def _known_modes(facets: Facets) -> list[str]:
    """Modes stored in labels plus every mode of the taxonomies' categories."""
    return sorted({*facets.modes, *(m for modes in facets.categories.values() for m in modes)})


def _short_sources(sources: list[str], attribution_sources: list[str] | None) -> list[str]:
    """Most trusted first, as the stats policy ranks them (human, dataset, judge, heuristic), so a
    narrow column shows `human:ana demo judge heur×2`, not only the heuristics."""
    every = list(dict.fromkeys([*sources, *(attribution_sources or [])]))
    rank = {"human": 0, "dataset": 1, "llm-judge": 2}
    names: list[str] = []
    others = (s for s in every if not s.startswith("heuristic:"))
    for source in sorted(others, key=lambda s: (rank.get(s.partition(":")[0], 3), s)):
        kind, _, rest = source.partition(":")
        short = {"llm-judge": "judge", "dataset": rest or kind}.get(kind, source)
        if short not in names:
            names.append(short)
    heuristics = sum(s.startswith("heuristic:") for s in every)
    if heuristics:
        names.append("heur" if heuristics == 1 else f"heur×{heuristics}")
    return names
