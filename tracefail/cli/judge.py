"""Judge commands: label (batch, resumable), calibrate, eval."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer

from tracefail.cli import app
from tracefail.cli.common import (
    DEFAULT_DB_PATH,
    EXIT_PARTIAL,
    EXIT_USAGE,
    DbOption,
    cut,
    err,
    fail,
    open_db,
    out,
    print_json,
    progress_bar,
    safe,
)
from tracefail.cli.scale import GpusOption, RayAddressOption, RayFlag, WorkersOption, ray_options

if TYPE_CHECKING:
    from tracefail.services.eval_results import CalibrationResult, EvalResult, Interval

TaxonomyOption = Annotated[
    str, typer.Option("--taxonomy", help="Shipped taxonomy name (mast-v1), id, or a YAML/JSON file.")
]
JudgeSourceOption = Annotated[
    str | None,
    typer.Option(
        "--judge-source",
        help="Source to evaluate (llm-judge:HASH or ranker:HASH); default, per task: the newest "
        "source with labels for it (the others are listed).",
    ),
]


@app.command()
def label(
    db: DbOption = DEFAULT_DB_PATH,
    taxonomy: TaxonomyOption = "mast-v1",
    judge: Annotated[
        str, typer.Option("--judge", help="local, local:MODEL (HF id, dir or .gguf) or openai:MODEL.")
    ] = "local",
    base_url: Annotated[
        str, typer.Option("--base-url", help="OpenAI-compatible endpoint.")
    ] = "https://api.openai.com/v1",
    api_key_env: Annotated[
        str, typer.Option("--api-key-env", help="Environment variable holding the API key.")
    ] = "OPENAI_API_KEY",
    api_key_header: Annotated[
        str, typer.Option("--api-key-header", help="Key header: Authorization (Bearer) or api-key.")
    ] = "Authorization",
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Parallel HTTP requests.")] = 8,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds for one whole HTTP request (connect to last byte).")
    ] = 120.0,
    max_response_mb: Annotated[
        float, typer.Option("--max-response-mb", help="Largest reply accepted, in MiB.")
    ] = 8.0,
    task: Annotated[
        str, typer.Option("--task", help="modes, attribution, or both (comma-separated).")
    ] = "modes,attribution",
    traces: Annotated[list[str] | None, typer.Option("--traces", help="Trace ids (repeatable).")] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            help="The first N traces by trace id (of --filter's selection if given); --task "
            "attribution alone skips traces whose outcome is success.",
        ),
    ] = None,
    filter_text: Annotated[
        str,
        typer.Option(
            "--filter", help='Traces in the filter language of the TUI and export ("framework:AG2 mode:1.3").'
        ),
    ] = "",
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda (local judge).")] = "auto",
    window_tokens: Annotated[int, typer.Option("--window-tokens", help="Local judge window size.")] = 2048,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="Torch threads for the local judge (default: all cores)."),
    ] = None,
    price_in: Annotated[
        float, typer.Option("--price-in", help="USD per 1M input tokens (cost report).")
    ] = 0.0,
    price_out: Annotated[float, typer.Option("--price-out", help="USD per 1M output tokens.")] = 0.0,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy", help="openai judge: all-at-once, step-by-step, binary-search or shortlist."
        ),
    ] = "all-at-once",
    ranker: Annotated[
        str | None, typer.Option("--ranker", help="Step ranker (from `train`) for --strategy shortlist.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
    use_ray: RayFlag = False,
    ray_address: RayAddressOption = None,
    workers: WorkersOption = 2,
    gpus_per_worker: GpusOption = 0.0,
) -> None:
    """Judge traces for failure modes and root cause; re-running skips traces already judged."""

    from tracefail.services.distributed import DistributedError
    from tracefail.services.features import ModelLoadError
    from tracefail.services.label import JudgeSpec, LabelUsageError
    from tracefail.services.label import label as run_label
    from tracefail.taxonomy import TaxonomyError

    if traces and limit:
        fail("use --traces or --limit, not both", EXIT_USAGE)
    executor = ray_options(use_ray, ray_address, workers, gpus_per_worker)
    spec = JudgeSpec(
        spec=judge,
        base_url=base_url,
        api_key_env=api_key_env,
        api_key_header=api_key_header,
        concurrency=concurrency,
        timeout_s=timeout,
        max_response_mb=max_response_mb,
        device=device,
        window_tokens=window_tokens,
        threads=threads,
        price_in_per_mtok=price_in,
        price_out_per_mtok=price_out,
        strategy=strategy,
        ranker=ranker,
    )
    store = open_db(db)
    with progress_bar() as progress:
        bar = progress.add_task("label", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(bar, total=total, completed=done)

        try:
            report = run_label(
                store,
                judge=spec,
                taxonomy=taxonomy,
                tasks=task,
                traces=traces,
                limit=limit,
                filter_text=filter_text,
                on_progress=on_progress,
                ray=executor,
                on_warning=lambda message: err.print(f"[yellow]warning:[/] {safe(message)}", highlight=False),
            )
        except (LabelUsageError, TaxonomyError) as exc:
            fail(str(exc), EXIT_USAGE)
        except (ModelLoadError, DistributedError) as exc:
            fail(str(exc))
        finally:
            store.close()
    for trace_id, message in report.errors:
        err.print(f"[yellow]judge error:[/] {safe(trace_id)}: {safe(cut(message))}", highlight=False)
    if report.stopped:
        err.print(f"[red]{safe(cut(report.stopped))}[/]", highlight=False)
    summary = report.as_dict()
    if json_out:
        print_json(summary)
    else:
        out.print(
            f"run {report.run_id} ({report.source}): judged {report.judged}, skipped {report.skipped} "
            f"already done, {len(report.errors)} errors; {report.labels} labels, {report.attributions} "
            f"attributions; tokens in {report.tokens_in}, out {report.tokens_out}, "
            f"cost ${report.cost_usd:.4f}; {report.elapsed_s:.1f} s",
            highlight=False,
            markup=False,
        )
    if report.stopped:
        raise typer.Exit(1)
    if report.errors:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def calibrate(
    db: DbOption = DEFAULT_DB_PATH,
    reference: Annotated[str, typer.Option("--reference", help="human or dataset labels.")] = "human",
    taxonomy: TaxonomyOption = "mast-v1",
    judge_source: JudgeSourceOption = None,
    method: Annotated[str, typer.Option("--method", help="platt or temperature.")] = "platt",
    min_labels: Annotated[int, typer.Option("--min-labels", help="Fewest labels to fit a mode.")] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Fit per-mode calibration of judge probabilities; later labels carry calibrated ones."""
    from tracefail.services.evaluate import EvalError
    from tracefail.services.evaluate import calibrate as run_calibrate
    from tracefail.taxonomy import TaxonomyError

    store = open_db(db)
    try:
        result = run_calibrate(
            store,
            reference=reference,
            judge_source=judge_source,
            taxonomy=taxonomy,
            method=method,
            min_labels=min_labels,
        )
    except (EvalError, TaxonomyError) as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        store.close()
    _picked(result)
    if json_out:
        print_json(result.to_json())
        return
    for mode in result.modes:
        if mode.skipped is not None or mode.ece_before is None or mode.ece_after is None:
            out.print(
                f"{mode.mode_id:<5} n={mode.n:<4} skipped: {mode.skipped}",
                highlight=False,
                markup=False,
            )
        else:
            out.print(
                f"{mode.mode_id:<5} n={mode.n:<4} ECE {mode.ece_before:.3f} -> {mode.ece_after:.3f}",
                highlight=False,
                markup=False,
            )
    if result.ece_before is not None and result.ece_after is not None:
        out.print(
            f"all   ECE {result.ece_before:.3f} -> {result.ece_after:.3f} (in-sample); "
            f"{result.fitted_modes} modes fitted",
            highlight=False,
            markup=False,
        )
    else:
        out.print("no mode had enough reference labels to fit", highlight=False, markup=False)


