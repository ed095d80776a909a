"""Live ingest: an OTLP/HTTP trace receiver (`POST /v1/traces`) that any OpenTelemetry exporter
can point at.

Request threads only decode and check a request (so a bad one gets its 400 at once); one writer
thread owns the database and writes what they queue in batches, merging a trace's spans that
arrive in several requests into the stored trace. Closing flushes the queue before returning.
The stdlib server is enough here: exporters batch spans, so requests are few and large.
"""

from __future__ import annotations

import itertools
import queue
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracefail.ingest.base import excerpt
from tracefail.ingest.otlp_live import (
    PROTOBUF,
    BadRequest,
    SpanGroup,
    decode_body,
    spans_by_trace,
)
from tracefail.services.span_merge import IncomingSpans, merge_spans
from tracefail.store import Database
from tracefail.store import runs as run_store
from tracefail.store import traces as trace_store

TRACES_PATH = "/v1/traces"
MAX_BODY = 64 * 1024 * 1024
BATCH_SPANS = 5000  # write once this many spans wait ...
FLUSH_SECONDS = 0.5  # ... or once no request came for this long
QUEUED_REQUESTS = 256
_INVALID_ARGUMENT = 3  # google.rpc.Code, the status OTLP/HTTP puts in a 400 body


@dataclass(frozen=True)
class ServeReport:
    requests: int
    bad_requests: int
    spans: int
    traces_written: int
    steps_written: int
    quarantined: int
    run_id: str


@dataclass(frozen=True)
class _Spans:
    groups: dict[str, list[SpanGroup]]


@dataclass(frozen=True)
class _Bad:
    record: str
    reason: str
    text: str


