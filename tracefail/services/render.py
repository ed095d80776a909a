"""How the CLI writes results: tables as JSON/CSV/Markdown/Parquet, graphs as text/JSON/DOT/PNG.

One renderer per output, shared by every command, reached through services like everything
else the CLI uses.
"""

from __future__ import annotations

from tracefail.analysis import tables
from tracefail.analysis.tables import json_text
from tracefail.graph import render as graphs

__all__ = ["graphs", "json_text", "tables"]
