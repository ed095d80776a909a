"""What every command shares: the --db option, opening the store, and error exits.

Data goes to stdout; diagnostics go to stderr so `tracefail ls --json | jq` stays clean.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.segment import Segment

from tracefail.services.terminal import json_escaped, terminal_safe

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

    from tracefail.services.corpus import Database


class SafeConsole(Console):
    """A console whose text reaches the terminal through `terminal_safe`, whatever a command
    prints: trace ids, agent names and step text from a trace can hold ESC, OSC 52 or bidi
    overrides. Rich's own styling and cursor control are added after this, so they stay."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            segment if segment.control else Segment(terminal_safe(segment.text), segment.style)
            for segment in buffer
        )


out = SafeConsole(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = SafeConsole(stderr=True, soft_wrap=True)

EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_NOTHING = 4  # ingest: not one trace came in from the given paths

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="TRACEFAIL_DB", help="DuckDB corpus file.", show_default=True),
]
DEFAULT_DB_PATH = Path("tracefail.duckdb")  # the store opens this file when given no path


MAX_LINE = 500  # characters of one diagnostic line; a 5 MB "one-line" error helps nobody


def visible(text: str) -> str:
    """Control and bidi characters made visible (ESC -> ␛), as the TUI shows them."""
    return terminal_safe(text)


def cut(text: str, limit: int = MAX_LINE) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def safe(value: object) -> str:
    """Untrusted text for a markup line: rich markup escaped, control codes made visible."""
    from rich.markup import escape

    return escape(visible(str(value)))


def cell(value: object):
    """A table cell: data as plain text, never markup or terminal control codes."""
    from rich.text import Text

    return Text("" if value is None else visible(str(value)))


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, cut to a sane length, whatever text the message quotes."""
    err.print(f"[bold red]error:[/] {safe(cut(' '.join(message.split())))}", markup=True, highlight=False)
    raise typer.Exit(code)


def is_remote(path: Path) -> bool:
    """s3://, gs://, https://: a Parquet corpus DuckDB reads (pathlib keeps one slash of the two)."""
    return re.match(r"^[a-z][a-z0-9+.-]+:/", str(path)) is not None


def open_db(path: Path, *, read_only: bool = False, create: bool = False, or_read: bool = False) -> Database:
    """Only ingest creates a corpus: a mistyped --db elsewhere is an error, not a new empty file.
    `or_read`: read-only where another process (`tracefail serve`) writes it. While another
    process holds the file a writer waits, and says so once on stderr (else 10 silent seconds
    look like a hang); Ctrl-C then stops it with one line (nothing was written)."""
    from tracefail.services.corpus import WRITE_WAIT_S, DatabaseLocked, StoreError, open_corpus

    if not create and str(path) != ":memory:" and not is_remote(path) and not Path(path).exists():
        fail(f"{path}: no such database (run `tracefail ingest` first)")
    waited: list[DatabaseLocked] = []

    def waiting(locked: DatabaseLocked) -> None:
        waited.append(locked)
        holder = f"another process {locked.holder}".rstrip()
        err.print(
            f"{safe(path)}: open in {holder}; waiting up to {WRITE_WAIT_S:g} s for it to let go "
            "(Ctrl-C stops)",
            highlight=False,
        )

    try:
        return open_corpus(path, read_only=read_only, or_read=or_read, on_wait=waiting)
    except StoreError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        if not waited:
            raise
        fail(
            f"{path}: interrupted while waiting for another process to let go of it; nothing was written", 130
        )


def print_json(value: Any) -> None:
    """JSON with every character a terminal acts on written as a \\u escape: the same data."""
    sys.stdout.write(json_escaped(json.dumps(value, ensure_ascii=False, default=str, indent=2)) + "\n")


def write_out(text: str, *, json_text: bool = False) -> None:
    """Text a command prints to stdout as it is (tables, graphs, JSON): through `terminal_safe`,
    or for JSON `json_escaped`, which keeps the data exact."""
    sys.stdout.write(json_escaped(text) if json_text else terminal_safe(text))


def stop_on_sigterm() -> None:
    """`kill PID` (SIGTERM, what service managers and timeouts send) ends a run like Ctrl-C does:
    the finished traces are committed and the run row says "interrupted", not "running"."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def progress_bar(*extra: ProgressColumn) -> Progress:
    """The stderr progress bar of long commands: description, bar, done/total, any `extra`
    columns, elapsed time; hidden when stderr is not a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
