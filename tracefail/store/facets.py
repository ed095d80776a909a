"""The values each corpus filter can take, and the modes a human may label with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tracefail.store.db import Database


@dataclass
class Facets:
    """The values each filter can take, for completion and the palette."""

    frameworks: list[str] = field(default_factory=list)
    llms: list[str] = field(default_factory=list)
    benchmarks: list[str] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)  # category -> mode ids


def _distinct(db: Database, column: str, table: str) -> list[str]:
    return [
        r[0] for r in db.rows(f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY 1")
    ]


def facets(db: Database) -> Facets:
    categories: dict[str, list[str]] = {}
    for (definition,) in db.rows(
        "SELECT definition FROM taxonomies ORDER BY loaded_at, taxonomy_id, version"
    ):
        for mode in json.loads(definition).get("modes", []):
            if mode.get("category") and mode.get("id"):
                categories.setdefault(str(mode["category"]), []).append(str(mode["id"]))
    return Facets(
        frameworks=_distinct(db, "framework", "traces"),
        llms=_distinct(db, "llm", "traces"),
        benchmarks=_distinct(db, "benchmark", "traces"),
        modes=_distinct(db, "mode_id", "labels"),
        sources=_distinct(db, "source", "labels"),
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
