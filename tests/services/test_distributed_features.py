"""`tracefail features --ray` survives what a cluster does to it: the driver SIGKILLed mid-run (its
own local Ray goes down with it; the rerun resumes) and a worker that dies (Ray restarts it and
retries the call). Either way every trace ends with one set of rows equal to the single-process run."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest

from tracefail.services.features import extract_features
from tracefail.services.ingest import ingest
from tracefail.store import Database

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data_samples" / "whowhen"
FAST = {"window": 1024, "layers": "0", "device": "cpu"}
PROGRESS = re.compile(rb"(\d+)/(\d+)")


def corpus(path: Path, n: int) -> list[str]:
    """The Who&When sample in a closed DuckDB file; the ids of its `n` shortest traces."""
    with Database(path) as db:
        assert ingest(db, [SAMPLES]).quarantined == 0
        rows = db.rows("SELECT trace_id FROM steps GROUP BY 1 ORDER BY sum(length(content)), 1 LIMIT ?", [n])
    return [r[0] for r in rows]


def feature_rows(db: Database) -> list[tuple[str, int, str, float]]:
    return db.rows("SELECT trace_id, step_idx, name, value FROM features ORDER BY ALL")


def assert_same_values(got: list[tuple], expected: list[tuple]) -> float:
    """Same keys, each key once, values within float tolerance; returns the worst relative gap."""
    keys = [row[:3] for row in got]
    assert len(keys) == len(set(keys)), "duplicate feature rows"
    want = {row[:3]: row[3] for row in expected}
    assert set(keys) == set(want)
    worst = max(abs(v - want[k]) / max(1.0, abs(want[k])) for *k3, v in got for k in [tuple(k3)])
    assert worst < 1e-5
    return worst


def descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid` and its command line (from /proc: Linux only)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            with suppress(OSError):
                found[child] = Path(f"/proc/{child}/cmdline").read_text().replace("\0", " ").strip()
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cli(db: Path, model: Path, traces: list[str]) -> list[str]:
    selected = [arg for trace in traces for arg in ("--traces", trace)]
    return [
        sys.executable, "-c", "from tracefail.cli import main; main()", "features", "--db", str(db),
        "--model", str(model), "--device", "cpu", "--window", "1024", "--layers", "0",
        "--ray", "--workers", "2", *selected,
    ]  # fmt: skip


def test_features_ray_cli_killed_mid_run_resumes_without_duplicates(tmp_path, model_dir):
    path = tmp_path / "corpus.duckdb"
    chosen = corpus(path, 4)
    shutil.copy(path, tmp_path / "single.duckdb")
    with Database(tmp_path / "single.duckdb") as single:
        extract_features(single, model=str(model_dir), trace_ids=chosen, **FAST)
        expected = feature_rows(single)
    # no RAY_ADDRESS: the child starts (and, killed, takes down) a local Ray of its own
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PYTHONPATH": str(ROOT)}
    # stderr on a terminal, so the CLI draws its progress bar: "done/total" counts stored traces
    master, slave = pty.openpty()
    child = subprocess.Popen(cli(path, model_dir, chosen), env=env, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen, stored = b"", 0
    deadline = time.monotonic() + 240
    while stored < 1 and child.poll() is None and time.monotonic() < deadline:
        if select.select([master], [], [], 0.05)[0]:
            seen += os.read(master, 65536)
            counts = [int(done) for done, total in PROGRESS.findall(seen) if int(total) == len(chosen)]
            stored = max(counts, default=0)
    assert child.poll() is None and stored >= 1, seen.decode(errors="replace")[-2000:]
    # its local Ray: GCS, raylet, the workers holding the model; not Ray's idle per-node agents,
    # which notice the raylet is gone on their own a minute later
    ray_processes = {p: name for p, name in descendants(child.pid).items() if not name.endswith("Agent")}
    assert any(name.startswith("ray::FeatureWorker") for name in ray_processes.values()), ray_processes
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    os.close(master)
    deadline = time.monotonic() + 30
    while (alive := [ray_processes[p] for p in ray_processes if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive, f"still running after the driver was killed: {alive}"

    with Database(path) as db:
        before = feature_rows(db)
        done_before = {row[0] for row in before}
        assert 1 <= len(done_before) < len(chosen)  # killed mid-run, finished traces kept whole
        assert_same_values(before, [row for row in expected if row[0] in done_before])
    # the killed driver's local Ray went down with it: the rerun starts a fresh one and finishes
    rerun = subprocess.run(cli(path, model_dir, chosen), env=env, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert f"{len(done_before)} already done, 0 failed" in rerun.stdout.decode()
    with Database(path) as db:
        worst = assert_same_values(feature_rows(db), expected)
        statuses = db.rows("SELECT status FROM runs WHERE kind = 'features' ORDER BY started_at")
    assert statuses == [("interrupted",), ("done",)]  # the rerun closes the killed run's record
    before_kill = f"{len(done_before)}/{len(chosen)} traces stored before the kill"
    print(f"\nkill-and-resume: {len(expected)} rows, {before_kill}, max relative gap vs single {worst:.2e}")


def test_a_feature_worker_killed_mid_run_is_restarted_and_its_calls_retried(local_ray, tmp_path, model_dir):
    from tracefail.features.extract import ExtractConfig
    from tracefail.services.distributed import RayOptions, feature_pool
    from tracefail.store.traces import get_steps

    chosen = corpus(tmp_path / "corpus.duckdb", 4)
    with Database(tmp_path / "corpus.duckdb") as db:
        extract_features(db, model=str(model_dir), trace_ids=chosen, **FAST)
        expected = feature_rows(db)
        items = [(trace_id, get_steps(db, trace_id)) for trace_id in chosen]
    config = ExtractConfig(window=FAST["window"], layers=FAST["layers"])

    def pid(actor) -> int:
        return local_ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))

    got: list[tuple[str, int, str, float]] = []
    with feature_pool(RayOptions(workers=2), str(model_dir), "cpu", config) as pool:
        victim = pool.actors[0]
        first_life = pid(victim)
        for n, (trace_id, outcome, failure) in enumerate(pool.run(items)):
            assert failure is None and outcome[2] is None, failure or outcome[2]
            got += [(trace_id, step, name, value) for step, name, value in outcome[0]]
            if n == 0:  # the victim still holds calls in flight: they must be retried, not lost
                local_ray.kill(victim, no_restart=False)
        assert pid(victim) != first_life  # Ray restarted it (a fresh process loaded the model)
    assert {row[0] for row in got} == set(chosen)
    worst = assert_same_values(got, expected)
    print(f"\nworker killed: {len(got)} rows, {len(chosen)} traces, max relative gap vs single {worst:.2e}")
