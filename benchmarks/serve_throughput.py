"""Spans per second `tracefail serve` receives over OTLP/HTTP and OTLP/gRPC, against a plain
receiver on the same servers (uvicorn, grpcio) that reads each export and answers at once without
storing it, measured in the same run on the same machine.

Clients are the real OpenTelemetry SDK exporters (protobuf; HTTP and gRPC), several threads each
sending batches of 512 spans (BatchSpanProcessor's default) of 4 traces. Both receivers run in
their own process; the numbers are what the exporters got answered, so for `serve` they include
the commit that a 2xx waits for.

    .venv/bin/python benchmarks/serve_throughput.py [--spans 20000] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BATCH = 512


def plain_server(port: int, grpc_port: int) -> None:
    """The baseline: decode nothing, store nothing, answer an empty ExportTraceServiceResponse."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    import uvicorn
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    empty = ExportTraceServiceResponse().SerializeToString()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        ExportTraceServiceRequest().ParseFromString(body)  # read it, as any receiver must
        headers = [
            (b"content-type", b"application/x-protobuf"),
            (b"content-length", str(len(empty)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": empty})

    class Service(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
        def Export(self, request: Any, context: Any) -> Any:
            return ExportTraceServiceResponse()

    server = grpc.server(ThreadPoolExecutor(8))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    server.start()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", http="h11", lifespan="off")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spans(n: int) -> list[Any]:
    """`n` finished SDK spans (ReadableSpan) with GenAI attributes, 128 per trace."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for first in range(0, n, 128):
        with tracer.start_as_current_span(
            "invoke_agent planner", attributes={"gen_ai.agent.name": "planner"}
        ):
            for number in range(first + 1, min(first + 128, n)):
                with tracer.start_as_current_span(
                    "chat",
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.prompt": f"question {number} " * 10,
                        "gen_ai.completion": f"answer {number} " * 20,
                    },
                ):
                    pass
    return list(memory.get_finished_spans())


def send_all(protocol: str, port: int, batches: list[list[Any]], clients: int) -> float:
    """Seconds for `clients` threads to have every batch answered with success."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    def exporter() -> Any:
        if protocol == "http":
            return HttpExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=60)
        return GrpcExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=60)

    failures: list[int] = []

    def client(number: int) -> None:
        mine = exporter()
        for batch in batches[number::clients]:
            if mine.export(batch) is not SpanExportResult.SUCCESS:
                failures.append(1)
        mine.shutdown()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, f"{len(failures)} exports failed"
    return time.perf_counter() - started


def wait_listening(url: str) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens at {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--plain-server", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_server:
        plain_server(*args.plain_server)
        return
    made = spans(args.spans)
    batches = [made[i : i + BATCH] for i in range(0, len(made), BATCH)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(
        f"load average {os.getloadavg()[0]:.1f}; {len(made):,} spans in {len(batches)} batches, "
        f"{args.clients} clients"
    )
    results: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for receiver in ("plain", "serve"):
            for protocol in ("http", "grpc"):
                port, grpc_port = free_port(), free_port()
                if receiver == "plain":
                    command = [sys.executable, __file__, "--plain-server", str(port), str(grpc_port)]
                else:
                    db = str(Path(folder) / f"{protocol}.duckdb")
                    command = [sys.executable, "-c", "from tracefail.cli import main; main()", "serve",
                               "--db", db, "--port", str(port), "--grpc-port", str(grpc_port)]  # fmt: skip
                process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
                try:
                    wait_listening(f"http://127.0.0.1:{port}/")
                    seconds = send_all(
                        protocol, port if protocol == "http" else grpc_port, batches, args.clients
                    )
                finally:
                    process.terminate()
                    process.wait(60)
                results[(receiver, protocol)] = len(made) / seconds
    for protocol in ("http", "grpc"):
        plain, ours = results[("plain", protocol)], results[("serve", protocol)]
        print(
            f"{protocol:>4}: plain receiver {plain:,.0f} spans/s, tracefail serve (stored, committed) "
            f"{ours:,.0f} spans/s, {ours / plain:.2f}x"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
