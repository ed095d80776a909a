"""Every input `tracefail serve` takes is bounded and every refusal is a status code with a
reason: gzip bombs, wrong types, deep nesting, slow clients, a failing write."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.services.serve_process import ServeProcess, post
from tracefail.services import live_writer
from tracefail.services import serve as serve_module
from tracefail.services.serve import OtlpReceiver
from tracefail.store import Database

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@contextmanager
def receiver(db: Database) -> Iterator[OtlpReceiver]:
    server = OtlpReceiver(db, "127.0.0.1", 0, grpc_port=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join()
        server.close()


def export(spans: list[dict[str, Any]], resource: Any = None) -> bytes:
    resource_spans = {"resource": resource or {"attributes": []}, "scopeSpans": [{"spans": spans}]}
    return json.dumps({"resourceSpans": [resource_spans]}).encode()


def span(number: int, **extra: Any) -> dict[str, Any]:
    return {"traceId": TRACE, "spanId": f"{number:016x}", "name": f"step {number}", **extra}


def test_a_gzip_bomb_gets_413_and_memory_stays_bounded(tmp_path: Path) -> None:
    bomb = gzip.compress(bytes(2**20), compresslevel=9) * 1024  # 1 GiB of zeros in 1 MB (1,024 members)
    server = ServeProcess(tmp_path / "live.duckdb")
    try:
        before = server.memory("VmRSS")
        with ThreadPoolExecutor(3) as pool:  # three at once
            answers = list(
                pool.map(lambda _: post(server.url, bomb, **{"Content-Encoding": "gzip"}), range(3))
            )
        peak = server.memory("VmHWM")
        assert post(server.url, export([span(1)]))[0] == 200  # still serving
    finally:
        server.stop()
    mib = 2**20
    print(
        f"\n3 gzip bombs ({len(bomb):,} B -> 1 GiB): RSS {before / mib:.0f} MiB before, "
        f"peak {peak / mib:.0f} MiB"
    )
    for code, body in answers:
        assert code == 413 and "inflates to over" in body["message"]
    assert peak - before < 200 * 2**20


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (export([span(1)], resource="x"), "resourceSpans[0].resource is not an object"),
        (b'{"resourceSpans": [{"scopeSpans": 5}]}', "resourceSpans[0].scopeSpans is not a list"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": "x"}]}]}', "spans is not a list"),
        (b'{"resourceSpans": "x"}', "no `resourceSpans` list"),
        (b"[1, 2]", "not an OTLP/JSON export"),
    ],
    ids=["resource", "scopeSpans", "spans", "resourceSpans", "array"],
)
def test_a_wrong_typed_envelope_gets_400_with_where(db: Database, body: bytes, reason: str) -> None:
    with receiver(db) as server:
        code, answer = post(server.url, body)
        assert post(server.url, export([span(1)]))[0] == 200  # the connection pool and server live on
    assert code == 400 and reason in answer["message"]
    assert db.rows("SELECT count(*) FROM quarantine WHERE reason LIKE ?", [f"%{reason}%"]) == [(1,)]


def test_wrong_typed_spans_are_refused_alone(db: Database) -> None:
    bad = [span(2, events=["x"]), span(3, spanId=5), span(4, parentSpanId=["x"]), "not a span"]
    with receiver(db) as server:
        code, answer = post(server.url, export([span(1), *bad]))
    assert code == 200 and answer["partialSuccess"]["rejectedSpans"] == "4"
    assert db.rows("SELECT span_id FROM steps") == [(f"{1:016x}",)]
    excerpts = [row[0] for row in db.rows("SELECT excerpt FROM quarantine ORDER BY quarantine_id")]
    assert excerpts[0] == json.dumps(bad[0]) and excerpts[3] == '"not a span"'


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {"arrayValue": {"values": [value]}}
    return value


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand: the protobuf library refuses to build
    a message nested this deeply, which is what this test sends."""

    def varint(n: int) -> bytes:
        out = b""
        while n > 0x7F:
            out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
        return out + bytes([n])

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _deep_protobuf() -> bytes:
    """An OTLP protobuf request whose one span has an attribute nested 200 deep."""
    value = _field(1, b"leaf")  # AnyValue.string_value, then 200 x AnyValue.array_value.values
    for _ in range(200):
        value = _field(5, _field(1, value))
    otlp_span = (
        _field(1, bytes.fromhex(TRACE))
        + _field(2, bytes(7) + b"\x01")
        + _field(9, _field(1, b"a") + _field(2, value))
    )
    return _field(1, _field(2, _field(2, otlp_span)))  # request.resource_spans.scope_spans.spans


