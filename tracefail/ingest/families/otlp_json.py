"""OTLP protobuf-JSON exports that the `otel` adapter does not take whole: an export inside a
wrapper (Jaeger's API v3 answers `{"result": {"resourceSpans": [...]}}`) or a JSON array of
export requests. The generic reader finds each `resourceSpans` / `batches` / `resourceLogs`
object (`shapes.find`); each is then read exactly as the `otel` adapter reads a whole export
(`spans_by_trace`, `log_records`, `file_traces`), so ids, stored spans and later merges are
the same as for the plain file. The only fix: where the export sits."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, excerpt, reason
from tracefail.ingest.otlp_live import SpanGroup, file_traces, log_records, spans_by_trace
from tracefail.ingest.reader import first_char, loads, read_whole
from tracefail.ingest.shapes.find import describe, find
from tracefail.model import Trace

_OTLP = ("resourceSpans", "batches", "resourceLogs")
_FIRST_KEY = re.compile(r'\s*\{\s*"((?:[^"\\]|\\.)*)"')


def _detect(path: Path, head: str) -> bool:
    if not any(f'"{key}"' in head for key in _OTLP):
        return False
    if first_char(head) == "[":
        return True
    first = _FIRST_KEY.match(head.lstrip("\ufeff"))
    return first is not None and first.group(1) not in _OTLP  # the export is not the top object


class OtlpJsonAdapter:
    name = "otlp-json"
    description = 'OTLP/JSON exports inside a wrapper ({"result": {...}}, Jaeger API v3) or as a JSON array'
    suffixes = (".json",)

    def sniff(self, path: Path, head: str) -> bool:
        return _detect(path, head)

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        text = read_whole(path)
        try:
            document: Any = loads(text)
            exports = [f.items[0] for f in find(document) if f.kind == "otlp"]
            if not exports:
                raise ValueError(f"no OTLP export found: {describe(document)}")
            grouped: dict[str, list[SpanGroup]] = defaultdict(list)
            logs: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for export in exports:
                if "resourceSpans" in export or "batches" in export:
                    for trace_id, groups in spans_by_trace(export).items():
                        grouped[trace_id].extend(groups)
                for trace_id, records in log_records(export).items():
                    logs[trace_id].extend(records)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # BadRequest is a ValueError
            yield Rejected("whole file", reason(exc), excerpt(text))
            return
        yield from file_traces(grouped, logs, str(path))


OTLP_JSON = OtlpJsonAdapter()
