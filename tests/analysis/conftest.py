"""A small hand-made labelled corpus whose statistics are worked out by hand in the tests."""

from __future__ import annotations

import pytest

from tracefail.model import Attribution, Label, Step, Trace
from tracefail.store import Database
from tracefail.store.traces import add_traces, insert_attributions, insert_labels

# (trace, framework, agents of its steps)
TRACES = [
    ("t1", "AG2", ["A", "B", "A", "B"]),
    ("t2", "AG2", ["A", "B", "C", "A", "B"]),
    ("t3", "AG2", ["A", "B", "C"]),
    ("t4", "MetaGPT", ["P", "Q", "P"]),
    ("t5", "MetaGPT", ["P", "Q", "R", "P"]),
    ("t6", "MetaGPT", ["P", "Q"]),
]
# judge verdicts per trace for modes 1.1, 1.3, 3.2 (None: no usable answer)
JUDGE = {
    "t1": (True, True, False),
    "t2": (True, False, True),
    "t3": (False, False, False),
    "t4": (False, True, True),
    "t5": (False, True, None),
}
HUMAN = {"t1": (True, False), "t2": (False, False), "t4": (False, True)}  # modes 1.1, 1.3


def label(
    trace: str,
    mode: str,
    present: bool | None,
    source: str,
    evidence: list[int] | None = None,
    agent: str | None = None,
    version: str = "1.0",
    metadata: dict | None = None,
) -> Label:
    return Label(
        trace_id=trace,
        taxonomy_id="mast",
        taxonomy_version=version,
        mode_id=mode,
        present=present,
        evidence_steps=evidence or [],
        agent=agent,
        source=source,
        metadata=metadata or {},
    )


@pytest.fixture
def labelled_db(db: Database) -> Database:
    traces = [
        Trace(
            trace_id=tid,
            source="hand",
            framework=fw,
            llm="m1" if tid < "t4" else "m2",
            steps=[Step(step_idx=i, agent=a, content=f"{tid} step {i} by {a}") for i, a in enumerate(agents)],
        )
        for tid, fw, agents in TRACES
    ]
    add_traces(db, traces, None)
    with db.transaction():
        # an older judge answer for t3 that a rerun replaced: only the latest counts
        insert_labels(db, [label("t3", "1.1", True, "llm-judge:j")])
    labels = []
    for tid, verdicts in JUDGE.items():
        for mode, present in zip(("1.1", "1.3", "3.2"), verdicts, strict=True):
            labels.append(label(tid, mode, present, "llm-judge:j"))
    labels[0] = label("t1", "1.1", True, "llm-judge:j", evidence=[0], agent="A")
    labels[1] = label("t1", "1.3", True, "llm-judge:j", evidence=[2], agent="A")
    for tid, verdicts in HUMAN.items():
        for mode, present in zip(("1.1", "1.3"), verdicts, strict=True):
            labels.append(label(tid, mode, present, "human:h"))
    labels.append(label("t1", "1.1", True, "human:h", evidence=[3], agent="B"))
    # a legacy human code: round1-18's 2.2 "Step repetition" is mast 1.3
    labels.append(
        label(
            "t5", "2.2", True, "human:h", version="round1-18", metadata={"mode_name": "2.2 Step repetition"}
        )
    )
    with db.transaction():
        insert_labels(db, labels)
        insert_attributions(
            db,
            [
                Attribution(trace_id="t1", agent="A", step_idx=0, source="dataset:d"),
                Attribution(trace_id="t2", agent="B", step_idx=1, source="dataset:d"),
                Attribution(trace_id="t4", agent="A", step_idx=2, source="dataset:d"),
            ],
        )
    return db
