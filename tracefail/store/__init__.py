"""The only package that talks to DuckDB. Other layers call the functions in its modules.

`Database` and its errors are loaded on first use (PEP 562): `tracefail.store.rows`, which
ingest's reader processes import, must not pull in DuckDB and polars with its package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracefail.store.db import DEFAULT_DB, Database, DatabaseLocked, StoreError, open_waiting

__all__ = ["DEFAULT_DB", "Database", "DatabaseLocked", "StoreError", "open_waiting"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tracefail.store import db

        return getattr(db, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
