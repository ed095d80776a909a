"""Shared fixtures: real DuckDB files in tmp dirs, the shipped samples, the shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracefail.services.ingest import ingest
from tracefail.store import Database

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def db(tmp_path: Path):
    """An empty corpus in a real DuckDB file."""
    database = Database(tmp_path / "corpus.duckdb")
    yield database
    database.close()


@pytest.fixture
def whowhen_db(db: Database) -> Database:
    """The shipped Who&When sample (20 AG2 traces with dataset attributions), ingested."""
    report = ingest(db, [SAMPLES / "whowhen"])
    assert report.quarantined == 0, report.messages
    return db


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not beside the project")
    return SHARED_DATA
