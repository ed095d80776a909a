"""The values each corpus filter can take, and the modes a human may label with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tracefail.store.db import Database
from tracefail.store.selection import llm_name


@dataclass
class Facets:
    """The values each filter can take, for completion and the palette."""

    frameworks: list[str] = field(default_factory=list)
    llms: list[str] = field(default_factory=list)  # normalised (selection.llm_name)
    benchmarks: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)  # the stored taxonomies' mode ids
    sources: list[str] = field(default_factory=list)  # of labels and attributions
    features: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)  # category -> mode ids


def _distinct(db: Database, column: str, table: str) -> list[str]:
    return [
        r[0] for r in db.rows(f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY 1")
    ]


def _mode_key(mode_id: str) -> tuple[tuple[int, int | str], ...]:
    """`1.10` after `1.9`: mode ids by their numbers, names by their text."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in mode_id.split("."))


def facets(db: Database) -> Facets:
    categories: dict[str, list[str]] = {}
    for (definition,) in db.rows(
        "SELECT definition FROM taxonomies ORDER BY loaded_at, taxonomy_id, version"
    ):
        for mode in json.loads(definition).get("modes", []):
            if mode.get("category") and mode.get("id"):
                categories.setdefault(str(mode["category"]), []).append(str(mode["id"]))
    modes: set[str] = set()
    for (definition,) in db.rows("SELECT definition FROM taxonomies"):
        modes.update(str(m["id"]) for m in json.loads(definition).get("modes", []) if m.get("id"))
    return Facets(
        frameworks=_distinct(db, "framework", "traces"),
        llms=_distinct(db, llm_name("llm"), "traces"),
        benchmarks=_distinct(db, "benchmark", "traces"),
        outcomes=_distinct(db, "outcome", "traces"),
        modes=sorted(modes, key=_mode_key),
        sources=[
            r[0]
            for r in db.rows("SELECT source FROM labels UNION SELECT source FROM attributions ORDER BY 1")
        ],
        features=_distinct(db, "name", "features"),
        categories={k: sorted(set(v)) for k, v in categories.items()},
    )


def taxonomy_modes(db: Database) -> list[tuple[str, str, str, str]]:
    """(taxonomy id, version, mode id, mode name) for every stored taxonomy."""
    found = []
    for taxonomy_id, version, definition in db.rows(
        "SELECT taxonomy_id, version, definition FROM taxonomies ORDER BY taxonomy_id, version"
    ):
        for mode in json.loads(definition).get("modes", []):
            found.append((taxonomy_id, version, str(mode.get("id")), str(mode.get("name", ""))))
    return found
