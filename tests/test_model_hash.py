"""Content hashes must never change: stored corpora dedupe re-ingested files by them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tracefail.ingest import registry
from tracefail.model import Trace

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


def _hash_as_first_defined(trace: Trace) -> str:
    """The formula the first stored corpora were hashed with: one model_dump per step."""
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


def test_content_hash_is_unchanged_on_every_shipped_sample() -> None:
    checked = 0
    for path in registry.expand([SAMPLES]):
        for item in registry.detect(path).parse(path):
            if isinstance(item, Trace):
                assert item.content_hash() == _hash_as_first_defined(item), path
                checked += 1
    assert checked >= 40  # every shipped format, not a vacuous pass
