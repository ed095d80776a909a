"""A writing command while another process holds the corpus: it says once that it waits, and
Ctrl-C during the wait ends it with one line naming the file, exit 130, nothing written (real
processes, real DuckDB file)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import SAMPLES

HOLD = """
import sys, time
from tracefail.store import Database
db = Database(sys.argv[1], read_only=True)
print("held", flush=True)
time.sleep(60)
"""


def test_ctrl_c_while_waiting_for_the_lock_is_one_line(whowhen_corpus: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(whowhen_corpus)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = whowhen_corpus.read_bytes()
        writer = subprocess.Popen(
            [Path(sys.executable).with_name("tracefail"), "ingest", SAMPLES / "otel", "--db", whowhen_corpus],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert writer.stderr is not None
        waiting = writer.stderr.readline()  # the line before the wait: then Ctrl-C lands in it
        assert f"open in another process (PID {holder.pid}); waiting up to 10 s" in waiting
        time.sleep(0.3)
        writer.send_signal(signal.SIGINT)
        _, rest = writer.communicate(timeout=60)
        assert writer.returncode == 130
        assert rest.splitlines() == [
            f"error: {whowhen_corpus}: interrupted while waiting for another process to let go of it; "
            "nothing was written"
        ]
        assert whowhen_corpus.read_bytes() == before
    finally:
        holder.kill()
        holder.wait(timeout=30)
