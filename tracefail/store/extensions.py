"""DuckDB extensions from their PyPI wheels (`duckdb-extension-<name>`, pinned to DuckDB's
version), never from DuckDB's download server: autoinstall and autoload are switched off first."""

from __future__ import annotations

import importlib
from pathlib import Path

import duckdb

from tracefail.store.db import StoreError


def extension_path(name: str) -> Path:
    """The `name` extension file shipped in the `duckdb-extension-<name>` wheel for this DuckDB."""
    version = duckdb.__version__
    wheel = f"duckdb-extension-{name}=={version}"
    try:
        package = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError:
        raise StoreError(f"DuckDB's {name} extension is not installed: pip install {wheel}") from None
    assert package.__file__ is not None
    path = Path(package.__file__).parent / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise StoreError(f"{path}: no {name} extension for DuckDB {version}; install {wheel}")
    return path


def load_extension(connection: duckdb.DuckDBPyConnection, name: str) -> None:
    connection.execute("SET autoinstall_known_extensions = false")
    connection.execute("SET autoload_known_extensions = false")
    path = str(extension_path(name)).replace("'", "''")
    connection.execute(f"LOAD '{path}'")
