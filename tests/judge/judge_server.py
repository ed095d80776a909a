"""A real OpenAI-compatible HTTP server on 127.0.0.1 with scripted replies, for judge tests and
the benchmark. It records every request and the most requests it ever held at once."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (request body, request number from 1, headers) -> (status, body as dict or raw text, extra headers)
Responder = Callable[[dict, int, dict], tuple[int, Any, dict]]
_STEP = re.compile(r"^\[step (\d+) \| agent: ([^|\]]*)", re.MULTILINE)


def completion(content: str, prompt_tokens: int = 100, completion_tokens: int = 20) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "stub",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


def valid_answer(body: dict, mode_ids: list[str], present: frozenset[str] = frozenset()) -> str:
    """A correct verdict for the steps shown in this request: root cause at its first step."""
    steps = _STEP.findall(body["messages"][1]["content"])  # [system, user, (assistant, repair)]
    first_step, agent = (int(steps[0][0]), steps[0][1].strip()) if steps else (None, None)
    return json.dumps(
        {
            "modes": [
                {
                    "mode_id": m,
                    "present": m in present,
                    "probability": 0.9 if m in present else 0.1,
                    "evidence_steps": [first_step] if m in present and first_step is not None else [],
                    "agent": agent if m in present else None,
                    "rationale": "scripted",
                }
                for m in mode_ids
            ],
            "root_cause": {"agent": agent, "step": first_step, "probability": 0.7, "reason": "scripted"},
        }
    )


class StubServer:
    def __init__(self, responder: Responder, latency_s: float = 0.0) -> None:
        self.responder = responder
        self.latency_s = latency_s
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:  # /stats, for a server running in another process
                data = json.dumps({"requests": len(server.requests), "max_in_flight": server.max_in_flight})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data.encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    number = len(server.requests)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.latency_s:
                        time.sleep(server.latency_s)
                    status, payload, extra = server.responder(body, number, dict(self.headers))
                    data = payload if isinstance(payload, str) else json.dumps(payload)
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    for key, value in extra.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(data.encode())))
                    self.end_headers()
                    self.wfile.write(data.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 drops bursts of connections

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
