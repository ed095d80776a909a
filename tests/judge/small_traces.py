"""Short Who&When-format traces for judge tests: real model runs stay quick."""

from __future__ import annotations

import json
from pathlib import Path


def write_small_traces(folder: Path, n: int = 6) -> Path:
    """n short AG2-style Who&When traces (3 steps) with known mistake agent and step."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        record = {
            "is_correct": False,
            "question": f"What is {i} + {i}?",
            "question_ID": f"small-{i}",
            "level": "1",
            "ground_truth": str(2 * i),
            "history": [
                {"content": f"What is {i} + {i}?", "role": "user", "name": "Planner"},
                {"content": f"I think it is {2 * i + 1}.", "role": "assistant", "name": "Solver"},
                {"content": "Looks right to me. TERMINATE", "role": "assistant", "name": "Verifier"},
            ],
            "mistake_agent": "Solver",
            "mistake_step": "1",
            "mistake_reason": "Arithmetic slip.",
            "system_prompt": {},
        }
        (folder / f"{i}.json").write_text(json.dumps(record), encoding="utf-8")
    return folder
