"""`search`, `diff` and `clusters` through the real CLI on a real corpus file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import SAMPLES
from tracefail.cli import app

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.duckdb"
    result = run("ingest", SAMPLES / "whowhen", SAMPLES / "mast", SAMPLES / "inspect", "--db", path)
    assert result.exit_code == 0, result.stderr
    return path


def test_search_ranks_and_highlights(corpus: Path) -> None:
    result = run("search", "verif*", "--db", corpus, "--limit", "3", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert len(document["hits"]) == 3 and document["n_steps"] > 3 and document["indexed"]
    assert "search index" not in result.stderr  # the ingest indexed its steps: nothing to catch up
    hit = document["hits"][0]
    start, end = hit["highlights"][0]
    assert hit["snippet"][start:end].lower().startswith("verif")
    text = run("search", '"the answer"', "--db", corpus, "--limit", "2")
    assert text.exit_code == 0 and "search index" not in text.stderr
    assert "matching steps" in text.stderr and "step " in text.stdout


def test_search_usage_errors(corpus: Path, tmp_path: Path) -> None:
    empty = run("search", "*", "--db", corpus)
    assert empty.exit_code == 2 and "no words to search for" in empty.stderr
    missing = run("search", "x", "--db", tmp_path / "nope.duckdb")
    assert missing.exit_code == 1 and "no such database" in missing.stderr


def test_diff_shows_the_divergence(corpus: Path) -> None:
    result = run("diff", "inspect:arc_easy/ev-9aZ/2/1", "inspect:arc_easy/ev-9aZ/1/1", "--db", corpus)
    assert result.exit_code == 0, result.stderr
    assert "first divergence: A step 1, B step 1 (changed)" in result.stdout
    assert "Which is a mammal?" in result.stdout
    same = run("diff", "mast:AG2_GSM-Plus_GPT4o/7", "mast-human:7", "--db", corpus, "--json")
    assert json.loads(same.stdout)["first_divergence"] is None
    unknown = run("diff", "nope", "mast-human:7", "--db", corpus)
    assert unknown.exit_code == 2 and "no trace 'nope'" in unknown.stderr


def test_clusters_listing(corpus: Path) -> None:
    result = run("clusters", "--db", corpus, "--source", "dataset", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["n_traces"] == sum(c["size"] for c in document["clusters"])
    assert all(c["name"] for c in document["clusters"])
    text = run("clusters", "--db", corpus, "--source", "dataset")
    assert "failing traces" in text.stdout and "examples:" in text.stdout
    bad = run("clusters", "--db", corpus, "--min-size", "0")
    assert bad.exit_code == 2 and "--min-size 0" in bad.stderr
