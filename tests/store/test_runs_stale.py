"""A killed run's `running` row becomes `interrupted` on the next run, whatever its kind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tracefail.services.ingest import ingest
from tracefail.store import Database
from tracefail.store.runs import start_run

ROOT = Path(__file__).resolve().parents[2]
KILLED = textwrap.dedent(
    """
    import os, signal
    from tracefail.store import Database
    from tracefail.store.runs import start_run
    db = Database({path!r})
    start_run(db, {kind!r}, {{"x": 1}})
    db.connection.execute("CHECKPOINT")
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _killed_run(path: Path, kind: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", KILLED.format(path=str(path), kind=kind)],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stderr.decode()[-2000:]


def test_killed_runs_of_any_kind_are_marked_interrupted_by_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "corpus.duckdb"
    Database(path).close()
    for kind in ("ingest", "features", "label"):
        _killed_run(path, kind)
    with Database(path) as db:
        assert db.rows("SELECT status FROM runs WHERE kind = 'label'") == [("running",)]
        ingest(db, [ROOT / "data_samples" / "whowhen" / "1.json"])
        statuses = dict(db.rows("SELECT kind, status FROM runs"))
    assert statuses == {"ingest": "done", "features": "interrupted", "label": "interrupted"}


def test_a_run_of_this_process_still_running_is_left_alone(db: Database) -> None:
    mine = start_run(db, "label", {"judge": "a"})
    start_run(db, "features", {"model": "b"})
    assert db.rows("SELECT status FROM runs WHERE run_id = ?", [mine]) == [("running",)]
