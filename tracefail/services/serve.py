"""Live ingest: OTLP/HTTP (`POST /v1/traces`, JSON or protobuf, gzip) on uvicorn and OTLP/gRPC
(`TraceService/Export`) on grpcio, both feeding one `LiveWriter`.

Why these servers: they already bound what a network server must (header size, idle and
keep-alive connections, concurrent connections and streams, message size); what they do not
bound is added here in a few lines: a deadline for a request's headers (uvicorn has none, so a
slow client could hold a connection forever), a deadline for its body, a cap on requests in
flight (429), a cap on what a gzip body inflates to (413). Every refusal is an HTTP status with
a reason (a google.rpc.Status, as OTLP/HTTP wants), never a dropped connection.

A request is answered once the writer has committed it: 200 means stored (with OTLP's partial
success naming the spans refused), 400/413 mean the request cannot be stored as it is, 429/503
mean "retry", which OTLP exporters do.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import h11
import uvicorn
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from uvicorn.protocols.http.h11_impl import H11Protocol

from tracefail.ingest.otlp_live import (
    MAX_BODY,
    PROTOBUF,
    BadRequest,
    Rejected,
    accept_spans,
    decode_body,
)
from tracefail.services.live_writer import LiveWriter, ServeReport, Stored, WriteFailed
from tracefail.store import Database

__all__ = ["OtlpReceiver", "ServeReport"]

TRACES_PATH = "/v1/traces"
MAX_IN_FLIGHT = 32  # requests being read, checked or written at once; more get 429
MAX_CONNECTIONS = 256  # uvicorn answers 503 past this
HEADER_TIMEOUT_S = 10.0  # a request's headers must arrive within this (slow-loris: 408)
BODY_TIMEOUT_S = 30.0  # and its body within this
IDLE_TIMEOUT_S = 30  # a keep-alive connection with no request is closed after this
PARSERS = 2  # threads that decode and check bodies: bounds the memory of parsed documents
_CODE = {400: 3, 408: 4, 413: 8, 429: 8, 503: 14}  # google.rpc.Code of each HTTP status

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def parse_request(
    body: bytes, content_type: str | None, encoding: str | None
) -> tuple[dict[str, Any], list[Rejected]]:
    """Decode and check one export: (good spans by trace, refused spans); BadRequest if unreadable."""
    return accept_spans(decode_body(body, content_type, encoding))


def export_response(stored: Stored, rejected: list[Rejected]) -> ExportTraceServiceResponse:
    """OTLP's answer: empty when all was taken, else partial success with the count and why."""
    if not rejected and not stored.problems:
        return ExportTraceServiceResponse()
    reasons = [f"{r.record}: {r.reason}" for r in rejected[:3]] + stored.problems[:3]
    more = len(rejected) + len(stored.problems) - len(reasons)
    message = "; ".join(reasons) + (f"; and {more} more (see `tracefail quarantine`)" if more > 0 else "")
    return ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=len(rejected), error_message=message)
    )


class OtlpHttpApp:
    """The ASGI application: `POST /v1/traces` and a health check."""

    def __init__(self, writer: LiveWriter, parsers: ThreadPoolExecutor) -> None:
        self.writer = writer
        self.parsers = parsers
        self.in_flight = 0
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] == "GET" and path in ("/", "/health"):
            await _send(send, 200, "text/plain", b"tracefail OTLP/HTTP receiver: POST /v1/traces\n")
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        protobuf = headers.get("content-type", "").split(";")[0].strip().lower() == PROTOBUF
        if path != TRACES_PATH or scope["method"] != "POST":
            await _error(send, 404, f"only POST {TRACES_PATH} is served", protobuf)
            return
        if self.in_flight >= MAX_IN_FLIGHT:
            await _error(send, 429, f"over {MAX_IN_FLIGHT} requests in flight; retry later", protobuf)
            return
        self.in_flight += 1
        self.requests += 1
        number = self.requests
        try:
            status, content_type, body = await self._export(receive, headers, protobuf, number)
        except _Refused as exc:
            await _error(send, exc.status, str(exc), protobuf)
            return
        finally:
            self.in_flight -= 1
        await _send(send, status, content_type, body)

    async def _export(
        self, receive: Receive, headers: dict[str, str], protobuf: bool, number: int
    ) -> tuple[int, str, bytes]:
        body = await _read_body(receive, headers)
        loop = asyncio.get_running_loop()
        encoding = headers.get("content-encoding")
        try:
            groups, rejected = await loop.run_in_executor(
                self.parsers, parse_request, body, headers.get("content-type"), encoding
            )
        except BadRequest as exc:
            # the request is kept in quarantine (its start) so the sender's mistake can be seen
            text = (
                body[:2000].decode("utf-8", "replace") if not encoding else f"{len(body):,} {encoding} bytes"
            )
            refused = [Rejected(f"request {number}", str(exc), text)]
            await self._stored({}, refused, bad_request=True)
            raise _Refused(exc.status, str(exc)) from None
        stored = await self._stored(groups, rejected)
        response = export_response(stored, rejected)
        if protobuf:
            return 200, PROTOBUF, response.SerializeToString()
        return 200, "application/json", json_format.MessageToJson(response, indent=None).encode()

    async def _stored(
        self, groups: dict[str, Any], rejected: list[Rejected], bad_request: bool = False
    ) -> Stored:
        loop = asyncio.get_running_loop()
        # `store` blocks while the writer's queue is full: wait in a thread, not on the loop
        future: Future[Stored] = await loop.run_in_executor(
            None, lambda: self.writer.store(groups, rejected, bad_request=bad_request)
        )
        try:
            return await asyncio.wrap_future(future)
        except WriteFailed as exc:
            raise _Refused(503, str(exc)) from None


