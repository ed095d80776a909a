"""Failure-mode names for ids shown on screen, from the taxonomy files (ids alone mean nothing
to a reader who does not know MAST by heart)."""

from __future__ import annotations

from functools import cache

from tracefail import taxonomy


@cache
def _names(taxonomy_ref: str) -> dict[str, str]:
    try:
        return {m.id: m.name for m in taxonomy.find(taxonomy_ref).taxonomy.modes}
    except taxonomy.TaxonomyError:
        return {}


def mode_name(mode_id: str, taxonomy_id: str | None = None) -> str:
    """The mode's name in `taxonomy_id` (the shipped default when unknown), or "" when none."""
    return _names(taxonomy_id or taxonomy.DEFAULT_TAXONOMY).get(mode_id) or _names(
        taxonomy.DEFAULT_TAXONOMY
    ).get(mode_id, "")


def with_name(mode_id: str, width: int | None = None, taxonomy_id: str | None = None) -> str:
    """`1.3 Step repetition`, cut to `width` with an ellipsis."""
    name = mode_name(mode_id, taxonomy_id)
    text = f"{mode_id} {name}" if name else mode_id
    return text if width is None or len(text) <= width else text[: width - 1] + "…"
