"""The corpus filter language: the filter bar's `key:value` words <-> a `CorpusFilter`.

The TUI imports the filter types from here (they are defined next to the SQL that compiles them
in `store.selection`), so it needs nothing below the services layer.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from typing import Any

from tracefail.model import SourceKind
from tracefail.store import Database
from tracefail.store.facets import Facets
from tracefail.store.facets import facets as stored_facets
from tracefail.store.search import SearchQueryError, parse_query
from tracefail.store.selection import SORT_COLUMNS, CorpusFilter, FeatureOp, FeatureThreshold, value_key

__all__ = [
    "FILTER_HELP",
    "FILTER_KEYS",
    "SORT_COLUMNS",
    "CorpusFilter",
    "FeatureThreshold",
    "FilterError",
    "corpus_filter",
    "format_filter",
    "known_values",
    "parse_filter",
    "with_sort",
]

FILTER_KEYS = (
    "framework",
    "llm",
    "benchmark",
    "outcome",
    "mode",
    "category",
    "source",
    "agree",
    "trace",
    "sort",
)
FILTER_HELP = (
    "framework:AG2 llm:gpt-4o mode:1.3 category:<name> source:human agree:no outcome:failure "
    "trace:ID,ID tok.surprisal_mean>4 sort:-steps, other words search step text; values are "
    "case-insensitive, model names compare without provider prefix or date"
)
VALUE_KEYS = ("framework", "llm", "benchmark", "outcome")
SOURCE_ALIASES = {"judge": SourceKind.LLM_JUDGE.value}  # the short name --source takes too
_OPS: tuple[FeatureOp, ...] = (">=", "<=", ">", "<")


class FilterError(ValueError):
    """A filter the user typed cannot be understood; the message says which part."""


def known_values(facets: Facets) -> dict[str, list[str]]:
    """The values each `key:` of the language can take in a corpus (the `values` of parse_filter)."""
    return {
        "framework": facets.frameworks,
        "llm": facets.llms,
        "benchmark": facets.benchmarks,
        "outcome": facets.outcomes,
        "source": facets.sources,
    }


def corpus_filter(db: Database, text: str) -> CorpusFilter:
    """`text` parsed and checked against what this corpus holds: the one parser behind the TUI's
    filter bar and every command's --filter."""
    facets = stored_facets(db)
    categories = _default_categories() if not facets.categories else facets.categories
    modes = sorted({*facets.modes, *(m for ms in categories.values() for m in ms)})
    return parse_filter(text, categories, modes=modes, features=facets.features, values=known_values(facets))


def _default_categories() -> dict[str, list[str]]:
    from tracefail.taxonomy import find

    out: dict[str, list[str]] = {}
    for mode in find().taxonomy.modes:
        out.setdefault(mode.category, []).append(mode.id)
    return out


def _check_value(key: str, value: str, values: dict[str, list[str]] | None) -> str:
    """The value as the filter keeps it; FilterError naming the valid ones if the corpus has none
    like it (case-insensitive; model names without provider prefix or date)."""
    if key == "source":
        name = SOURCE_ALIASES.get(value.lower(), value)
        if values is None:
            return name
        kinds = [k.value for k in SourceKind]
        stored = {v.lower() for v in values.get("source", [])}
        if name.lower() in stored or name.lower().rstrip(":") in kinds:
            return name
        raise FilterError(
            f"unknown source {value!r} (kinds: {', '.join(kinds)}, judge; "
            f"stored: {', '.join(values.get('source', [])[:8]) or 'none'})"
        )
    if values is None or key not in values:
        return value
    known = {value_key(key, v): v for v in values[key]}
    if value_key(key, value) not in known:
        raise FilterError(
            f"unknown {key} {value!r} (known: {', '.join(sorted(set(known.values()))) or 'none'})"
        )
    return value


def parse_filter(
    text: str,
    categories: dict[str, list[str]] | None = None,
    modes: list[str] | None = None,
    features: list[str] | None = None,
    values: dict[str, list[str]] | None = None,
) -> CorpusFilter:
    """Turn the filter bar's `key:value` words into a CorpusFilter; other words are text search.

    With the corpus' known `modes`, `features` and `values` (known_values) given, an unknown one
    is an error naming the valid ones rather than a filter that silently matches nothing."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise FilterError(f"cannot read filter: {exc}") from None
    found: dict[str, Any] = {}
    thresholds: list[FeatureThreshold] = []
    free: list[str] = []
    for word in words:
        key, sep, value = word.partition(":")
        key = key.lower() if sep and key.lower() in FILTER_KEYS else key
        if sep and key in FILTER_KEYS:
            if not value:
                raise FilterError(f"{key}: needs a value")
            if key == "sort":
                descending = value.startswith("-")
                column = value.lstrip("-")
                if column not in SORT_COLUMNS:
                    raise FilterError(f"cannot sort by {column!r}; use one of {', '.join(SORT_COLUMNS)}")
                found.update(sort=column, descending=descending)
            elif key == "agree":
                if value.lower() not in ("yes", "no"):
                    raise FilterError("agree: takes yes (sources agree) or no (sources disagree)")
                found["agreement"] = "agree" if value.lower() == "yes" else "disagree"
            elif key == "trace":
                found["trace_ids"] = tuple(dict.fromkeys(i for i in value.split(",") if i))
            elif key == "category":
                in_category = (categories or {}).get(value)
                if not in_category:
                    known = ", ".join(sorted(categories or {})) or "none stored"
                    raise FilterError(f"unknown category {value!r} (known: {known})")
                found.update(category=value, category_modes=tuple(in_category))
            elif key == "mode" and modes is not None and value not in modes:
                raise FilterError(f"unknown mode {value!r} (known: {', '.join(modes)})")
            elif key in (*VALUE_KEYS, "source"):
                found[key] = _check_value(key, value, values)
            else:
                found[key] = value
            continue
        threshold = _threshold(word)
        if threshold is not None:
            if features is not None and threshold.name not in features:
                close = [f for f in features if f.split(".")[0] == threshold.name.split(".")[0]][:6]
                hint = f" (e.g. {', '.join(close)})" if close else " (no per-step features stored)"
                raise FilterError(f"unknown feature {threshold.name!r}{hint}")
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
    return CorpusFilter(**found, features=tuple(thresholds), text=query)


def _threshold(word: str) -> FeatureThreshold | None:
    for op in _OPS:
        name, sep, value = word.partition(op)
        if sep and name and name.replace("_", "").replace(".", "").isalnum():
            try:
                return FeatureThreshold(name=name, op=op, value=float(value))
            except ValueError:
                raise FilterError(f"{word}: {value!r} is not a number") from None
    return None


def format_filter(f: CorpusFilter, brief: bool = False) -> str:
    """The filter as the words that would produce it (for the status line and exports); `brief`
    counts a `trace:` list instead of spelling out its ids (a cluster's would fill the line)."""
    words = [
        f"{k}:{getattr(f, k)}"
        for k in ("framework", "llm", "benchmark", "outcome", "mode", "source")
        if getattr(f, k)
    ]
    if f.category:
        words.append(f"category:{f.category}")
    if f.agreement:
        words.append("agree:" + ("yes" if f.agreement == "agree" else "no"))
    if f.trace_ids and brief:
        words.append(f"trace:<{len(f.trace_ids)} ids>")
    elif f.trace_ids:
        words.append(shlex.quote("trace:" + ",".join(f.trace_ids)))
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
