"""Which traces a batch command works on: the one answer for `label`, `features` and friends."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from tracefail.store import Database
from tracefail.store.traces import trace_ids as all_trace_ids

SUGGESTIONS = 5


class UnknownTraceError(ValueError):
    """A typed trace id names no trace, or several (the one message, and in the CLI the one
    exit status, every command gives, with the ids it might have meant), or a selection that
    cannot be read."""


def _matches(typed: str, ids: Sequence[str]) -> list[str]:
    """Ids the typed text is a prefix of, whole or from a part after `:` or `/` (the native id
    of `whowhen:algorithm-generated/df6561b2-…` can be typed as `df6561`)."""
    return [
        i for i in ids if i.startswith(typed) or any(p.startswith(typed) for p in re.split(r"[:/]", i)[1:])
    ]


def resolve_ids(db: Database, typed: Sequence[str]) -> list[str]:
    """Full trace ids for ids typed in full or as a unique prefix, in the order given."""
    ids = all_trace_ids(db)
    known = set(ids)
    out = []
    for text in typed:
        if text in known:
            out.append(text)
            continue
        found = _matches(text, ids) if text else []
        if len(found) == 1:
            out.append(found[0])
            continue
        if found:
            shown = ", ".join(found[:SUGGESTIONS]) + (", …" if len(found) > SUGGESTIONS else "")
            raise UnknownTraceError(
                f"trace id {text!r} is ambiguous in {db.path}: {len(found)} match ({shown})"
            )
        close = difflib.get_close_matches(text, ids, n=SUGGESTIONS, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `tracefail ls`"
        raise UnknownTraceError(f"no trace {text!r} in {db.path}{hint}")
    return out


def resolve_id(db: Database, typed: str) -> str:
    return resolve_ids(db, [typed])[0]


def select_traces(
    db: Database,
    traces: Sequence[str] | None,
    limit: int | None,
    filter_text: str = "",
    failing_only: bool = False,
) -> list[str]:
    """The traces a batch command works on, in a documented order: the requested ones (full ids
    or unique prefixes; duplicates dropped; in the order given), else those `filter_text` (the
    filter language) selects, else the whole corpus, in trace id order. `failing_only` (an
    attribution run) leaves out traces whose outcome is success: a mistake in a successful run
    is not a thing to label. At most `limit`, taken after all that."""
    from tracefail.services.filter_language import FilterError, corpus_filter
    from tracefail.store.selection import selection_sql

    if traces and filter_text.strip():
        raise UnknownTraceError("use --traces or --filter, not both")
    if traces:
        chosen = list(dict.fromkeys(resolve_ids(db, traces)))
    elif filter_text.strip():
        try:
            sql, params = selection_sql(corpus_filter(db, filter_text))
        except FilterError as exc:
            raise UnknownTraceError(f"--filter: {exc}") from None
        chosen = [r[0] for r in db.rows(f"{sql} ORDER BY t.trace_id", params)]
    else:
        chosen = all_trace_ids(db)
    if failing_only:
        succeeded = {r[0] for r in db.rows("SELECT trace_id FROM traces WHERE outcome = 'success'")}
        chosen = [t for t in chosen if t not in succeeded]
    return chosen[:limit] if limit is not None else chosen
