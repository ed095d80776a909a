"""A real `tracefail serve` process on 127.0.0.1 for the tests that kill it, measure its memory
or read its corpus from another process while it runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    def __init__(self, db_path: Path, grpc: bool = False, timeouts_s: float | None = None) -> None:
        """`timeouts_s`: the header and body deadlines, shorter than serve's (slow-client tests)."""
        self.port = free_port()
        self.grpc_port = free_port() if grpc else -1
        shorter = (
            ""
            if timeouts_s is None
            else "import tracefail.services.serve as s; "
            f"s.HEADER_TIMEOUT_S = s.BODY_TIMEOUT_S = {timeouts_s!r}; "
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                shorter + "from tracefail.cli import main; main()",
                "serve",
                "--db",
                str(db_path),
                "--port",
                str(self.port),
                "--grpc-port",
                str(self.grpc_port),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(300):  # until it listens
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        self.process.stderr.read() if self.process.stderr else "died"
                    ) from None
                time.sleep(0.05)
        raise RuntimeError("serve did not start listening")

    def memory(self, field: str) -> int:
        """VmRSS or VmHWM (peak) of the process, in bytes (`Threads`: a count)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * (1 if field == "Threads" else 1024)
        raise KeyError(field)

    def threads(self) -> int:
        return self.memory("Threads")

    def stop(self) -> str:
        """SIGTERM, wait, and the process' stderr."""
        self.process.terminate()
        _, stderr = self.process.communicate(timeout=60)
        return stderr

    def kill(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=30)


def post(
    url: str, body: bytes, content_type: str = "application/json", timeout: float = 30, **headers: str
) -> tuple[int, Any]:
    request = urllib.request.Request(
        url + "/v1/traces", data=body, method="POST", headers={"Content-Type": content_type, **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if content_type == "application/json" else raw
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw[:1] == b"{" else raw
