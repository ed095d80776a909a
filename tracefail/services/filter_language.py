"""The corpus filter language: the filter bar's `key:value` words <-> a `CorpusFilter`.

The TUI imports the filter types from here (they are defined next to the SQL that compiles them
in `store.selection`), so it needs nothing below the services layer.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from typing import Any

from tracefail.store.search import SearchQueryError, parse_query
from tracefail.store.selection import SORT_COLUMNS, CorpusFilter, FeatureOp, FeatureThreshold

__all__ = [
    "FILTER_HELP",
    "FILTER_KEYS",
    "SORT_COLUMNS",
    "CorpusFilter",
    "FeatureThreshold",
    "FilterError",
    "format_filter",
    "parse_filter",
    "with_sort",
]

FILTER_KEYS = ("framework", "llm", "benchmark", "outcome", "mode", "category", "source", "agree", "sort")
FILTER_HELP = (
    "framework:AG2 llm:gpt-4o mode:1.3 category:<name> source:human agree:no outcome:failure "
    "tok.surprisal_mean>4 sort:-steps, other words search step text"
)
_OPS: tuple[FeatureOp, ...] = (">=", "<=", ">", "<")


class FilterError(ValueError):
    """A filter the user typed cannot be understood; the message says which part."""


def parse_filter(text: str, categories: dict[str, list[str]] | None = None) -> CorpusFilter:
    """Turn the filter bar's `key:value` words into a CorpusFilter; other words are text search."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise FilterError(f"cannot read filter: {exc}") from None
    values: dict[str, Any] = {}
    thresholds: list[FeatureThreshold] = []
    free: list[str] = []
    for word in words:
        key, sep, value = word.partition(":")
        if sep and key in FILTER_KEYS:
            if not value:
                raise FilterError(f"{key}: needs a value")
            if key == "sort":
                descending = value.startswith("-")
                column = value.lstrip("-")
                if column not in SORT_COLUMNS:
                    raise FilterError(f"cannot sort by {column!r}; use one of {', '.join(SORT_COLUMNS)}")
                values.update(sort=column, descending=descending)
            elif key == "agree":
                if value not in ("yes", "no"):
                    raise FilterError("agree: takes yes (sources agree) or no (sources disagree)")
                values["agreement"] = "agree" if value == "yes" else "disagree"
            elif key == "category":
                modes = (categories or {}).get(value)
                if not modes:
                    known = ", ".join(sorted(categories or {})) or "none stored"
                    raise FilterError(f"unknown category {value!r} (known: {known})")
                values.update(category=value, category_modes=tuple(modes))
            else:
                values[key] = value
            continue
        threshold = _threshold(word)
        if threshold is not None:
            thresholds.append(threshold)
        elif sep and key.isidentifier():  # a mistyped key must not become a zero-hit text search
            raise FilterError(f"unknown filter key {key!r} (keys: {', '.join(FILTER_KEYS)})")
        else:
            # a quoted phrase ("wrong answer") stays a phrase for the search
            free.append(f'"{word}"' if " " in word and not word.startswith('"') else word)
    query = " ".join(free) or None
    if query is not None:
        try:
            parse_query(query)
        except SearchQueryError as exc:
            raise FilterError(str(exc)) from None
    return CorpusFilter(**values, features=tuple(thresholds), text=query)


def _threshold(word: str) -> FeatureThreshold | None:
    for op in _OPS:
        name, sep, value = word.partition(op)
        if sep and name and name.replace("_", "").replace(".", "").isalnum():
            try:
                return FeatureThreshold(name=name, op=op, value=float(value))
            except ValueError:
                raise FilterError(f"{word}: {value!r} is not a number") from None
    return None


def format_filter(f: CorpusFilter) -> str:
    """The filter as the words that would produce it (for the status line and exports)."""
    words = [
        f"{k}:{getattr(f, k)}"
        for k in ("framework", "llm", "benchmark", "outcome", "mode", "source")
        if getattr(f, k)
    ]
    if f.category:
        words.append(f"category:{f.category}")
    if f.agreement:
        words.append("agree:" + ("yes" if f.agreement == "agree" else "no"))
    words += [f"{t.name}{t.op}{t.value:g}" for t in f.features]
    if f.sort != "trace_id" or f.descending:
        words.append(f"sort:{'-' if f.descending else ''}{f.sort}")
    if f.text:
        words.append(shlex.quote(f.text))
    return " ".join(words)


def with_sort(f: CorpusFilter, column: str) -> CorpusFilter:
    """Sort by `column`; choosing the current column again flips the direction."""
    if column not in SORT_COLUMNS:
        raise FilterError(f"cannot sort by {column!r}")
    return replace(f, sort=column, descending=not f.descending if f.sort == column else False)
