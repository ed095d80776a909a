"""A deeply nested value rejects its own record only (issue 24, case 3: one deep JSONL line
quarantined its whole file, "RecursionError while reading")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracefail.ingest.reader import MAX_DEPTH, iter_json_array, loads
from tracefail.services.ingest import ingest


def _line(i: int) -> str:
    return json.dumps({"id": f"ok-{i}", "messages": [{"role": "user", "content": f"hello {i}"}]})


def _deep(levels: int) -> str:
    return (
        '{"id": "deep", "messages": [{"role": "user", "content": "x"}], "extra": '
        + "[" * levels
        + "]" * levels
        + "}"
    )


@pytest.mark.parametrize("levels", [MAX_DEPTH + 5, 900, 100_000])
def test_a_deep_line_among_a_thousand_rejects_only_itself(db, tmp_path: Path, levels: int) -> None:
    lines = [_line(i) for i in range(1000)]
    lines[500] = _deep(levels)
    source = tmp_path / "chat.jsonl"
    source.write_text("\n".join(lines) + "\n")
    report = ingest(db, [source])
    assert (report.traces, report.quarantined) == (999, 1), report.messages
    assert db.rows("SELECT record, reason FROM quarantine") == [
        ("line 501", f"JSON nested deeper than the {MAX_DEPTH}-level limit")
    ]


def test_a_deep_array_element_rejects_only_itself(db, tmp_path: Path) -> None:
    """The array reader's fast path (orjson on a guessed slice) checks depth too."""
    records = [{"id": f"r{i}", "messages": [{"role": "user", "content": "hi"}]} for i in range(5)]
    text = "[\n" + ",\n".join(json.dumps(r) for r in records[:2])
    text += ",\n" + _deep(5000) + ",\n" + ",\n".join(json.dumps(r) for r in records[2:]) + "\n]\n"
    source = tmp_path / "array.json"
    source.write_text(text)
    outcomes = []
    for record in iter_json_array(source):
        try:
            outcomes.append(record.json()["id"])
        except ValueError as exc:
            outcomes.append(str(exc))
    assert outcomes == ["r0", "r1", f"JSON nested deeper than the {MAX_DEPTH}-level limit", "r2", "r3", "r4"]


def test_loads_accepts_the_limit_and_refuses_one_level_more() -> None:
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(ValueError, match="nested deeper"):
        loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(ValueError, match="nested deeper"):
        loads("[NaN, " + "[" * 50_000 + "]" * 50_000 + "]")  # the standard parser's path
