"""`tracefail serve`: live ingest from any OpenTelemetry exporter over OTLP/HTTP and OTLP/gRPC."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from tracefail.cli import app
from tracefail.cli.common import DEFAULT_DB_PATH, EXIT_PARTIAL, DbOption, err, fail, open_db


@app.command()
def serve(
    db: DbOption = DEFAULT_DB_PATH,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="OTLP/HTTP port; 4318 is OTLP/HTTP's default.")] = 4318,
    grpc_port: Annotated[
        int, typer.Option(help="OTLP/gRPC port; 4317 is OTLP/gRPC's default; -1 turns gRPC off.")
    ] = 4317,
) -> None:
    """Receive OTLP traces (HTTP: POST /v1/traces, JSON or protobuf, gzip; gRPC: TraceService)
    until Ctrl-C/SIGTERM. A 2xx is sent once the spans are committed; read commands (browse,
    stats, ls, show, search, sql) work meanwhile on a copy published after commits."""
    from tracefail.services.serve import OtlpReceiver

    store = open_db(db, create=True)
    try:
        receiver = OtlpReceiver(store, host, port, None if grpc_port < 0 else grpc_port)
    except OSError as exc:
        store.close()
        fail(f"cannot listen on {host}:{port} / gRPC {grpc_port}: {exc.strerror or exc}")
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: receiver.stop())
    grpc_text = f" and gRPC {host}:{receiver.grpc_port}" if receiver.grpc_port else ""
    err.print(
        f"listening on {receiver.url}/v1/traces{grpc_text}, writing to {db}; Ctrl-C stops",
        highlight=False,
    )
    try:
        receiver.serve_forever()
    finally:
        report = receiver.close()
        store.close()
    err.print(
        f"stopped: {report.requests} requests ({report.bad_requests} rejected, "
        f"{report.failed_requests} failed), {report.spans} spans stored, {report.rejected_spans} refused; "
        f"wrote {report.traces_written} trace versions, {report.steps_written} steps; "
        f"{report.quarantined} quarantined",
        highlight=False,
    )
    if report.publish_error:
        err.print(f"the copy for readers could not be published: {report.publish_error}", highlight=False)
    if report.quarantined:
        raise typer.Exit(EXIT_PARTIAL)
