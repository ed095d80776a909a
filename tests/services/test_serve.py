"""`tracefail serve`: a real OTLP/HTTP receiver on 127.0.0.1 fed by the real OpenTelemetry SDK
exporter, real HTTP requests for the bad and split cases, and a real process for SIGTERM."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tracefail.services.serve import OtlpReceiver, ServeReport
from tracefail.store import Database
from tracefail.store import traces as trace_store

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def receiver(db: Database) -> Iterator[tuple[OtlpReceiver, list[ServeReport]]]:
    """A receiver on a free port, serving in a thread; on exit it stops and flushes."""
    server = OtlpReceiver(db, "127.0.0.1", 0, grpc_port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    reports: list[ServeReport] = []
    try:
        yield server, reports
    finally:
        server.stop()
        thread.join()
        reports.append(server.close())


def post(url: str, body: bytes, content_type: str = "application/json", **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url + "/v1/traces", data=body, method="POST", headers={"Content-Type": content_type, **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def otlp_json(trace_id: str, spans: list[tuple[str, str | None, str, dict[str, str | int]]]) -> bytes:
    """An OTLP/JSON export of (span id, parent id, name, attributes) spans of one trace."""

    def value(v: str | int) -> dict[str, str]:
        return {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}

    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": trace_id,
                                    "spanId": span_id,
                                    **({"parentSpanId": parent} if parent else {}),
                                    "name": name,
                                    "startTimeUnixNano": str(1_700_000_000_000_000_000 + n * 1_000_000),
                                    "endTimeUnixNano": str(1_700_000_000_000_000_000 + n * 1_000_000 + 500),
                                    "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()],
                                }
                                for n, (span_id, parent, name, attrs) in enumerate(spans)
                            ]
                        }
                    ],
                }
            ]
        }
    ).encode()


def test_real_otel_exporter_spans_land_as_one_trace_per_run(db: Database) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    with receiver(db) as (server, reports):
        provider = TracerProvider(resource=Resource.create({"service.name": "travel-agents"}))
        # Simple: one export request per span, so every trace arrives split over many requests
        exporter = OTLPSpanExporter(endpoint=server.url + "/v1/traces", compression=Compression.Gzip)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        for run in range(3):
            with tracer.start_as_current_span(
                "invoke_agent planner",
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": "planner",
                    # on the root span, which ends (and arrives) last: the trace grows to learn it
                    "session.id": f"conv-{run // 2}",
                },
            ):
                with tracer.start_as_current_span(
                    "chat gpt-4o",
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.usage.input_tokens": 120,
                        "gen_ai.usage.output_tokens": 30,
                        "gen_ai.input.messages": json.dumps(
                            [{"role": "user", "parts": [{"type": "text", "content": f"Book flight {run}"}]}]
                        ),
                        "gen_ai.output.messages": json.dumps(
                            [
                                {
                                    "role": "assistant",
                                    "parts": [{"type": "text", "content": f"Searching {run}"}],
                                }
                            ]
                        ),
                    },
                ):
                    pass
                with tracer.start_as_current_span(
                    "execute_tool search_flights",
                    attributes={
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": "search_flights",
                        "gen_ai.tool.call.arguments": '{"to": "OSL"}',
                        "gen_ai.tool.call.result": "no flights found",
                    },
                ) as tool:
                    tool.set_status(Status(StatusCode.ERROR, "empty result"))
        provider.shutdown()
    report = reports[0]
    assert report.spans == 9 and report.bad_requests == 0 and report.requests == 9
    rows = db.rows("SELECT trace_id, n_steps, task, llm FROM traces ORDER BY task")
    assert [(n, task, llm) for _, n, task, llm in rows] == [
        (3, f"Book flight {run}", "gpt-4o") for run in range(3)
    ]
    steps = db.rows(
        "SELECT kind, agent, content, tokens_in, status, tool_calls FROM steps "
        "WHERE trace_id = ? ORDER BY step_idx",
        [rows[0][0]],
    )
    assert [s[:5] for s in steps] == [
        ("agent", "planner", "", None, None),
        ("llm", "planner", "Searching 0", 120, None),
        ("tool", "planner", "no flights found\nerror: empty result", None, "error"),
    ]
    assert json.loads(steps[2][5])[0]["name"] == "search_flights"
    assert trace_store.counts(db)["quarantine"] == 0
    from tracefail.services.ops import ops

    sessions = ops(db).table.filter(dimension="session")
    assert dict(zip(sessions["value"], sessions["traces"], strict=True)) == {"conv-0": 2, "conv-1": 1}


def test_a_trace_split_over_requests_and_restarts_is_merged_not_duplicated(db: Database) -> None:
    trace = "5b8efff798038103d269b633813fc60c"
    first = [("aaaaaaaaaaaaaaa1", None, "invoke_agent coder", {"gen_ai.agent.name": "coder"})]
    second = [
        (
            "aaaaaaaaaaaaaaa2",
            "aaaaaaaaaaaaaaa1",
            "chat",
            {"gen_ai.operation.name": "chat", "gen_ai.completion": "def f(): ..."},
        ),
        (
            "aaaaaaaaaaaaaaa3",
            "aaaaaaaaaaaaaaa1",
            "execute_tool run_tests",
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "run_tests",
                "gen_ai.tool.call.result": "2 failed",
            },
        ),
    ]
    with receiver(db) as (server, _):
        assert post(server.url, otlp_json(trace, first))[0] == 200
    with receiver(db) as (server, _):  # a restart: the rest merges into the stored trace
        zipped = gzip.compress(otlp_json(trace, second))
        assert post(server.url, zipped, **{"Content-Encoding": "gzip"})[0] == 200
        # a retry with the same span ids, spelt in upper case: still the same trace and spans
        assert (
            post(
                server.url,
                otlp_json(trace.upper(), [(i.upper(), p and p.upper(), n, a) for i, p, n, a in second]),
            )[0]
            == 200
        )
    assert db.rows("SELECT count(*), max(n_steps) FROM traces") == [(1, 3)]
    steps = db.rows("SELECT step_idx, agent, content FROM steps ORDER BY step_idx")
    assert steps == [(0, "coder", ""), (1, "coder", "def f(): ..."), (2, "coder", "2 failed")]
    assert trace_store.counts(db)["quarantine"] == 0


def test_a_bad_span_is_refused_alone_and_a_bad_request_gets_400_with_the_reason(db: Database) -> None:
    good = otlp_json("0af7651916cd43dd8448eb211c80319c", [("b7ad6b7169203331", None, "chat", {})])
    with receiver(db) as (server, reports):
        assert post(server.url, good)[0] == 200
        # a span without ids: OTLP partial success, the span quarantined with its content
        code, body = post(server.url, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]}')
        partial = json.loads(body)["partialSuccess"]
        assert code == 200 and partial["rejectedSpans"] == "1" and "`traceId`" in partial["errorMessage"]
        code, body = post(server.url, b"\x0a\xff\xff garbage", "application/x-protobuf")
        assert code == 400 and b"not an OTLP protobuf" in body
        code, body = post(server.url, b"not gzip", **{"Content-Encoding": "gzip"})
        assert code == 400 and "not valid gzip" in json.loads(body)["message"]
        code, _ = post(server.url, b"{}", "text/csv")
        assert code == 400
        with urllib.request.urlopen(server.url + "/", timeout=5) as health:
            assert health.status == 200
    assert reports[0].bad_requests == 3 and reports[0].rejected_spans == 1 and reports[0].traces_written == 1
    assert db.rows("SELECT count(*) FROM traces") == [(1,)]
    rows = db.rows("SELECT reason, excerpt FROM quarantine ORDER BY quarantine_id")
    assert len(rows) == 4 and "`traceId`" in rows[0][0] and rows[0][1] == '{"name": "x"}'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_sigterm_flushes_what_was_received_and_stops(tmp_path: Path) -> None:
    port, db_path = _free_port(), tmp_path / "live.duckdb"
    code = "from tracefail.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--db", str(db_path), "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):  # until it listens
            try:
                urllib.request.urlopen(url + "/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        spans = [(f"{n:016x}", None, f"step {n}", {"gen_ai.completion": f"answer {n}"}) for n in range(1, 4)]
        assert post(url, otlp_json("4bf92f3577b34da6a3ce929d0e0e4736", spans))[0] == 200
        process.send_signal(signal.SIGTERM)  # at once: the spans are still queued
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "3 spans" in stderr
    with Database(db_path, read_only=True) as db:
        assert db.rows("SELECT n_steps FROM traces") == [(3,)]
        assert db.rows("SELECT status FROM runs WHERE kind = 'serve'") == [("done",)]


def test_live_spans_merge_into_a_trace_ingested_from_a_file(db: Database, tmp_path: Path) -> None:
    from tracefail.services.ingest import ingest

    trace = "0af7651916cd43dd8448eb211c80319c"
    root = ("b7ad6b7169203331", None, "invoke_agent coder", {"gen_ai.agent.name": "coder"})
    child = ("b7ad6b7169203332", "b7ad6b7169203331", "chat", {"gen_ai.completion": "def f(): ..."})
    (tmp_path / "export.json").write_bytes(otlp_json(trace, [root]))
    assert ingest(db, [tmp_path / "export.json"]).traces == 1
    with receiver(db) as (server, reports):
        assert post(server.url, otlp_json(trace, [root, child]))[0] == 200
    assert reports[0].quarantined == 0 and reports[0].traces_written == 1
    assert db.rows("SELECT count(*), max(n_steps) FROM traces") == [(1, 2)]
    assert db.rows("SELECT agent, content FROM steps ORDER BY step_idx") == [
        ("coder", ""),
        ("coder", "def f(): ..."),
    ]
