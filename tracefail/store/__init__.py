"""The only package that talks to DuckDB. Other layers call the functions in its modules."""

from tracefail.store.db import DEFAULT_DB, Database, DatabaseLocked, StoreError

__all__ = ["DEFAULT_DB", "Database", "DatabaseLocked", "StoreError"]
