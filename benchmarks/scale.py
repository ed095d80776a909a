"""Ray fan-out, measured in one run against the single-process run on the same input.

    .venv/bin/python benchmarks/scale.py [--per-slot 6] [--workers 1,2,4] [--concurrency 32,64]
        [--feature-traces 4] [--skip-label] [--skip-features]

label --ray: an OpenAI-compatible server on 127.0.0.1 (its own process, `benchmarks/judge.py
--serve`, asyncio with HTTP/1.1 keep-alive) answers every request after a fixed 200 ms. A corpus
of short traces (one request each, `--per-slot` x concurrency of them) is labelled end to end,
verdicts stored in DuckDB by the driver: single process, then Ray with 1, 2 and 4 workers
sharing one budget of C requests.
Printed: the end-to-end time (Ray: starting the actor pool included) and the steady-state rate
from the first stored batch of verdicts to the last, each as a ratio of the ideal (C / 0.2 s), and the
steady rate against the plain baseline measured in the same run: the bare HTTP judge sending the
same number of requests at concurrency C with no corpus at all (what this machine's CPU allows a
client now, and the CPU time it spent per request; on a busy shared machine it is below the
ideal). The load average is printed with each round.
features --ray: the `--feature-traces` shortest Who&When samples read by the tiny random test
model (tests/tiny_lm.py, saved to a temporary folder) in this process, then with Ray (2 workers,
local Ray already running). Printed: both wall times split into model load (Ray: starting the
actors, each importing torch and transformers and loading the model) and extraction, Ray's fixed
overhead in seconds and as a ratio, and the largest difference between the two runs' values.
Timings are wall-clock on a machine shared with other work: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "judge")]

from judge import _http_round  # noqa: E402
from small_traces import write_small_traces  # noqa: E402

from tracefail.services.distributed import RayOptions  # noqa: E402
from tracefail.services.features import extract_features  # noqa: E402
from tracefail.services.ingest import ingest  # noqa: E402
from tracefail.services.label import JudgeSpec, label  # noqa: E402
from tracefail.store import Database  # noqa: E402

LATENCY_S = 0.2


def corpus(folder: Path, n: int) -> Path:
    path = folder / f"corpus-{n}.duckdb"
    if not path.exists():
        with Database(path) as db:
            ingest(db, [write_small_traces(folder / f"traces-{n}", n)])
    return path


def label_round(
    path: Path, base_url: str, concurrency: int, ray: RayOptions | None
) -> tuple[float, float, int]:
    """(seconds end to end, verdicts per second after the first stored batch, traces judged).

    The steady rate counts only the verdicts stored after the first batch, over the time since
    it: counting that batch too (n - 1 over the span) inflates a run whose verdicts land in
    waves of C by per_slot / (per_slot - 1)."""
    stored: list[tuple[float, int]] = []
    with Database(path) as db:
        db.execute("DELETE FROM labels")
        db.execute("DELETE FROM attributions")
        spec = JudgeSpec(spec="openai:stub", base_url=base_url, concurrency=concurrency, timeout_s=30)
        started = time.perf_counter()
        report = label(
            db,
            judge=spec,
            ray=ray,
            on_progress=lambda done, total: stored.append((time.perf_counter(), done)),
        )
        elapsed = time.perf_counter() - started
    assert not report.errors, report.errors[:3]
    (first_at, first_done), (last_at, last_done) = stored[0], stored[-1]
    return elapsed, (last_done - first_done) / (last_at - first_at), report.judged


def bench_label(folder: Path, per_slot: int, workers: list[int], concurrencies: list[int]) -> None:
    import httpx

    print(f"label: OpenAI-compatible server in another process, fixed {int(LATENCY_S * 1000)} ms per request")
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "judge.py"), "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = server.stdout.readline().strip()
        for concurrency in concurrencies:
            path = corpus(folder, per_slot * concurrency)
            ideal = concurrency / LATENCY_S
            n_plain = per_slot * concurrency
            cpu = time.process_time()
            plain_s = asyncio.run(_http_round(base_url, concurrency, n_plain))
            cpu_ms = 1000 * (time.process_time() - cpu) / n_plain
            plain = n_plain / plain_s
            print(
                f"  C={concurrency:2d} plain HTTP client    : {n_plain:4d} requests, {plain:6.1f}/s "
                f"= {plain / ideal:.2f} of ideal (no corpus, no Ray); client CPU {cpu_ms:.1f} ms per "
                f"request, {cpu_ms * plain / 1000:.2f} of a core; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            runs = [("single process", None)]
            runs += [(f"ray, {w} worker(s)", RayOptions(workers=w)) for w in workers]
            for name, ray in runs:
                elapsed, rate, n = label_round(path, base_url, concurrency, ray)
                print(
                    f"  C={concurrency:2d} {name:<20}: {n:4d} traces, {elapsed:5.2f} s end to end "
                    f"({n / elapsed / ideal:.2f} of ideal); steady {rate:6.1f}/s of ideal {ideal:5.0f}/s "
                    f"= ratio {rate / ideal:.2f}; {rate / plain:.2f} of the plain client; "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        peak = httpx.get(base_url.removesuffix("/v1") + "/stats").json()["max_in_flight"]
        print(f"  the server saw at most {peak} requests at once (budget {max(concurrencies)})")
    finally:
        server.stdin.close()
        server.wait()


def bench_features(folder: Path, n: int) -> None:
    from tiny_lm import build_tiny_lm

    model, tokenizer = build_tiny_lm()
    model_dir = folder / "tiny-model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    path = folder / "features.duckdb"
    with Database(path) as db:
        ingest(db, [ROOT / "data_samples" / "whowhen"])
        chosen = [
            r[0]
            for r in db.rows(
                "SELECT trace_id FROM steps GROUP BY trace_id ORDER BY sum(length(content)) LIMIT ?", [n]
            )
        ]
        options = {"model": str(model_dir), "device": "cpu", "window": 1024, "layers": "0"}
        timings, setup, values = {}, {}, {}
        ready: dict[str, float] = {}
        for name, ray in (("single", None), ("ray", RayOptions(workers=2))):
            db.execute("DELETE FROM features")

            def loaded(total: int, model: str, name: str = name) -> None:
                ready[name] = time.perf_counter()  # the model is loaded (Ray: in every actor)

            started = time.perf_counter()
            report = extract_features(db, ray=ray, trace_ids=chosen, on_start=loaded, **options)
            timings[name] = time.perf_counter() - started
            setup[name] = ready[name] - started
            rows = db.rows("SELECT trace_id, step_idx, name, value FROM features")
            values[name] = {(t, s, k): v for t, s, k, v in rows}
            print(
                f"  features {name:<6}: {report.traces} traces, {report.rows} rows, {timings[name]:.2f} s "
                f"= {setup[name]:.2f} s model load + {timings[name] - setup[name]:.2f} s extraction"
            )
    gap = max(abs(values["ray"][k] - v) for k, v in values["single"].items())
    extraction = {name: timings[name] - setup[name] for name in timings}
    print(
        f"  Ray's fixed overhead on {n} traces: {timings['ray'] - timings['single']:+.2f} s, "
        f"ray / single = {timings['ray'] / timings['single']:.2f}x; of it, starting the actors and "
        f"loading the model in each: {setup['ray'] - setup['single']:+.2f} s; extraction "
        f"ray / single = {extraction['ray'] / extraction['single']:.2f}x; "
        f"max |difference| in {len(values['single'])} values {gap:.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-slot", type=int, default=6, help="traces per unit of concurrency")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", default="32,64")
    parser.add_argument("--feature-traces", type=int, default=4)
    parser.add_argument("--skip-label", action="store_true")
    parser.add_argument("--skip-features", action="store_true")
    args = parser.parse_args()
    import ray

    workers = [int(w) for w in args.workers.split(",")]
    started = time.perf_counter()
    ray.init(num_cpus=max(workers), include_dashboard=False, log_to_driver=False)
    print(f"local Ray started in {time.perf_counter() - started:.1f} s (once; not counted below)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if not args.skip_label:
                concurrencies = [int(c) for c in args.concurrency.split(",")]
                bench_label(Path(tmp), args.per_slot, workers, concurrencies)
            if not args.skip_features:
                bench_features(Path(tmp), args.feature_traces)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
