"""Steps of any size fit DuckDB's buffers: the ingest's memory cap grows with the text bytes a
commit's checkpoint pins (issue 24, case 1: 140 steps of 1 MiB were fatal at a fixed 128 MiB)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tracefail.services import ingest as ingest_service
from tracefail.store import Database

MIB = 1024 * 1024


def _big_lines(path: Path, lines: int, first: int = 0) -> Path:
    """OpenAI chat JSONL, one trace of one 1 MiB step per line (random hex: DuckDB cannot
    compress it away)."""
    with path.open("w") as out:
        for i in range(first, first + lines):
            message = {"role": "user", "content": os.urandom(MIB // 2).hex()}
            out.write(json.dumps({"id": f"big-{i}", "messages": [message]}) + "\n")
    return path


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    """A 32 MiB base cap, so 48 MiB of steps shows what 140 MiB did at the shipped 128 MiB."""
    monkeypatch.setattr(ingest_service, "DB_MEMORY_CAP", 32 * MIB)
    return 32 * MIB


def test_more_step_text_than_the_memory_cap_is_stored_and_a_rerun_finds_duplicates(
    tmp_path: Path, small_cap: int
) -> None:
    source = _big_lines(tmp_path / "big.jsonl", 48)
    with Database(tmp_path / "corpus.duckdb") as db:
        report = ingest_service.ingest(db, [source], workers=0)
        assert (report.traces, report.quarantined) == (48, 0)
        assert db.rows("SELECT count(*), sum(strlen(content)) FROM steps")[0] == (48, 48 * MIB)
        again = ingest_service.ingest(db, [source], workers=0)
        assert (again.traces, again.duplicates) == (0, 48)
        assert db.rows("SELECT status FROM runs ORDER BY started_at") == [("done",), ("done",)]


def test_a_folder_of_big_step_files_is_stored(tmp_path: Path, small_cap: int) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(48):
        _big_lines(folder / f"{n:03}.jsonl", 1, first=n)
    with Database(tmp_path / "corpus.duckdb") as db:
        report = ingest_service.ingest(db, [folder], workers=0)
        assert (report.traces, report.quarantined) == (48, 0)
