"""A span export saved again after its trace grew (a Langfuse trace with more observations)
replaces the stored copy, as a second OTLP export of a trace merges into the stored one; a copy
that is older, or that changed a span, is no later export of it and stays a conflict."""

from __future__ import annotations

import json
from pathlib import Path

from tracefail.services.ingest import ingest
from tracefail.store import Database

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"
KOOG = SAMPLES / "langfuse" / "framework-traces" / "koog-2025-08-26.trace.json"


def _export(tmp_path: Path, name: str, observations: list[dict]) -> Path:
    export = json.loads(KOOG.read_text(encoding="utf-8"))
    path = tmp_path / name / KOOG.name
    path.parent.mkdir()
    path.write_text(json.dumps({**export, "observations": observations}), encoding="utf-8")
    return path


def _observations() -> list[dict]:
    return json.loads(KOOG.read_text(encoding="utf-8"))["observations"]


def test_a_langfuse_trace_exported_again_after_it_grew_is_refreshed(db: Database, tmp_path: Path) -> None:
    earlier = _export(tmp_path, "earlier", _observations()[:-1])  # the export before the last span
    assert ingest(db, [earlier]).quarantined == 0
    ((trace_id,),) = db.rows("SELECT trace_id FROM traces")
    db.execute(
        "INSERT INTO labels (trace_id, taxonomy_id, taxonomy_version, mode_id, present, source, created_at) "
        "VALUES (?, 'mast', '1', '1.1', true, 'human', now())",
        [trace_id],
    )
    report = ingest(db, [KOOG])
    assert (report.quarantined, report.updated) == (0, 1), report.messages
    assert "replaced it; its labels are kept" in report.notes[0]
    ((steps, stored),) = db.rows("SELECT n_steps, (SELECT count(*) FROM steps) FROM traces")
    assert steps == stored == len(_observations())
    assert db.rows("SELECT mode_id, source FROM labels") == [("1.1", "human")]
    hits = db.rows("SELECT count(*) FROM search_docs")
    assert hits == [(steps,)]  # the index holds the new copy's steps, not the old ones twice


def test_an_older_or_changed_copy_stays_a_conflict(db: Database, tmp_path: Path) -> None:
    assert ingest(db, [KOOG]).quarantined == 0
    older = _export(tmp_path, "older", _observations()[:-1])
    changed = _observations()
    changed[0] = {**changed[0], "id": "renamed-span"}
    renamed = _export(tmp_path, "renamed", changed)
    for copy in (older, renamed):
        report = ingest(db, [copy])
        assert (report.quarantined, report.updated) == (1, 0), report.messages
        assert "already stored with different content; the stored copy is kept" in report.messages[0]
    ((steps,),) = db.rows("SELECT n_steps FROM traces")
    assert steps == len(_observations())
