"""Human label and mistake writes from the browser, with undo of the user's own rows."""

from __future__ import annotations

from typing import Literal

from tracefail.model import Attribution, Label
from tracefail.store.db import Database
from tracefail.store.traces import insert_attributions, insert_labels


def add_human_label(db: Database, label: Label) -> int:
    """Append one human label and return its id; other sources' rows are never touched."""
    if not label.source.startswith("human:"):
        raise ValueError(f"browse writes human labels only, not {label.source!r}")
    with db.transaction():
        insert_labels(db, [label])
        return int(db.rows("SELECT currval('label_id_seq')")[0][0])


def add_human_attribution(db: Database, attribution: Attribution) -> int:
    if not attribution.source.startswith("human:"):
        raise ValueError(f"browse writes human attributions only, not {attribution.source!r}")
    with db.transaction():
        insert_attributions(db, [attribution])
        return int(db.rows("SELECT currval('attribution_id_seq')")[0][0])


def undo_human_write(db: Database, table: Literal["labels", "attributions"], row_id: int) -> bool:
    """Delete a row this user wrote; refuses anything that is not a human row."""
    key = {"labels": "label_id", "attributions": "attribution_id"}[table]
    with db.transaction():
        deleted = db.rows(
            f"DELETE FROM {table} WHERE {key} = ? AND starts_with(source, 'human:') RETURNING {key}",
            [row_id],
        )
    return bool(deleted)
