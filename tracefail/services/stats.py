"""The facade for statistics, graphs, slices, audits and reports, shared by CLI and TUI.

Each function opens nothing and prints nothing: it takes an open Database, checks its
arguments (raising StatsUsageError with one line a user can act on) and returns tables/results.
"""

from __future__ import annotations

from tracefail.analysis import stats as analysis
from tracefail.store import Database
from tracefail.taxonomy import TaxonomyFile, find


class StatsUsageError(ValueError):
    """An argument that cannot work (unknown grouping, mode, format); the message says why."""


def load_taxonomy(ref: str) -> TaxonomyFile:
    from tracefail.taxonomy import TaxonomyError

    try:
        return find(ref)
    except TaxonomyError as exc:
        raise StatsUsageError(str(exc)) from None


def _check_by(by: str | None) -> None:
    if by is not None and by not in analysis.GROUPINGS:
        raise StatsUsageError(f"--by {by}: not a grouping (choose from {', '.join(analysis.GROUPINGS)})")


def stats(
    db: Database, *, taxonomy: str = "mast-v1", source: str = "all", by: str | None = None
) -> analysis.Stats:
    """Every statistics section for the labels of `source` mapped onto `taxonomy`."""
    _check_by(by)
    return analysis.compute(db, load_taxonomy(taxonomy), source, by)
