"""The HTTP judge spreads its budget over small connection pools (httpcore scans a whole pool per
request event): together they must still open `concurrency` requests at once, reuse their
connections, and never exceed the budget."""

from __future__ import annotations

import asyncio

from judge_server import KeepAliveServer, completion, valid_answer

from tracefail.judge.http import POOL_CONNECTIONS, HttpSettings, OpenAIJudge
from tracefail.judge.prompt import TraceInput
from tracefail.model import Step
from tracefail.taxonomy import find

TAXONOMY = find("mast-v1").taxonomy
MODES = [m.id for m in TAXONOMY.modes]
TASKS = frozenset({"modes", "attribution"})


def ok(body, number, headers):
    return 200, completion(valid_answer(body, MODES)), {}


def _traces(n: int) -> list[TraceInput]:
    steps = [Step(step_idx=i, agent=f"agent{i % 2}", content=f"message {i}") for i in range(3)]
    return [TraceInput(trace_id=f"t{i}", steps=steps, task="Add 2 and 2.") for i in range(n)]


async def test_small_pools_together_hold_the_whole_budget_on_kept_alive_connections():
    concurrency = 2 * POOL_CONNECTIONS + 3  # three pools, the last one partly used
    async with KeepAliveServer(ok, latency_s=0.3) as server:
        judge = OpenAIJudge(
            HttpSettings(
                model="stub", base_url=server.base_url, api_key_env="NO_KEY", concurrency=concurrency
            )
        )
        try:
            for _ in range(2):  # the second round reuses the first round's connections
                results = await asyncio.gather(
                    *(judge.judge(t, TAXONOMY, TASKS) for t in _traces(concurrency + 5))
                )
        finally:
            await judge.aclose()
    assert len(results) == concurrency + 5
    assert server.max_in_flight == concurrency
    assert server.requests == 2 * (concurrency + 5)
    assert server.connections <= concurrency
