"""A label run killed with SIGKILL resumes with no duplicate and no lost label."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from small_traces import write_small_traces
from tiny_lm import build_tiny_lm

from tracefail.features.judge_scoring import YesNoScorer
from tracefail.judge.local import LocalJudge
from tracefail.services.ingest import ingest
from tracefail.services.label import label
from tracefail.store import Database

ROOT = Path(__file__).resolve().parents[2]
N_TRACES = 6
CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from tiny_lm import build_tiny_lm
    from tracefail.features.judge_scoring import YesNoScorer
    from tracefail.judge.local import LocalJudge
    from tracefail.services.label import label
    from tracefail.store import Database

    model, tokenizer = build_tiny_lm()
    judge = LocalJudge(scorer=YesNoScorer(model, tokenizer, "tiny-llama", max_tokens=4096))

    def progress(done, total):
        with open({marker!r}, "a") as f:
            f.write(f"{{done}}\\n")

    label(Database({db!r}), judge=judge, limit={n}, on_progress=progress)
    """
)


def _judge() -> LocalJudge:
    model, tokenizer = build_tiny_lm()
    return LocalJudge(scorer=YesNoScorer(model, tokenizer, "tiny-llama", max_tokens=4096))


def _signal_mid_run(tmp_path: Path, sig: int, prelude: str = "") -> Path:
    """Start a label run in a child process, send it `sig` after two traces, return the corpus."""
    path = tmp_path / "corpus.duckdb"
    marker = tmp_path / "progress.txt"
    with Database(path) as db:
        assert ingest(db, [write_small_traces(tmp_path / "small")]).quarantined == 0
    code = prelude + CHILD.format(tests=str(ROOT / "tests"), marker=str(marker), db=str(path), n=N_TRACES)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and child.poll() is None:
        if marker.exists() and len(marker.read_text().split()) >= 2:
            break
        time.sleep(0.05)
    assert child.poll() is None, child.stderr.read().decode()[-2000:]
    os.kill(child.pid, sig)
    child.wait(timeout=60)
    child.stderr.close()
    return path


def test_sigkill_mid_run_then_resume(tmp_path):
    path = _signal_mid_run(tmp_path, signal.SIGKILL)
    with Database(path) as db:
        per_trace = db.rows(
            "SELECT trace_id, count(*) FROM labels WHERE source LIKE 'llm-judge:%' GROUP BY trace_id"
        )
        assert 2 <= len(per_trace) < N_TRACES
        assert {n for _, n in per_trace} == {14}  # whole traces only, never a partial one
        assert db.rows("SELECT status FROM runs WHERE kind = 'label'") == [("running",)]

        report = label(db, judge=_judge(), limit=N_TRACES)
        assert report.skipped == len(per_trace)
        assert report.judged == N_TRACES - len(per_trace)
        labels = db.rows(
            "SELECT trace_id, count(*), count(DISTINCT mode_id) FROM labels "
            "WHERE source = ? GROUP BY trace_id",
            [report.source],
        )
        assert len(labels) == N_TRACES and {(n, d) for _, n, d in labels} == {(14, 14)}
        attributions = db.rows(
            "SELECT trace_id, count(*) FROM attributions WHERE source = ? GROUP BY trace_id",
            [report.source],
        )
        assert len(attributions) == N_TRACES and {n for _, n in attributions} == {1}
        statuses = db.rows("SELECT status FROM runs WHERE kind = 'label' ORDER BY started_at")
        assert statuses == [("interrupted",), ("done",)]

        again = label(db, judge=_judge(), limit=N_TRACES)
        assert (again.skipped, again.judged) == (N_TRACES, 0)


def test_sigterm_ends_the_run_as_interrupted_with_whole_traces(tmp_path):
    """The CLI turns SIGTERM into KeyboardInterrupt, so the run row is closed, not left running."""
    prelude = "from tracefail.cli.common import stop_on_sigterm\nstop_on_sigterm()\n"
    path = _signal_mid_run(tmp_path, signal.SIGTERM, prelude)
    with Database(path) as db:
        per_trace = db.rows(
            "SELECT trace_id, count(*) FROM labels WHERE source LIKE 'llm-judge:%' GROUP BY trace_id"
        )
        assert 2 <= len(per_trace) <= N_TRACES and {n for _, n in per_trace} == {14}
        assert db.rows("SELECT status FROM runs WHERE kind = 'label'") == [("interrupted",)]
