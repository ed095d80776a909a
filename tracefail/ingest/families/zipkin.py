"""Zipkin v2 span lists (`[{traceId, id, parentId?, name, kind, timestamp, duration,
localEndpoint, remoteEndpoint, tags, annotations}]`, times in µs), as the Zipkin API and UI
download them. The generic span reader maps them (tags are attributes, annotations events,
`localEndpoint.serviceName` the service); name + detection only."""

from __future__ import annotations

from pathlib import Path

from tracefail.ingest.families.family import Family
from tracefail.ingest.reader import first_char


def _detect(path: Path, head: str) -> bool:
    return (
        first_char(head) == "["
        and '"traceId"' in head
        and '"id"' in head
        and ('"localEndpoint"' in head or '"remoteEndpoint"' in head)
    )


ZIPKIN = Family(
    name="zipkin",
    description="Zipkin v2 JSON span lists (traceId, id, parentId, timestamp/duration µs, tags)",
    suffixes=(".json",),
    detect=_detect,
)
