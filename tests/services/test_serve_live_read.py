"""The real OpenTelemetry SDK exporters, OTLP/HTTP and OTLP/gRPC, deliver spans to a running
`tracefail serve`, and `browse`, `stats`, `ls`, `show`, `search` and `sql` read them from another
process while it still runs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from textual.widgets import DataTable
from typer.testing import CliRunner

from tests.services.serve_process import ServeProcess
from tests.tui.pilot_wait import settle
from tracefail.cli import app
from tracefail.services.browse import BrowseService
from tracefail.store.selection import CorpusFilter
from tracefail.tui.app import TracefailApp
from tracefail.tui.widgets.live_status import LiveStatus

T = TypeVar("T")


def until(check: Callable[[], T], seconds: float = 20) -> T:
    """`check()` once it is truthy: serve publishes what it committed within a few seconds."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def send(exporter: object, service: str, task: str) -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))  # type: ignore[arg-type]
    tracer = provider.get_tracer("test")
    chat = {"gen_ai.operation.name": "chat", "gen_ai.prompt": task, "gen_ai.completion": "ok"}
    with (
        tracer.start_as_current_span("invoke_agent planner", attributes={"gen_ai.agent.name": "planner"}),
        tracer.start_as_current_span("chat", attributes=chat),
    ):
        pass
    provider.shutdown()  # flushes: returns once the export was answered


async def test_sdk_exporters_over_http_and_grpc_are_readable_while_serving(tmp_path: Path) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    path = tmp_path / "live.duckdb"
    server = ServeProcess(path, grpc=True)
    runner = CliRunner()
    try:
        send(HttpExporter(endpoint=server.url + "/v1/traces"), "http-agents", "Book a flight over HTTP")
        send(
            GrpcExporter(endpoint=f"127.0.0.1:{server.grpc_port}", insecure=True),
            "grpc-agents",
            "Book over gRPC",
        )
        browse = BrowseService(path, "tester")
        state = until(lambda: (s := browse.live()).traces == 2 and s)
        assert state and state.serving
        page = browse.page(CorpusFilter(), 0, 10)
        assert len(page.rows) == 2
        listed = runner.invoke(app, ["ls", "--db", str(path)])
        assert listed.exit_code == 0 and listed.stdout.count("otel:") == 2, listed.output
        trace_id = str(page.rows[0]["trace_id"])
        shown = runner.invoke(app, ["show", trace_id, "--db", str(path)])
        assert shown.exit_code == 0 and "ok" in shown.stdout, shown.output
        stats = runner.invoke(app, ["stats", "--db", str(path), "--section", "ops", "--format", "json"])
        assert stats.exit_code == 0, stats.output
        ops = json.loads(stats.stdout[stats.stdout.index("{") :])["ops"]
        planner = [row for row in ops if (row["dimension"], row["value"]) == ("agent", "planner")]
        assert [(row["traces"], row["steps"]) for row in planner] == [(2, 4)], ops
        found = runner.invoke(app, ["search", "ok", "--db", str(path)])
        assert found.exit_code == 0 and "otel:" in found.stdout, found.output
        sql = runner.invoke(
            app, ["sql", "SELECT count(*) AS n FROM steps", "--db", str(path), "--format", "csv"]
        )
        assert sql.exit_code == 0 and "4" in sql.stdout, sql.output

        # browse: the live line, then a trace that arrives while the table is open shows up
        tui = TracefailApp(path, "tester", export_dir=tmp_path)
        async with tui.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            live = tui.screen.query_one(LiveStatus)
            for _ in range(50):  # the widget polls every 2 s
                await pilot.pause(0.1)
                if live.display:
                    break
            assert live.display and "● live" in str(live.render())
            assert tui.screen.query_one(DataTable).row_count == 2
            send(HttpExporter(endpoint=server.url + "/v1/traces"), "http-agents", "A third trace")
            for _ in range(100):  # the widget polls every 2 s; serve publishes about every second
                await pilot.pause(0.1)
                if tui.screen.query_one(DataTable).row_count == 3:
                    break
            assert tui.screen.query_one(DataTable).row_count == 3

            # down the table, a new trace is counted on the live line, and R shows it
            table = tui.screen.query_one(DataTable)
            table.focus()
            await pilot.press("down")
            assert table.cursor_row == 1
            send(HttpExporter(endpoint=server.url + "/v1/traces"), "http-agents", "A fourth trace")
            for _ in range(100):
                await pilot.pause(0.1)
                if "4 traces · 1 new since loaded" in str(live.render()):
                    break
            assert "4 traces · 1 new since loaded (R shows them)" in str(live.render())
            assert tui.screen.query_one(DataTable).row_count == 3
            await pilot.press("R")
            for _ in range(50):
                await pilot.pause(0.1)
                if tui.screen.query_one(DataTable).row_count == 4:
                    break
            assert tui.screen.query_one(DataTable).row_count == 4
    finally:
        stderr = server.stop()
    assert "0 quarantined" in stderr
    assert not path.with_name(path.name + ".live-snapshot").exists()  # removed at a clean stop