def _picked(result: EvalResult | CalibrationResult) -> None:
    """Say on stderr which sources were used (per task) and which others have labels."""
    attribution = getattr(result, "attribution_source", result.judge_source)
    if attribution == result.judge_source:
        line = f"judge source {result.judge_source} ({result.judge_picked})"
    else:
        line = (
            f"modes from {result.judge_source or 'no source'}, attribution from "
            f"{attribution or 'no source'} ({result.judge_picked})"
        )
    if result.other_judge_sources:
        line += f"; other sources with labels: {', '.join(result.other_judge_sources)}"
    err.print(line, highlight=False, markup=False)


def _ci(value: Interval) -> str:
    """`0.412 [0.300, 0.520]`; an undefined score (NaN) prints as n/a."""

    def num(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{x:.3f}"

    return f"{num(value['value'])} [{num(value['low'])}, {num(value['high'])}]"


def _diff(value: Interval) -> str:
    """`+0.120 [+0.020, +0.230]`: a paired difference and its interval."""
    return f"{value['diff']:+.3f} [{value['diff_low']:+.3f}, {value['diff_high']:+.3f}]"


@app.command("eval")
def evaluate(
    db: DbOption = DEFAULT_DB_PATH,
    reference: Annotated[str, typer.Option("--reference", help="human or dataset labels.")] = "human",
    taxonomy: TaxonomyOption = "mast-v1",
    judge_source: JudgeSourceOption = None,
    reps: Annotated[
        int, typer.Option("--bootstrap", help="Bootstrap resamples for the 95% intervals.")
    ] = 1000,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Agreement of the judge with human or dataset labels, with baselines and 95% intervals."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tracefail.services.evaluate import EvalError
    from tracefail.services.evaluate import evaluate as run_eval
    from tracefail.taxonomy import TaxonomyError

    store = open_db(db, read_only=True)
    try:
        with Progress(
            TextColumn("eval"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("eval", total=None)
            result = run_eval(
                store,
                reference=reference,
                judge_source=judge_source,
                taxonomy=taxonomy,
                reps=reps,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        from tracefail.services.attribution import unvalidated_note

        note = unvalidated_note(store, result.attribution_source)
    except (EvalError, TaxonomyError) as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        store.close()
    _picked(result)
    if note:
        err.print(f"[yellow]warning:[/] {safe(note)}", highlight=False)
    if json_out:
        print_json(result.to_json())
        return
    out.print(
        f"judge {result.judge_source or '-'} vs {reference} labels ({result.taxonomy})",
        highlight=False,
        markup=False,
    )
    modes = result.modes
    out.print(
        f"modes: {modes.n_pairs} trace-mode pairs over {modes.n_traces} traces"
        + (f" ({modes.note})" if modes.note else ""),
        highlight=False,
        markup=False,
    )
    for row in modes.per_mode:
        out.print(
            f"  {row.mode_id:<5} n={row.n:<4} kappa {_ci(row.kappa)}  F1 {_ci(row.f1)}  "
            f"acc {_ci(row.accuracy)}" + ("  (one class only)" if row.single_class else ""),
            highlight=False,
            markup=False,
        )
    attribution = result.attribution
    out.print(
        f"attribution by {result.attribution_source or '-'}: {attribution.n_traces} traces (exact match)"
        + (
            f"; {attribution.speaker_corrected} replies named another agent than the step's speaker"
            if attribution.speaker_corrected
            else ""
        ),
        highlight=False,
        markup=False,
    )
    if attribution.judge is not None:
        rows = {"judge": attribution.judge, **(attribution.baselines or {})}
        for name, scores in rows.items():
            diff = (scores.judge_minus or {}).get("step")
            out.print(
                f"  {name:<31} agent {_ci(scores.agent)}  step {_ci(scores.step)}  "
                f"±1 {_ci(scores.within1)}  ±3 {_ci(scores.within3)}"
                + (f"  top-3 {_ci(scores.top3)}" if scores.top3 is not None else "")
                + (f"  judge−this step {_diff(diff)}" if diff else ""),
                highlight=False,
                markup=False,
            )