class LiveWriter:
    """The one thread that writes to the corpus: queued exports in, merged traces out."""

    def __init__(self, db: Database, source: str) -> None:
        self.db = db
        self.source = source
        self.run_id = run_store.start_run(db, "serve", {"source": source})
        self.counts = dict.fromkeys(
            ("requests", "bad_requests", "spans", "traces", "steps", "quarantined"), 0
        )
        self._lock = threading.Lock()
        # bounded: when the writer falls behind, request threads wait instead of memory growing
        self._queue: queue.Queue[_Spans | _Bad | None] = queue.Queue(maxsize=QUEUED_REQUESTS)
        self._thread = threading.Thread(target=self._run, name="tracefail-live-writer", daemon=True)
        self._thread.start()

    def submit(self, groups: dict[str, list[SpanGroup]]) -> int:
        spans = sum(len(s) for groups_ in groups.values() for _, s in groups_)
        with self._lock:
            self.counts["requests"] += 1
            self.counts["spans"] += spans
        self._queue.put(_Spans(groups))
        return spans

    def reject(self, record: str, reason: str, text: str) -> None:
        with self._lock:
            self.counts["requests"] += 1
            self.counts["bad_requests"] += 1
        self._queue.put(_Bad(record, reason, text))

    def close(self) -> ServeReport:
        """Write everything queued, stop the thread, and close the run row."""
        self._queue.put(None)
        self._thread.join()
        counts = dict(self.counts)
        run_store.finish_run(self.db, self.run_id, counts=counts, n_errors=counts["quarantined"])
        return ServeReport(
            requests=counts["requests"],
            bad_requests=counts["bad_requests"],
            spans=counts["spans"],
            traces_written=counts["traces"],
            steps_written=counts["steps"],
            quarantined=counts["quarantined"],
            run_id=self.run_id,
        )

    def _run(self) -> None:
        pending: dict[str, list[SpanGroup]] = {}
        waiting = 0
        while True:
            try:
                item = self._queue.get(timeout=FLUSH_SECONDS if pending else None)
            except queue.Empty:
                item = _Spans({})  # quiet for a while: write what waits
            if isinstance(item, _Bad):
                self._quarantine(item.record, item.reason, item.text)
                continue
            if item is not None:
                for trace_id, groups in item.groups.items():
                    pending.setdefault(trace_id, []).extend(groups)
                    waiting += sum(len(spans) for _, spans in groups)
                if waiting < BATCH_SPANS and item.groups:
                    continue
            self._write(pending)
            pending, waiting = {}, 0
            if item is None:
                return

    def _write(self, pending: dict[str, list[SpanGroup]]) -> None:
        if not pending:
            return
        try:
            merged = merge_spans(
                self.db,
                [
                    IncomingSpans(native, groups, self.source, "otlp-live")
                    for native, groups in pending.items()
                ],
                self.run_id,
            )
        except Exception as exc:  # a failed write must not stop the receiver; say what was lost
            for native in pending:
                self._quarantine(f"trace {native}", f"not written: {type(exc).__name__}: {exc}", "")
            return
        for native, problem in merged.problems:
            self._quarantine(f"trace {native}", problem, "")
        added = merged.written
        with self._lock:
            self.counts["traces"] += added.traces
            self.counts["steps"] += added.steps

    def _quarantine(self, record: str, reason: str, text: str) -> None:
        with self._lock:
            self.counts["quarantined"] += 1
        trace_store.quarantine(self.db, self.source, record, reason, excerpt(text, 2000), self.run_id)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.split("?")[0] in ("/", "/health"):
            self._send(200, "text/plain", b"tracefail OTLP/HTTP receiver: POST /v1/traces\n")
        else:
            self._send(404, "text/plain", b"not found\n")

    def do_POST(self) -> None:
        if self.path.split("?")[0] != TRACES_PATH:
            self._send(404, "text/plain", f"only {TRACES_PATH} is served\n".encode())
            return
        content_type = self.headers.get("Content-Type")
        protobuf = (content_type or "").split(";")[0].strip().lower() == PROTOBUF
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._error(400, "missing or bad Content-Length (chunked bodies are not accepted)", protobuf, "")
            return
        if length > MAX_BODY:
            self.close_connection = True
            self._error(413, f"body of {length:,} bytes is over the {MAX_BODY:,}-byte limit", protobuf, "")
            return
        body = self.rfile.read(length)
        number = next(self.server.request_numbers)
        try:
            groups = spans_by_trace(decode_body(body, content_type, self.headers.get("Content-Encoding")))
        except BadRequest as exc:
            self._error(400, str(exc), protobuf, body[:2000].decode("utf-8", "replace"), number)
            return
        self.server.writer.submit(groups)
        if protobuf:
            self._send(200, PROTOBUF, ExportTraceServiceResponse().SerializeToString())
        else:
            self._send(200, "application/json", b"{}")

    def _error(self, code: int, reason: str, protobuf: bool, text: str, number: int | None = None) -> None:
        self.server.writer.reject(f"request {number}" if number else "request", reason, text)
        status = Status(code=_INVALID_ARGUMENT, message=reason)
        if protobuf:
            self._send(code, PROTOBUF, status.SerializeToString())
        else:
            self._send(code, "application/json", json_format.MessageToJson(status).encode())

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: services never print; counts and quarantine rows say what happened."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    writer: LiveWriter

    def __init__(self, address: tuple[str, int]) -> None:
        self.request_numbers = itertools.count(1)
        super().__init__(address, _Handler)


class OtlpReceiver:
    """Bind at once (so a taken port fails before anything runs), serve until stopped, then
    flush: `serve_forever()` blocks; `close()` (from any thread, or after Ctrl-C) returns counts."""

    def __init__(self, db: Database, host: str = "127.0.0.1", port: int = 4318) -> None:
        self._server = _Server((host, port))
        self.host, self.port = str(self._server.server_address[0]), int(self._server.server_address[1])
        self._writer = self._server.writer = LiveWriter(
            db, f"otlp-http://{self.host}:{self.port}{TRACES_PATH}"
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Make `serve_forever` (running in another thread) return."""
        self._server.shutdown()

    def close(self) -> ServeReport:
        self._server.server_close()
        return self._writer.close()
