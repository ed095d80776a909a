"""tracefail's own JSONL export (`tracefail export --format jsonl`): one trace a line with its
steps, labels and attributions, read back as they were written (ids kept, nothing remapped)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tracefail.ingest.base import Rejected, excerpt, first_json, reason
from tracefail.ingest.reader import iter_jsonl, loads
from tracefail.model import Trace

# written by the store, not part of what a trace says
_STORE_ONLY = {
    "content_hash",
    "n_steps",
    "ingest_run_id",
    "ingested_at",
    "label_id",
    "attribution_id",
    "created_at",
}


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in _STORE_ONLY}


class TracefailExportAdapter:
    name = "tracefail-export"
    description = "tracefail's own JSONL export: {trace_id, content_hash, steps, labels, attributions}"
    suffixes = (".jsonl", ".ndjson", ".json")

    def sniff(self, path: Path, head: str) -> bool:
        first = first_json(head)
        return isinstance(first, dict) and {"trace_id", "content_hash", "steps", "labels"} <= first.keys()

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        for raw in iter_jsonl(path):
            try:
                record = loads(raw.text)
                if not isinstance(record, dict) or not isinstance(record.get("steps"), list):
                    raise ValueError("not a tracefail export record (needs `trace_id` and a `steps` list)")
                trace_id = record.get("trace_id")
                children = {
                    key: [{**_plain(item), "trace_id": trace_id} for item in record.get(key) or []]
                    for key in ("labels", "attributions")
                }
                steps = [_plain(step) for step in record["steps"]]
                for step in steps:
                    step["tool_calls"] = step.get("tool_calls") or []
                    step["metadata"] = step.get("metadata") or {}
                for items in children.values():
                    for item in items:
                        item["metadata"] = item.get("metadata") or {}
                        item["evidence_steps"] = item.get("evidence_steps") or []
                trace = Trace.model_validate(
                    {**_plain(record), "metadata": record.get("metadata") or {}, "steps": steps, **children}
                )
                if not trace.source_file:
                    trace.source_file = str(path)
                yield trace
            except (ValueError, ValidationError) as exc:
                yield Rejected(raw.locator, reason(exc), excerpt(raw.text))
