"""A large synthetic corpus built inside DuckDB from the real traces already in the store.

Benchmarks and UI work need a corpus of realistic shape (100k traces, 1M steps, labels from
several sources, attributions, features). Generating it row by row in Python would take minutes;
here every table is filled by one `INSERT ... SELECT` over `generate_series`, with pseudo-random
choices drawn from `hash()` so the same seed always gives the same corpus. Each step copies a
stored sample step (its role, kind and layout), and `text` rewrites the copied text (in Python,
the one part done row by row: about a minute for 1M steps): copied as it is, a 1M-step corpus
holds only as many distinct texts as the samples (673), which flatters compression and search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from tracefail.store.db import Database, StoreError, now
from tracefail.store.search import catch_up

# MAST mode ids with base rates near the ones reported in the MAST paper (share of traces).
MODE_RATES: dict[str, float] = {
    "1.1": 0.11,
    "1.2": 0.02,
    "1.3": 0.16,
    "1.4": 0.03,
    "1.5": 0.12,
    "2.1": 0.02,
    "2.2": 0.07,
    "2.3": 0.07,
    "2.4": 0.01,
    "2.5": 0.02,
    "2.6": 0.13,
    "3.1": 0.06,
    "3.2": 0.08,
    "3.3": 0.09,
}
# Where in a trace the evidence of each mode sits (fraction of the trace), by MAST stage.
_STAGE_OFFSET = {"1.1": 0.0, "1.2": 0.0, "2.2": 0.0, "1.5": 0.66, "3.1": 0.66, "3.2": 0.66, "3.3": 0.66}
FRAMEWORKS = ["AG2", "MetaGPT", "ChatDev", "Magentic-One", "HyperAgent", "AppWorld", "OpenManus"]
LLMS = ["GPT-4o", "Claude-3.7-Sonnet", "CodeLlama-7B", "Qwen2.5-72B"]
BENCHMARKS = ["GSM-Plus", "MMLU", "ProgramDev", "SWE-Bench Lite", "GAIA", "AssistantBench"]
AGENTS = ["Planner", "Coder", "Reviewer", "Executor", "Verifier"]
FEATURES = ["tok.entropy_mean", "tok.surprisal_mean", "attn.lookback_ratio", "attn.phi_prefix"]
JUDGE_SOURCE = "llm-judge:synth0001"
HUMAN_SOURCES = ["human:synth_a", "human:synth_b"]
DATASET_SOURCE = "dataset:synth"


@dataclass
class SynthReport:
    traces: int
    steps: int
    labels: int
    attributions: int
    features: int
    distinct_texts: int


def _u(expr: str, salt: int) -> str:
    """SQL for a uniform number in [0, 1) drawn from `expr` and a salt."""
    return f"((hash({expr}, {salt}) % 1000003)::DOUBLE / 1000003)"


def _array(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _step_text(con: Any, text: Callable[[str], str] | None) -> int:
    """The table synth_text (i, j, content): each step's copied sample text, rewritten by `text`
    in (trace, step) order so a seed always gives the same corpus; returns its distinct texts."""
    if text is None:
        con.execute(
            "CREATE TEMP TABLE synth_text AS SELECT i, j, content FROM synth_s JOIN synth_pool USING (k)"
        )
        return int(con.execute("SELECT count(DISTINCT content) FROM synth_text").fetchone()[0])
    templates = dict(con.execute("SELECT k, content FROM synth_pool").fetchall())
    keys = con.execute("SELECT i, j, k FROM synth_s ORDER BY i, j").to_arrow_table()
    contents = [None if templates[k] is None else text(templates[k]) for k in keys["k"].to_pylist()]
    con.register("synth_rewritten", pa.table({"i": keys["i"], "j": keys["j"], "content": contents}))
    con.execute("CREATE TEMP TABLE synth_text AS SELECT * FROM synth_rewritten")
    con.unregister("synth_rewritten")
    return len(set(contents) - {None})


def synthesize(
    db: Database, n_traces: int, *, seed: int = 0, text: Callable[[str], str] | None = None
) -> SynthReport:
    """Add `n_traces` synthetic traces (ids `synth:<n>`) and their labels, attributions, features.

    Needs at least one stored step to copy text from; ingest the shipped samples first. `text`
    rewrites each copied step text (seeded, in step order: benchmarks/corpus_text.py's
    `Words.text`); without it the text is copied as it is.
    """
    pool = db.rows("SELECT count(*) FROM steps WHERE trace_id NOT LIKE 'synth:%'")[0][0]
    if not pool:
        raise StoreError(f"{db.path}: no stored steps to copy text from; ingest data_samples first")
    if db.rows("SELECT count(*) FROM traces WHERE trace_id LIKE 'synth:%'")[0][0]:
        raise StoreError(f"{db.path}: already holds a synthetic corpus; use a fresh file")
    s = seed * 1000
    created = now()
    modes = list(MODE_RATES)
    with db.transaction() as con:
        con.execute(
            "CREATE TEMP TABLE synth_pool AS SELECT row_number() OVER (ORDER BY trace_id, step_idx) - 1 "
            "AS k, content, role, kind FROM steps WHERE trace_id NOT LIKE 'synth:%'"
        )
        con.execute(
            f"""
            CREATE TEMP TABLE synth_t AS
            SELECT i,
                   (hash(i, {s + 1}) % {len(FRAMEWORKS)})::INT AS fw,
                   (hash(i, {s + 2}) % {len(LLMS)})::INT AS lm,
                   (hash(i, {s + 3}) % {len(BENCHMARKS)})::INT AS bm,
                   (3 + hash(i, {s + 4}) % 15)::INT AS n
            FROM generate_series(0, {n_traces - 1}) g(i)
            """
        )
        # True presence per (trace, mode): the base rate scaled by framework and model, so that
        # systems differ, plus a planted slice (CodeLlama on ProgramDev repeats steps a lot).
        con.execute(
            f"""
            CREATE TEMP TABLE synth_truth AS
            SELECT t.i, t.n, t.fw, m.mode_id, m.k AS mk,
                   {_u("t.i", f"{s + 10} + m.k")} < least(0.95, m.rate * (0.6 + 0.2 * t.fw)
                       * (0.8 + 0.2 * t.lm)
                       * CASE WHEN m.mode_id = '1.3' AND t.lm = 2 AND t.bm = 2 THEN 3.0 ELSE 1.0 END)
                       AS present
            FROM synth_t t,
                 (SELECT unnest({_array(modes)}) AS mode_id,
                         unnest({list(MODE_RATES.values())}) AS rate,
                         unnest(range({len(modes)})) AS k) m
            """
        )
        con.execute(
            f"""
            INSERT INTO traces (trace_id, source, native_id, framework, llm, benchmark, task,
                                outcome, n_steps, content_hash, metadata, ingested_at)
            SELECT 'synth:' || t.i, 'synth', t.i::VARCHAR,
                   {_array(FRAMEWORKS)}[t.fw + 1], {_array(LLMS)}[t.lm + 1], {_array(BENCHMARKS)}[t.bm + 1],
                   'synthetic task ' || t.i,
                   CASE WHEN f.failing THEN 'failure' WHEN {_u("t.i", s + 5)} < 0.5 THEN 'success'
                        ELSE 'unknown' END,
                   t.n, md5('synth' || t.i),
                   -- four traces to a session, for the ops dashboard's per-session figures
                   json_object('synthetic', true, 'session_id', 'session-' || (t.i // 4)), ?
            FROM synth_t t JOIN (SELECT i, bool_or(present) AS failing FROM synth_truth GROUP BY i) f
                 USING (i)
            """,
            [created],
        )
        con.execute(
            f"""
            CREATE TEMP TABLE synth_s AS
            SELECT t.i, j, hash(t.i, j, {s + 7}) % {pool} AS k
            FROM synth_t t, generate_series(0, t.n - 1) g(j)
            """
        )
        distinct = _step_text(con, text)
        con.execute(
            f"""
            INSERT INTO steps (trace_id, step_idx, agent, role, kind, content,
                               tokens_in, tokens_out, start_ts, end_ts, status)
            SELECT 'synth:' || t.i, j,
                   {_array(AGENTS)}[((j + hash(t.i, {s + 6})) % {len(AGENTS)})::INT + 1],
                   p.role, p.kind, x.content,
                   -- tokens, timings over 30 days and 3% errors, for the ops dashboard
                   (200 + hash(t.i, j, {s + 20}) % 3000)::INT, (20 + hash(t.i, j, {s + 21}) % 500)::INT,
                   TIMESTAMP '2025-06-01' + to_seconds((t.i * 26 + j * 7)::BIGINT),
                   TIMESTAMP '2025-06-01' + to_seconds((t.i * 26 + j * 7)::BIGINT)
                       + to_milliseconds((100 + hash(t.i, j, {s + 22}) % 5000)::BIGINT),
                   CASE WHEN hash(t.i, j, {s + 23}) % 100 < 3 THEN 'error' END
            FROM synth_t t JOIN synth_s USING (i) JOIN synth_pool p USING (k) JOIN synth_text x USING (i, j)
            """
        )
        # Evidence step of each true mode: early, middle or late in the trace by MAST stage.
        offsets = (
            "CASE mode_id "
            + " ".join(f"WHEN '{m}' THEN {o}" for m, o in _STAGE_OFFSET.items())
            + " ELSE 0.33 END"
        )
        con.execute(
            f"""
            CREATE TEMP TABLE synth_ev AS
            SELECT *, least(n - 1, floor(n * ({offsets} + 0.33 * {_u("i", f"{s + 300} + mk")})))::INT AS ev
            FROM synth_truth
            """
        )
        # Label sources: the judge reads 60% of traces, a dataset ships 30% (all of them also
        # judged), two humans re-label 3% of the judged ones; each flips the truth at its own rate.
        # Every (source, mode) draws from its own salt so errors are independent.
        sources = [(JUDGE_SOURCE, 0.0, 0.6, 0.06), (DATASET_SOURCE, 0.3, 0.6, 0.03)]
        sources += [(h, 0.57, 0.6, 0.05) for h in HUMAN_SOURCES]
        for n_src, (source, lo, hi, flip) in enumerate(sources):
            con.execute(
                f"""
                INSERT INTO labels (trace_id, taxonomy_id, taxonomy_version, mode_id, present,
                                    probability, evidence_steps, agent, rationale, source, created_at)
                SELECT 'synth:' || e.i, 'mast', '1.0', e.mode_id, v.present,
                       CASE WHEN v.present THEN 0.5 + 0.5 * {_u("e.i", f"{s + 100 + 20 * n_src} + e.mk")}
                            ELSE 0.5 * {_u("e.i", f"{s + 100 + 20 * n_src} + e.mk")} END,
                       CASE WHEN v.present THEN [e.ev] ELSE [] END,
                       CASE WHEN v.present THEN
                            {_array(AGENTS)}[((e.ev + hash(e.i, {s + 6})) % {len(AGENTS)})::INT + 1] END,
                       CASE WHEN v.present THEN 'synthetic evidence' END,
                       '{source}', ?::TIMESTAMP + to_microseconds((e.i * 20 + e.mk)::BIGINT)
                FROM synth_ev e,
                     LATERAL (SELECT e.present <> ({_u("e.i", f"{s + 200 + 20 * n_src} + e.mk")} < {flip})
                              AS present) v
                WHERE {_u("e.i", s + 9)} >= {lo} AND {_u("e.i", s + 9)} < {hi}
                """,
                [created],
            )
        con.execute(
            f"""
            INSERT INTO attributions (trace_id, agent, step_idx, reason, probability, source, created_at)
            SELECT 'synth:' || i, {_array(AGENTS)}[((ev + hash(i, {s + 6})) % {len(AGENTS)})::INT + 1],
                   ev, 'synthetic root cause', 0.8, '{DATASET_SOURCE}', ?
            FROM (SELECT i, arg_min(ev, ev) AS ev FROM synth_ev WHERE present GROUP BY i)
            WHERE {_u("i", s + 9)} >= 0.3 AND {_u("i", s + 9)} < 0.6
            """,
            [created],
        )
        # Step features for 5% of traces; evidence steps of failing traces get shifted values,
        # so failing and non-failing distributions differ the way a useful feature would.
        con.execute(
            f"""
            INSERT INTO features (trace_id, step_idx, model, extractor_version, name, value)
            SELECT 'synth:' || t.i, j, 'synth-lm', 'synth', f.name,
                   f.base + f.spread * ({_u("t.i", f"j + {s + 40}")} + {_u("j", f"t.i + {s + 41}")} - 1)
                   + CASE WHEN ev.ev IS NOT NULL THEN f.shift ELSE 0 END
            FROM synth_t t CROSS JOIN generate_series(0, t.n - 1) g(j)
                 CROSS JOIN (SELECT unnest({_array(FEATURES)}) AS name, unnest([2.0, 3.5, 0.4, 0.2]) AS base,
                         unnest([1.0, 1.5, 0.2, 0.1]) AS spread, unnest([0.8, 1.2, -0.1, 0.05]) AS shift) f
                 LEFT JOIN (SELECT DISTINCT i, ev FROM synth_ev WHERE present) ev ON ev.i = t.i AND ev.ev = j
            WHERE {_u("t.i", s + 11)} < 0.05
            """
        )
        for table in ("synth_pool", "synth_t", "synth_s", "synth_text", "synth_truth", "synth_ev"):
            con.execute(f"DROP TABLE {table}")
    counts = {
        table: db.rows(f"SELECT count(*) FROM {table} WHERE trace_id LIKE 'synth:%'")[0][0]
        for table in ("traces", "steps", "labels", "attributions", "features")
    }
    counts["distinct_texts"] = distinct
    catch_up(db)  # the rows above bypassed the store's writers, which index as they write
    return SynthReport(**counts)
