"""CLI tests drive the real Typer app on real DuckDB files."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tracefail.cli import app

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"
_runner = CliRunner()


def run_cli(*args: object):
    return _runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def whowhen_corpus(tmp_path: Path) -> Path:
    """The Who&When sample ingested into a fresh corpus file."""
    path = tmp_path / "corpus.duckdb"
    result = run_cli("ingest", SAMPLES / "whowhen", "--db", path)
    assert result.exit_code == 0, result.stderr
    return path
