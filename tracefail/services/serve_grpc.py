"""OTLP/gRPC (`opentelemetry.proto.collector.trace.v1.TraceService/Export`) on grpcio, into the
same writer and through the same span checks as OTLP/HTTP.

grpcio bounds the transport: message size after decompression (`max_receive_message_length`,
so a gzip bomb is refused by grpcio itself), metadata size, concurrent streams and RPCs
(RESOURCE_EXHAUSTED past `MAX_IN_FLIGHT`), idle connections. An RPC is answered once its
spans are committed, as over HTTP: INVALID_ARGUMENT for an unreadable export, UNAVAILABLE
(which exporters retry) when the write failed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tracefail.ingest.otlp_live import MAX_BODY, BadRequest, Rejected, accept_spans, request_document
from tracefail.services.live_writer import LiveWriter, WriteFailed
from tracefail.services.serve import IDLE_TIMEOUT_S, MAX_IN_FLIGHT, export_response


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, writer: LiveWriter) -> None:
        self.writer = writer
        self.requests = 0

    def Export(self, request: ExportTraceServiceRequest, context: Any) -> ExportTraceServiceResponse:
        self.requests += 1
        try:
            groups, rejected = accept_spans(request_document(request))
        except (BadRequest, RecursionError) as exc:
            reason = str(exc) if isinstance(exc, BadRequest) else "the export is nested too deeply to read"
            refused = [Rejected(f"gRPC request {self.requests}", reason, str(request)[:2000])]
            self.writer.store({}, refused, bad_request=True).result()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, reason)
        try:
            stored = self.writer.store(groups, rejected).result()
        except WriteFailed as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return export_response(stored, rejected)


def grpc_server(writer: LiveWriter, host: str, port: int) -> tuple[grpc.Server, int]:
    """A started gRPC server on `host:port` (0: any free port) and the port it got."""
    server = grpc.server(
        # a worker waits for its RPC's commit; 8 let the writer commit several exports at once
        ThreadPoolExecutor(8, thread_name_prefix="tracefail-otlp-grpc"),
        maximum_concurrent_rpcs=MAX_IN_FLIGHT,
        options=[
            ("grpc.max_receive_message_length", MAX_BODY),
            ("grpc.max_send_message_length", 1024 * 1024),
            ("grpc.max_metadata_size", 64 * 1024),
            ("grpc.max_concurrent_streams", MAX_IN_FLIGHT),
            ("grpc.max_connection_idle_ms", IDLE_TIMEOUT_S * 1000),
            ("grpc.so_reuseport", 0),
        ],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(writer), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen on {host}:{port} for gRPC")
    server.start()
    return server, bound
