"""What every family adapter shares: detection by a rule, reading by the generic reader."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tracefail.ingest.base import Rejected, with_id
from tracefail.ingest.shapes.read import Prepare, read_path
from tracefail.model import Trace


@dataclass
class Family:
    """A family adapter: `detect(path, head)` decides, the generic reader reads, `fix` (if any)
    amends each trace it built (the trace id is then computed again)."""

    name: str
    description: str
    suffixes: tuple[str, ...]
    detect: Callable[[Path, str], bool]
    prepare: Prepare | None = None
    fix: Callable[[Trace, Path], None] | None = field(default=None)

    def sniff(self, path: Path, head: str) -> bool:
        return self.detect(path, head)

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        for item in read_path(path, self.name, self.prepare):
            if isinstance(item, Trace) and self.fix is not None:
                self.fix(item, path)
                with_id(item)
            yield item
