"""`tracefail clusters`: failing traces grouped by failure signature."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from tracefail.cli import app
from tracefail.cli.common import DEFAULT_DB_PATH, EXIT_USAGE, DbOption, fail, open_db, out, print_json


@app.command()
def clusters(
    db: DbOption = DEFAULT_DB_PATH,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="Which traces count as failing beyond outcome=failure: those with labels of a kind "
            "(human, dataset, llm-judge/judge, ranker, heuristic), all, or a stored source name.",
        ),
    ] = "all",
    rationales: Annotated[
        bool,
        typer.Option(
            "--rationales",
            help="Also cluster by the labellers' words (rationales, reasons, evidence steps, modes).",
        ),
    ] = False,
    min_size: Annotated[int, typer.Option("--min-size", help="Smaller clusters count as unclustered.")] = 2,
    n_clusters: Annotated[
        int | None, typer.Option("--clusters", help="How many clusters (default about sqrt(n/2)).")
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the LSA step; same corpus + seed, same clusters.")
    ] = 0,
    json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Group failing traces by their own text (task, agents' messages, tool results, errors):
    TF-IDF, LSA and agglomerative clustering. Each cluster is named by its distinctive words and
    the modes most of its traces share; --rationales adds the labellers' words to the signature."""
    from rich.text import Text

    from tracefail.services import clusters as service

    store = open_db(db, read_only=True)
    try:
        result = service.failure_clusters(
            store, source=source, min_size=min_size, seed=seed, n_clusters=n_clusters, rationales=rationales
        )
    except service.ClusterUsageError as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        store.close()
    if json:
        document = asdict(result)
        for item, found in zip(document["clusters"], result.clusters, strict=True):
            item["name"] = found.name
        print_json(document)
        return
    out.print(
        Text(
            f"{result.n_traces} failing traces, {len(result.clusters)} clusters"
            f" (source {source}, seed {seed}"
            + (", with the labellers' rationales)" if rationales else ", by the traces' own text)")
        )
    )
    for found in result.clusters:
        title = "unclustered" if found.cluster_id == 0 else f"#{found.cluster_id} {found.name}"
        out.print(Text(f"\n{title}  ({found.size} traces)", style="bold"))
        out.print(Text(f"  words: {', '.join(found.terms) or '-'}"))
        if found.modes:
            modes = ", ".join(
                f"{m.mode_id} {m.traces}/{found.size} ({m.share:.0%} of all {m.mode_id})"
                for m in found.modes[:6]
            )
            out.print(Text(f"  modes: {modes}"))
        frameworks = ", ".join(f"{name} {n}" for name, n in found.frameworks.items())
        out.print(Text(f"  frameworks: {frameworks}"))
        out.print(Text(f"  examples: {', '.join(found.examples)}"))
