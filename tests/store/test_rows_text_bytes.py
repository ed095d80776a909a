"""Prepared.text_bytes: the UTF-8 bytes of long strings a checkpoint pins, which size the
ingest's DuckDB memory cap; ASCII text is counted without encoding it, other text exactly."""

from __future__ import annotations

from tracefail.model import Step, Trace
from tracefail.store.rows import prepare


def _trace(trace_id: str, raw: str, content: str) -> Trace:
    return Trace(trace_id=trace_id, source="test", raw=raw, steps=[Step(step_idx=0, content=content)])


def test_text_bytes_counts_utf8_bytes_of_the_strings_over_the_bound() -> None:
    ascii_raw, accented_raw, short = "a" * 5000, "é" * 3000, "é" * 100
    batch = prepare(
        [_trace("1", ascii_raw, "x" * 6000), _trace("2", accented_raw, short), _trace("3", short, "")]
    )
    raw, steps = batch.text_bytes(4096)
    assert raw == 5000 + 6000  # "é" is 2 bytes: 3000 characters are 6000 bytes, over 4096
    assert steps == 6000
    assert batch.text_bytes(5500) == (6000, 6000)
