"""Steps kept as columns (the ingest's MAST path) hash and store exactly as the same steps kept
as Step objects: the content hash, the step rows and the text the fidelity measure sees."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tracefail.ingest import fidelity
from tracefail.ingest.mast import MastFullAdapter, MastHumanAdapter
from tracefail.model import Step, StepColumns, Trace
from tracefail.services import ingest_read
from tracefail.store import rows

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples" / "mast"
_ODD = [  # text JSON escapes, a lone surrogate (json.dumps passes it, orjson refuses it), "%"
    'tab\tquote" back\\slash \x00\x01\x1f\x7f \u2028 é 😀',
    "100% of %s and %%b",
    "lone \ud800 surrogate",
    "",
]


def _columns() -> StepColumns:
    columns = StepColumns()
    aware = datetime(2025, 1, 2, 3, 4, 5, 600, tzinfo=timezone(timedelta(hours=2)))
    times = [None, datetime(2025, 1, 2, 3, 4, 5), datetime(2025, 1, 2, 3, 4, 5, 123000), aware]
    agents = [None, "Planner", 'Co"der %b', "Planner"]
    for i, content in enumerate(_ODD):
        columns.append(content, agents[i], agents[-1 - i], "assistant" if i % 2 else None, "INFO", times[i])
    return columns


def _pair(columns: StepColumns) -> tuple[Trace, Trace]:
    header = {"trace_id": "t", "source": "s", "raw": "raw \ud83d text", "task": "the task"}
    columnar = Trace(**header).with_columns(columns)
    return columnar, columnar.materialized()


def test_columns_hash_as_their_steps_do() -> None:
    columnar, objects = _pair(_columns())
    assert objects.steps == _columns().steps() and objects.step_columns is None
    assert columnar.content_hash() == objects.content_hash()
    assert columnar.step_count == len(objects.steps) == len(_ODD)


def test_columns_of_plain_message_steps_round_trip_and_other_steps_are_refused() -> None:
    steps = _columns().steps()
    assert StepColumns.of_steps(steps).steps() == steps
    with pytest.raises(ValueError, match="not a plain message step"):
        StepColumns.of_steps([Step(step_idx=0, content="x", status="error")])


@pytest.mark.parametrize("adapter", [MastFullAdapter(), MastHumanAdapter()])
def test_shipped_mast_records_store_the_same_rows_either_way(adapter: MastFullAdapter) -> None:
    path = next(p for p in sorted(SAMPLES.glob("*.json")) if adapter.sniff(p, p.read_text()[:65536]))
    columnar = [t for t in adapter.parse_columns(path) if isinstance(t, Trace)]
    objects = [t for t in adapter.parse(path) if isinstance(t, Trace)]
    assert columnar and all(t.step_columns is not None and not t.steps for t in columnar)
    assert all(t.step_columns is None and t.steps for t in objects)
    a, b = rows.prepare(columnar), rows.prepare(objects)
    assert a.hashes == b.hashes and a.n_steps == b.n_steps
    assert a.steps.equals(b.steps)
    assert [h.model_dump() for h in a.headers] == [h.model_dump() for h in b.headers]
    assert all(h.step_columns is None for h in a.headers)  # the columns do not travel twice
    assert [rows.text_size(t) for t in columnar] == [rows.text_size(t) for t in objects]
    kept_a, kept_b = fidelity.Stored(), fidelity.Stored()
    for x, y in zip(columnar, objects, strict=True):
        kept_a.add(x)
        kept_b.add(y)
    lines = fidelity.text_lines(fidelity.file_values(path))
    assert kept_a.measure(lines) == kept_b.measure(lines)


def test_an_oversized_column_is_cut_as_an_oversized_step_is() -> None:
    columns = StepColumns()
    for content in ("short", "x" * 50, "y" * 20):
        columns.append(content)
    columnar, objects = _pair(columns)
    cut_a, notes_a = ingest_read._cut_oversized(columnar, 30)
    cut_b, notes_b = ingest_read._cut_oversized(objects, 30)
    assert notes_a == notes_b and len(notes_a) == 1  # the 50-character step
    assert cut_a.materialized().steps == cut_b.steps
    assert columns.content[1] == "x" * 50  # the trace read is not changed
    assert ingest_read._opening(columnar) == ingest_read._opening(objects)


def test_a_lone_surrogate_in_a_column_rejects_only_its_trace() -> None:
    good, bad = StepColumns(), StepColumns()
    good.append("fine")
    bad.append("lone \ud800")
    traces = [
        Trace(trace_id=f"t{i}", source="s", native_id=f"n{i}").with_columns(c)
        for i, c in enumerate((good, bad))
    ]
    items = list(ingest_read._prepared([(Path("f.json"), t) for t in traces]))
    assert isinstance(items[0], rows.Prepared) and items[0].steps["content"].to_pylist() == ["fine"]
    assert isinstance(items[1], ingest_read.Reject) and items[1].record == "n1"
    assert "cannot be stored as UTF-8" in items[1].reason
