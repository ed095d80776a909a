"""`tracefail stats --section ops`: JSON with n beside every figure, and a bad price table refused."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import run_cli


def test_ops_json_has_n_for_every_figure(whowhen_corpus: Path) -> None:
    result = run_cli("stats", "--db", whowhen_corpus, "--section", "ops", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert "built-in" in document["prices"]
    rows = document["ops"]
    assert {r["dimension"] for r in rows} == {"agent", "model", "session", "framework", "day"}
    for row in rows:
        assert {"steps", "traces", "latency_n", "tokens_n", "cost_n", "tool_results"} <= set(row)
        assert row["error_rate"] == row["errors"] / row["steps"]
        assert row["error_ci_low"] <= row["error_rate"] <= row["error_ci_high"]  # Wilson 95%
        if row["tool_results"]:
            assert row["tool_failure_ci_low"] <= row["tool_failure_rate"] <= row["tool_failure_ci_high"]
    by_day = document["by_day"]
    assert {r["dimension"] for r in by_day} == {"agent", "model"}
    for dimension in ("agent", "model"):
        total = sum(r["steps"] for r in rows if r["dimension"] == dimension)
        assert sum(r["steps"] for r in by_day if r["dimension"] == dimension) == total


def test_ops_csv_and_text_carry_the_intervals(whowhen_corpus: Path) -> None:
    result = run_cli("stats", "--db", whowhen_corpus, "--section", "ops", "--format", "csv")
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0].split(",")
    for column in (
        "error_ci_low",
        "error_ci_high",
        "tool_failure_ci_low",
        "tool_failure_ci_high",
        "latency_n",
    ):
        assert column in header
    text = run_cli("stats", "--db", whowhen_corpus, "--section", "ops", "--format", "md")
    assert text.exit_code == 0 and "error_ci_low" in text.stdout


def test_bad_price_table_is_one_line(whowhen_corpus: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text("[1, 2]")
    result = run_cli("stats", "--db", whowhen_corpus, "--section", "ops", "--prices", prices)
    assert result.exit_code == 2 and "prices.json" in result.output
