"""Attribution strategies for chat judges against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from judge_server import StubServer, completion
from typer.testing import CliRunner

from tracefail.cli import app
from tracefail.judge.backend import JudgeError
from tracefail.judge.http import HttpSettings, OpenAIJudge
from tracefail.judge.prompt import TraceInput
from tracefail.judge.strategies import StrategyJudge
from tracefail.model import Step
from tracefail.taxonomy import find

TAXONOMY = find("mast-v1").taxonomy
MISTAKE = 5
SAMPLES = Path(__file__).resolve().parents[2] / "data_samples" / "whowhen"


def _trace(n: int = 9) -> TraceInput:
    steps = [Step(step_idx=i, agent=f"agent{i % 3}", content=f"message {i}") for i in range(n)]
    return TraceInput(trace_id="t1", steps=steps, task="Find the number.")


def oracle(body, number, headers):
    """Answers every strategy's question as if the mistake were at step MISTAKE."""
    question = body["messages"][1]["content"].rsplit("\n\n", 1)[-1]
    shown = [int(s) for s in re.findall(r"^\[step (\d+) \|", body["messages"][1]["content"], re.M)]
    target = MISTAKE
    props = body["response_format"]["json_schema"]["schema"]["properties"]
    if "mistake" in props:
        answer = {"mistake": shown[-1] == target}
    elif "half" in props:
        first_end = int(re.search(r"steps \d+-(\d+) \(first\)", question).group(1))
        answer = {"half": "first" if target <= first_end else "second"}
    else:
        candidates = json.loads(re.search(r"steps (\[[\d, ]*\])", question).group(1))
        answer = {"step": candidates[0]}
    size = sum(len(m["content"]) for m in body["messages"]) // 4
    return 200, completion(json.dumps({**answer, "reason": "scripted"}), size, 12), {}


def _judge(server: StubServer, strategy: str) -> StrategyJudge:
    http = OpenAIJudge(
        HttpSettings(model="stub", base_url=server.base_url, api_key_env="NO_KEY", backoff_s=0.01)
    )
    return StrategyJudge(http, strategy)


@pytest.mark.parametrize(("strategy", "questions"), [("step-by-step", MISTAKE + 1), ("binary-search", 3)])
async def test_search_strategies_find_the_mistake_with_the_expected_questions(strategy, questions):
    with StubServer(oracle) as server:
        judge = _judge(server, strategy)
        try:
            result = await judge.judge(_trace(), TAXONOMY, frozenset({"attribution"}))
        finally:
            await judge.aclose()
    assert result.verdict.root_cause_step == MISTAKE and result.verdict.root_cause_agent == "agent2"
    assert len(server.requests) == questions == result.details["questions"]
    assert result.tokens_out == 12 * questions and result.tokens_in > 0
    if strategy == "step-by-step":  # step k is asked with the trace up to step k only
        last = server.requests[-1]["messages"][1]["content"]
        assert f"[step {MISTAKE} |" in last and f"[step {MISTAKE + 1} |" not in last


async def test_a_reply_without_the_answer_is_an_error_not_a_guess():
    def vague(body, number, headers):
        return 200, completion("I think it is probably step 3."), {}

    with StubServer(vague) as server:
        judge = _judge(server, "binary-search")
        with pytest.raises(JudgeError, match="invalid binary-search reply"):
            await judge.judge(_trace(), TAXONOMY, frozenset({"attribution"}))
        await judge.aclose()


def test_shortlist_picks_among_the_ranker_candidates_end_to_end(tmp_path: Path):
    runner = CliRunner()
    db, model = tmp_path / "c.duckdb", tmp_path / "r.json"
    assert runner.invoke(app, ["ingest", "--db", str(db), str(SAMPLES)]).exit_code == 0
    assert (
        runner.invoke(
            app, ["train", "--db", str(db), "--cv", "2", "--bootstrap", "20", "-o", str(model)]
        ).exit_code
        == 0
    )
    args = ["label", "--db", str(db), "--judge", "openai:stub", "--api-key-env", "NO_KEY", "--limit", "4"]
    with StubServer(oracle) as server:
        result = runner.invoke(
            app,
            [
                *args,
                "--base-url",
                server.base_url,
                "--task",
                "attribution",
                "--strategy",
                "shortlist",
                "--ranker",
                str(model),
                "--json",
            ],
        )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["attributions"] == 4 and len(server.requests) == 4
    for body in server.requests:  # one question per trace, offering the ranker's top 3
        offered = json.loads(re.search(r"steps (\[[\d, ]*\])", body["messages"][1]["content"]).group(1))
        assert len(offered) == 3
    no_ranker = runner.invoke(
        app,
        [*args, "--base-url", "http://127.0.0.1:9/v1", "--task", "attribution", "--strategy", "shortlist"],
    )
    assert no_ranker.exit_code == 2 and "needs --ranker" in no_ranker.stderr
    local = runner.invoke(app, ["label", "--db", str(db), "--strategy", "step-by-step"])
    assert local.exit_code == 2 and "needs --judge openai:MODEL" in local.stderr
