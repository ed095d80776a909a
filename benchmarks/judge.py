"""Judge throughput, measured in one run against a plain baseline on the same input.

    .venv/bin/python benchmarks/judge.py [--model SPEC] [--traces 1] [--window-tokens 2048] [--threads N]
        [--skip-local] [--skip-http] [--requests-per-slot 8]

Local judge (embedded SmolLM2 unless --model): the --traces shortest Who&When sample traces are
judged for all 14 MAST modes plus step attribution, (a) reading each window once and scoring
every question on its KV cache, (b) re-reading the whole window for every question. Printed:
traces/minute of (a), and the speed-up (a) over (b) on the same traces; the probabilities of
(a) and (b) are compared too (they must agree).
HTTP judge: a real OpenAI-compatible server on 127.0.0.1 (its own process, so it does not
share the client's GIL; asyncio with HTTP/1.1 keep-alive, tests/judge/judge_server.py
KeepAliveServer) answers every request after a fixed 200 ms; at concurrency 1, 8, 32 and 64
it gets `--requests-per-slot` x concurrency requests.
Printed: requests/s and the ratio to the ideal (concurrency / 0.2 s).
Timings are wall-clock on a machine shared with other work: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "judge"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from judge_server import KeepAliveServer, completion, valid_answer  # noqa: E402

import tracefail.judge.local as local_judge  # noqa: E402
from tracefail.judge.http import HttpSettings, OpenAIJudge  # noqa: E402
from tracefail.judge.local import LocalJudge  # noqa: E402
from tracefail.judge.prompt import TraceInput  # noqa: E402
from tracefail.judge.runner import load_input  # noqa: E402
from tracefail.model import Step  # noqa: E402
from tracefail.services.ingest import ingest  # noqa: E402
from tracefail.store import Database  # noqa: E402
from tracefail.taxonomy import find  # noqa: E402

TAXONOMY = find("mast-v1").taxonomy
TASKS = frozenset({"modes", "attribution"})
LATENCY_S = 0.2


def sample_traces(n: int) -> list[TraceInput]:
    db = Database(":memory:")
    ingest(db, [ROOT / "data_samples" / "whowhen"])
    # the shortest traces: the re-read baseline costs ~20x the tokens, keep it affordable on a CPU
    ids = [
        r[0]
        for r in db.rows(
            "SELECT trace_id FROM steps GROUP BY trace_id ORDER BY sum(length(content)), trace_id LIMIT ?",
            [n],
        )
    ]
    traces = [load_input(db, t) for t in ids]
    db.close()
    return traces


def bench_local(spec: str | None, n: int, window_tokens: int, threads: int | None) -> None:
    traces = sample_traces(n)
    # one fixed fence nonce so both passes read identical prompts and their scores must agree
    local_judge.new_nonce = lambda: "0" * 16
    judge = LocalJudge(spec, device="auto", window_tokens=window_tokens, threads=threads)
    started = time.perf_counter()
    scorer = judge.scorer
    loaded_s = time.perf_counter() - started
    print(f"local judge: model {scorer.name} on {scorer.device}, loaded in {loaded_s:.1f} s")
    timings = {}
    results = {}
    for reuse in (True, False):
        judge.reuse_cache = reuse
        started = time.perf_counter()
        results[reuse] = [judge.judge_sync(t, TAXONOMY, TASKS) for t in traces]
        timings[reuse] = time.perf_counter() - started
        label = "KV-cache prefix reuse" if reuse else "re-read per question"
        print(f"  ({label} done in {timings[reuse]:.1f} s)", flush=True)
    windows = sum(r.details["windows"] for r in results[True])
    tokens = {k: sum(r.tokens_in for r in v) for k, v in results.items()}
    gap = max(
        abs(a.probability - b.probability)
        for ra, rb in zip(results[True], results[False], strict=True)
        for a, b in zip(ra.verdict.modes, rb.verdict.modes, strict=True)
    )
    print(f"  {len(traces)} Who&When traces, {windows} windows, 14 modes + every step asked per window")
    print(
        f"  KV-cache prefix reuse : {timings[True]:7.1f} s, {tokens[True]:7d} tokens run, "
        f"{60 * len(traces) / timings[True]:.2f} traces/minute"
    )
    print(
        f"  re-read per question  : {timings[False]:7.1f} s, {tokens[False]:7d} tokens run, "
        f"{60 * len(traces) / timings[False]:.2f} traces/minute"
    )
    print(
        f"  speed-up of prefix reuse: {timings[False] / timings[True]:.2f}x "
        f"(tokens {tokens[False] / tokens[True]:.2f}x); max probability difference {gap:.2e}"
    )


async def _http_round(base_url: str, concurrency: int, n_requests: int) -> float:
    judge = OpenAIJudge(
        HttpSettings(
            model="stub", base_url=base_url, api_key_env="NO_KEY", concurrency=concurrency, timeout_s=30
        )
    )
    steps = [Step(step_idx=i, agent=f"agent{i % 2}", content=f"message {i}") for i in range(4)]
    traces = [TraceInput(trace_id=f"t{i}", steps=steps, task="bench") for i in range(n_requests)]
    await judge.judge(traces[0], TAXONOMY, TASKS)  # open the connection pool first
    started = time.perf_counter()
    await asyncio.gather(*(judge.judge(t, TAXONOMY, TASKS) for t in traces))
    elapsed = time.perf_counter() - started
    await judge.aclose()
    return elapsed


def serve() -> None:
    """Run the keep-alive server in its own process so it does not share the client's GIL."""
    modes = [m.id for m in TAXONOMY.modes]

    def reply(body: dict, number: int, headers: dict) -> tuple[int, dict, dict]:
        return 200, completion(valid_answer(body, modes)), {}

    async def run() -> None:
        server = KeepAliveServer(reply, latency_s=LATENCY_S)
        print(await server.start(), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin

    asyncio.run(run())


def bench_http(per_slot: int) -> None:
    import httpx

    latency_ms = int(LATENCY_S * 1000)
    print(f"HTTP judge: OpenAI-compatible server in another process, fixed {latency_ms} ms per request")
    for concurrency in (1, 8, 32, 64):
        n = per_slot * concurrency
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            base_url = child.stdout.readline().strip()
            elapsed = asyncio.run(_http_round(base_url, concurrency, n))
            peak = httpx.get(base_url.removesuffix("/v1") + "/stats").json()["max_in_flight"]
        finally:
            child.stdin.close()
            child.wait()
        rate = n / elapsed
        ideal = concurrency / LATENCY_S
        print(
            f"  concurrency {concurrency:2d}: {n:4d} requests in {elapsed:5.2f} s = {rate:6.1f}/s, "
            f"ideal {ideal:6.1f}/s, ratio {rate / ideal:.2f}; server saw at most {peak} at once"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local judge model (default: embedded SmolLM2)")
    parser.add_argument("--traces", type=int, default=1)
    parser.add_argument("--window-tokens", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--requests-per-slot", type=int, default=8)
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    if not args.skip_http:
        bench_http(args.requests_per_slot)
    if not args.skip_local:
        bench_local(args.model, args.traces, args.window_tokens, args.threads)


if __name__ == "__main__":
    main()
