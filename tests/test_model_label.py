"""Label.shipped (the dataset adapters' unvalidated constructor) builds the same label as the
validating constructor, with its own mutable defaults."""

from __future__ import annotations

import pytest

from tracefail.model import Label
from tracefail.store.rows import label_rows


@pytest.mark.parametrize(
    ("present", "metadata"),
    [(True, None), (None, None), (False, {"round": "round 2", "mode_name": "1.1 Disobey task spec"})],
)
def test_shipped_equals_the_validated_label(present: bool | None, metadata: dict | None) -> None:
    given = {} if metadata is None else {"metadata": metadata}
    fast = Label.shipped("t1", "mast", "v1", "1.3", present, "dataset:mast", **given)
    checked = Label(
        trace_id="t1",
        taxonomy_id="mast",
        taxonomy_version="v1",
        mode_id="1.3",
        present=present,
        source="dataset:mast",
        **given,
    )
    assert fast == checked
    assert fast.model_dump() == checked.model_dump()
    assert fast.model_fields_set == checked.model_fields_set
    stored = [{**row, "created_at": None} for row in label_rows([fast, checked], "run")]
    assert stored[0] == stored[1]  # the row it is stored as


def test_shipped_labels_do_not_share_their_lists_and_dicts() -> None:
    first = Label.shipped("a", "mast", "v1", "1.1", True, "dataset:mast")
    second = Label.shipped("b", "mast", "v1", "1.2", False, "dataset:mast")
    first.metadata["x"] = 1
    first.evidence_steps.append(3)
    assert second.metadata == {} and second.evidence_steps == []
