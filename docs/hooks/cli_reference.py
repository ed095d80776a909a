"""MkDocs hook: writes reference/cli.md from the Typer app at build time, so it cannot drift."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files


def on_files(files: Files, config: Any) -> Files:
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from tracefail.cli.reference import cli_markdown

    files.append(File.generated(config, "reference/cli.md", content=cli_markdown()))
    return files
