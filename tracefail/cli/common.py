"""What every command shares: the --db option, opening the store, and error exits.

Data goes to stdout; diagnostics go to stderr so `tracefail ls --json | jq` stays clean.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

    from tracefail.services.corpus import Database

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_NOTHING = 4  # ingest: not one trace came in from the given paths

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="TRACEFAIL_DB", help="DuckDB corpus file.", show_default=True),
]
DEFAULT_DB_PATH = Path("tracefail.duckdb")  # the store opens this file when given no path


MAX_LINE = 500  # characters of one diagnostic line; a 5 MB "one-line" error helps nobody

# Every C0/C1 control character except newline and tab: ESC loses its power (`␛[2J`).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return chr(0x2400 + code) if code < 0x20 else "␡" if code == 0x7F else "�"


def visible(text: str) -> str:
    """Control characters as their Unicode pictures (ESC -> ␛), as the TUI shows them."""
    return _CONTROL.sub(_picture, text)


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
    `or_read`: read-only where another process (`tracefail serve`) writes it."""
    from tracefail.services.corpus import StoreError, open_corpus

    if not create and str(path) != ":memory:" and not is_remote(path) and not Path(path).exists():
        fail(f"{path}: no such database (run `tracefail ingest` first)")
    try:
        return open_corpus(path, read_only=read_only, or_read=or_read)
    except StoreError as exc:
        fail(str(exc))


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str, indent=2) + "\n")


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
