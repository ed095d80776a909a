"""Markdown reference of every command, built from the Typer app so the docs cannot drift from it."""

from __future__ import annotations

from typing import Any

import typer
import typer.main

from tracefail.cli import app


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _param_row(param: Any, ctx: typer.Context) -> str:
    record = param.get_help_record(ctx)
    if record is None:  # a positional argument
        return f"| `{param.name.upper()}` | {'required' if param.required else 'optional'} argument |"
    names, help_text = record
    return f"| `{_cell(names)}` | {_cell(help_text).replace('<', '&lt;').replace('>', '&gt;')} |"


def _group() -> Any:
    return typer.main.get_command(app)


def cli_markdown() -> str:
    """One section per command: its help, usage and a table of its arguments and options."""
    group = _group()
    lines = [
        "# Command reference",
        "",
        "Generated from the command-line interface each time the site is built "
        "(`docs/hooks/cli_reference.py` calls `tracefail.cli.reference`); "
        "`tracefail COMMAND --help` prints the same.",
        "",
    ]
    for name in command_names():
        command = group.commands[name]
        ctx = typer.Context(command, info_name=f"tracefail {name}")
        lines += [f"## `{name}`", "", command.help or "", "", "```text", command.get_usage(ctx), "```", ""]
        rows = [_param_row(p, ctx) for p in command.params if not getattr(p, "hidden", False)]
        if rows:
            lines += ["| argument or option | meaning |", "|---|---|", *rows, ""]
    return "\n".join(lines)


def command_names() -> list[str]:
    return sorted(_group().commands)
