"""Which traces a batch command works on: the one answer for `label`, `features` and friends."""

from __future__ import annotations

from collections.abc import Sequence

from tracefail.store import Database
from tracefail.store.traces import trace_ids as all_trace_ids


class UnknownTraceError(ValueError):
    """Some requested trace ids are not in the corpus; the message names (up to five of) them."""


def select_traces(db: Database, traces: Sequence[str] | None, limit: int | None) -> list[str]:
    """The requested traces (duplicates dropped, in the order given), else the corpus in id
    order; at most `limit` either way."""
    if not traces:
        return all_trace_ids(db, limit)
    known = set(all_trace_ids(db))
    missing = [t for t in traces if t not in known]
    if missing:
        raise UnknownTraceError(f"no such trace(s) in the corpus: {', '.join(missing[:5])}")
    chosen = list(dict.fromkeys(traces))
    return chosen[:limit] if limit is not None else chosen
