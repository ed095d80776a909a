"""A real CrewAI run (0.141.0, OpenInference, the Langfuse export shipped in data_samples) sent
as OTLP spans, in one file and live one span at a time in the order CrewAI ends them: its task
span names only `task_id`, and the crew spans list each task's agent role. Both paths name the
task's agent, and its LLM call inherits it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from tracefail.services.ingest import ingest
from tracefail.services.span_merge import IncomingSpans, merge_spans
from tracefail.store import Database

SAMPLE = Path(__file__).parents[2] / "data_samples/langfuse/framework-traces/crewai-2025-07-11.trace.json"


def _nanos(iso: str) -> str:
    return str(int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1_000_000) * 1000)


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value if isinstance(value, str) else json.dumps(value)}


def otlp_spans() -> tuple[str, list[dict[str, Any]]]:
    """The sample's observations as the OTLP spans Langfuse received (ids, times, attributes),
    ordered by end time: an exporter sends a span when it ends."""
    export = json.loads(SAMPLE.read_text())
    spans = []
    for obs in export["observations"]:
        meta = obs["metadata"] if isinstance(obs["metadata"], dict) else json.loads(obs["metadata"])
        spans.append(
            {
                "traceId": export["trace"]["id"],
                "spanId": obs["id"],
                **({"parentSpanId": obs["parentObservationId"]} if obs.get("parentObservationId") else {}),
                "name": obs["name"],
                "startTimeUnixNano": _nanos(obs["startTime"]),
                "endTimeUnixNano": _nanos(obs["endTime"]),
                "attributes": [{"key": k, "value": _value(v)} for k, v in meta.get("attributes", {}).items()],
            }
        )
    return export["trace"]["id"], sorted(spans, key=lambda s: (int(s["endTimeUnixNano"]), s["spanId"]))


def _agents(db: Database) -> dict[str, str | None]:
    return {name: agent for name, agent in db.rows("SELECT name, agent FROM steps")}


def test_a_real_crewai_export_names_its_task_agent_in_a_file_and_live(tmp_path: Path) -> None:
    trace_id, spans = otlp_spans()
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "crewai"}}]}
    file = tmp_path / "crewai.otlp.json"
    file.write_text(json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}))
    with Database(tmp_path / "file.duckdb") as db:
        assert ingest(db, [file]).quarantined == 0
        from_file = _agents(db)
        whole = db.rows("SELECT * EXCLUDE (ingest_run_id, ingested_at, raw) FROM traces")
        steps = db.rows("SELECT * FROM steps ORDER BY step_idx")
    assert from_file["Task._execute_core"] == "Software developer"
    assert from_file["completion"] == "Software developer"  # the task's LLM call
    assert from_file["Crew.kickoff"] is None  # the crew itself is no agent
    with Database(tmp_path / "live.duckdb") as db:
        for one in spans:
            result = merge_spans(db, [IncomingSpans(trace_id, [("crewai", [one])], str(file), "otlp")], None)
            assert not result.problems
        assert db.rows("SELECT * EXCLUDE (ingest_run_id, ingested_at, raw) FROM traces") == whole
        assert db.rows("SELECT * FROM steps ORDER BY step_idx") == steps
