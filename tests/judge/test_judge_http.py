"""The OpenAI-compatible judge against a real HTTP server on 127.0.0.1 with scripted replies."""

from __future__ import annotations

import json

import pytest
from judge_server import StubServer, completion, valid_answer

from tracefail.judge.backend import JudgeError
from tracefail.judge.http import HttpSettings, OpenAIJudge
from tracefail.judge.prompt import TraceInput
from tracefail.model import Step
from tracefail.services.label import JudgeSpec, label
from tracefail.taxonomy import find

TAXONOMY = find("mast-v1").taxonomy
MODES = [m.id for m in TAXONOMY.modes]
TASKS = frozenset({"modes", "attribution"})


def _trace(n: int = 3) -> TraceInput:
    steps = [Step(step_idx=i, agent=f"agent{i % 2}", content=f"message {i}") for i in range(n)]
    return TraceInput(trace_id="t1", steps=steps, task="Add 2 and 2.")


def _judge(server: StubServer, **kw) -> OpenAIJudge:
    settings = dict(
        model="stub",
        base_url=server.base_url,
        api_key_env="TRACEFAIL_TEST_KEY",
        backoff_s=0.01,
        timeout_s=5.0,
    )
    settings.update(kw)
    return OpenAIJudge(HttpSettings(**settings))


async def _run(judge: OpenAIJudge, trace: TraceInput):
    try:
        return await judge.judge(trace, TAXONOMY, TASKS)
    finally:
        await judge.aclose()


def ok(body, number, headers):
    return 200, completion(valid_answer(body, MODES, frozenset({"1.3"}))), {}


