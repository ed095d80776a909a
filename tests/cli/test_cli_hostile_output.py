"""No trace data acts on the terminal (issue 24, case 4: `graph` printed agent names raw, `search`
and `diff` trace ids and agent names; an OSC 52 in an agent name set tmux's clipboard; U+202E
passed through `show`). Every command runs over a hostile corpus; its output bytes are scanned."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.conftest import run_cli
from tracefail.services.terminal import terminal_safe

OSC52 = "\x1b]52;c;ZXZpbA==\x07"
HOSTILE = f"ev{OSC52}il\x1b[2J\x9b31m\u202eesrever\u2067x\x00"
# what a terminal acts on: ESC, BEL, C1 (0x9b is a one-byte CSI), NUL, bidi controls
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, list[str]]:
    lines = []
    for n in range(3):
        messages = [
            {"role": "user", "content": f"hello {HOSTILE} question {n}"},
            {"role": "assistant", "name": f"agent{HOSTILE}", "content": f"answer {HOSTILE}"},
            {"role": "assistant", "name": f"other{HOSTILE}", "content": "hello again"},
        ]
        lines.append(json.dumps({"id": f"id{n}{HOSTILE}", "messages": messages}))
    source = tmp_path / "hostile.jsonl"
    source.write_text("\n".join(lines) + "\n")
    corpus = tmp_path / "corpus.duckdb"
    result = run_cli("ingest", source, "--db", corpus)
    assert result.exit_code == 0, result.stderr
    ids = [row["trace_id"] for row in json.loads(run_cli("ls", "--db", corpus, "--json").stdout)]
    return corpus, ids


def _commands(corpus: Path, ids: list[str]) -> list[list[object]]:
    db = ["--db", corpus]
    return [
        ["ls", *db],
        ["show", ids[0], *db],
        ["graph", ids[0], *db],
        ["graph", *db],
        ["search", "hello", *db],
        ["diff", ids[0], ids[1], *db],
        ["stats", *db],
        ["sql", "SELECT trace_id, agent, content FROM steps", *db],
        ["sql", "SELECT trace_id, agent, content FROM steps", "--format", "json", *db],
        ["ls", "--json", *db],
        ["search", "hello", "--json", *db],
        ["slices", *db],
        ["show", f"missing{HOSTILE}", *db],
    ]


def test_every_command_prints_trace_data_without_terminal_controls(hostile) -> None:
    corpus, ids = hostile
    leaks = {}
    for command in _commands(corpus, ids):
        result = run_cli(*command)
        found = UNSAFE.findall(result.stdout + result.stderr)
        if found:
            leaks[str(command[0:2])] = sorted(set(found))
    assert not leaks, list(leaks)


def test_the_sanitiser_keeps_text_and_shows_what_it_replaced() -> None:
    assert terminal_safe("plain\ttext\nüñí 日本") == "plain\ttext\nüñí 日本"
    assert terminal_safe(OSC52) == "␛]52;c;ZXZpbA==␇"
    assert terminal_safe("a\u202eb\x9bc") == "a<U+202E>b�c"
