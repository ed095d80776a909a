"""The fidelity measure (`ingest/fidelity.py`): what a text line is, when it is retrievable, and
that every shipped sample keeps at least 99% of its text lines where readers see them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tracefail.ingest import registry
from tracefail.ingest.base import Rejected
from tracefail.ingest.fidelity import TARGET, Fidelity, Stored, file_values, measure, text_lines
from tracefail.model import Step, ToolCall, Trace

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"
PROMPT = "You are a careful assistant that answers weather questions only."
RESULT = "The forecast for Paris says light rain with a high of twelve degrees."


def trace(*steps: Step, **fields: object) -> Trace:
    return Trace(trace_id="t", source="test", steps=list(steps), **fields)  # type: ignore[arg-type]


def test_a_text_line_has_forty_characters_and_four_words_and_json_text_is_read_inside() -> None:
    document = {
        "id": "0f3a9c2e1b7d4e5fa8c6b2d1e0f9a7c3b5d4e6f8a1c2b3d4",  # an id: no words
        "short": "too short to count",
        "numbers": "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
        "args": json.dumps({"query": PROMPT}),  # JSON text: its strings count, not the JSON
        "twice": json.dumps(json.dumps({"text": RESULT})),  # encoded twice
        "log": '{"message": "' + RESULT + '"}\nplain line of a log that has enough words in it',
        PROMPT: 1,  # keys are not text
    }
    assert text_lines([document]) == {PROMPT, RESULT, "plain line of a log that has enough words in it"}


def test_whitespace_is_collapsed_and_each_distinct_line_counts_once() -> None:
    lines = text_lines([[f"  {PROMPT}  ", PROMPT.replace(" ", "\t  "), PROMPT]])
    assert lines == {PROMPT}


def test_a_line_is_retrievable_from_content_tool_calls_metadata_task_or_labels_not_raw() -> None:
    values = [{"system": PROMPT, "result": RESULT}]
    assert measure(values, [trace(Step(step_idx=0, content="hi"), raw=json.dumps(values))]).kept == 0
    kept = measure(
        values,
        [
            trace(
                Step(step_idx=0, tool_calls=[ToolCall(name="f", arguments=json.dumps({"a": RESULT}))]),
                metadata={"system_prompt": f"{PROMPT}\nmore"},
            )
        ],
    )
    assert kept == Fidelity(2, 2)
    part = measure([RESULT], [trace(Step(step_idx=0, content=f"[tool result] {RESULT} (cached)"))])
    assert part.share == 1.0  # a part of a stored line is retrievable


def test_a_log_header_parsed_into_fields_is_not_lost_but_the_text_after_it_must_be() -> None:
    header = "[2023-10-01 12:00:00 INFO] Programmer: "
    log = f"{header}{RESULT}\n[2023-10-01 12:00:01 INFO] Reviewer: {PROMPT}"
    step = Step(step_idx=0, agent="Programmer", content=RESULT)
    found = measure([log], [trace(step)])
    assert found.lines == 2 and found.kept == 1
    assert found.lost == (f"[2023-10-01 12:00:01 INFO] Reviewer: {PROMPT}",)


def test_file_values_read_zip_members_jsonl_and_plain_text(tmp_path: Path) -> None:
    archive = tmp_path / "log.eval"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("header.json", json.dumps({"task": PROMPT}))
        zf.writestr("notes.txt", RESULT)
    assert text_lines(file_values(archive)) == {PROMPT, RESULT}
    lines = tmp_path / "x.jsonl"
    lines.write_text(json.dumps({"a": PROMPT}) + "\nnot json but " + RESULT + "\n")
    assert text_lines(file_values(lines)) == {PROMPT, "not json but " + RESULT}


SAMPLE_FILES = registry.expand([SAMPLES])


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[str(p.relative_to(SAMPLES)) for p in SAMPLE_FILES])
def test_every_sample_keeps_its_text_where_readers_see_it(path: Path) -> None:
    items = list(registry.detect(path).parse(path))
    traces = [t for t in items if not isinstance(t, Rejected)]
    found = measure(file_values(path), traces)
    assert found.share >= TARGET, f"{found.kept}/{found.lines} kept; lost: {found.lost[:5]}"


def test_a_real_inspect_log_with_deduplicated_messages_stores_their_text() -> None:
    """Inspect's own test log keeps repeated message text once, as `attachment://<hash>`
    references; the steps hold the text, not the references (fidelity was 0 of 10 lines)."""
    path = SAMPLES / "inspect" / "inspect_ai" / "log_message_deduplication.eval"
    (trace,) = [t for t in registry.detect(path).parse(path) if not isinstance(t, Rejected)]
    assert not any("attachment://" in s.full_text() for s in trace.steps)
    assert measure(file_values(path), [trace]) == Fidelity(10, 10)


def test_lookups_between_adds_find_every_part_of_what_was_added_without_rejoining_it_all() -> None:
    """Adapters alternate `unread` (a lookup) and adding, per span or record: each lookup after
    an add once re-joined all the text so far (quadratic in the trace). The joined text now
    grows in chunks merged like a binary counter: few of them, and every line still found."""
    stored = Stored()
    added = []
    for i in range(1000):
        line = f"record {i:04d} says the tool returned {i * 7} rows from the warehouse"
        stored.add_values([line])
        added.append(line)
        assert stored.has(added[i // 2][3:50])  # a part of an earlier line, not the whole line
        assert not stored.has(f"record {i:04d} says nothing like this at all, not a single word")
    assert len(stored._chunks) <= 11  # log2(1000) + 1: a lookup searches these, not 1000 pieces
    assert all(stored.has(line[5:45]) for line in added)
