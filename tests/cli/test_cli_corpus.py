"""Corpus commands end to end through the real CLI (Typer's runner, a real DuckDB file)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tracefail.cli import app

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """The Who&When and MAST samples ingested into a fresh corpus file."""
    path = tmp_path / "corpus.duckdb"
    result = run("ingest", SAMPLES / "whowhen", SAMPLES / "mast", "--db", path)
    assert result.exit_code == 0, result.stderr
    return path


def test_ingest_prints_counts_and_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    first = run("ingest", SAMPLES / "whowhen", "--db", db)
    assert first.exit_code == 0
    assert first.stdout.strip() == (
        "ingested 20 traces, 176 steps, 0 labels, 20 attributions from 20 files; "
        "0 duplicates skipped, 0 quarantined; text retrievable: 100.0% of 1,842 lines of 20 files"
    )
    second = run("ingest", SAMPLES / "whowhen", "--db", db)
    assert second.exit_code == 0
    assert "ingested 0 traces, 0 steps" in second.stdout and "20 duplicates skipped" in second.stdout


def test_ingest_verbose_says_which_reader_took_each_file_and_how_many_processes_read(tmp_path: Path) -> None:
    result = run("ingest", SAMPLES / "mast", "--db", tmp_path / "c.duckdb", "-v", "--workers", "0")
    assert result.exit_code == 0, result.stderr
    assert "mad_full_sample.json as mast" in result.stderr
    assert "reader processes: none (read in this process)" in result.stderr


def test_ingest_usage_errors_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    unknown = run("ingest", SAMPLES / "whowhen", "--db", db, "--format", "nope")
    assert unknown.exit_code == 2 and "unknown format 'nope'" in unknown.stderr
    missing = run("ingest", tmp_path / "nowhere.json", "--db", db)
    assert missing.exit_code == 2 and "no such file or folder" in missing.stderr
    (tmp_path / "empty_dir").mkdir()
    nothing = run("ingest", tmp_path / "empty_dir", "--db", db)
    assert nothing.exit_code == 2 and "no trace files" in nothing.stderr


def test_forced_format_reads_a_file_detection_would_not(tmp_path: Path) -> None:
    source = SAMPLES / "openai-chat" / "conversations.jsonl"
    renamed = tmp_path / "chats.ndjson"
    shutil.copy(source, renamed)
    result = run("ingest", renamed, "--db", tmp_path / "c.duckdb", "--format", "openai-chat")
    assert result.exit_code == 0 and "ingested 2 traces" in result.stdout
    wrong = run("ingest", renamed, "--db", tmp_path / "d.duckdb", "--format", "mast")
    assert wrong.exit_code == 4 and "expected a JSON array" in wrong.stderr  # nothing came in
    some = run(
        "ingest",
        renamed,
        SAMPLES / "mast" / "mad_full_sample.json",
        "--db",
        tmp_path / "e.duckdb",
        "--format",
        "mast",
    )
    assert some.exit_code == 3 and "ingested 8 traces" in some.stdout  # some came in, one file did not


def test_formats_lists_every_adapter() -> None:
    result = run("formats")
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names[:3] == ["mast-human", "mast", "whowhen"] and "otel" in names and names[-1] == "generic"


def test_ls_json(corpus: Path) -> None:
    result = run("ls", "--db", corpus, "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert len(rows) == 20 + 8 + 4 + 1
    mast = next(r for r in rows if r["trace_id"] == "mast:AG2_GSM-Plus_GPT4o/7")
    assert (mast["framework"], mast["llm"], mast["n_labels"], mast["n_modes_present"]) == (
        "AG2",
        "GPT-4o",
        14,
        2,
    )
    assert mast["label_sources"] == ["dataset:mast"]
    assert {r["n_attributions"] for r in rows if r["source"] == "whowhen"} == {1}


def test_ls_table_prints_ids(corpus: Path) -> None:
    result = run("ls", "--db", corpus)
    assert result.exit_code == 0 and "mast-human:16" in result.stdout


def test_show_json_and_text(corpus: Path) -> None:
    result = run("show", "mast-human:16", "--db", corpus, "--json")
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    assert shown["trace"]["framework"] == "MetaGPT"
    assert [s["step_idx"] for s in shown["steps"]] == list(range(len(shown["steps"])))
    assert {lbl["source"] for lbl in shown["labels"]} == {f"human:annotator_{i}" for i in (1, 2, 3)}
    text = run("show", "mast-human:16", "--db", corpus)
    assert text.exit_code == 0 and "SimpleCoder" in text.stdout
    missing = run("show", "nope", "--db", corpus)
    assert missing.exit_code == 2 and "no trace 'nope'" in missing.stderr


def test_show_neutralises_markup_and_terminal_codes(tmp_path: Path) -> None:
    record = json.loads((SAMPLES / "whowhen" / "1.json").read_text())
    record["history"][0]["content"] = "[red]not red[/red] \x1b[2Jcleared?"
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(record))
    db = tmp_path / "c.duckdb"
    assert run("ingest", path, "--db", db).exit_code == 0
    shown = run("show", f"whowhen:algorithm-generated/{record['question_ID']}", "--db", db)
    assert "[red]not red[/red] ␛[2Jcleared?" in shown.stdout
    assert "\x1b" not in shown.stdout


def test_sql_reads_and_refuses_writes(corpus: Path) -> None:
    counted = run("sql", "SELECT count(*) AS n FROM traces", "--db", corpus, "--format", "json")
    assert counted.exit_code == 0 and json.loads(counted.stdout) == [{"n": 33}]
    as_csv = run(
        "sql",
        "SELECT source, count(*) AS n FROM traces GROUP BY 1 ORDER BY 1",
        "--db",
        corpus,
        "--format",
        "csv",
    )
    assert as_csv.stdout.splitlines()[0] == "source,n"
    for statement in (
        "DELETE FROM traces",
        "DROP TABLE steps",
        "INSERT INTO runs (run_id, kind, status, started_at) VALUES ('r', 'k', 's', now())",
    ):
        refused = run("sql", statement, "--db", corpus)
        assert refused.exit_code == 1 and "read-only" in refused.stderr
    still = run("sql", "SELECT count(*) AS n FROM traces", "--db", corpus, "--format", "json")
    assert json.loads(still.stdout) == [{"n": 33}]
    bad = run("sql", "SELEC nonsense", "--db", corpus)
    assert bad.exit_code == 1 and bad.stderr.startswith("error: SQL error")
    assert run("sql", "SELECT 1", "--db", corpus, "--format", "xml").exit_code == 2


def test_export_round_trips(corpus: Path, tmp_path: Path) -> None:
    shown = json.loads(run("show", "mast:ChatDev_ProgramDev_GPT4o/3", "--db", corpus, "--json").stdout)
    jsonl = tmp_path / "out.jsonl"
    assert run("export", "--db", corpus, "--format", "jsonl", "-o", jsonl).exit_code == 0
    records = {r["trace_id"]: r for r in map(json.loads, jsonl.read_text().splitlines())}
    assert len(records) == 33
    exported = records["mast:ChatDev_ProgramDev_GPT4o/3"]
    assert [s["content"] for s in exported["steps"]] == [s["content"] for s in shown["steps"]]
    assert len(exported["labels"]) == 14

    parquet = tmp_path / "out.parquet"
    assert run("export", "--db", corpus, "--format", "parquet", "-o", parquet).exit_code == 0
    table = pq.read_table(parquet).to_pylist()
    by_id = {r["trace_id"]: r for r in table}
    assert len(by_id) == 33
    assert [s["agent"] for s in by_id["mast:ChatDev_ProgramDev_GPT4o/3"]["steps"]] == [
        s["agent"] for s in shown["steps"]
    ]

    flat = tmp_path / "csv"
    assert run("export", "--db", corpus, "--format", "csv", "-o", flat).exit_code == 0
    assert sorted(p.name for p in flat.iterdir()) == ["attributions.csv", "labels.csv", "steps.csv"]
    with (flat / "steps.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert "trace_labels" not in rows[0]  # labels live in their own file, not on every step row
    total_steps = json.loads(
        run("sql", "SELECT count(*) AS n FROM steps", "--db", corpus, "--format", "json").stdout
    )[0]["n"]
    assert len(rows) == total_steps
    chatdev = [r for r in rows if r["trace_id"] == "mast:ChatDev_ProgramDev_GPT4o/3"]
    assert [r["content"] for r in chatdev] == [s["content"] for s in shown["steps"]]
    assert run("export", "--db", corpus, "--format", "xlsx", "-o", flat).exit_code == 2


def test_acceptance_whowhen_algorithm_generated(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "whowhen-algorithm-generated"
    db = tmp_path / "ww.duckdb"
    first = run("ingest", folder, "--db", db)
    assert first.exit_code == 0, first.stderr
    counts = run(
        "sql",
        "SELECT (SELECT count(*) FROM traces) t, (SELECT count(*) FROM steps) s, "
        "(SELECT count(*) FROM attributions WHERE source = 'dataset:whowhen') a",
        "--db",
        db,
        "--format",
        "json",
    )
    assert json.loads(counts.stdout) == [{"t": 126, "s": 1099, "a": 126}]
    again = run("ingest", folder, "--db", db)
    assert again.exit_code == 0 and "ingested 0 traces, 0 steps, 0 labels, 0 attributions" in again.stdout
    assert json.loads(run("sql", "SELECT count(*) n FROM traces", "--db", db, "--format", "json").stdout) == [
        {"n": 126}
    ]


def test_acceptance_corrupted_file_among_good_ones(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(shared_data / "whowhen-algorithm-generated", folder)
    victim = sorted(folder.glob("*.json"))[7]
    victim.write_bytes(victim.read_bytes()[:900])
    db = tmp_path / "mixed.duckdb"
    result = run("ingest", folder, "--db", db)
    assert result.exit_code == 3
    lines = [line for line in result.stderr.splitlines() if line.startswith("quarantined:")]
    assert len(lines) == 1 and str(victim) in lines[0] and "not valid JSON" in lines[0]
    assert "ingested 125 traces" in result.stdout and "1 quarantined" in result.stdout
    rows = json.loads(
        run("sql", "SELECT file, record, reason FROM quarantine", "--db", db, "--format", "json").stdout
    )
    assert [(Path(r["file"]).name, r["record"]) for r in rows] == [(victim.name, "whole file")]
    assert json.loads(run("sql", "SELECT count(*) n FROM traces", "--db", db, "--format", "json").stdout) == [
        {"n": 125}
    ]


def test_export_to_an_unwritable_path_fails_in_one_line(corpus: Path, tmp_path: Path) -> None:
    result = run("export", "--db", corpus, "--format", "jsonl", "-o", tmp_path / "missing" / "out.jsonl")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "cannot write" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command",
    [["label", "--judge", "openai:gpt-4o-mini"], ["features"], ["calibrate"], ["graph", "--detect"], ["ls"]],
)
def test_a_mistyped_db_is_an_error_not_a_new_empty_corpus(tmp_path, command):
    db = tmp_path / "typo.duckdb"
    result = run(*command, "--db", db)
    assert result.exit_code == 1
    assert f"{db}: no such database (run `tracefail ingest` first)" in result.output
    assert not db.exists()


def test_jsonl_export_ingests_back_losslessly(corpus: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.jsonl"
    assert run("export", "--db", corpus, "-o", first).exit_code == 0
    copy = tmp_path / "copy.duckdb"
    back = run("ingest", first, "--db", copy)
    assert back.exit_code == 0, back.output
    assert "ingested 33 traces" in back.stdout
    second = tmp_path / "second.jsonl"
    assert run("export", "--db", copy, "-o", second).exit_code == 0
    # written by the store on ingest (ids, times, the hash of the stored form), not trace content;
    # a label's run_id is content (which judge run wrote it) except for labels shipped in a file,
    # whose run is the ingest itself
    store_only = {"ingest_run_id", "ingested_at", "label_id", "attribution_id", "created_at", "content_hash"}
    store_only |= {"run_id"}

    def content(path: Path) -> list[dict]:
        def strip(value):
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items() if k not in store_only}
            if isinstance(value, list):  # labels come back in insert order: compare as sets
                return sorted((strip(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
            return value

        return [strip(json.loads(line)) for line in path.read_text().splitlines()]

    assert content(first) == content(second)


def test_export_types_filter_features_and_output_paths(corpus: Path, tmp_path: Path) -> None:
    import polars as pl

    jsonl = tmp_path / "ag.jsonl"
    result = run("export", "--db", corpus, "--filter", "framework:ChatDev", "-o", jsonl)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert records and all(r["framework"] == "ChatDev" for r in records)
    assert records[0]["ingested_at"].endswith("+00:00") and "T" in records[0]["ingested_at"]
    assert isinstance(records[0]["labels"][0]["label_id"], str)
    bad = run("export", "--db", corpus, "--filter", "model:gpt-4o", "-o", jsonl)
    assert bad.exit_code == 2 and "unknown filter key 'model'" in bad.stderr
    parquet = tmp_path / "out.parquet"
    assert run("export", "--db", corpus, "--format", "parquet", "-o", parquet).exit_code == 0
    frame = pl.read_parquet(parquet)
    assert frame.schema["metadata"] == pl.String
    steps = frame.select(pl.col("steps")).explode("steps").unnest("steps")
    assert steps.schema["tool_calls"] == pl.String and steps.schema["metadata"] == pl.String
    assert frame.schema["ingested_at"] == pl.Datetime("us", "UTC")
    folder = tmp_path / "with-features"
    assert run("export", "--db", corpus, "--features", "-o", folder).exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == ["features.jsonl", "traces.jsonl"]
    several = run("export", "--db", corpus, "--format", "csv", "-o", tmp_path / "one.csv")
    assert several.exit_code == 2 and "give a folder" in several.stderr


def test_an_unknown_id_is_one_status_and_one_message_everywhere_and_prefixes_resolve(tmp_path) -> None:
    db = tmp_path / "c.duckdb"
    assert runner.invoke(app, ["ingest", "--db", str(db), str(SAMPLES / "whowhen")]).exit_code == 0
    messages = set()
    for args in (
        ["show", "nope"],
        ["graph", "nope"],
        ["diff", "nope", "nope"],
        ["label", "--traces", "nope"],
    ):
        result = runner.invoke(app, [*args, "--db", str(db)])
        assert result.exit_code == 2, (args, result.output)
        messages.add(result.stderr.strip().split("error: ")[-1].split(";")[0])
    assert messages == {f"no trace 'nope' in {db}"}
    full = "whowhen:algorithm-generated/df6561b2-7ee5-4540-baab-5095f742716a"
    shown = runner.invoke(app, ["show", "df6561", "--db", str(db), "--json"])
    assert shown.exit_code == 0 and full in shown.stdout
    near = runner.invoke(
        app, ["graph", "whowhen:algorithm-generated/df6561b2-7ee5-4540-baab-5095f742716b", "--db", str(db)]
    )
    assert near.exit_code == 2 and f"did you mean {full}" in near.stderr
