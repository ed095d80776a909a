"""Tokens per trace of each chat-judge attribution strategy, measured against a local
OpenAI-compatible server on 127.0.0.1 that records every request.

The server answers every question as an oracle would for the dataset's mistake step, so the
number of questions is what a perfectly consistent model would need; tokens are the request
text's characters / 4 (the server has no tokenizer). Ratios are against all-at-once.

    python benchmarks/strategies.py [--data data_samples/whowhen] [--limit 20]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "judge"))

from judge_server import StubServer, completion, valid_answer  # noqa: E402

from tracefail.services.attribution import train  # noqa: E402
from tracefail.services.ingest import ingest  # noqa: E402
from tracefail.services.label import JudgeSpec, label  # noqa: E402
from tracefail.store import Database  # noqa: E402
from tracefail.taxonomy import find  # noqa: E402

MODES = [m.id for m in find("mast-v1").taxonomy.modes]


def oracle(gold: dict[str, int]):
    def answer(body: dict, number: int, headers: dict) -> tuple[int, dict, dict]:
        text = body["messages"][1]["content"]
        size = sum(len(m["content"]) for m in body["messages"]) // 4
        props = body.get("response_format", {}).get("json_schema", {}).get("schema", {}).get("properties", {})
        task = re.search(r"\[task given to the agents\]\n(.*?)\n", text)
        target = gold.get(task.group(1) if task else "", 0)
        question = text.rsplit("\n\n", 1)[-1]
        if "mistake" in props:
            shown = [int(s) for s in re.findall(r"^\[step (\d+) \|", text, re.M)]
            reply = {"mistake": shown[-1] == target}
        elif "half" in props:
            end = int(re.search(r"steps \d+-(\d+) \(first\)", question).group(1))
            reply = {"half": "first" if target <= end else "second"}
        elif "step" in props and "modes" not in props:
            offered = json.loads(re.search(r"steps (\[[\d, ]*\])", question).group(1))
            reply = {"step": target if target in offered else offered[0]}
        else:
            return 200, completion(valid_answer(body, MODES), size, 200), {}
        return 200, completion(json.dumps({**reply, "reason": "oracle"}), size, 15), {}

    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data_samples" / "whowhen")
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "c.duckdb")
        ingest(db, [args.data])
        gold = {
            task: step
            for task, step in db.rows(
                "SELECT t.task, a.step_idx FROM traces t JOIN attributions a USING (trace_id) "
                "WHERE a.source LIKE 'dataset:%'"
            )
        }
        model = Path(tmp) / "ranker.json"
        train(db, reference="dataset", output=model, folds=5, reps=10)
        results = {}
        with StubServer(oracle(gold)) as server:
            for strategy in ("all-at-once", "step-by-step", "binary-search", "shortlist"):
                spec = JudgeSpec(
                    spec="openai:oracle",
                    base_url=server.base_url,
                    api_key_env="NO_KEY",
                    strategy=strategy,
                    ranker=str(model) if strategy == "shortlist" else None,
                )
                before = len(server.requests)
                report = label(db, judge=spec, tasks="attribution", limit=args.limit)
                n = max(1, report.judged)
                results[strategy] = (
                    report.tokens_in / n,
                    report.tokens_out / n,
                    (len(server.requests) - before) / n,
                )
        db.close()
    base = results["all-at-once"][0] + results["all-at-once"][1]
    print(f"{args.limit} traces from {args.data}; tokens = request characters / 4")
    for strategy, (t_in, t_out, questions) in results.items():
        print(
            f"{strategy:<14} {t_in:8.0f} in + {t_out:5.0f} out tokens per trace, {questions:4.1f} requests "
            f"per trace, {(t_in + t_out) / base:4.2f}x all-at-once"
        )


if __name__ == "__main__":
    main()
