"""The ops figures against hand-written SQL on a real corpus (the shipped samples with tokens,
timings, errors and tool results), and the price table's rules."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest

from tracefail.analysis.stats import OPS_CELLS, figure_cell, ops_cells, rate_cell
from tracefail.services.ingest import ingest
from tracefail.services.ops import PriceTableError, load_prices, ops, price_of
from tracefail.store import Database

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


@pytest.fixture
def corpus(db: Database) -> Database:
    report = ingest(db, [SAMPLES / "claude-code", SAMPLES / "otel", SAMPLES / "codex"])
    assert report.quarantined == 0, report.messages
    return db


def test_ops_counts_match_sql(corpus: Database) -> None:
    result = ops(corpus).table
    assert set(result["dimension"]) == {"agent", "model", "session", "framework", "day"}
    by_model = {r["value"]: r for r in result.filter(dimension="model").to_dicts()}
    rows = corpus.rows(
        "SELECT coalesce(s.model, t.llm, '(none)'), count(*), "
        "count(*) FILTER (WHERE lower(s.status) = 'error'), coalesce(sum(s.tokens_in), 0), "
        "quantile_cont(epoch_ms(s.end_ts) - epoch_ms(s.start_ts), 0.95) "
        "FILTER (WHERE s.end_ts > s.start_ts) FROM steps s JOIN traces t USING (trace_id) GROUP BY 1"
    )
    assert len(rows) == len(by_model)
    for model, steps, errors, tokens_in, p95 in rows:
        row = by_model[model]
        assert (row["steps"], row["errors"], row["tokens_in"]) == (steps, errors, tokens_in)
        assert (
            row["latency_p95_ms"] == pytest.approx(p95) if p95 is not None else row["latency_p95_ms"] is None
        )
        assert row["error_rate"] == pytest.approx(errors / steps)
    for dimension in ("agent", "session", "framework", "day"):
        assert (
            result.filter(dimension=dimension)["steps"].sum()
            == corpus.rows("SELECT count(*) FROM steps")[0][0]
        )
    failing = (
        result.filter(dimension="framework", tool_failures=0).height
        < result.filter(dimension="framework").height
    )
    assert failing  # the samples have failed tool calls (Claude Code's failed pytest run)


def test_every_rate_has_its_wilson_interval(corpus: Database) -> None:
    from tracefail.analysis.stats import wilson

    table = ops(corpus).table
    for r in table.iter_rows(named=True):
        assert (r["error_ci_low"], r["error_ci_high"]) == pytest.approx(wilson(r["errors"], r["steps"]))
        assert r["error_ci_low"] <= r["error_rate"] <= r["error_ci_high"]
        if r["tool_results"]:
            low, high = wilson(r["tool_failures"], r["tool_results"])
            assert (r["tool_failure_ci_low"], r["tool_failure_ci_high"]) == pytest.approx((low, high))
        else:  # no tool result: no rate, and no interval pretending to be 0-100%
            assert r["tool_failure_rate"] is None and r["tool_failure_ci_low"] is None
            assert r["tool_failure_ci_high"] is None
    assert table.filter(pl.col("tool_failures") > 0).height  # the samples exercise a non-trivial interval
    shown = ops(corpus).readable()  # the terminal table of `stats --section ops`
    for r, cells in zip(table.iter_rows(named=True), shown.iter_rows(named=True), strict=True):
        low, high = 100 * r["error_ci_low"], 100 * r["error_ci_high"]
        assert f"[{low:.1f}–{high:.1f}%] ({r['errors']}/{r['steps']})" in cells["error rate [95% CI]"]
        assert ("[" in cells["tool failures [95% CI]"]) == bool(r["tool_results"])
        assert cells["p95 ms"] == "–" or f"(n={r['latency_n']})" in cells["p95 ms"]


def test_cost_uses_the_price_table_and_says_n(corpus: Database, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"claude-sonnet-4": [3.0, 15.0]}))
    result = ops(corpus, prices)
    assert result.prices_source == str(prices)
    claude = result.table.filter(dimension="model", value="claude-sonnet-4-5-20250929").to_dicts()[0]
    expected = (claude["tokens_in"] * 3.0 + claude["tokens_out"] * 15.0) / 1e6
    assert claude["cost_usd"] == pytest.approx(expected) and claude["cost_n"] > 0
    unpriced = result.table.filter(dimension="model", cost_n=0)
    assert unpriced.height and unpriced["cost_usd"].null_count() == unpriced.height  # unknown, not free


def test_cost_is_the_exact_sum_so_no_thread_order_changes_its_last_bits(
    corpus: Database, tmp_path: Path
) -> None:
    """Prices of 0.1 and 0.7 per 1M tokens are not exact doubles: summed as doubles on several
    threads, a cost could change in its last bits from run to run (and between machines)."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"claude-sonnet-4": [0.1, 0.7]}))
    claude = (
        ops(corpus, prices).table.filter(dimension="model", value="claude-sonnet-4-5-20250929").to_dicts()[0]
    )
    exact = Fraction(claude["tokens_in"]) * Fraction("0.1") + Fraction(claude["tokens_out"]) * Fraction("0.7")
    assert claude["cost_usd"] == float(exact) / 1e6


