"""What every command shares: the --db option, opening the store, and error exits.

Data goes to stdout; diagnostics go to stderr so `tracefail ls --json | jq` stays clean.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from tracefail.store import DEFAULT_DB, Database, StoreError

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_NOTHING = 4  # ingest: not one trace came in from the given paths

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="TRACEFAIL_DB", help="DuckDB corpus file.", show_default=True),
]
DEFAULT_DB_PATH = Path(DEFAULT_DB)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def open_db(path: Path, *, read_only: bool = False, create: bool = False) -> Database:
    """Only ingest creates a corpus: a mistyped --db elsewhere is an error, not a new empty file."""
    if not create and str(path) != ":memory:" and not Path(path).exists():
        fail(f"{path}: no such database (run `tracefail ingest` first)")
    try:
        return Database(path, read_only=read_only)
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

