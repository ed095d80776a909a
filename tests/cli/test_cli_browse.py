"""`tracefail browse` refuses bad input with one line before any screen opens."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tracefail.cli import app


def test_missing_corpus_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["browse", "--db", str(tmp_path / "nope.duckdb")])
    assert result.exit_code == 1
    assert "nope.duckdb: no such database" in result.output


def test_user_name_must_be_plain(corpus_path: Path) -> None:
    result = CliRunner().invoke(app, ["browse", "--db", str(corpus_path), "--user", "a:b"])
    assert result.exit_code == 2
    assert "give a plain name" in result.output


def test_importing_the_cli_does_not_load_textual() -> None:
    import subprocess
    import sys

    code = "import sys, tracefail.cli; print('textual' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )
