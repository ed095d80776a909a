"""The generated command reference covers every command and every option, from the live CLI."""

from __future__ import annotations

import typer.main

from tracefail.cli import app
from tracefail.cli.reference import cli_markdown, command_names


def test_every_command_and_option_is_in_the_reference() -> None:
    page = cli_markdown()
    group = typer.main.get_command(app)
    names = command_names()
    assert names == sorted(group.commands)  # type: ignore[attr-defined]
    assert {"ingest", "label", "browse", "stats", "search"} <= set(names)
    for name in names:
        assert f"## `{name}`" in page
        for param in group.commands[name].params:  # type: ignore[attr-defined]
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert opt in page, f"{name} {opt} missing from the reference"


def test_help_text_cannot_inject_html() -> None:
    assert "human:<user>" not in cli_markdown()  # browse --user's help is escaped in the table
