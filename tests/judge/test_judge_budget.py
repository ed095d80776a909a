"""The HTTP judge's request budget: a 429 pauses every request of the process, not only the one
that got it, against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

from judge_server import StubServer, completion, valid_answer

from tracefail.judge.budget import LocalBudget
from tracefail.judge.http import HttpSettings, OpenAIJudge
from tracefail.judge.prompt import TraceInput
from tracefail.model import Step
from tracefail.taxonomy import find

TAXONOMY = find("mast-v1").taxonomy
MODES = [m.id for m in TAXONOMY.modes]
TASKS = frozenset({"modes", "attribution"})


def rate_limited_for(seconds: float, retry_after: str):
    """A responder that answers 429 with Retry-After until `seconds` after its first request."""
    first: list[float] = []

    def reply(body: dict, number: int, headers: dict) -> tuple[int, dict, dict]:
        now = time.monotonic()
        first.append(first[0] if first else now)
        if now - first[0] < seconds:
            return 429, {"error": {"message": "rate limited"}}, {"Retry-After": retry_after}
        return 200, completion(valid_answer(body, MODES)), {}

    return reply


async def test_a_429_pauses_every_request_in_the_process():
    """Two slots, eight traces queued: after the first 429 the six traces waiting for a slot are
    held back too, so the server sees the two open requests refused, never eight."""
    statuses: list[int] = []
    limited = rate_limited_for(0.3, "0.5")

    def reply(body: dict, number: int, headers: dict) -> tuple[int, dict, dict]:
        status, payload, extra = limited(body, number, headers)
        statuses.append(status)
        return status, payload, extra

    with StubServer(reply) as server:
        settings = HttpSettings(model="stub", base_url=server.base_url, api_key_env="NO_KEY", concurrency=2)
        judge = OpenAIJudge(settings)
        steps = [Step(step_idx=0, agent="a", content="hi")]
        traces = [TraceInput(trace_id=f"t{i}", steps=steps, task="t") for i in range(8)]
        try:
            results = await asyncio.gather(*(judge.judge(t, TAXONOMY, TASKS) for t in traces))
        finally:
            await judge.aclose()
    assert len(results) == 8 and all(len(r.verdict.modes) == 14 for r in results)
    assert statuses.count(429) <= 2 and statuses.count(200) == 8


async def test_a_pause_holds_new_slots_until_it_ends():
    budget = LocalBudget(4)
    budget.pause(0.2)
    started = time.monotonic()
    async with budget.slot():
        waited = time.monotonic() - started
    assert 0.15 < waited < 1.0
