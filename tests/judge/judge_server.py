"""A real OpenAI-compatible HTTP server on 127.0.0.1 with scripted replies, for judge tests and
the benchmark. It records every request and the most requests it ever held at once."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
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


class KeepAliveServer:
    """The benchmark's server: asyncio, HTTP/1.1 keep-alive, one event loop in its own process.

    The threaded StubServer above speaks HTTP/1.0 (a new connection and thread per request) and
    tops out below the rate a 200 ms server at concurrency 64 must reach (320/s); this one keeps
    connections open and answers each request exactly `latency_s` after it was read. GET /stats
    gives the request count and the most requests it ever held at once."""

    async def __aenter__(self) -> KeepAliveServer:
        self.base_url = await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    def __init__(self, responder: Responder, latency_s: float = 0.0) -> None:
        self.responder = responder
        self.latency_s = latency_s
        self.requests = 0
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen on a free port of 127.0.0.1; returns the base URL (…/v1)."""
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                method, path, version = request_line.decode("latin-1").split()
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    key, _, value = line.decode("latin-1").partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, data, extra = await self._answer(method, path, body, headers)
                close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "content-type: application/json"]
                head += [f"{k}: {v}" for k, v in extra.items()]
                head += [
                    f"content-length: {len(data)}",
                    "connection: close" if close else "connection: keep-alive",
                ]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
                await writer.drain()
                if close:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away, or sent something this minimal server does not speak
        finally:
            writer.close()

    async def _answer(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, dict]:
        if method == "GET" and path == "/stats":
            return (
                200,
                json.dumps({"requests": self.requests, "max_in_flight": self.max_in_flight}).encode(),
                {},
            )
        self.requests += 1
        number = self.requests
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency_s)
            status, payload, extra = self.responder(json.loads(body or b"{}"), number, headers)
        finally:
            self.in_flight -= 1
        data = payload if isinstance(payload, str) else json.dumps(payload)
        return status, data.encode(), extra
