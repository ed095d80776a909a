"""The split of every shipped MAST trajectory is pinned: stored content hashes depend on it.

Each record's trajectory is split once per framework name (so every splitter meets every log
style, as the fallback order does), whole, at 3x length (the benchmark's synthesized file
repeats trajectories) and from a third of the way in (a preamble before the first header).
The sha256 of all those splits' full output (style, task, outcome, metadata, every step field)
must match the value taken from the splitter before it was made faster: a change here
re-hashes every re-ingested MAST corpus.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tracefail.ingest.logsplit import SPLITTERS, split_trajectory

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples" / "mast"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "mast"
FRAMEWORKS = [None, *SPLITTERS]

GOLDEN = {
    "mad_full_sample.json#0": "078fe50cf9c49705da01027b1ae0328336c4d939f098473ab53d0eb61b8a082b",
    "mad_full_sample.json#1": "1f2b4c1b33a80ce73f84c6f3fba34bbb015a207e5dd2128268d6707fdcb12937",
    "mad_full_sample.json#2": "9a4f823b2e32a686e1c317ea54bd9a0eec9be9553acbf5fba6ac52026726a7d1",
    "mad_full_sample.json#3": "2599753428a1121f8e5240071a1726a1300f071965ca2c0121c9cc0a42ec3702",
    "mad_full_sample.json#4": "5047bb418e4977c291172a3117e2c43dcd90a0f59839b3c90c295ee2539554c1",
    "mad_full_sample.json#5": "ee9341424e0752af08d1497e65fea83d6da6795875be7e2a087d9c3ce643c26c",
    "mad_full_sample.json#6": "b69c7570c1007a1bedef4494d9dc88c67f8a8eda1badea64e92ed78117883c79",
    "mad_full_sample.json#7": "08b89cab7555cbcdb960d2d5bc84bbac74433126793e495aee25dae46af291e8",
    "mad_human_round3_nan.json#0": "5047bb418e4977c291172a3117e2c43dcd90a0f59839b3c90c295ee2539554c1",
    "mad_human_sample.json#0": "9de3b155c126fe714d669d77e49363a80f8eada88cee0d584fc7b2d3cbe27050",
    "mad_human_sample.json#1": "078fe50cf9c49705da01027b1ae0328336c4d939f098473ab53d0eb61b8a082b",
    "mad_human_sample.json#2": "d242bf10c24c1d283456f52910cb44b6f4cca328c9ce7d3576704f8c78b3c63b",
    "mad_human_sample.json#3": "1f2b4c1b33a80ce73f84c6f3fba34bbb015a207e5dd2128268d6707fdcb12937",
}


def _trajectory(record: dict) -> str:
    trace = record.get("trace")
    return trace["trajectory"] if isinstance(trace, dict) else trace


def _records() -> list[tuple[str, str]]:
    found = []
    for folder in (SAMPLES, SHARED):
        for path in sorted(folder.glob("*.json")):
            for index, record in enumerate(json.loads(path.read_text(encoding="utf-8"))):
                found.append((f"{folder.name}/{path.name}#{index}", _trajectory(record)))
    return found


def split_digest(text: str) -> str:
    digest = hashlib.sha256()
    for variant in (text, text * 3, text[len(text) // 3 :]):
        for framework in FRAMEWORKS:
            split = split_trajectory(variant, framework)
            steps = [step.model_dump(mode="json") for step in split.steps]
            payload = [split.style, split.task, split.outcome, split.metadata, steps]
            digest.update(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()


@pytest.mark.parametrize(("key", "text"), _records(), ids=[key for key, _ in _records()])
def test_split_output_is_unchanged(key: str, text: str) -> None:
    assert split_digest(text) == GOLDEN[key.split("/", 1)[1]]
