"""Feature-extraction speed and memory against a plain SDPA forward of the same model, one run.

    .venv/bin/python benchmarks/features.py [--model ID_OR_PATH] [--window 2048] [--layers all]
        [--speed-tokens 4096] [--repeats 2] [--threads N] [--small 4096] [--large 32768]
        [--skip-speed] [--skip-memory]

Speed: the same windows (token ids) go through (a) `model(ids)` with SDPA attention and full
logits, no features, and (b) `Extractor.extract` with attention features on `--layers` and token
features for every scored token. Printed, in one run: the wall time and the CPU seconds of each
(best of `--repeats`, interleaved), the ratio of both (target >= 0.8), and the load average
before and after. `--threads` sets torch's thread count for both sides (default: torch's own).
Memory: a trace of `--small` and one of `--large` tokens are extracted, each in a fresh child
process; printed: peak RSS of each and the ratio (target <= 1.2), plus the peak over the RSS
right after loading the model. Traces are built from the shipped Who&When sample steps.
Timings are wall-clock on a machine shared with other work: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples" / "whowhen"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_steps(tokenizer, tokens: int):
    """Who&When sample messages, repeated in order until the rendered trace has ~`tokens`."""
    from tracefail.features.layout import render
    from tracefail.model import Step

    messages = []
    for path in sorted(SAMPLES.glob("*.json"), key=lambda p: int(p.stem)):
        for message in json.loads(path.read_text())["history"]:
            messages.append((message.get("name") or message.get("role") or "agent", message["content"]))
    steps: list[Step] = []
    index = 0
    while True:
        agent, content = messages[index % len(messages)]
        steps.append(Step(step_idx=len(steps), agent=agent, content=content))
        index += 1
        if len(render(steps, tokenizer).ids) >= tokens:
            return steps


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed(args) -> None:
    import torch

    from tracefail.features.extract import ExtractConfig, Extractor
    from tracefail.features.layout import plan_windows, render
    from tracefail.features.loading import load_causal_lm

    loaded = load_causal_lm(args.model, device=args.device)
    if args.threads:  # after loading, which sets all cores
        torch.set_num_threads(args.threads)
    model = loaded.model
    steps = build_steps(loaded.tokenizer, args.speed_tokens)
    config = ExtractConfig(window=args.window, layers=args.layers)
    layout = render(steps, loaded.tokenizer)
    windows = plan_windows(layout, args.window, config.stride)
    inputs = [[t for s, e in w.ranges for t in layout.ids[s:e]] for w in windows]
    n_tokens = sum(len(ids) for ids in inputs)

    def plain() -> tuple[float, float]:
        model.set_attn_implementation("sdpa")
        start, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            for ids in inputs:
                model(torch.tensor([ids], device=loaded.device))
        return time.perf_counter() - start, time.process_time() - cpu

    def features() -> tuple[float, float]:
        extractor = Extractor(loaded, config)
        start, cpu = time.perf_counter(), time.process_time()
        result = extractor.extract(steps)
        assert result.tokens == n_tokens
        return time.perf_counter() - start, time.process_time() - cpu

    load_before = os.getloadavg()
    plain()  # warm-up (allocator, kernels)
    timings: dict[str, list[tuple[float, float]]] = {"plain": [], "features": []}
    for _ in range(args.repeats):  # interleaved so background load hits both alike
        timings["plain"].append(plain())
        timings["features"].append(features())
    load_after = os.getloadavg()
    (w_plain, c_plain), (w_feat, c_feat) = (min(timings[side]) for side in ("plain", "features"))
    print(
        f"model {loaded.name} on {loaded.device} ({torch.get_num_threads()} threads), window {args.window}, "
        f"layers {args.layers}: {len(windows)} windows, {n_tokens} tokens, best of {args.repeats}"
    )
    for label, wall, cpu in (
        ("plain SDPA forward", w_plain, c_plain),
        ("feature extraction", w_feat, c_feat),
    ):
        print(f"  {label}: {n_tokens / wall:8.1f} tok/s  wall {wall:7.2f} s  CPU {cpu:7.2f} s")
    print(f"  ratio features/plain: wall {w_plain / w_feat:.2f}, CPU {c_plain / c_feat:.2f}  (target >= 0.8)")
    # Other work on the machine changes both timings, and not alike: wall time counts the waits
    # for a core, CPU time counts spinning threads. A load that moved during the run voids it.
    print(
        f"  load average (1/5/15 min) before {' '.join(f'{x:.1f}' for x in load_before)}, "
        f"after {' '.join(f'{x:.1f}' for x in load_after)}"
    )


def memory_child(args) -> None:
    from tracefail.features.extract import ExtractConfig, Extractor
    from tracefail.features.loading import load_causal_lm

    loaded = load_causal_lm(args.model, device=args.device)
    steps = build_steps(loaded.tokenizer, args.child_tokens)
    after_load = rss_mb()
    start = time.perf_counter()
    result = Extractor(loaded, ExtractConfig(window=args.window, layers=args.layers)).extract(steps)
    print(
        json.dumps(
            {
                "after_load_mb": after_load,
                "peak_mb": rss_mb(),
                "tokens": result.tokens,
                "trace_tokens": next(v for s, n, v in result.rows if n == "len.trace_tokens"),
                "seconds": time.perf_counter() - start,
            }
        )
    )


def memory(args) -> None:
    results = {}
    for tokens in (args.small, args.large):
        command = [
            sys.executable,
            __file__,
            "--child-tokens",
            str(tokens),
            "--window",
            str(args.window),
            "--layers",
            args.layers,
            "--device",
            args.device,
        ]
        if args.model:
            command += ["--model", args.model]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[tokens] = json.loads(done.stdout.strip().splitlines()[-1])
    for r in results.values():
        extra = r["peak_mb"] - r["after_load_mb"]
        print(
            f"  trace of {r['trace_tokens']:.0f} tokens ({r['tokens']} through windows, "
            f"{r['seconds']:.0f} s): peak RSS {r['peak_mb']:.0f} MB, {extra:.0f} MB over the loaded model"
        )
    small, large = results[args.small], results[args.large]
    over = (large["peak_mb"] - large["after_load_mb"]) / max(small["peak_mb"] - small["after_load_mb"], 1)
    print(
        f"  peak RSS ratio {args.large} / {args.small} tokens: {large['peak_mb'] / small['peak_mb']:.2f}  "
        f"(target <= 1.2); ratio of the peaks over the loaded model: {over:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--window", type=int, default=2048)
    parser.add_argument("--layers", default="all")
    parser.add_argument("--speed-tokens", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both sides")
    parser.add_argument("--small", type=int, default=4096)
    parser.add_argument("--large", type=int, default=32768)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--child-tokens", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # results appear as they come, even when piped
    if args.child_tokens:
        memory_child(args)
        return
    if not args.skip_speed:
        speed(args)
    if not args.skip_memory:
        memory(args)


if __name__ == "__main__":
    main()
