"""`Trace.content_hash` against the plain formula it must match byte for byte, in one run.

    .venv/bin/python benchmarks/content_hash.py [--mast-mb 50] [--workdir /tmp/...] [--repeat 5]

The input is the synthesized MAST-Data-style array of benchmarks/ingest.py (built there if
missing): run logs split into steps, the shape whose hashing dominated. The baseline is the
definition stored corpora were hashed with: json.dumps(sort_keys=True, ensure_ascii=False) of the
task, raw and each step's pydantic dump. Both sides hash the same parsed traces, interleaved,
best of `--repeat`; every digest is compared. Timings are CPU seconds of this process: compare
the ratio, not seconds.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from ingest import synthesize_mast  # benchmarks/ingest.py, beside this script

from tracefail.ingest import registry
from tracefail.model import Trace


def plain_hash(trace: Trace) -> str:
    """The formula content_hash must reproduce: one pydantic dump per step, then json.dumps."""
    payload = json.dumps(
        {
            "task": trace.task,
            "steps": [s.model_dump(mode="json", exclude={"metadata"}) for s in trace.steps],
            "raw": trace.raw,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def best(repeat: int, sides: dict[str, Callable[[Trace], str]], traces: list[Trace]) -> dict[str, float]:
    """Best CPU seconds per side over `repeat` interleaved passes (a busy machine slows both)."""
    seconds = {name: float("inf") for name in sides}
    for _ in range(repeat):
        for name, digest in sides.items():
            start = time.process_time()
            for trace in traces:
                digest(trace)
            seconds[name] = min(seconds[name], time.process_time() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mast-mb", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tracefail-bench"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"mast_synth_{args.mast_mb}mb_v2.json"  # as benchmarks/ingest.py names it
    if not path.exists():
        print(f"synthesized {path} ({synthesize_mast(path, args.mast_mb)} records)")
    traces = [t for t in registry.detect(path).parse(path) if isinstance(t, Trace)]
    gc.freeze()  # the parsed traces are not the work timed here: keep the collector off them
    mismatched = sum(t.content_hash() != plain_hash(t) for t in traces)
    steps = sum(len(t.steps) for t in traces)
    seconds = best(args.repeat, {"content_hash": Trace.content_hash, "plain": plain_hash}, traces)
    ours, plain = seconds["content_hash"], seconds["plain"]
    print(f"{path.name}: {len(traces)} traces, {steps} steps; digests unlike the plain formula: {mismatched}")
    print(f"  content_hash {ours:.3f} s ({ours / steps * 1e6:.1f} us/step), plain {plain:.3f} s")
    print(
        f"  content_hash takes {ours / plain:.2f}x the plain formula's CPU time: {plain / ours:.1f}x faster"
    )


if __name__ == "__main__":
    main()