async def _read_body(receive: Receive, headers: dict[str, str]) -> bytes:
    """The body, refused (413) past `MAX_BODY` bytes before it is read and (408) when it does not
    arrive within `BODY_TIMEOUT_S`."""
    declared = headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        if not declared.isdigit():
            raise _Refused(400, f"Content-Length {declared!r} is not a number")
        raise _Refused(413, f"Content-Length {declared} is over the {MAX_BODY:,}-byte limit")
    chunks: list[bytes] = []
    size = 0
    deadline = asyncio.get_running_loop().time() + BODY_TIMEOUT_S
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
        except TimeoutError:
            raise _Refused(408, f"the body did not arrive within {BODY_TIMEOUT_S:g} s") from None
        if message["type"] == "http.disconnect":
            raise _Refused(400, "the client went away before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _Refused(413, f"body is over the {MAX_BODY:,}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _error(send: Send, status: int, reason: str, protobuf: bool) -> None:
    message = Status(code=_CODE.get(status, 2), message=reason)
    extra = [(b"retry-after", b"1")] if status in (429, 503) else []
    if protobuf:
        await _send(send, status, PROTOBUF, message.SerializeToString(), extra)
    else:
        await _send(send, status, "application/json", json_format.MessageToJson(message).encode(), extra)


async def _send(
    send: Send, status: int, content_type: str, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    if status >= 400 and status not in (404, 429, 503):
        headers.append((b"connection", b"close"))  # the unread rest of a refused body is not waited for
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


class _DeadlineH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for a request's headers: uvicorn times out
    idle keep-alive connections but waits for headers forever, so a client sending a byte a
    second could hold a connection (and a slot) as long as it liked. The deadline runs from the
    connection's start and from the first byte of each later request; between requests,
    uvicorn's keep-alive timeout closes an idle connection without an answer, as clients expect."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._header_timer is None:
            self._arm()  # the next request on a kept-alive connection starts: same deadline
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE and self._header_timer is not None:
            self._header_timer.cancel()  # the headers are in: the body has its own deadline
            self._header_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._timed_out)

    def _timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is still being written
        status = Status(code=4, message=f"the request headers did not arrive within {HEADER_TIMEOUT_S:g} s")
        body = json_format.MessageToJson(status, indent=None).encode()
        self.transport.write(_TIMED_OUT % (len(body), body))
        self.transport.close()


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handling: the CLI decides what a signal does (`stop`)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OtlpReceiver:
    """Bind both ports at once (a taken port fails before anything runs), serve until stopped,
    then answer what is in flight: `serve_forever()` blocks; `stop()` (from any thread) makes it
    return; `close()` returns the counts."""

    def __init__(
        self,
        db: Database,
        host: str = "127.0.0.1",
        port: int = 4318,
        grpc_port: int | None = 4317,
    ) -> None:
        self._socket = socket.create_server((host, port), backlog=MAX_CONNECTIONS)
        self.host, self.port = host, int(self._socket.getsockname()[1])
        self._writer = LiveWriter(db, f"otlp://{self.host}:{self.port}{TRACES_PATH}")
        self._parsers = ThreadPoolExecutor(PARSERS, thread_name_prefix="tracefail-otlp-parse")
        self.app = OtlpHttpApp(self._writer, self._parsers)
        config = uvicorn.Config(
            self.app,
            http=_DeadlineH11,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_keep_alive=IDLE_TIMEOUT_S,
            timeout_graceful_shutdown=int(BODY_TIMEOUT_S),
            h11_max_incomplete_event_size=64 * 1024,
        )
        self._uvicorn = _Uvicorn(config)
        self._started = threading.Event()
        self.grpc_port: int | None = None
        self._grpc = None
        if grpc_port is not None:
            from tracefail.services.serve_grpc import grpc_server

            try:
                self._grpc, self.grpc_port = grpc_server(self._writer, host, grpc_port)
            except Exception:
                self._socket.close()
                self._writer.close()
                raise

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        self._uvicorn.run(sockets=[self._socket])

    def stop(self) -> None:
        """Make `serve_forever` (running in another thread) return once in-flight requests are answered."""
        self._uvicorn.should_exit = True

    def close(self) -> ServeReport:
        if self._grpc is not None:
            self._grpc.stop(grace=BODY_TIMEOUT_S).wait()
        self._socket.close()
        self._parsers.shutdown()
        return self._writer.close()
