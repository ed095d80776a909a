"""`tracefail browse`: the Textual browser (textual is imported only when the command runs)."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer

from tracefail.cli import app
from tracefail.cli.common import DEFAULT_DB_PATH, DbOption, fail, is_remote


def _default_user() -> str:
    return os.environ.get("USER") or getpass.getuser() or "anonymous"


@app.command()
def browse(
    db: DbOption = DEFAULT_DB_PATH,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Name stored with your labels (source human:<user>); default $USER."),
    ] = None,
    export_dir: Annotated[Path, typer.Option("--export-dir", help="Where exports are written.")] = Path("."),
    ranker: Annotated[
        Path | None,
        typer.Option(
            "--ranker",
            help="A `tracefail train` model ordering the review queue (v); default ./ranker.json if "
            "present, else one is fitted on the labels, else the queue is ordered without a ranker.",
        ),
    ] = None,
) -> None:
    """Browse traces, failure labels and per-step dynamics; label by hand (keys: ? for help)."""
    if not db.exists() and not is_remote(db):
        fail(f"{db}: no such database (run `tracefail ingest` first)")
    name = (user or _default_user()).strip()
    if not name or ":" in name:
        fail(f"--user {name!r}: give a plain name (it is stored as human:<user>)", 2)
    from tracefail.services.attribution import saved_ranker
    from tracefail.tui.app import TracefailApp

    browser = TracefailApp(
        db, name, export_dir=export_dir, ranker_path=saved_ranker(ranker), remember_layout=True
    )
    browser.run()
    if browser.error is not None:  # the corpus could not be opened: the browser closed at once
        fail(browser.error)
