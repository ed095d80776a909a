"""OTLP file ingest merges the spans of one trace split over several export files into the
stored trace (the path `serve` uses), on a real DuckDB file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tracefail.model import Label
from tracefail.services.ingest import ingest
from tracefail.store import Database
from tracefail.store import traces as trace_store
from tracefail.store.features import replace_features

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_ID = f"otel:{TRACE}"
Span = tuple[str, str | None, str, dict[str, Any]]
SPANS: list[Span] = [
    ("00f067aa0ba902b1", None, "invoke_agent planner", {"gen_ai.agent.name": "planner"}),
    (
        "00f067aa0ba902b2",
        "00f067aa0ba902b1",
        "chat",
        {"gen_ai.operation.name": "chat", "gen_ai.completion": "search flights to OSL"},
    ),
    (
        "00f067aa0ba902b3",
        "00f067aa0ba902b1",
        "execute_tool search",
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "search",
            "gen_ai.tool.call.result": "no flights found",
        },
    ),
    (
        "00f067aa0ba902b4",
        "00f067aa0ba902b1",
        "chat",
        {"gen_ai.operation.name": "chat", "gen_ai.completion": "booked the train"},
    ),
]
STEPS = [
    (0, "planner", ""),
    (1, "planner", "search flights to OSL"),
    (2, "planner", "no flights found"),
    (3, "planner", "booked the train"),
]


def export(path: Path, numbers: list[int], spans: list[Span] = SPANS) -> Path:
    """An OTLP/JSON export file holding spans `numbers` of the trace (start times keep their order)."""
    path.write_text(
        json.dumps(
            {
                "resourceSpans": [
                    {
                        "resource": {
                            "attributes": [{"key": "service.name", "value": {"stringValue": "travel"}}]
                        },
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "traceId": TRACE,
                                        "spanId": spans[n][0],
                                        **({"parentSpanId": spans[n][1]} if spans[n][1] else {}),
                                        "name": spans[n][2],
                                        "startTimeUnixNano": str(1_700_000_000_000_000_000 + n * 1_000_000),
                                        "endTimeUnixNano": str(
                                            1_700_000_000_000_000_000 + n * 1_000_000 + 500
                                        ),
                                        "attributes": [
                                            {"key": k, "value": {"stringValue": v}}
                                            for k, v in spans[n][3].items()
                                        ],
                                    }
                                    for n in numbers
                                ]
                            }
                        ],
                    }
                ]
            }
        )
    )
    return path


def steps(db: Database) -> list[tuple[str, str, str]]:
    sql = "SELECT step_idx, agent, content FROM steps WHERE trace_id = ? ORDER BY step_idx"
    return db.rows(sql, [TRACE_ID])


def test_a_trace_split_over_two_files_is_one_trace_and_reingest_adds_nothing(
    db: Database, tmp_path: Path
) -> None:
    first = export(tmp_path / "part1.json", [0, 2])
    second = export(tmp_path / "part2.json", [1, 3])
    assert ingest(db, [first]).traces == 1
    trace_store.insert_labels(
        db,
        [
            Label(
                trace_id=TRACE_ID,
                taxonomy_id="mast",
                taxonomy_version="1",
                mode_id="FM-1.1",
                present=True,
                source="human",
            )
        ],
    )
    replace_features(db, TRACE_ID, "tiny", "1", [(0, "tok.entropy", 0.5)], None)

    report = ingest(db, [second])

    assert report.quarantined == 0, report.messages
    assert report.updated == 1 and "spans merged" in report.notes[0] and "now 4 steps" in report.notes[0]
    assert db.rows("SELECT count(*), max(n_steps) FROM traces") == [(1, 4)]
    assert steps(db) == STEPS  # in start-time order, agents inherited across the two files
    assert db.rows("SELECT mode_id FROM labels") == [("FM-1.1",)]  # labels are kept
    assert db.rows("SELECT count(*) FROM features") == [(0,)]  # features of the old steps are stale
    stored = db.rows("SELECT content_hash, raw FROM traces")

    for again in (first, second, tmp_path):  # either file, or both, again: nothing new
        report = ingest(db, [again])
        assert (report.traces, report.updated, report.quarantined) == (0, 0, 0), report.messages
        assert report.duplicates == (2 if again == tmp_path else 1)
    assert db.rows("SELECT content_hash, raw FROM traces") == stored
    assert steps(db) == STEPS and trace_store.counts(db)["quarantine"] == 0


def test_both_halves_in_one_run_merge_too(db: Database, tmp_path: Path) -> None:
    export(tmp_path / "a.json", [3, 1])
    export(tmp_path / "b.json", [0, 2])
    report = ingest(db, [tmp_path])
    assert (report.traces, report.updated, report.quarantined) == (1, 1, 0), report.messages
    assert steps(db) == STEPS


def test_a_span_id_sent_with_different_content_is_a_named_conflict(db: Database, tmp_path: Path) -> None:
    ingest(db, [export(tmp_path / "part1.json", [0, 1])])
    changed = [
        *SPANS[:1],
        (SPANS[1][0], SPANS[1][1], "chat", {"gen_ai.completion": "a different reply"}),
        *SPANS[2:],
    ]

    report = ingest(db, [export(tmp_path / "part2.json", [1, 2], changed)])

    assert report.quarantined == 1 and report.updated == 1  # the new span 3 still merges
    assert "part2.json" in report.messages[0] and TRACE in report.messages[0]
    assert "span 00f067aa0ba902b2 arrived again with different content" in report.messages[0]
    assert steps(db) == STEPS[:3]  # the stored copy of span 2 is kept
    assert db.rows("SELECT record FROM quarantine") == [(TRACE,)]
    again = ingest(db, [tmp_path / "part2.json"])  # named again each time, never merged
    assert (again.quarantined, again.updated, again.duplicates) == (1, 0, 1)
    assert steps(db) == STEPS[:3]


def test_one_file_with_two_copies_of_a_span_keeps_the_first_and_names_the_second(
    db: Database, tmp_path: Path
) -> None:
    changed = (SPANS[1][0], SPANS[1][1], "chat", {"gen_ai.completion": "a different reply"})
    report = ingest(db, [export(tmp_path / "dup.json", [0, 1, 4], [*SPANS, changed])])
    assert report.traces == 1 and report.quarantined == 1
    assert "span 00f067aa0ba902b2 arrived again" in report.messages[0]
    assert steps(db) == STEPS[:2]
