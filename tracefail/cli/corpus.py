"""Corpus commands: ingest, formats, ls, show, sql, export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tracefail.cli import app
from tracefail.cli.common import (
    DEFAULT_DB_PATH,
    EXIT_NOTHING,
    EXIT_PARTIAL,
    EXIT_USAGE,
    DbOption,
    cell,
    err,
    fail,
    is_remote,
    open_db,
    out,
    print_json,
    progress_bar,
    safe,
    visible,
)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Trace files or folders.")],
    db: DbOption = DEFAULT_DB_PATH,
    format: Annotated[str | None, typer.Option("--format", "-f", help="Skip detection.")] = None,
    max_record_mb: Annotated[
        int, typer.Option("--max-record-mb", min=1, help="Largest record (line, array element, file) read.")
    ] = 256,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=0,
            help="Reader processes (default: for 32 MB of input or more, one more than the cores "
            "the load leaves idle; 0: read here).",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Say which reader (format) took each file.")
    ] = False,
) -> None:
    """Ingest trace files into the corpus; bad records go to quarantine, the rest lands."""
    from tracefail.services.ingest import SUFFIXES, IngestStopped, UnknownFormat, check_format, trace_files
    from tracefail.services.ingest import ingest as run_ingest

    if format:
        try:
            check_format(format)
        except UnknownFormat as exc:
            fail(str(exc), EXIT_USAGE)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}", EXIT_USAGE)
    if not trace_files(paths):
        fail(f"no trace files ({', '.join(sorted(SUFFIXES))}) under {', '.join(map(str, paths))}", EXIT_USAGE)
    store = open_db(db, create=True)
    with progress_bar() as progress:
        task = progress.add_task("ingest", total=None)

        current = {"name": ""}

        def on_file(path: Path, number: int, total: int) -> None:
            current["name"] = path.name
            progress.update(task, total=total, completed=number - 1, description=f"ingest {path.name}")

        def on_record(count: int) -> None:  # one big file still shows it is moving
            progress.update(task, description=f"ingest {current['name']} ({count:,} records read)")

        try:
            report = run_ingest(
                store,
                paths,
                format_name=format,
                max_record_bytes=max_record_mb << 20,
                workers=workers,
                on_file=on_file,
                on_record=on_record,
            )
        except IngestStopped as exc:
            store.close()
            fail(str(exc))
    store.close()
    if verbose:
        for file, reader in report.readers.items():
            err.print(f"read: {safe(file)} as {reader}", highlight=False)
        readers = report.reader_processes or "none (read in this process)"
        err.print(f"reader processes: {readers}", highlight=False)
    for note in report.notes:
        err.print(f"updated: {safe(note)}", highlight=False)
    for message in report.messages:
        err.print(f"[yellow]quarantined:[/] {safe(message)}", markup=True, highlight=False)
    for file, kept in report.below_target().items():
        err.print(
            f"[yellow]text lost:[/] {safe(file)}: {kept.share:.1%} of {kept.lines:,} text lines retrievable, "
            f"{kept.lines - kept.kept:,} lost{' (a sample of its records)' if kept.sampled else ''} "
            "(`tracefail formats --check FILE` lists them)",
            markup=True,
            highlight=False,
        )
    counts = report.as_dict()
    text = report.text
    not_measured = sum(f is None for f in report.fidelity.values())
    out.print(
        f"ingested {counts['traces']} traces, {counts['steps']} steps, {counts['labels']} labels, "
        f"{counts['attributions']} attributions from {counts['files']} files; "
        f"{counts['duplicates']} duplicates skipped, "
        + (f"{counts['updated']} updated, " if counts["updated"] else "")
        + f"{counts['quarantined']} quarantined; "
        + f"text retrievable: {text.share:.1%} of {text.lines:,} lines"
        + f" of {len(report.fidelity) - not_measured} files"
        + (" (big record files: a sample of their records)" if text.sampled else "")
        + (f" ({not_measured} files too big to measure)" if not_measured else ""),
        highlight=False,
    )
    if report.traces + report.duplicates + report.updated == 0:
        raise typer.Exit(EXIT_NOTHING)
    if report.quarantined:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def formats(
    check: Annotated[
        Path | None,
        typer.Option(
            "--check",
            help="Read FILE as ingest would, without a corpus: format, traces, and the text it would lose.",
        ),
    ] = None,
    format: Annotated[
        str | None, typer.Option("--format", "-f", help="With --check: skip detection.")
    ] = None,
    width: Annotated[
        int, typer.Option("--width", min=20, help="With --check: lost lines cut to this many characters.")
    ] = 160,
) -> None:
    """List the trace formats ingest understands, or check what ingest makes of one file."""
    from tracefail.services.ingest import formats as known_formats

    if check is None:
        for name, description in known_formats():
            out.print(f"{name:<16} {description}", highlight=False)
        return
    from tracefail.services.ingest import UnknownFormat, check_file, check_format

    if format:
        try:
            check_format(format)
        except UnknownFormat as exc:
            fail(str(exc), EXIT_USAGE)
    if not check.is_file():
        fail(f"no such file: {check}", EXIT_USAGE)
    found = check_file(check, format_name=format)
    for reject in found.rejects:
        where = f"{reject.record}: " if reject.record else ""
        err.print(
            f"[yellow]would be quarantined:[/] {safe(where + reject.reason)}", markup=True, highlight=False
        )
    out.print(
        f"{safe(str(check))}: format {found.adapter or '?'}, {found.traces} traces, {found.steps} steps, "
        f"{len(found.rejects)} rejected",
        highlight=False,
    )
    kept = found.fidelity
    if kept is None:
        out.print(
            "text retrievable: not measured (a whole file over the measure's size limit)", highlight=False
        )
        return
    out.print(
        f"text retrievable: {kept.share:.1%} of {kept.lines:,} text lines; {kept.lines - kept.kept:,} lost"
        + (f" (the first {len(kept.lost)} below)" if len(kept.lost) < kept.lines - kept.kept else ""),
        highlight=False,
    )
    for line in kept.lost:
        out.print(f"  lost: {safe(line if len(line) <= width else line[: width - 1] + '…')}", highlight=False)
    if found.rejects or kept.kept < kept.lines:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("ls")
def list_traces(
    db: DbOption = DEFAULT_DB_PATH,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """One row per trace: id, source, framework, llm, steps, outcome, label counts."""
    from rich.table import Table

    from tracefail.services import corpus as trace_store

    store = open_db(db, read_only=True)
    frame = trace_store.list_traces(store)
    store.close()
    if json_out:
        print_json(frame.to_dicts())
        return
    table = Table(show_edge=False, header_style="bold")
    columns = [
        "trace_id",
        "source",
        "framework",
        "llm",
        "n_steps",
        "outcome",
        "n_labels",
        "n_modes_present",
        "n_attributions",
    ]
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in frame.select(columns).iter_rows():
        table.add_row(*[cell(v) for v in row])
    out.print(table)


@app.command()
def show(
    trace_id: Annotated[str, typer.Argument(help="Trace id (see `tracefail ls`).")],
    db: DbOption = DEFAULT_DB_PATH,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A trace with its steps, labels and attributions."""
    from tracefail.services import corpus as trace_store
    from tracefail.services.selection import UnknownTraceError, resolve_id

    store = open_db(db, read_only=True)
    try:
        found = trace_store.get_trace(store, resolve_id(store, trace_id))
    except UnknownTraceError as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        store.close()
    if found is None:  # resolved a moment ago: only a concurrent delete gets here
        fail(f"no trace {trace_id!r} in {db}", EXIT_USAGE)
    if json_out:
        print_json(found)
        return
    head = found["trace"]
    out.print(
        f"[bold]{safe(head['trace_id'])}[/]  {safe(str(head['framework']))}  "
        f"{safe(str(head['llm']))}  outcome={head['outcome']}",
        highlight=False,
    )
    if head["task"]:
        out.print(f"task: {safe(head['task'][:500])}", highlight=False)
    for step in found["steps"]:
        who = safe(str(step["agent"] or step["role"] or "?"))
        text = safe(step["content"][:400].replace("\n", " "))
        out.print(f"[cyan]{step['step_idx']:>4}[/] [bold]{who}[/]: {text}", highlight=False)
    for label in found["labels"]:
        out.print(
            f"label {label['mode_id']} present={label['present']} p={label['probability']} "
            f"source={safe(label['source'])}",
            highlight=False,
        )
    for attr in found["attributions"]:
        out.print(
            f"attribution agent={safe(str(attr['agent']))} step={attr['step_idx']} "
            f"source={safe(attr['source'])}",
            highlight=False,
        )


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One read-only SQL statement (SELECT, WITH, ...).")],
    db: DbOption = DEFAULT_DB_PATH,
    format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    memory_limit: Annotated[
        str, typer.Option("--memory-limit", help="Most memory the query may use (DuckDB units: 512MB, 2GB).")
    ] = "1GB",
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds before the query is stopped (0: no limit).", min=0)
    ] = 300.0,
) -> None:
    """Run one read-only query in a sandbox: the corpus opened read-only, no files or network
    outside it, no extensions, no settings; COPY, ATTACH, SET, PRAGMA and the like are refused."""
    from rich.table import Table

    from tracefail.services.sql import QueryError, csv_text, run_query

    if format not in ("table", "csv", "json"):
        fail(f"--format must be table, csv or json, not {format!r}", EXIT_USAGE)
    if str(db) != ":memory:" and not is_remote(db) and not db.exists():
        fail(f"{db}: no such database (run `tracefail ingest` first)")
    try:
        frame = run_query(db, query, memory_limit, timeout or None)
    except QueryError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; nothing was changed", 130)
    if format == "csv":
        text = csv_text(frame)
        sys.stdout.write(visible(text) if sys.stdout.isatty() else text)
    elif format == "json":
        print_json(frame.to_dicts())
    else:
        table = Table(show_edge=False, header_style="bold")
        for column in frame.columns:
            table.add_column(column, overflow="fold")
        for row in frame.iter_rows():
            table.add_row(*[cell(v) for v in row])
        out.print(table)


