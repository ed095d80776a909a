"""`tracefail taxonomy`: the failure modes a taxonomy defines, so mode ids mean something."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tracefail.cli import app
from tracefail.cli.common import EXIT_USAGE, fail, out, print_json


@app.command("taxonomy")
def taxonomy_command(
    taxonomy: Annotated[str, typer.Option("--taxonomy", help="Taxonomy file, name or id.")] = "mast-v1",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the failure modes of a taxonomy: id, name, category, stage and definition."""
    from rich.table import Table

    from tracefail.taxonomy import TaxonomyError, find

    try:
        tax = find(taxonomy).taxonomy
    except TaxonomyError as exc:
        fail(str(exc), EXIT_USAGE)
    if json_out:
        print_json(tax.model_dump())
        return
    sys.stdout.write(f"{tax.name} ({tax.id}@{tax.version}): {len(tax.modes)} modes\n")
    for category, name in tax.categories.items():
        sys.stdout.write(f"  {category} = {name}\n")
    table = Table(show_edge=False, header_style="bold")
    for column in ("id", "name", "category", "stage", "definition"):
        table.add_column(column, overflow="fold")
    for mode in tax.modes:
        table.add_row(mode.id, mode.name, mode.category, mode.stage or "", mode.definition)
    out.print(table, markup=False, highlight=False)