def test_deep_nesting_is_refused_with_a_status(db: Database) -> None:
    deep_attr = [{"key": "a", "value": _nested(20)}]
    too_deep_json = b'{"resourceSpans": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    request = _deep_protobuf()
    with receiver(db) as server:
        nested_span = post(server.url, export([span(1), span(2, attributes=deep_attr)]))
        nested_json = post(server.url, too_deep_json)
        nested_protobuf = post(server.url, request, "application/x-protobuf")
    assert nested_span[0] == 200 and "nested more than" in nested_span[1]["partialSuccess"]["errorMessage"]
    assert nested_json[0] == 400 and "nested deeper than the 200-level limit" in nested_json[1]["message"]
    assert nested_protobuf[0] == 400 and b"not an OTLP protobuf" in nested_protobuf[1]
    assert db.rows("SELECT span_id FROM steps") == [(f"{1:016x}",)]


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_slow_loris_gets_408_and_does_not_block_others(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_module, "HEADER_TIMEOUT_S", 0.5)
    monkeypatch.setattr(serve_module, "BODY_TIMEOUT_S", 0.5)
    with receiver(db) as server:
        slow_headers = [socket.create_connection((server.host, server.port)) for _ in range(50)]
        for sock in slow_headers:
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        slow_body = socket.create_connection((server.host, server.port))
        slow_body.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        idle = socket.create_connection((server.host, server.port))  # sends nothing at all
        assert post(server.url, export([span(1)]))[0] == 200  # others are served meanwhile
        started = time.monotonic()
        answers = [_answer(sock) for sock in [*slow_headers, slow_body, idle]]
        waited = time.monotonic() - started
        kept = http.client.HTTPConnection(server.host, server.port, timeout=10)
        kept.request("POST", "/v1/traces", export([span(2)]), {"Content-Type": "application/json"})
        assert kept.getresponse().read() == b"{}"
        time.sleep(1)  # idle between requests past the header deadline: kept alive, no 408
        kept.request("POST", "/v1/traces", export([span(3)]), {"Content-Type": "application/json"})
        assert kept.getresponse().status == 200
        kept.close()
    assert waited < 5
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    assert b"did not arrive within" in answers[0] and b"body did not arrive" in answers[50]


