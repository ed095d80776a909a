"""`tracefail serve`: live ingest from any OpenTelemetry exporter over OTLP/HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from tracefail.cli import app
from tracefail.cli.common import DEFAULT_DB_PATH, EXIT_PARTIAL, DbOption, err, fail, open_db


@app.command()
def serve(
    db: DbOption = DEFAULT_DB_PATH,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 4318 is OTLP/HTTP's default.")] = 4318,
) -> None:
    """Receive OTLP/HTTP traces (POST /v1/traces, JSON or protobuf, gzip) until Ctrl-C/SIGTERM."""
    from tracefail.services.serve import OtlpReceiver

    store = open_db(db, create=True)
    try:
        receiver = OtlpReceiver(store, host, port)
    except OSError as exc:
        store.close()
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    err.print(
        f"listening on {receiver.url}/v1/traces, writing to {db}; Ctrl-C stops",
        highlight=False,
    )
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        report = receiver.close()
        store.close()
    err.print(
        f"stopped: {report.requests} requests ({report.bad_requests} rejected), {report.spans} spans; "
        f"wrote {report.traces_written} trace versions, {report.steps_written} steps; "
        f"{report.quarantined} quarantined",
        highlight=False,
    )
    if report.quarantined:
        raise typer.Exit(EXIT_PARTIAL)
