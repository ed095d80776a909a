"""Bounded HTTP judge requests and safe URLs, against real servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from judge_server import StubServer, completion, valid_answer

from tracefail.judge.backend import JudgeError
from tracefail.judge.http import HttpSettings, OpenAIJudge, redact
from tracefail.judge.prompt import TraceInput
from tracefail.model import Step
from tracefail.services.label import JudgeSpec, LabelUsageError, build_judge, label
from tracefail.taxonomy import find

TAXONOMY = find("mast-v1").taxonomy
MODES = [m.id for m in TAXONOMY.modes]
TASKS = frozenset({"modes", "attribution"})
TRACE = TraceInput(trace_id="t1", steps=[Step(step_idx=0, agent="a", content="hi")], task="t")


@contextmanager
def raw_server(handle: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[tuple[str, list]]:
    """A server whose POST handler writes whatever `handle` writes; yields its URL and requests."""
    seen: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append((self.path, dict(self.headers)))
            with suppress(BrokenPipeError, ConnectionResetError):
                handle(self)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _ok_body() -> bytes:
    return json.dumps(
        completion(valid_answer({"messages": [{}, {"content": "[step 0 | agent: a]"}]}, MODES))
    ).encode()


def _send_ok(handler: BaseHTTPRequestHandler) -> None:
    data = _ok_body()
    handler.send_response(200)
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


async def _judge(**settings) -> object:
    judge = OpenAIJudge(HttpSettings(model="m", backoff_s=0.01, **settings))
    try:
        return await judge.judge(TRACE, TAXONOMY, TASKS)
    finally:
        await judge.aclose()


async def test_a_trickling_server_hits_the_total_deadline() -> None:
    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("content-length", "100000")
        handler.end_headers()
        for _ in range(100):  # a byte every 0.1 s: no single read ever times out
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.1)

    with raw_server(trickle) as (url, seen):
        started = time.monotonic()
        with pytest.raises(JudgeError, match=r"no complete reply within 0\.6 s"):
            await _judge(base_url=url, timeout_s=0.6, max_retries=1)
    assert time.monotonic() - started < 4 and seen  # two 0.6 s attempts, not 10 s of trickle


async def test_an_endless_reply_is_cut_at_the_size_limit() -> None:
    def endless(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.end_headers()  # no length: read until the server closes, which it never does
        chunk = b"x" * 65536
        for _ in range(10_000):
            handler.wfile.write(chunk)

    with raw_server(endless) as (url, _), pytest.raises(JudgeError, match="larger than 1,048,576 bytes"):
        await _judge(base_url=url, max_response_bytes=1024 * 1024)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"timeout_s": 0}, "--timeout must be more than 0"),
        ({"timeout_s": -5}, "--timeout must be more than 0"),
        ({"base_url": "file:///etc/passwd"}, "must be an http:// or https:// URL"),
        ({"base_url": "localhost:8000/v1"}, "must be an http:// or https:// URL"),
    ],
)
def test_bad_timeout_and_base_url_are_usage_errors(option: dict, message: str) -> None:
    spec = JudgeSpec(spec="openai:m", **option)
    with pytest.raises(LabelUsageError, match=message):
        build_judge(spec)


def test_missing_key_check_ignores_host_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LabelUsageError, match="OPENAI_API_KEY is not set"):
        build_judge(JudgeSpec(spec="openai:m", base_url="https://API.OpenAI.com/v1"))


async def test_query_string_survives_and_azure_key_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZ_KEY", "az-secret")
    with raw_server(_send_ok) as (url, seen):
        await _judge(base_url=url + "?api-version=2024-06-01", api_key_env="AZ_KEY", api_key_header="api-key")
    path, headers = seen[0]
    assert path == "/v1/chat/completions?api-version=2024-06-01"
    assert headers.get("api-key") == "az-secret" and "Authorization" not in headers


def test_redact_hides_userinfo_and_secret_query_values() -> None:
    shown = redact("http://user:pw@Host:8000/v1?api-key=abc&api-version=2024&token=t")
    assert "pw" not in shown and "abc" not in shown and "=t" not in shown
    assert "api-version=2024" in shown and "host:8000/v1" in shown


def test_credentials_in_base_url_are_refused_naming_where_the_key_goes(whowhen_db) -> None:
    """httpx sent user:pw@ as Basic auth in place of the API key, silently (issue 24, case 8)."""
    base = "http://alice:hunter2@127.0.0.1:9/v1?api-key=sk-leak"
    with pytest.raises(ValueError, match="holds credentials") as caught:
        label(whowhen_db, judge=JudgeSpec(spec="openai:stub", base_url=base), limit=2)
    message = str(caught.value)
    assert "--api-key-env" in message and "OPENAI_API_KEY" in message
    assert "hunter2" not in message and "sk-leak" not in message
    dumped = " ".join(str(r) for r in whowhen_db.rows("SELECT * FROM runs"))
    assert "hunter2" not in dumped and "sk-leak" not in dumped


def test_tokens_of_invalid_replies_are_counted(whowhen_db) -> None:
    def invalid(body, number, headers):
        return 200, completion("not json", prompt_tokens=7, completion_tokens=3), {}

    with StubServer(invalid) as server:
        report = label(whowhen_db, judge=JudgeSpec(spec="openai:stub", base_url=server.base_url), limit=2)
    assert report.judged == 0 and len(report.errors) == 2 and len(server.requests) == 4
    assert (report.tokens_in, report.tokens_out) == (28, 12)
    run = whowhen_db.rows("SELECT tokens_in, tokens_out FROM runs WHERE run_id = ?", [report.run_id])
    assert run == [(28, 12)]


def test_cli_rejects_a_zero_timeout_in_one_line(whowhen_db) -> None:
    from typer.testing import CliRunner

    from tracefail.cli import app

    whowhen_db.close()
    result = CliRunner().invoke(
        app,
        [
            "label",
            "--db",
            whowhen_db.path,
            "--judge",
            "openai:m",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--timeout",
            "0",
        ],
    )
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "--timeout must be more than 0" in result.stderr


def test_unknown_backend_lists_the_registered_names() -> None:
    with pytest.raises(LabelUsageError, match=r"unknown backend; registered: local, openai, ranker$"):
        build_judge(JudgeSpec(spec="anthropic:claude"))


def test_strategy_needs_the_openai_backend() -> None:
    with pytest.raises(LabelUsageError, match="--strategy step-by-step needs --judge openai:MODEL"):
        build_judge(JudgeSpec(spec="local", strategy="step-by-step"))
