"""The `features` command: teacher-forced uncertainty and attention features for stored traces."""

from __future__ import annotations

from typing import Annotated

import typer

from tracefail.cli import app
from tracefail.cli.common import (
    DEFAULT_DB_PATH,
    EXIT_PARTIAL,
    EXIT_USAGE,
    DbOption,
    err,
    fail,
    open_db,
    out,
    progress_bar,
)
from tracefail.cli.scale import GpusOption, RayAddressOption, RayFlag, WorkersOption, ray_options


@app.command()
def features(
    db: DbOption = DEFAULT_DB_PATH,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="HF id or local dir (never downloaded), or a .gguf file. "
            "Default: the embedded SmolLM2-135M-Instruct.",
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    window: Annotated[int, typer.Option("--window", help="Tokens per forward pass.")] = 2048,
    stride: Annotated[
        int | None,
        typer.Option("--stride", help="How far a new window moves on (default 3/4 of the window)."),
    ] = None,
    layers: Annotated[
        str, typer.Option("--layers", help="Layers with attention features: all, none, middle, 0-3,10,-1.")
    ] = "all",
    traces: Annotated[list[str] | None, typer.Option("--traces", help="Trace ids (repeatable).")] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="The first N traces by trace id (of --filter's selection if given)."),
    ] = None,
    filter_text: Annotated[
        str,
        typer.Option(
            "--filter", help='Traces in the filter language of the TUI and export ("framework:AG2 mode:1.3").'
        ),
    ] = "",
    use_ray: RayFlag = False,
    ray_address: RayAddressOption = None,
    workers: WorkersOption = 2,
    gpus_per_worker: GpusOption = 0.0,
) -> None:
    """Re-read traces with a local LM and store per-step features (skips traces already done)."""
    from rich.progress import TextColumn

    from tracefail.services.distributed import DistributedError
    from tracefail.services.features import FeatureError, ModelLoadError, extract_features

    executor = ray_options(use_ray, ray_address, workers, gpus_per_worker)
    store = open_db(db)
    with progress_bar(TextColumn("{task.fields[rate]}")) as progress:
        task = progress.add_task("loading model", total=None, rate="")
        tokens = [0]

        def on_start(total: int, name: str) -> None:
            progress.update(task, total=total, description=f"features {name}")
            progress.reset(task, total=total, rate="")

        def on_tokens(count: int) -> None:
            tokens[0] += count
            elapsed = progress.tasks[0].elapsed or 0.0
            progress.update(task, rate=f"{tokens[0] / elapsed:,.0f} tok/s" if elapsed else "")

        def on_trace(trace_id: str, steps: int) -> None:
            progress.advance(task)

        try:
            report = extract_features(
                store,
                model=model,
                device=device,
                window=window,
                stride=stride,
                layers=layers,
                trace_ids=traces,
                limit=limit,
                filter_text=filter_text,
                ray=executor,
                on_start=on_start,
                on_trace=on_trace,
                on_tokens=on_tokens,
            )
        except FeatureError as exc:
            store.close()
            fail(str(exc), 1 if isinstance(exc, ModelLoadError) else EXIT_USAGE)
        except DistributedError as exc:
            store.close()
            fail(str(exc))
    store.close()
    for message in report.errors:
        err.print(f"[yellow]failed:[/] {message}", markup=True, highlight=False)
    counts = report.as_dict()
    out.print(
        f"features from {counts['model']}: {counts['traces']} traces, {counts['steps']} steps, "
        f"{counts['rows']} rows, {counts['tokens']} tokens in {counts['elapsed_s']} s "
        f"({counts['tokens_per_s']} tok/s); {counts['skipped']} already done, {counts['errors']} failed",
        highlight=False,
    )
    if report.errors:
        raise typer.Exit(EXIT_PARTIAL)
