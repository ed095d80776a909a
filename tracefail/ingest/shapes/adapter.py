"""The generic reader as an adapter: what ingest falls back to when no format claims a file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tracefail.ingest.base import Rejected
from tracefail.ingest.reader import first_char
from tracefail.ingest.shapes.read import JSONL, read_path
from tracefail.model import Trace


class GenericAdapter:
    name = "generic"
    description = (
        "any other JSON / JSONL: span collections, message lists and event streams found by shape "
        "anywhere in the document (docs/formats.md)"
    )
    suffixes = (".json", *JSONL)

    def sniff(self, path: Path, head: str) -> bool:
        return first_char(head) in ("{", "[")

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        yield from read_path(path, self.name)