@app.command()
def export(
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Output file, or a folder when the export has several files (or --partition-by).",
        ),
    ],
    db: DbOption = DEFAULT_DB_PATH,
    format: Annotated[
        str, typer.Option("--format", help="jsonl, parquet (one trace a row) or csv (one row per step).")
    ] = "jsonl",
    filter_text: Annotated[
        str,
        typer.Option(
            "--filter", help='Traces to export, in the TUI filter language ("mode:1.3 framework:AG2").'
        ),
    ] = "",
    features: Annotated[bool, typer.Option("--features", help="Also write the per-step features.")] = False,
    partition_by: Annotated[
        str | None,
        typer.Option(
            "--partition-by",
            help="framework, llm or date: write every table as Hive-partitioned Parquet into a "
            "folder that read-only commands accept as --db.",
        ),
    ] = None,
) -> None:
    """Export traces with their steps, labels and attributions (and features)."""
    from tracefail.services.corpus import StoreError
    from tracefail.services.export import ExportUsageError
    from tracefail.services.export import export as run_export

    store = open_db(db, read_only=True)
    try:
        result = run_export(
            store, output, fmt=format, filter_text=filter_text, features=features, partition_by=partition_by
        )
    except ExportUsageError as exc:
        fail(str(exc), EXIT_USAGE)
    except StoreError as exc:
        fail(str(exc))
    finally:
        store.close()
    for path in result.paths:
        err.print(f"wrote {safe(path)}", highlight=False)
    err.print(f"exported {result.traces} traces", highlight=False)
    if not result.traces and filter_text.strip():
        fail(f"no trace matches --filter {filter_text!r}", EXIT_NOTHING)
