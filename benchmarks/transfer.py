"""Does the step ranker transfer? In-domain CV beside held-out domains, which feature groups earn
their place on held-out data, and how far other corpora are from the training corpus.

    .venv/bin/python benchmarks/transfer.py --ag ../shared/data/whowhen-algorithm-generated \
        --other data_samples/mast/mad_full_sample.json data_samples/mast/mad_human_sample.json

Who&When Algorithm-Generated is one system (AG2 CaptainAgent) on two benchmarks: the run's
`level` is 1-3 for GAIA tasks and Easy/Medium/Hard for AssistantBench tasks. The benchmark a run
came from is written into a temporary copy of the corpus (`benchmark` column) so that
`train --cv by-benchmark` can hold one benchmark out; `by-metadata.level` holds out each level.
Each feature set is compared with the first feature set (the features before this work) on the
same traces, paired.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from tracefail.analysis.attribution import Hits
from tracefail.analysis.ranker import TraceRows, cross_validate
from tracefail.analysis.step_features import FEATURE_GROUPS, RANKER_FEATURES, StepRow
from tracefail.analysis.transfer import shift
from tracefail.services.attribution import (
    HEADLINE_RULES,
    corpus_profile,
    feature_rows,
    load_corpus,
    train,
)
from tracefail.services.ingest import ingest
from tracefail.store import Database
from tracefail.store.attribution import steps_for, trace_column
from tracefail.store.traces import trace_ids

BEFORE = ("position", "position_abs", "speaker", "words")
SETS = {
    "before (position, speaker, words)": BEFORE,
    "+ relied_on": (*BEFORE, "relied_on"),
    "+ contradicted": (*BEFORE, "contradicted"),
    "+ ignored_error": (*BEFORE, "ignored_error"),
    "+ departure": (*BEFORE, "departure"),
    "+ role_text": (*BEFORE, "role_text"),
    "- position_abs": ("position", "speaker", "words"),
    "default (+ ignored_error, role_text)": None,
    "all groups": tuple(FEATURE_GROUPS),
}


def _ci(s: dict) -> str:
    return f"{s['value']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"


def _diff(s: dict) -> str:
    return f"{s['diff']:+.3f} [{s['diff_low']:+.3f}, {s['diff_high']:+.3f}]"


def _names(groups: tuple[str, ...] | None) -> list[str]:
    if groups is None:
        return list(RANKER_FEATURES)
    return [f for g in groups for f in FEATURE_GROUPS[g]]


def ablation(db: Database, reps: int) -> None:
    corpus = load_corpus(db, "dataset")
    full = feature_rows(corpus, names=[f for g in FEATURE_GROUPS.values() for f in g])
    all_names = [f for g in FEATURE_GROUPS.values() for f in g]
    bench = trace_column(db, corpus.trace_ids, "benchmark")
    level = trace_column(db, corpus.trace_ids, "metadata.level")
    splits = {
        "10-fold CV (in-domain)": None,
        "held out by benchmark": [bench[t] or "" for t in corpus.trace_ids],
        "held out by level": [level[t] or "" for t in corpus.trace_ids],
    }

    def hits(names: list[str], groups: list[str] | None) -> Hits:
        idx = [all_names.index(n) for n in names]
        rows = [r.select(idx) for r in full]
        fold = cross_validate(rows, names, 10, groups=groups)
        guesses = []
        for r, rules in zip(rows, corpus.rules, strict=True):
            top = int(np.argmax(fold.scores[r.trace_id]))
            guesses.append((top, rules.agents[top]))
        return Hits.of(guesses, corpus.gold)

    base = {k: hits(_names(BEFORE), v) for k, v in splits.items()}
    print("\n| feature set | " + " | ".join(f"{k}: step (Δ vs before) | agent (Δ)" for k in splits) + " |")
    print("|---" * (1 + 2 * len(splits)) + "|")
    for label, groups in SETS.items():
        cells = []
        for k, v in splits.items():
            s = hits(_names(groups), v).summary(reps, base[k])
            step, agent = s["step"], s["agent"]
            cells.append(f"{step['value']:.3f} ({_diff(step)}) | {agent['value']:.3f} ({_diff(agent)})")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


def adaptation(db: Database, reps: int) -> None:
    """Unsupervised adaptation: each benchmark's features z-scored with its own (unlabelled)
    statistics before fitting and scoring, against the plain ranker, both held out by benchmark."""
    corpus = load_corpus(db, "dataset")
    rows = feature_rows(corpus)
    bench = trace_column(db, corpus.trace_ids, "benchmark")
    groups = [bench[t] or "" for t in corpus.trace_ids]

    def held_out(rs: list[TraceRows]) -> Hits:
        fold = cross_validate(rs, RANKER_FEATURES, 10, groups=groups)
        guesses = []
        for r, rules in zip(rs, corpus.rules, strict=True):
            top = int(np.argmax(fold.scores[r.trace_id]))
            guesses.append((top, rules.agents[top]))
        return Hits.of(guesses, corpus.gold)

    stats = {}
    for group in sorted(set(groups)):
        x = np.vstack([r.x for r, g in zip(rows, groups, strict=True) if g == group])
        stats[group] = (x.mean(axis=0), np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0))
    adapted = [
        TraceRows(r.trace_id, (r.x - stats[g][0]) / stats[g][1], r.gold_step)
        for r, g in zip(rows, groups, strict=True)
    ]
    s = held_out(adapted).summary(reps, held_out(rows))
    print(
        f"\nper-benchmark standardised features, held out by benchmark: step {_ci(s['step'])} "
        f"(Δ vs plain {_diff(s['step'])}), agent {_ci(s['agent'])} (Δ {_diff(s['agent'])})"
    )


def split_table(db: Database, reps: int) -> None:
    print("\n| split | method | step | Δ step (ranker − it) | agent | Δ agent |")
    print("|---|---|---|---|---|---|")
    for label, kwargs in (("10-fold CV by trace", {}), ("held out by benchmark", {"by": "benchmark"})):
        report = train(db, reference="dataset", reps=reps, **kwargs)  # type: ignore[arg-type]
        rows = {r.name: r for r in report.rows}
        ranker = report.rows[0]
        print(f"| {label} | {ranker.name} | {_ci(ranker.step.__dict__)} | | {_ci(ranker.agent.__dict__)} | |")
        if report.in_domain is not None:
            r = report.in_domain
            print(
                f"| {label} | {r.name} (Δ: held-out − it) "
                f"| {_ci(r.step.__dict__)} | {_diff(r.step.__dict__)} "
                f"| {_ci(r.agent.__dict__)} | {_diff(r.agent.__dict__)} |"
            )
        for name in HEADLINE_RULES:
            r = rows[name]
            print(
                f"| {label} | {name} | {_ci(r.step.__dict__)} | {_diff(r.step.__dict__)} "
                f"| {_ci(r.agent.__dict__)} | {_diff(r.agent.__dict__)} |"
            )
        for g in report.groups:
            rules = ", ".join(f"{k} {v:.3f}" for k, v in g.rules_step.items())
            print(
                f"|  | held out {g.group} (n={g.n_traces}) | {_ci(g.step.__dict__)} | {rules} "
                f"| {_ci(g.agent.__dict__)} "
                f"| last_worker_speaker {g.rules_agent['last_worker_speaker']:.3f} |"
            )


def shifts(db: Database, others: list[Path], tmp: Path) -> None:
    names = list(RANKER_FEATURES)

    def prof(store: Database, ids: list[str]):
        steps: dict = {}
        for row in steps_for(store, ids).iter_rows(named=True):
            steps.setdefault(row["trace_id"], []).append(
                StepRow(row["step_idx"], row["agent"], row["role"], row["kind"], row["content"])
            )
        return corpus_profile(store, steps, names, trace_column(store, ids, "task"))

    ids = trace_ids(db)
    bench = trace_column(db, ids, "benchmark")
    gaia = prof(db, [t for t in ids if bench[t] == "GAIA"])
    assistant = prof(db, [t for t in ids if bench[t] == "AssistantBench"])
    everything = prof(db, ids)
    target_db = tmp / "others.duckdb"
    with Database(target_db) as store:
        ingest(store, list(others), workers=0)
    with Database(target_db, read_only=True) as store:
        other = prof(store, trace_ids(store))
    print(
        "\n| training -> target | runs | unseen frameworks | agents x | steps x | chars/step x "
        "| feature SMD (top 3) | unlike? |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, a, b in (
        ("AG GAIA -> AG AssistantBench", gaia, assistant),
        ("AG AssistantBench -> AG GAIA", assistant, gaia),
        ("AG (all) -> MAST samples", everything, other),
    ):
        s = shift(a, b)
        top = ", ".join(f"{f} {v:.2f}" for f, v in s.top_features)
        print(
            f"| {label} | {a.n_runs} -> {b.n_runs} | {s.unseen_framework_share:.0%} {s.unseen_frameworks} "
            f"| {s.agents_ratio:.2f} | {s.steps_ratio:.2f} | {s.chars_ratio:.2f} "
            f"| {s.feature_smd:.2f} ({top}) "
            f"| {'yes' if s.unlike else 'no'} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ag", type=Path, required=True, help="Who&When Algorithm-Generated folder")
    parser.add_argument("--other", type=Path, nargs="*", default=[], help="other corpora (shift only)")
    parser.add_argument("--reps", type=int, default=1000)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        path = tmp / "ag.duckdb"
        with Database(path) as db:
            ingest(db, [args.ag], workers=0)
            db.connection.execute(
                "UPDATE traces SET benchmark = CASE WHEN regexp_matches(metadata ->> 'level', '^[0-9]+$') "
                "THEN 'GAIA' ELSE 'AssistantBench' END"
            )
        with Database(path, read_only=True) as db:
            split_table(db, args.reps)
            ablation(db, args.reps)
            adaptation(db, args.reps)
            if args.other:
                shifts(db, args.other, tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
