"""Judge test fixtures: a corpus of short Who&When-format traces, so real model runs stay quick."""

from __future__ import annotations

from pathlib import Path

import pytest
from small_traces import write_small_traces

from tracefail.services.ingest import ingest
from tracefail.store import Database


@pytest.fixture
def small_db(db: Database, tmp_path: Path) -> Database:
    report = ingest(db, [write_small_traces(tmp_path / "small")])
    assert report.quarantined == 0, report.messages
    return db