def test_price_table_rules(tmp_path: Path) -> None:
    table, source = load_prices(None)
    assert "built-in" in source
    assert price_of("openai/gpt-4o-mini-2024-07-18", table) == table["gpt-4o-mini"]  # longest prefix wins
    assert price_of("my-local-model", table) is None
    bad = tmp_path / "bad.json"
    bad.write_text('{"gpt-4o": "cheap"}')
    with pytest.raises(PriceTableError, match=r"bad\.json"):
        load_prices(bad)


def test_html_report_has_the_ops_tables(corpus: Database, tmp_path: Path) -> None:
    from tracefail.services.stats import report

    [page] = report(corpus, tmp_path / "report.html")
    text = page.read_text(encoding="utf-8")
    assert "<section id='ops'>" in text
    for dimension in ("agent", "model", "session", "framework", "day"):
        assert f"<h3>per {dimension}" in text
    chart = text[text.index("<figure class=ops-days>") : text.index("</figure>")]
    assert "<svg" in chart and "Steps per " in chart and "n=" in chart
    assert 'href="http' not in chart and "src=" not in chart  # nothing to fetch
    assert "claude-sonnet-4-5-20250929" in text and "n=" in text
    ops_html = text[text.index("<section id='ops'>") :]
    rows = ops_html.count("<tr><td class=l>")
    rates = re.findall(r"<td>\d+\.\d%(.*?)</td>", ops_html)
    assert rows and len(rates) >= rows  # an error rate in every row, a tool-failure rate in some
    for cell in rates:  # each with its interval and its n
        assert re.fullmatch(r" <span class=n>\[\d+\.\d–\d+\.\d%\] \([\d,]+/[\d,]+\)</span>", cell), cell


def test_sessions_come_from_each_format_without_touching_content_hashes(db: Database) -> None:
    report = ingest(
        db, [SAMPLES / "claude-code", SAMPLES / "langfuse" / "trace_export.json", SAMPLES / "otel"]
    )
    assert report.quarantined == 0, report.messages
    sessions = set(ops(db).table.filter(dimension="session")["value"])
    assert "ae4a77f8-aedd-4bc1-888f-c94edc91af04" in sessions  # Claude Code's sessionId
    assert "sess-77" in sessions  # Langfuse's sessionId
    assert "ctx-eff35888-55ab-4eb0-b90d-7b21f711f91f" in sessions  # Google ADK's span attribute (OTel)
    # the session lives in metadata, which the content hash leaves out
    from tracefail.ingest.claude_code import ClaudeCodeAdapter
    from tracefail.model import Trace

    [trace] = ClaudeCodeAdapter().parse(SAMPLES / "claude-code" / "agent-a7f3c2e1.jsonl")
    assert isinstance(trace, Trace)
    assert trace.metadata["session_id"] == "0c1e6a52-3f0e-4a7c-9d6b-2f1a8e5c7b90"  # its parent's
    stored = db.rows("SELECT content_hash FROM traces WHERE trace_id = ?", [trace.trace_id])[0][0]
    trace.metadata.pop("session_id")
    assert trace.content_hash() == stored


def test_steps_per_day_per_agent_and_model(corpus: Database) -> None:
    result = ops(corpus)
    days = result.days()
    assert days == sorted(days) and len(days) == len(set(days))  # every day, first to last
    for dimension in ("agent", "model"):
        for row in result.table.filter(dimension=dimension).iter_rows(named=True):
            series = result.over_days(dimension, row["value"])
            assert len(series) == len(days) and sum(series) == row["steps"]
            errors = result.over_days(dimension, row["value"], "errors")
            assert sum(errors) == row["errors"]


@pytest.mark.parametrize(
    ("last", "period", "periods"),
    [("2025-01-03", "day", 3), ("2025-07-19", "week", 29), ("2027-09-01", "month", 33)],
)
def test_the_report_chart_bins_long_spans(last: str, period: str, periods: int) -> None:
    import polars as pl

    from tracefail.analysis.report import ops_days_svg

    days = pl.DataFrame({"value": ["2025-01-01", last], "steps": [3, 5], "errors": [0, 1]})
    svg = ops_days_svg(days)
    assert f"Steps per {period} (bars) and error rate (dots): n=8 steps, {periods} {period}s" in svg
    assert svg == ops_days_svg(days)  # the same bytes for the same data


def test_one_formatter_for_every_ops_cell(corpus: Database) -> None:
    """The terminal table, the browser and the report show the cells `ops_cells` writes: the rate
    with thousands separators, its interval and k/n; `–` where n = 0."""
    result = ops(corpus)
    for r, shown in zip(
        result.table.iter_rows(named=True), result.readable().iter_rows(named=True), strict=True
    ):
        assert {k: shown[k] for k in OPS_CELLS} == ops_cells(r)
    row = {"k": 1234, "n": 5000, "rate": 0.2468, "ci_low": 0.2350, "ci_high": 0.2588}
    assert rate_cell(row, "k", "n", "") == "24.7% [23.5–25.9%] (1,234/5,000)"
    assert rate_cell({**row, "n": 0}, "k", "n", "") == "–"
    assert figure_cell(12345.678, 1500, ",.2f") == "12,345.68 (n=1,500)"
    assert figure_cell(None, 3, ",.0f") == figure_cell(5.0, 0, ",.0f") == "–"
