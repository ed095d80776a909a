"""The `tracefail` command. Kept light: heavy libraries load inside the commands that use them."""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="tracefail",
    help="Find out why LLM agents and multi-agent systems fail.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module registers its commands on `app` when imported.
COMMAND_MODULES = [
    "tracefail.cli.corpus",
    "tracefail.cli.judge",
    "tracefail.cli.browse",
    "tracefail.cli.features",
    "tracefail.cli.stats",
    "tracefail.cli.taxonomy",
    "tracefail.cli.search",
    "tracefail.cli.diff",
    "tracefail.cli.clusters",
    "tracefail.cli.attribution",
    "tracefail.cli.serve",
]
for _module in COMMAND_MODULES:
    importlib.import_module(_module)


def main() -> None:
    from tracefail.cli.common import stop_on_sigterm

    stop_on_sigterm()
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:  # Ctrl-C outside a command's own handling: one line, no traceback
        sys.stderr.write("interrupted\n")
        sys.exit(130)
