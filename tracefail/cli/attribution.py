"""Attribution learning commands: train (a step ranker from the corpus's attributions) and review."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from tracefail.cli import app
from tracefail.cli.common import (
    DEFAULT_DB_PATH,
    EXIT_USAGE,
    DbOption,
    err,
    fail,
    open_db,
    out,
    print_json,
    safe,
)

ReferenceOption = Annotated[
    str, typer.Option("--reference", help="dataset, human, or one label source (e.g. human:alice).")
]


def _ci(score: object) -> str:
    if score is None:
        return "-"
    s = dataclasses.asdict(score)  # type: ignore[call-overload]
    text = f"{s['value']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"
    if s.get("diff") is not None:
        text += f" Δ{s['diff']:+.3f} [{s['diff_low']:+.3f}, {s['diff_high']:+.3f}]"
    return text


@app.command()
def train(
    db: DbOption = DEFAULT_DB_PATH,
    reference: ReferenceOption = "dataset",
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to save the model (JSON).")] = Path(
        "ranker.json"
    ),
    cv: Annotated[
        str,
        typer.Option(
            "--cv",
            help="Folds by trace (e.g. 10), or by-COLUMN to hold out whole systems: by-framework, "
            "by-benchmark, by-llm, by-metadata.KEY (printed beside in-domain CV).",
        ),
    ] = "10",
    curve: Annotated[bool, typer.Option("--curve", help="Also print the learning curve.")] = False,
    reps: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the 95% CIs.")] = 1000,
    lm_traces_only: Annotated[
        bool,
        typer.Option(
            "--lm-traces-only",
            help="Only traces with stored LM features (ranker vs ranker+lm on the same traces).",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Learn a step ranker from the corpus's attributions; print cross-validated accuracy beside
    the strong baselines (Δ: ranker minus each, paired 95% CI) and save the model."""
    from tracefail.services.attribution import TrainError, learning_curve, parse_cv
    from tracefail.services.attribution import train as run_train

    store = open_db(db, read_only=True)
    try:
        folds, by = parse_cv(cv)
        report = run_train(
            store,
            reference=reference,
            output=output,
            folds=folds,
            by=by,
            reps=reps,
            lm_traces_only=lm_traces_only,
        )
        points = learning_curve(store, reference=reference, folds=folds, reps=reps) if curve else []
    except TrainError as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        store.close()
    if json_out:
        print_json({**dataclasses.asdict(report), "learning_curve": [dataclasses.asdict(p) for p in points]})
        return

    def line(text: str) -> None:
        out.print(text, highlight=False, markup=False)

    line(
        f"{report.n_traces} traces, {report.n_steps} steps from --reference {reference}; "
        f"{report.split}; LM features stored: {report.lm_features}"
    )
    named = [*report.rows, *([report.in_domain] if report.in_domain else [])]
    w = max(len(r.name) for r in named) + 1
    line(f"{'method':<{w}} {'step (exact)':<44} {'agent':<44} {'step ±1':<22} {'step ±3':<22} top-3")
    for row in report.rows:
        line(
            f"{row.name:<{w}} {_ci(row.step):<44} {_ci(row.agent):<44} {_ci(row.within1).split(' Δ')[0]:<22} "
            f"{_ci(row.within3).split(' Δ')[0]:<22} {_ci(row.top3)}"
        )
    if report.in_domain is not None:
        row = report.in_domain
        line(f"{row.name:<{w}} {_ci(row.step):<44} {_ci(row.agent):<44} (Δ: held-out minus in-domain)")
        for g in report.groups:
            rules = "  ".join(f"{k} {v:.3f}" for k, v in g.rules_step.items())
            line(
                f"  held out {g.group!r} (n={g.n_traces}): ranker step {_ci(g.step)} agent {_ci(g.agent)}; "
                f"rules step {rules}; last_worker_speaker agent {g.rules_agent['last_worker_speaker']:.3f}"
            )
    best = next(r for r in report.rows if r.name == report.best_baseline)
    ranker = report.rows[0]
    verdict = "above" if ranker.step.low > best.step.value else "NOT above"
    line(
        f"ranker step CI lower bound {ranker.step.low:.3f} is {verdict} the best baseline "
        f"({report.best_baseline} {best.step.value:.3f})"
    )
    for p in points:
        line(f"learning curve: {p.n_train:>4} labelled traces -> step {_ci(p.step)}  agent {_ci(p.agent)}")
    line(f"note: {report.note}")
    if report.model_path:
        line(f"saved {report.model_path} (cheap features only, temperature {report.temperature:.2f})")


@app.command()
def review(
    db: DbOption = DEFAULT_DB_PATH,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="A ranker saved by `tracefail train`; default ./ranker.json if present, else one is "
            "fitted on 4+ attributed traces, else the queue is ordered by source disagreement.",
        ),
    ] = None,
    reference: ReferenceOption = "human",
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many traces to list.")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Unlabelled failed traces, the most useful to label first (sources disagree, then the
    ranker is least sure); label them in `tracefail browse` with `m`, then `train --reference human`."""
    from tracefail.services.attribution import TrainError, review_panel, saved_ranker

    store = open_db(db, read_only=True)
    try:
        panel = review_panel(store, ranker_path=saved_ranker(model), reference=reference, limit=limit)
    except TrainError as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        store.close()
    items = panel.items
    err.print(safe(panel.order), highlight=False)
    if json_out:
        print_json([dataclasses.asdict(i) for i in items])
        return
    if panel.transfer is not None and not panel.transfer.validated:
        err.print(f"[yellow]warning:[/] {safe(panel.transfer.message)}", highlight=False)
    for p in panel.curve:
        out.print(
            f"learning curve ({reference} labels): {p.n_train:>4} labelled -> step {_ci(p.step)}  "
            f"agent {_ci(p.agent)}; best rule {panel.best_baseline} {panel.best_baseline_step:.3f}",
            highlight=False,
            markup=False,
        )
    for item in items:
        out.print(
            f"{item.trace_id}  "
            + ("" if item.uncertainty is None else f"uncertainty {item.uncertainty:.2f}  ")
            + f"sources disagree on {item.disagreement} steps"
            + (f"  candidates {item.top_steps}" if item.top_steps else "")
            + ("  (unlike the ranker's training runs: validates it)" if item.validates else ""),
            highlight=False,
            markup=False,
        )
