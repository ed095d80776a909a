"""`sql` within bounds (issue 24, cases 7 and 8): memory and time limits, a clean Ctrl-C, no
reading the temp folder of a Parquet corpus, no climbing out of a URL corpus with `..`."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import run_cli
from tests.store.test_partitioned import served
from tracefail.store import partitioned

HEAVY = "SELECT sum(hash(a.range + b.range)) FROM range(100000000) a, range(1000) b"
HTTPFS = importlib.util.find_spec("duckdb_extension_httpfs") is not None


def test_a_query_over_its_memory_limit_is_one_line(whowhen_corpus: Path) -> None:
    query = "SELECT string_agg(repeat('x', 200) || range::VARCHAR, ',') FROM range(2000000)"
    result = run_cli("sql", query, "--db", whowhen_corpus, "--memory-limit", "64MB")
    assert result.exit_code == 1
    assert "more memory than its limit" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_query_past_its_timeout_is_stopped(whowhen_corpus: Path) -> None:
    started = time.monotonic()
    result = run_cli("sql", HEAVY, "--db", whowhen_corpus, "--timeout", "1")
    assert result.exit_code == 1 and "1-second time limit" in result.stderr
    assert time.monotonic() - started < 30


def test_ctrl_c_ends_a_query_without_a_traceback(whowhen_corpus: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    tracefail = Path(sys.executable).with_name("tracefail")
    process = subprocess.Popen(
        [tracefail, "sql", HEAVY, "--db", whowhen_corpus, "--timeout", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(8)  # imports, opening, the query running (a Ctrl-C before is caught too)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr


def _export_partitioned(corpus: Path, folder: Path) -> None:
    """The corpus as partitioned Parquet (a folder that `--db` can open)."""
    result = run_cli(
        "export", "--db", corpus, "--format", "parquet", "--partition-by", "framework", "-o", folder
    )
    assert result.exit_code == 0


def test_a_parquet_folder_corpus_cannot_read_the_temp_folder(
    whowhen_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "parquet"
    _export_partitioned(whowhen_corpus, folder)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.txt").write_text("secret")
    monkeypatch.chdir(tmp_path)
    result = run_cli("sql", "SELECT content FROM read_text('.tmp/secret.txt')", "--db", folder)
    assert result.exit_code == 1 and "secret" not in result.stdout
    assert run_cli("sql", "SELECT count(*) FROM traces", "--db", folder).exit_code == 0


def test_urls_are_normalised_before_any_check() -> None:
    assert partitioned.location("http://h:1/good/../secret") == "http://h:1/secret"
    assert partitioned.location("http://h:1/a/%2e%2E/b/./c/") == "http://h:1/b/c"


@pytest.mark.skipif(not HTTPFS, reason="the httpfs extension wheel is not installed")
def test_a_url_corpus_reads_its_own_files_only_and_a_huge_manifest_is_refused(
    whowhen_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    _export_partitioned(whowhen_corpus, site / "good")
    (site / "secret").mkdir()
    (site / "secret" / "_files.json").write_text('{"tables": {}, "password": "hunter2"}')
    (site / "huge").mkdir()
    (site / "huge" / "_files.json").write_text(json.dumps({"tables": {}, "pad": "x" * (3 * 1024 * 1024)}))
    monkeypatch.setattr(partitioned, "MAX_MANIFEST_BYTES", 1024 * 1024)
    with served(site) as url:
        assert run_cli("sql", "SELECT count(*) FROM traces", "--db", f"{url}/good").exit_code == 0
        for sneaky in ("good/../secret/_files.json", "good/%2e%2e/secret/_files.json", "secret/_files.json"):
            result = run_cli("sql", f"SELECT content FROM read_text('{url}/{sneaky}')", "--db", f"{url}/good")
            assert result.exit_code == 1 and "hunter2" not in result.stdout, sneaky
        result = run_cli("sql", "SELECT 1", "--db", f"{url}/huge")
        assert result.exit_code == 1 and "over the 1,048,576-byte limit" in result.stderr
