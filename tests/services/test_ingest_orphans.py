"""Reader processes end with their ingest (issue 24, case 6: 12 readers, 1.17 GB, were still
running 15 minutes after 4 SIGKILLed ingests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")


def _children(pid: int) -> set[int]:
    """Every descendant of `pid` (from /proc/*/stat)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigkilled_ingest_leaves_no_reader_behind(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    line = {"messages": [{"role": "user", "content": "word " * 400}]}
    for n in range(40):
        with (folder / f"{n:02}.jsonl").open("w") as out:
            for i in range(1000):
                out.write(json.dumps({"id": f"{n}-{i}", **line}) + "\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [Path(sys.executable).with_name("tracefail"), "ingest", folder, "--db", tmp_path / "c.duckdb"]
    ingest = subprocess.Popen([*command, "--workers", "2"], env=env, stderr=subprocess.DEVNULL)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(children := _children(ingest.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # the forkserver and two readers
        assert len(children) >= 3, "the readers never started"
        ingest.send_signal(signal.SIGKILL)
        ingest.wait()
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in children if _alive(pid)]
    finally:
        for pid in children | {ingest.pid}:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
