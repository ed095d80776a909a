"""`tracefail search`: ranked full-text hits over every step's text."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from tracefail.cli import app
from tracefail.cli.common import DEFAULT_DB_PATH, EXIT_USAGE, DbOption, err, fail, open_db, out, print_json


@app.command()
def search(
    query: Annotated[str, typer.Argument(help='Words (all must match), pre* prefixes, "exact phrases".')],
    db: DbOption = DEFAULT_DB_PATH,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the best N hits.")] = 20,
    json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Search the text of every step (BM25 over the full-text index every ingest keeps current).
    Words match whole words, case- and accent-insensitively."""
    from rich.text import Text

    from tracefail.services import search as service

    store = open_db(db, or_read=True)  # writable: a corpus whose index is behind is caught up
    try:
        result = service.search(store, query, limit=limit)
    except service.SearchQueryError as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        store.close()
    if result.index_built_s is not None:
        err.print(f"brought the search index up to date in {result.index_built_s:.1f} s", highlight=False)
    if not result.indexed:
        err.print("the search index is behind (database not writable): scanned every step", highlight=False)
    if json:
        print_json(asdict(result))
        return
    err.print(
        f"{result.n_steps} matching steps in {result.n_traces} traces"
        + (f"; the best {len(result.hits)}" if result.n_steps > len(result.hits) else ""),
        highlight=False,
    )
    for hit in result.hits:
        line = Text(f"{hit.trace_id}  step {hit.step_idx}  {hit.agent or '-'}  ", style="bold")
        line.append(f"{hit.score:.2f}\n", style="dim")
        body = Text("  " + hit.snippet)
        for start, end in hit.highlights:
            body.stylize("bold yellow reverse", start + 2, end + 2)
        out.print(line + body)
