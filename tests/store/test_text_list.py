"""Every read that takes a list of trace ids or names binds it as one JSON text (`text_list`):
ids with quotes, backslashes, control characters and non-ASCII come back exactly those traces,
and an id's prefix, or a text that looks like the JSON, matches nothing else."""

from __future__ import annotations

import pytest

from tracefail.model import Step, StepKind, Trace
from tracefail.store import Database
from tracefail.store.attribution import steps_for, trace_column
from tracefail.store.features import feature_frame, replace_features
from tracefail.store.stats import steps_of as stats_steps
from tracefail.store.trace_view import SPARK_FEATURES, sparklines
from tracefail.store.traces import add_traces, steps_of, trace_headers

HOSTILE = [
    'q"uote',
    "it's",
    "back\\slash",
    "\\u0041",  # a JSON escape as text, not the letter A
    "unit\x1fsep",
    "zeile\numbruch",
    "esc\x1b[31mred",
    "ümlaut 中文 😀",
    '["VARCHAR"]',
    "demo:a",
]
OTHERS = ["demo:ab", "A", "demo"]


def _trace(trace_id: str) -> Trace:
    steps = [
        Step(step_idx=i, agent="a", role="assistant", kind=StepKind.MESSAGE, content=f"{trace_id} {i}")
        for i in range(2)
    ]
    return Trace(trace_id=trace_id, source="demo", framework="AG2", llm="gpt-4o", steps=steps)


@pytest.fixture
def hostile(db: Database) -> Database:
    add_traces(db, [_trace(i) for i in [*HOSTILE, *OTHERS]], run_id=None)
    for trace_id in [*HOSTILE, *OTHERS]:
        rows = [(0, SPARK_FEATURES[0], 1.0), (0, 'n"ame\\', 2.0)]
        replace_features(db, trace_id, "m", "1", rows, run_id=None)
    return db


def test_each_read_returns_exactly_the_listed_traces(hostile: Database) -> None:
    assert set(trace_headers(hostile, HOSTILE)) == set(HOSTILE)
    assert set(steps_of(hostile, HOSTILE)) == set(HOSTILE)
    assert {s[0].content for s in steps_of(hostile, HOSTILE).values()} == {f"{i} 0" for i in HOSTILE}
    assert set(steps_for(hostile, HOSTILE)["trace_id"]) == set(HOSTILE)
    assert set(stats_steps(hostile, HOSTILE)["trace_id"]) == set(HOSTILE)
    assert trace_column(hostile, HOSTILE, "framework") == dict.fromkeys(HOSTILE, "AG2")
    frame = feature_frame(hostile, trace_ids=HOSTILE, names=['n"ame\\'])
    assert set(frame["trace_id"]) == set(HOSTILE) and set(frame["name"]) == {'n"ame\\'}
    assert set(sparklines(hostile, HOSTILE)[1]) == set(HOSTILE)


def test_an_empty_list_selects_nothing(hostile: Database) -> None:
    assert trace_headers(hostile, []) == {}
    assert feature_frame(hostile, trace_ids=[]).is_empty()
