"""Statistics commands: stats, graph, slices, audit, report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tracefail.cli import app
from tracefail.cli.common import (
    DEFAULT_DB_PATH,
    EXIT_USAGE,
    DbOption,
    cell,
    err,
    fail,
    open_db,
    out,
    safe,
    write_out,
)

SourceOption = Annotated[
    str,
    typer.Option(
        "--source",
        help="Labels to count: trusted (default: per trace and mode the most trusted source with "
        "a verdict decides, human > dataset > judge > heuristic), all (pooled: any source says "
        "present), judge, human, dataset, heuristic, or a source name.",
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
    from tracefail.services.render import tables

    if fmt not in tables.FORMATS:
        fail(f"--format {fmt}: choose from {', '.join(tables.FORMATS)}", EXIT_USAGE)
    if fmt == "json":
        text = tables.json_text(document)
        if output:
            output.write_text(text, encoding="utf-8")
        else:
            write_out(text, json_text=True)
        return
    if fmt == "table":
        for name, frame in sections.items():
            out.print(_rich_table(name, frame))
        return
    if len(sections) > 1 and output is not None and output.suffix and not output.is_dir():
        fail(
            f"-o {output}: {len(sections)} sections need a folder (a name without a suffix), "
            "or pick one --section to write that file",
            EXIT_USAGE,
        )
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
        write_out(text)


@app.command()
def stats(
    db: DbOption = DEFAULT_DB_PATH,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Group by framework, llm, benchmark, outcome, trace_source or agent."),
    ] = None,
    source: SourceOption = "trusted",
    taxonomy: TaxonomyOption = "mast-v1",
    section: Annotated[
        str,
        typer.Option(
            "--section",
            help="One section (modes, categories, cooccurrence, "
            "position, blame, failure_rates, agreement, ...) or all; `ops` for tokens, cost, "
            "latency and error rates per agent, model, framework and day.",
        ),
    ] = "all",
    format: Annotated[str, typer.Option("--format", help="table, csv, json, parquet or md.")] = "table",
    output: OutOption = None,
    prices: Annotated[
        Path | None,
        typer.Option(
            "--prices",
            help='With --section ops: a JSON price table {"model-prefix": [input, output]} in USD '
            "per 1M tokens, replacing the built-in list prices.",
        ),
    ] = None,
) -> None:
    """Failure-mode statistics: prevalence with Wilson 95% intervals, categories, co-occurrence,
    failure position, agent blame, failure rates and agreement between label sources."""
    if section == "ops":  # before importing the statistics service: ops does not use it (1.3 s)
        _ops(db, prices, format, output)
        return
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
        document = {
            k: v
            for k, v in document.items()
            if k in ("taxonomy", "source", "policy", "sources", "by", section)
        }
    if not result.sections["modes"].height:
        err.print(
            f"no labels from source {safe(source)!s} map onto taxonomy {safe(taxonomy)}", highlight=False
        )
    header = f"policy {result.policy}; sources: {', '.join(result.sources) or 'none'}"
    if result.validation:
        header += "; " + "; ".join(f"{s} {v}" for s, v in result.validation.items())
    # the table output carries its own header; other formats say it on stderr (json has it inside)
    (out if format == "table" else err).print(safe(header), highlight=False)
    emit(sections, document, format, output)


def _ops(db: Path, prices: Path | None, fmt: str, output: Path | None) -> None:
    from tracefail.services import ops as ops_service

    store = open_db(db, read_only=True)
    try:
        result = ops_service.ops(store, prices)
    except ops_service.PriceTableError as error:
        fail(f"--prices {error}", EXIT_USAGE)
    finally:
        store.close()
    (out if fmt == "table" else err).print(
        safe(
            "ops: every figure with its n, rates with their Wilson 95% interval; "
            f"cost from {result.prices_source}"
        ),
        highlight=False,
    )
    emit({"ops": result.readable() if fmt == "table" else result.table}, result.as_dict(), fmt, output)


@app.command()
def graph(
    trace_id: Annotated[
        str | None, typer.Argument(help="A trace id; without one, corpus graphs per framework.")
    ] = None,
    db: DbOption = DEFAULT_DB_PATH,
    framework: Annotated[
        str | None, typer.Option("--framework", help="Corpus graph of one framework.")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="text, json, dot or png.")] = "text",
    output: OutOption = None,
    detect: Annotated[
        bool,
        typer.Option(
            "--detect",
            help="Store heuristic repetition/loop labels for every trace and compare them with the judge.",
        ),
    ] = False,
    taxonomy: TaxonomyOption = "mast-v1",
) -> None:
    """Agent hand-off graph of a trace (mistake agent and flagged steps marked) or of the corpus,
    with cycles, repeated hand-off loops and centrality."""
    from tracefail.services import stats as service

    if format not in ("text", "json", "dot", "png"):
        fail(f"--format {format}: choose from text, json, dot, png", EXIT_USAGE)
    if format == "png" and output is None:
        fail("--format png needs -o FILE.png (or a folder for corpus graphs)", EXIT_USAGE)
    if detect:
        _detect(db, taxonomy)
        return
    store = open_db(db, read_only=True)
    try:
        if trace_id:
            found = _usage(lambda: service.trace_graph(store, trace_id))
            graphs = {found.trace_id: (found.graph, found.measures)}
            extra = {
                "trace_id": found.trace_id,
                "framework": found.framework,
                "flagged_steps": found.flagged,
                "mistake_agent": found.mistake_agent,
                "mistake_source": found.mistake_source,
            }
        else:
            graphs = _usage(lambda: service.corpus_graphs(store, framework))
            extra = {}
    finally:
        store.close()
    _render(graphs, extra, format, output, single=trace_id is not None)


def _render(graphs: dict, extra: dict, fmt: str, output: Path | None, *, single: bool) -> None:
    from tracefail.services.render import graphs as render
    from tracefail.services.render import json_text

    if fmt == "png":
        assert output is not None
        if single:
            ((name, (g, _)),) = graphs.items()
            render.write_png(g, name, output)
            err.print(f"wrote {output}", highlight=False)
            return
        output.mkdir(parents=True, exist_ok=True)
        for index, (name, (g, _)) in enumerate(graphs.items()):
            path = output / f"graph-{index:02d}.png"
            render.write_png(g, f"framework {name}", path)
            err.print(f"wrote {path} ({safe(name)})", highlight=False)
        return
    if fmt == "json":
        if single:
            ((_, (g, m)),) = graphs.items()
            text = json_text(render.as_json(g, m, **extra))
        else:
            text = json_text({name: render.as_json(g, m, framework=name) for name, (g, m) in graphs.items()})
    elif fmt == "dot":
        text = "".join(render.as_dot(g, name) for name, (g, _) in graphs.items())
    else:
        text = "".join(
            render.as_text(g, m, f"trace {name}" if single else f"framework {name}")
            for name, (g, m) in graphs.items()
        )
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        write_out(text, json_text=fmt == "json")


def _detect(db: Path, taxonomy: str) -> None:
    from tracefail.services import stats as service

    store = open_db(db)
    try:
        report = _usage(lambda: service.detect(store, taxonomy=taxonomy))
    finally:
        store.close()
    lines = [f"heuristics read {report.traces} traces, stored {report.written} labels"]
    lines += [f"  {source}: present in {n} traces" for source, n in sorted(report.present.items())]
    write_out("\n".join(lines) + "\n")
    if report.versus_judge.height:
        out.print(_rich_table("heuristics vs judge (same traces)", report.versus_judge))
    else:
        sys.stdout.write("  no judge labels on the same traces to compare with\n")


@app.command()
def slices(
    db: DbOption = DEFAULT_DB_PATH,
    mode: Annotated[str | None, typer.Option("--mode", help="Only this failure mode.")] = None,
    min_size: Annotated[int, typer.Option("--min-size", help="Smallest slice reported (traces).")] = 10,
    min_lift: Annotated[float, typer.Option("--min-lift", help="Slice rate / corpus rate at least.")] = 1.5,
    top: Annotated[int, typer.Option("--top", help="Show at most this many slices.")] = 20,
    source: SourceOption = "trusted",
    taxonomy: TaxonomyOption = "mast-v1",
    format: Annotated[str, typer.Option("--format", help="table, csv, json, parquet or md.")] = "table",
    output: OutOption = None,
) -> None:
    """Error slices: groups of traces (metadata, binned length and features) whose rate of a
    failure mode is far above the corpus rate, with sizes and Wilson 95% intervals."""
    from tracefail.services import stats as service

    store = open_db(db, read_only=True)
    try:
        found = _usage(
            lambda: service.slices(
                store, taxonomy=taxonomy, source=source, mode=mode, min_size=min_size, min_lift=min_lift
            )
        )
    finally:
        store.close()
    if not found.height:
        err.print(
            f"no slice of at least {min_size} traces has {min_lift}x the corpus rate above its interval",
            highlight=False,
        )
    shown = found.head(top)
    emit({"slices": shown}, {"slices": shown.to_dicts(), "total": found.height}, format, output)


@app.command()
def audit(
    mode: Annotated[str, typer.Option("--mode", help="Failure mode id, e.g. 1.3.")],
    threshold: Annotated[
        float, typer.Option("--threshold", help="Test whether the mode's rate is above this.")
    ],
    db: DbOption = DEFAULT_DB_PATH,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Error level; decide when an e-value reaches 1/alpha.")
    ] = 0.05,
    source: SourceOption = "trusted",
    taxonomy: TaxonomyOption = "mast-v1",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Anytime-valid test (testing by betting) of "mode M's rate is above T" over the labels in
    the order they were written: stop labelling as soon as it decides."""
    from tracefail.services import stats as service
    from tracefail.services.render import json_text

    store = open_db(db, read_only=True)
    try:
        result = _usage(
            lambda: service.audit(
                store, mode=mode, threshold=threshold, taxonomy=taxonomy, source=source, alpha=alpha
            )
        )
    finally:
        store.close()
    if json_out:
        write_out(json_text({"mode": mode, **result.as_dict()}), json_text=True)
        return
    lines = [
        f"audit of mode {mode}: is its rate above {threshold}? (alpha {alpha}, decide at e >= {1 / alpha:g})",
        f"{'labels':>8} {'rate':>7} {'e(above)':>12} {'e(below)':>12}",
    ]
    lines += [f"{n:>8} {rate:>7.3f} {up:>12.4g} {down:>12.4g}" for n, rate, up, down in result.path]
    if result.decision != "undecided":
        e = result.e_above if result.decision == "above" else result.e_below
        verdict = (
            f"decision: rate is {result.decision} {threshold} (after {result.decided_at} labels; e = {e:.4g})"
        )
    elif not result.n:
        verdict = f"no labels for mode {mode} from source {source} yet: nothing to decide"
    else:
        verdict = (
            f"undecided after {result.n} labels (rate {result.rate:.3f}); keep labelling: "
            f"the test stays valid however long you go on"
        )
    write_out("\n".join([*lines, verdict]) + "\n")


@app.command()
def report(
    db: DbOption = DEFAULT_DB_PATH,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="report.html, or a folder for --format png.")
    ] = Path("report.html"),
    format: Annotated[str, typer.Option("--format", help="html (one self-contained file) or png.")] = "html",
    source: SourceOption = "trusted",
    taxonomy: TaxonomyOption = "mast-v1",
) -> None:
    """A shareable report: prevalence by framework, co-occurrence, failure position, agent blame,
    judge vs human agreement and feature distributions, in one HTML file that needs no network."""
    from tracefail.services import stats as service

    if format == "html" and output.is_dir():
        fail(
            f"{output}: is a folder; give the report a file name such as {output / 'report.html'}", EXIT_USAGE
        )
    if format == "html" and not output.parent.is_dir():
        fail(f"{output}: no such folder {output.parent}", EXIT_USAGE)
    store = open_db(db, read_only=True)
    try:
        paths = _usage(lambda: service.report(store, output, fmt=format, taxonomy=taxonomy, source=source))
    except OSError as exc:
        fail(f"{output}: cannot write ({exc.strerror or exc})")
    finally:
        store.close()
    for path in paths:
        err.print(f"wrote {safe(path)}", highlight=False)
