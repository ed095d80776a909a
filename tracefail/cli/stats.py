"""Statistics commands: stats, graph, slices, audit, report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tracefail.cli import app
from tracefail.cli.common import DEFAULT_DB_PATH, EXIT_USAGE, DbOption, err, fail, open_db, out
from tracefail.cli.corpus import cell, safe

SourceOption = Annotated[
    str,
    typer.Option(
        "--source", help="Labels to count: judge, human, dataset, heuristic, all, or a source name."
    ),
]
TaxonomyOption = Annotated[str, typer.Option("--taxonomy", help="Taxonomy file, name or id.")]
OutOption = Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")]


def _usage(call: Any) -> Any:
    """Run a service call; its usage errors become one line and exit 2."""
    from tracefail.services.stats import StatsUsageError

    try:
        return call()
    except StatsUsageError as exc:
        fail(str(exc), EXIT_USAGE)


def _rich_table(title: str, frame: Any) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for column in frame.columns:
        table.add_column(column, overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*[cell(f"{v:.4g}" if isinstance(v, float) else v) for v in row])
    return table


def emit(sections: dict[str, Any], document: dict[str, Any], fmt: str, output: Path | None) -> None:
    """Print or write tables: json is one document; csv/md/parquet with several sections go to
    one file per section in the -o folder; table prints rich tables."""
    from tracefail.analysis import tables

    if fmt not in tables.FORMATS:
        fail(f"--format {fmt}: choose from {', '.join(tables.FORMATS)}", EXIT_USAGE)
    if fmt == "json":
        text = tables.json_text(document)
        if output:
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return
    if fmt == "table":
        for name, frame in sections.items():
            out.print(_rich_table(name, frame))
        return
    if len(sections) > 1 or fmt == "parquet":
        if output is None:
            fail(f"--format {fmt} with several sections needs -o FOLDER (or pick one --section)", EXIT_USAGE)
        if len(sections) == 1 and output.suffix:
            (frame,) = sections.values()
            if fmt == "parquet":
                frame.write_parquet(output)
            else:
                output.write_text(
                    tables.csv(frame) if fmt == "csv" else tables.markdown(frame), encoding="utf-8"
                )
            err.print(f"wrote {output}", highlight=False)
            return
        for path in tables.write_sections(sections, fmt, output):
            err.print(f"wrote {path}", highlight=False)
        return
    (frame,) = sections.values()
    text = tables.csv(frame) if fmt == "csv" else tables.markdown(frame)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@app.command()
def stats(
    db: DbOption = DEFAULT_DB_PATH,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Group by framework, llm, benchmark, outcome, trace_source or agent."),
    ] = None,
    source: SourceOption = "all",
    taxonomy: TaxonomyOption = "mast-v1",
    section: Annotated[
        str,
        typer.Option(
            "--section",
            help="One section (modes, categories, cooccurrence, "
            "position, blame, failure_rates, agreement, ...) or all.",
        ),
    ] = "all",
    format: Annotated[str, typer.Option("--format", help="table, csv, json, parquet or md.")] = "table",
    output: OutOption = None,
) -> None:
    """Failure-mode statistics: prevalence with Wilson 95% intervals, categories, co-occurrence,
    failure position, agent blame, failure rates and agreement between label sources."""
    from tracefail.services import stats as service

    store = open_db(db, read_only=True)
    try:
        result = _usage(lambda: service.stats(store, taxonomy=taxonomy, source=source, by=by))
    finally:
        store.close()
    sections = result.sections
    if section != "all":
        if section not in sections:
            fail(f"--section {section}: choose from all, {', '.join(sections)}", EXIT_USAGE)
        sections = {section: sections[section]}
    document = result.as_dict()
    if section != "all":
        document = {k: v for k, v in document.items() if k in ("taxonomy", "source", "by", section)}
    if not result.sections["modes"].height:
        err.print(
            f"no labels from source {safe(source)!s} map onto taxonomy {safe(taxonomy)}", highlight=False
        )
    emit(sections, document, format, output)
