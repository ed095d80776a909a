"""`tracefail sql` cannot write, reach outside the corpus, or change settings."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pytest

from tests.cli.conftest import run_cli


def _count(corpus: Path) -> int:
    result = run_cli("sql", "SELECT count(*) AS n FROM traces", "--db", corpus, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)[0]["n"]


def test_copy_cannot_overwrite_the_corpus(whowhen_corpus: Path) -> None:
    size = whowhen_corpus.stat().st_size
    result = run_cli(
        "sql", f"COPY (SELECT 'gone' AS x) TO '{whowhen_corpus}' (FORMAT csv)", "--db", whowhen_corpus
    )
    assert result.exit_code == 1
    assert "COPY statements are refused" in result.stderr and len(result.stderr.splitlines()) == 1
    assert whowhen_corpus.stat().st_size == size and _count(whowhen_corpus) == 20


def test_attach_cannot_reach_another_corpus(whowhen_corpus: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as connection:
        connection.execute("CREATE TABLE labels AS SELECT 1 AS x")
    for statement in (
        f"ATTACH '{other}' AS v (READ_WRITE)",
        f"ATTACH '{other}' AS v (READ_WRITE); DELETE FROM v.labels",
    ):
        result = run_cli("sql", statement, "--db", whowhen_corpus)
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    with duckdb.connect(str(other)) as connection:
        assert connection.execute("SELECT count(*) FROM labels").fetchone() == (1,)


@pytest.mark.parametrize(
    ("statement", "refused"),
    [
        ("EXPORT DATABASE '{tmp}/dump'", "EXPORT"),
        ("SET memory_limit = '1GB'", "SET"),
        ("PRAGMA enable_profiling", "PRAGMA"),
        ("INSTALL fts", "LOAD"),
        ("LOAD fts", "LOAD"),
        ("SELECT 1; SELECT 2", "exactly one"),
        ("DELETE FROM traces", "DELETE"),
    ],
)
def test_statements_that_are_not_queries_are_refused(
    whowhen_corpus: Path, tmp_path: Path, statement: str, refused: str
) -> None:
    result = run_cli("sql", statement.format(tmp=tmp_path), "--db", whowhen_corpus)
    assert result.exit_code == 1 and refused in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "dump").exists()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_text('/etc/passwd')",
    ],
)
def test_files_outside_the_corpus_cannot_be_read(whowhen_corpus: Path, query: str) -> None:
    result = run_cli("sql", query, "--db", whowhen_corpus)
    assert result.exit_code == 1 and "disabled" in result.stderr and "root:" not in result.stdout


def test_queries_still_work_and_csv_takes_nested_and_interval_columns(whowhen_corpus: Path) -> None:
    assert _count(whowhen_corpus) == 20
    described = run_cli("sql", "DESCRIBE traces", "--db", whowhen_corpus, "--format", "json")
    assert described.exit_code == 0 and "trace_id" in described.stdout
    query = (
        "SELECT [1, 2] AS steps, {'a': 1} AS s, INTERVAL 3 DAY AS i, "
        "(SELECT list(step_idx) FROM steps LIMIT 1) AS l"
    )
    result = run_cli("sql", query, "--db", whowhen_corpus, "--format", "csv")
    assert result.exit_code == 0, result.stderr
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["steps"] == "[1, 2]" and json.loads(row["s"]) == {"a": 1} and row["i"] == "3 days"


def test_terminal_output_shows_control_characters_as_symbols(whowhen_corpus: Path) -> None:
    query = "SELECT chr(27) || '[2J' || chr(27) || ']0;pwned' || chr(7) AS x"
    table = run_cli("sql", query, "--db", whowhen_corpus)
    assert table.exit_code == 0 and "\x1b" not in table.stdout and "␛[2J" in table.stdout
    error = run_cli("sql", "SELECT \x1b[2J bad syntax here", "--db", whowhen_corpus)
    assert error.exit_code == 1 and "\x1b" not in error.stderr and "␛" in error.stderr
