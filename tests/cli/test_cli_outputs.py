"""What commands write is inert: no spreadsheet formulas, no terminal escapes, no tracebacks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl

from tests.cli.conftest import SAMPLES, run_cli
from tests.judge.judge_server import StubServer
from tracefail.analysis.tables import csv as stats_csv

HOSTILE = ['=HYPERLINK("http://evil","x")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_stats_csv_neutralises_formula_cells() -> None:
    frame = pl.DataFrame({"agent": [*HOSTILE, "fine", None], "n": list(range(len(HOSTILE) + 2))})
    with_header = list(csv.reader(stats_csv(frame).splitlines(keepends=True)))
    cells = [row[0] for row in with_header[1:]]
    assert cells[: len(HOSTILE)] == ["'" + text for text in HOSTILE]
    assert cells[len(HOSTILE) :] == ["fine", ""]


def test_export_csv_neutralises_formula_cells(tmp_path: Path) -> None:
    record = json.loads((SAMPLES / "whowhen" / "1.json").read_text())
    for step, text in zip(record["history"], HOSTILE[:5], strict=False):
        step["content"] = text
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(record))
    db = tmp_path / "c.duckdb"
    assert run_cli("ingest", path, "--db", db).exit_code == 0
    out = tmp_path / "csv"  # CSV export is a folder: steps.csv, labels.csv, attributions.csv
    assert run_cli("export", "--db", db, "--format", "csv", "-o", out).exit_code == 0
    with (out / "steps.csv").open(newline="") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=cmd|' /C calc'!A0" in cells and "'+1+1" in cells


def test_report_to_a_missing_folder_or_a_folder_is_one_line(whowhen_corpus: Path, tmp_path: Path) -> None:
    missing = run_cli("report", "--db", whowhen_corpus, "-o", tmp_path / "missing" / "x.html")
    assert missing.exit_code == 2 and "no such folder" in missing.stderr
    folder = run_cli("report", "--db", whowhen_corpus, "-o", tmp_path)
    assert folder.exit_code == 2 and "is a folder" in folder.stderr
    for result in (missing, folder):
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_label_error_lines_show_control_characters_as_symbols(whowhen_corpus: Path) -> None:
    def hostile(body, number, headers):
        return 400, "\x1b[2J\x1b]0;pwned\x07" + "y" * 5000, {}

    with StubServer(hostile) as server:
        result = run_cli(
            "label",
            "--db",
            whowhen_corpus,
            "--judge",
            "openai:m",
            "--base-url",
            server.base_url,
            "--limit",
            "1",
        )
    errors = [line for line in result.stderr.splitlines() if "judge error" in line]
    assert errors and "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert all(len(line) < 700 for line in errors)