def test_a_write_that_fails_fails_only_its_request_with_503(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = live_writer.merge_spans
    poisoned = "0" * 31 + "1"

    def merge(db: Database, incoming: Any, run_id: str | None) -> Any:  # orchestration fake: a broken write
        if any(item.native_id == poisoned for item in incoming):
            raise RuntimeError("disk on fire")
        return real(db, incoming, run_id)

    monkeypatch.setattr(live_writer, "merge_spans", merge)
    bodies = [export([{**span(n), "traceId": f"{n:032x}"}]) for n in range(1, 21)]
    with receiver(db) as server, ThreadPoolExecutor(20) as pool:  # concurrent: they share commits
        answers = list(pool.map(lambda body: post(server.url, body), bodies))
    assert [code for code, _ in answers] == [503] + [200] * 19
    assert "nothing of them is stored" in answers[0][1]["message"]
    assert db.rows("SELECT count(*) FROM traces") == [(19,)]


def test_grpc_has_the_same_limits_and_partial_success(db: Database) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

    def request(*spans: tuple[int, str, int]) -> ExportTraceServiceRequest:
        """Spans (number, text, depth): the text nested in `depth` arrays."""
        message = ExportTraceServiceRequest()
        scope = message.resource_spans.add().scope_spans.add()
        for number, text, depth in spans:
            added = scope.spans.add(
                trace_id=bytes.fromhex(TRACE), span_id=number.to_bytes(8, "big"), name="chat"
            )
            value = added.attributes.add(key="gen_ai.completion").value
            for _ in range(depth):
                value = value.array_value.values.add()
            value.string_value = text
        return message

    server = OtlpReceiver(db, "127.0.0.1", 0, grpc_port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = TraceServiceStub(channel)
            bomb = request((1, "0" * (20 * 2**20), 0))  # 20 MiB, ~20 KB gzip'd
            with pytest.raises(grpc.RpcError) as refused:
                stub.Export(bomb, compression=grpc.Compression.Gzip, timeout=30)
            answer = stub.Export(request((2, "ok", 0), (3, "deep", 15)), timeout=30)
    finally:
        server.stop()
        thread.join()
        server.close()
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert answer.partial_success.rejected_spans == 1
    assert "nested more than" in answer.partial_success.error_message
    assert db.rows("SELECT span_id FROM steps") == [(f"{2:016x}",)]


def _many_at_once(server: ServeProcess, body: bytes, n: int, content_type: str = "application/json") -> list:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: post(server.url, body, content_type)[0], range(n)))


def _wrong_types(server: ServeProcess) -> list[int]:
    """16 at once of 2 MB with `"resource": "x"` (the spans after it are well formed)."""
    spans = [span(n, attributes=[{"key": "k", "value": {"stringValue": "v" * 200}}]) for n in range(6000)]
    return _many_at_once(server, export(spans, resource="x"), 16)


def _deep_nesting(server: ServeProcess) -> list[int]:
    """16 at once of 2 MB of JSON brackets, 16 of a protobuf nested 200 deep."""
    too_deep_json = b'{"resourceSpans": [' + b"[" * 1_000_000 + b"]" * 1_000_000 + b"]}"
    request = _deep_protobuf()
    return _many_at_once(server, too_deep_json, 16) + _many_at_once(
        server, request, 16, "application/x-protobuf"
    )


def _slow_loris(server: ServeProcess) -> list[int]:
    """200 connections that send half their headers, 20 half a body, 20 nothing."""
    host, port = "127.0.0.1", server.port
    socks = [socket.create_connection((host, port)) for _ in range(240)]
    for sock in socks[:200]:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
    for sock in socks[200:220]:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    assert post(server.url, export([span(1)]))[0] == 200  # others are served meanwhile
    answers = [_answer(sock) for sock in socks]
    return [int(answer.split(b" ")[1]) if answer else 0 for answer in answers]


@pytest.mark.parametrize(
    ("attack", "expected", "timeouts_s"),
    [(_wrong_types, {400}, None), (_deep_nesting, {400}, None), (_slow_loris, {408}, 1.0)],
    ids=["wrong-types", "deep-nesting", "slow-loris"],
)
def test_hostile_clients_get_a_status_and_memory_stays_bounded(
    tmp_path: Path, attack: Any, expected: set[int], timeouts_s: float | None
) -> None:
    """In a real serve process: each attack gets its status code, the server's peak resident
    memory grows by less than 200 MiB, and it still stores a good request afterwards."""
    server = ServeProcess(tmp_path / "live.duckdb", timeouts_s=timeouts_s)
    try:
        before = server.memory("VmRSS")
        threads = server.threads()
        codes = attack(server)
        peak = server.memory("VmHWM")
        threads_after = server.threads()
        assert post(server.url, export([span(2)]))[0] == 200
    finally:
        server.stop()
    mib = 2**20
    print(
        f"\n{attack.__name__.strip('_')}: {len(codes)} requests, statuses {sorted(set(codes))}; "
        f"RSS {before / mib:.0f} MiB before, peak {peak / mib:.0f} MiB; threads {threads} -> {threads_after}"
    )
    assert set(codes) == expected
    assert peak - before < 200 * mib
    assert threads_after < threads + 40  # pools of fixed size, not a thread per connection (240)
