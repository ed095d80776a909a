"""The fidelity figure at the command line: `ingest` names files that lose text and keeps the
figure in its run row; `formats --check` lists the lost lines without writing a corpus."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import SAMPLES, run_cli
from tracefail.store import Database

PROMPT = "You are a careful assistant that answers weather questions only."
ANSWER = "Bring an umbrella: light rain is expected in Lisbon all afternoon."


def _lossy_file(tmp_path: Path) -> Path:
    """An OpenAI chat JSONL file whose second line is not a chat record: it is quarantined, so
    its text is not where search, the judge or the TUI read it, and counts as lost."""
    path = tmp_path / "chat.jsonl"
    good = {"messages": [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": ANSWER}]}
    bad = {"messages": "The reviewer said this run skipped the forecast tool entirely and guessed."}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    return path


def test_ingest_names_a_file_that_loses_text_and_keeps_the_figure_in_its_run(tmp_path: Path) -> None:
    lossy = _lossy_file(tmp_path)
    db = tmp_path / "c.duckdb"
    result = run_cli("ingest", lossy, SAMPLES / "whowhen" / "1.json", "--db", db)
    assert result.exit_code == 3, result.stderr  # EXIT_PARTIAL: a record was quarantined
    assert f"text lost: {lossy}: 66.7% of 3 text lines retrievable, 1 lost" in result.stderr
    assert "whowhen" not in result.stderr  # a file that keeps its text is not named
    assert "text retrievable: " in result.stdout and "lines of 2 files" in result.stdout
    with Database(db, read_only=True) as store:
        (counts,) = store.rows("SELECT counts FROM runs WHERE kind = 'ingest'")[0]
    fidelity = json.loads(counts)["fidelity"]
    assert fidelity["files_below_target"] == {str(lossy): [2, 3]}
    assert fidelity["text_lines"] > fidelity["text_lines_kept"] > 0


def test_formats_check_lists_the_lost_lines_without_a_corpus(tmp_path: Path) -> None:
    lossy = _lossy_file(tmp_path)
    result = run_cli("formats", "--check", lossy, "--width", "40")
    assert result.exit_code == 3  # EXIT_PARTIAL: something would be lost
    assert "format openai-chat, 1 traces, 2 steps, 1 rejected" in result.stdout
    assert "would be quarantined: line 2: not a chat record" in result.stderr
    assert "text retrievable: 66.7% of 3 text lines; 1 lost" in result.stdout
    assert "  lost: The reviewer said this run skipped the …" in result.stdout
    assert not list(tmp_path.glob("*.duckdb"))
    kept = run_cli("formats", "--check", SAMPLES / "otel" / "agentevals" / "tempo_export_with_batches.json")
    assert kept.exit_code == 0 and "text retrievable: 100.0% of 97 text lines; 0 lost" in kept.stdout
