"""A corpus this process cannot write. `tracefail search` caches its index where it can write and
reads where it cannot: on a Parquet corpus and on a file this user may only read it answers (it
had stopped at its writable open). A writer says in one line that the user may not write it.
The read-only-file tests are skipped where the user is root (root writes them anyway)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import SAMPLES, run_cli


def _search(db: Path) -> list[tuple[str, int]]:
    result = run_cli("search", "the answer", "--db", db, "--json", "--limit", "5")
    assert result.exit_code == 0, result.stderr
    return [(hit["trace_id"], hit["step_idx"]) for hit in json.loads(result.stdout)["hits"]]


def test_search_reads_a_parquet_corpus(whowhen_corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    exported = run_cli(
        "export", "--db", whowhen_corpus, "--format", "parquet", "-o", folder, "--partition-by", "framework"
    )
    assert exported.exit_code == 0, exported.stderr
    assert _search(folder) == _search(whowhen_corpus) != []


def test_search_reads_a_file_this_user_may_only_read(whowhen_corpus: Path) -> None:
    expected = _search(whowhen_corpus)
    whowhen_corpus.chmod(0o444)
    if os.access(whowhen_corpus, os.W_OK):
        pytest.skip("this user (root) may write a read-only file")
    assert _search(whowhen_corpus) == expected != []


def test_writing_a_file_this_user_may_only_read_says_so_in_one_line(whowhen_corpus: Path) -> None:
    whowhen_corpus.chmod(0o444)
    if os.access(whowhen_corpus, os.W_OK):
        pytest.skip("this user (root) may write a read-only file")
    before = whowhen_corpus.read_bytes()
    result = run_cli("ingest", SAMPLES / "otel", "--db", whowhen_corpus)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {whowhen_corpus}: this user may not write it (permission denied)"
    ]
    assert whowhen_corpus.read_bytes() == before
