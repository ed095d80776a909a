"""A corpus exported as Hive-partitioned Parquet answers every read-only command with the same
numbers as the DuckDB file it came from."""

from __future__ import annotations

import functools
import importlib.util
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from judge.judge_server import StubServer, completion, valid_answer
from typer.testing import CliRunner

from tracefail.cli import app
from tracefail.services.ingest import ingest
from tracefail.services.label import JudgeSpec, label
from tracefail.store import Database, StoreError
from tracefail.taxonomy import find

ROOT = Path(__file__).resolve().parents[2]
MODES = [m.id for m in find("mast-v1").taxonomy.modes]
READ_ONLY = [
    ["stats", "--format", "json"],
    ["stats", "--source", "judge", "--format", "json"],
    ["slices", "--source", "dataset", "--min-size", "2", "--format", "json"],
    ["eval", "--reference", "dataset", "--bootstrap", "50", "--json"],
    ["ls", "--json"],
    ["sql", "SELECT framework, count(*) AS n, sum(n_steps) AS steps FROM traces GROUP BY ALL ORDER BY ALL"],
    ["sql", "SELECT source, mode_id, count(*), sum(present::INT) FROM labels GROUP BY ALL ORDER BY ALL"],
]


def answer(body: dict, number: int, headers: dict) -> tuple[int, dict, dict]:
    return 200, completion(valid_answer(body, MODES, present=frozenset({"1.3", "3.3"}))), {}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """MAST (dataset labels, several frameworks) + Who&When (attributions) + Claude Code (a
    framework with a space, which DuckDB escapes in folder names) + a judge run on 8."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.duckdb"
    with Database(path) as db:
        samples = [ROOT / "data_samples" / name for name in ("mast", "whowhen", "claude-code")]
        assert ingest(db, samples).quarantined == 0
        with StubServer(answer) as server:
            spec = JudgeSpec(spec="openai:stub", base_url=server.base_url, concurrency=4)
            assert label(db, judge=spec, limit=8).judged == 8
    return path


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Requests are not the test's output."""


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """`folder` over plain HTTP on 127.0.0.1 (no listing DuckDB can use): its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("by", ["framework", "date"])
def test_read_only_commands_agree_on_the_file_the_parquet_folder_and_its_url(corpus, tmp_path, by):
    folder = tmp_path / f"by-{by}"
    run("export", "--db", str(corpus), "--format", "parquet", "--partition-by", by, "-o", str(folder))
    assert any(p.name.startswith(f"{by}=") for p in (folder / "traces").iterdir())
    if by == "framework":
        assert (folder / "traces" / "framework=Claude%20Code").is_dir()
    over_http = importlib.util.find_spec("duckdb_extension_httpfs") is not None  # the URL half needs it
    with served(folder) as url:
        corpora = {"file": str(corpus), "folder": str(folder)} | ({"url": url} if over_http else {})
        for args in READ_ONLY:
            outputs = {name: run(*args, "--db", db) for name, db in corpora.items()}
            assert len(set(outputs.values())) == 1, (args, outputs)
        html = {}
        for name, db in corpora.items():
            run("report", "--db", db, "-o", str(tmp_path / f"{name}.html"))
            text = (tmp_path / f"{name}.html").read_text(encoding="utf-8").replace(db, "DB")
            text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "WHEN", text)  # when it was rendered
            html[name] = re.sub(r"base64,[A-Za-z0-9+/=]+", "PNG", text)  # PNG bytes carry render metadata
    assert len(set(html.values())) == 1 and "PNG" in html["file"]


def test_a_parquet_corpus_is_read_only_and_bad_folders_are_one_line_errors(corpus, tmp_path):
    folder = tmp_path / "by-llm"
    run("export", "--db", str(corpus), "--format", "parquet", "--partition-by", "llm", "-o", str(folder))
    with pytest.raises(StoreError, match="read-only"):
        Database(folder)
    with Database(folder, read_only=True) as db:
        assert db.rows("SELECT count(*) FROM features") == [(0,)]  # nothing exported: the empty table
    export = ["export", "--db", str(corpus), "--partition-by", "llm", "-o"]
    again = CliRunner().invoke(app, [*export, str(folder), "--format", "parquet"])
    assert again.exit_code == 1 and "not an empty folder" in again.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["stats", "--db", str(empty)])
    assert result.exit_code == 1 and "not a tracefail Parquet corpus" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    usage = CliRunner().invoke(app, [*export, str(tmp_path / "x"), "--format", "csv"])
    assert usage.exit_code == 2


def test_the_browser_reads_a_parquet_corpus_and_refuses_to_write_it(corpus, tmp_path):
    from tracefail.services.browse import BrowseService, CorpusFilter

    folder = tmp_path / "by-framework"
    by = ["--partition-by", "framework"]
    run("export", "--db", str(corpus), "--format", "parquet", *by, "-o", str(folder))
    on_file, on_folder = BrowseService(corpus, "ann"), BrowseService(folder, "ann")
    on_folder.prepare()
    everything = CorpusFilter()
    assert on_folder.count(everything) == on_file.count(everything) > 0
    first = on_file.page(everything, 0, 1).rows[0]["trace_id"]
    assert on_folder.page(everything, 0, 5) == on_file.page(everything, 0, 5)
    assert on_folder.trace(first) == on_file.trace(first)
    with pytest.raises(StoreError, match="read-only"):
        on_folder.mistake(first, "Solver", 0)
    if importlib.util.find_spec("duckdb_extension_httpfs") is None:
        return  # the URL half needs DuckDB's httpfs wheel
    with served(folder) as url:
        on_url = BrowseService(url, "ann")
        on_url.prepare()
        assert on_url.count(everything) == on_file.count(everything)
        assert on_url.page(everything, 0, 5) == on_file.page(everything, 0, 5)
        assert on_url.trace(first) == on_file.trace(first)


def test_a_url_without_the_export_manifest_is_a_one_line_error(tmp_path):
    pytest.importorskip("duckdb_extension_httpfs")
    (tmp_path / "traces").mkdir()
    with served(tmp_path) as url:
        result = CliRunner().invoke(app, ["stats", "--db", f"{url}/"])
    assert result.exit_code == 1 and "no readable _files.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