async def test_valid_reply_becomes_a_verdict_with_tokens():
    with StubServer(ok) as server:
        result = await _run(_judge(server), _trace())
    verdict = result.verdict
    assert len(verdict.modes) == 14
    assert [m.mode_id for m in verdict.modes if m.present] == ["1.3"]
    assert verdict.root_cause_step == 0 and verdict.root_cause_agent == "agent0"
    assert verdict.steps_read == [0, 1, 2] and not verdict.truncated
    assert (result.tokens_in, result.tokens_out) == (100, 20)
    body = server.requests[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True


async def test_retries_on_429_with_retry_after_and_on_500():
    def flaky(body, number, headers):
        if number == 1:
            return 429, {"error": "slow down"}, {"Retry-After": "0"}
        if number == 2:
            return 500, {"error": "boom"}, {}
        return ok(body, number, headers)

    with StubServer(flaky) as server:
        result = await _run(_judge(server), _trace())
    assert len(server.requests) == 3 and len(result.verdict.modes) == 14


async def test_gives_up_after_max_retries_and_on_4xx():
    down = StubServer(lambda b, n, h: (503, {"error": "down"}, {}))
    with down as server, pytest.raises(JudgeError, match=r"HTTP 503 .* after 2 retries"):
        await _run(_judge(server, max_retries=2), _trace())
    assert len(server.requests) == 3
    refused = StubServer(lambda b, n, h: (401, {"error": "bad key"}, {}))
    with refused as server, pytest.raises(JudgeError, match="HTTP 401"):
        await _run(_judge(server), _trace())
    assert len(server.requests) == 1  # not retried


async def test_timeout_is_retried_then_reported():
    with StubServer(ok, latency_s=3.0) as server, pytest.raises(JudgeError, match="Timeout"):
        await _run(_judge(server, timeout_s=1.0, max_retries=1), _trace())
    assert len(server.requests) == 2


async def test_malformed_json_gets_one_repair_request():
    def first_bad(body, number, headers):
        if number == 1:
            return 200, completion("Sure! Here is my analysis: {modes: oops"), {}
        return ok(body, number, headers)

    with StubServer(first_bad) as server:
        result = await _run(_judge(server), _trace())
    assert len(result.verdict.modes) == 14 and len(server.requests) == 2
    repair = server.requests[1]["messages"]
    assert repair[-2]["role"] == "assistant" and "invalid" in repair[-1]["content"]
    assert result.tokens_in == 200  # both calls counted


async def test_schema_violation_twice_is_an_error_never_a_guess():
    def missing_mode(body, number, headers):
        answer = json.loads(valid_answer(body, MODES))
        answer["modes"] = answer["modes"][:-1]
        return 200, completion(json.dumps(answer)), {}

    with (
        StubServer(missing_mode) as server,
        pytest.raises(JudgeError, match=r"repair: modes: missing \['3.3'\]"),
    ):
        await _run(_judge(server), _trace())
    assert len(server.requests) == 2


async def test_evidence_outside_the_trace_is_rejected():
    def bad_step(body, number, headers):
        answer = json.loads(valid_answer(body, MODES))
        answer["root_cause"]["step"] = 99
        return 200, completion(json.dumps(answer)), {}

    with StubServer(bad_step) as server, pytest.raises(JudgeError, match=r"root_cause\.step: 99"):
        await _run(_judge(server), _trace())


async def test_server_without_json_schema_gets_plain_json_requests():
    def no_schema(body, number, headers):
        if "response_format" in body:
            return 400, {"error": {"message": "response_format is not supported"}}, {}
        return ok(body, number, headers)

    with StubServer(no_schema) as server:
        result = await _run(_judge(server), _trace())
    assert len(result.verdict.modes) == 14
    assert "response_format" not in server.requests[-1]


async def test_long_trace_is_windowed_and_merged():
    trace = _trace(12)
    steps = [s.model_copy(update={"content": "z" * 400}) for s in trace.steps]
    trace = TraceInput(trace_id="long", steps=steps, task=trace.task)
    with StubServer(ok) as server:
        result = await _run(_judge(server, window_chars=1000), trace)
    assert len(server.requests) == 6 and result.details["windows"] == 6
    assert result.verdict.steps_read == list(range(12)) and not result.verdict.truncated
    mode = next(m for m in result.verdict.modes if m.mode_id == "1.3")
    assert mode.evidence_steps == [0, 2, 4, 6, 8, 10]  # union over windows


def test_batch_respects_concurrency_and_never_stores_the_key(whowhen_db, monkeypatch):
    monkeypatch.setenv("TRACEFAIL_TEST_KEY", "sk-secret-123")
    with StubServer(ok, latency_s=0.15) as server:
        spec = JudgeSpec(
            spec="openai:stub", base_url=server.base_url, api_key_env="TRACEFAIL_TEST_KEY", concurrency=3
        )
        report = label(whowhen_db, judge=spec)
    assert report.judged == 20 and not report.errors
    assert server.max_in_flight == 3
    assert all(h.get("Authorization") == "Bearer sk-secret-123" for h in server.headers)
    assert report.tokens_in == 2000 and report.tokens_out == 400
    dumped = whowhen_db.rows("SELECT CAST(config AS VARCHAR) || CAST(counts AS VARCHAR) FROM runs")
    dumped += whowhen_db.rows(
        "SELECT coalesce(CAST(metadata AS VARCHAR), '') || coalesce(rationale, '') FROM labels"
    )
    assert not any("sk-secret" in row[0] for row in dumped)


def test_errors_are_recorded_and_other_traces_go_on(whowhen_db):
    def broken_for_one(body, number, headers):
        if "retractable awning" in body["messages"][1]["content"]:
            return 200, completion("no json here"), {}
        return ok(body, number, headers)

    with StubServer(broken_for_one) as server:
        spec = JudgeSpec(spec="openai:stub", base_url=server.base_url, api_key_env="UNSET_KEY_VAR")
        report = label(whowhen_db, judge=spec)
    assert report.errors and report.judged + len(report.errors) == 20
    run = whowhen_db.rows("SELECT n_errors, status FROM runs WHERE run_id = ?", [report.run_id])[0]
    assert run == (len(report.errors), "done")
    failed = {t for t, _ in report.errors}
    stored = {
        r[0]
        for r in whowhen_db.rows("SELECT DISTINCT trace_id FROM labels WHERE source = ?", [report.source])
    }
    assert not failed & stored and len(stored) == report.judged


def test_a_run_stops_when_the_endpoint_refuses_every_trace(whowhen_db):
    """A wrong key (401) fails every trace alike: the run gives up after a streak, not after 20."""

    def refused(body, number, headers):
        return 401, {"error": {"message": "Incorrect API key provided"}}, {}

    with StubServer(refused) as server:
        spec = JudgeSpec(spec="openai:stub", base_url=server.base_url, concurrency=1)
        report = label(whowhen_db, judge=spec)
    assert report.judged == 0 and len(report.errors) == 3 and len(server.requests) == 3
    assert report.stopped and "3 traces in a row" in report.stopped
    assert "17 traces were not sent" in report.stopped
    run = whowhen_db.rows("SELECT status FROM runs WHERE run_id = ?", [report.run_id])[0]
    assert run == ("failed",)
    assert not whowhen_db.rows("SELECT 1 FROM labels WHERE source = ?", [report.source])


def _edited(edit):
    """A responder whose every reply is the valid answer changed by `edit(answer)`."""

    def respond(body, number, headers):
        answer = json.loads(valid_answer(body, MODES, frozenset({"1.3"})))
        edit(answer)
        return 200, completion(json.dumps(answer)), {}

    return respond


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda a: a["root_cause"].update(agent="VerificationExpert"),
            "'VerificationExpert' is not an agent",
        ),
        (lambda a: a["modes"][2].update(agent="ghost"), r"modes.1.3.agent: 'ghost' is not an agent"),
        (
            lambda a: a["modes"][0].update(present=True, probability=0.0),
            "present true contradicts probability 0",
        ),
        (lambda a: a["modes"][2].update(probability=0.1), "present true contradicts probability 0.1"),
    ],
)
async def test_replies_naming_strangers_or_contradicting_themselves_are_errors(edit, message):
    with StubServer(_edited(edit)) as server, pytest.raises(JudgeError, match=f"repair: .*{message}"):
        await _run(_judge(server), _trace())
    assert len(server.requests) == 2  # one repair request, then an error
    assert (
        "not an agent" in server.requests[1]["messages"][-1]["content"]
        or "contradicts" in (server.requests[1]["messages"][-1]["content"])
    )


async def test_attribution_agent_is_the_step_speaker_unless_another_participant_is_named():
    with StubServer(_edited(lambda a: a["root_cause"].update(agent=None, step=1))) as server:
        result = await _run(_judge(server), _trace())
    assert (result.verdict.root_cause_step, result.verdict.root_cause_agent) == (1, "agent1")
    with StubServer(_edited(lambda a: a["root_cause"].update(agent="agent0", step=1))) as server:
        result = await _run(_judge(server), _trace())
    assert (result.verdict.root_cause_step, result.verdict.root_cause_agent) == (1, "agent0")
