"""What the browser's screens show, as the service hands it over."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tracefail.services.spans import SpanTiming
from tracefail.store.facets import Facets

__all__ = ["CorpusPage", "Facets", "Receipt", "TraceView"]


@dataclass
class CorpusPage:
    offset: int
    rows: list[dict[str, Any]]


@dataclass
class TraceView:
    """Everything the trace screen shows, loaded in one worker call."""

    head: dict[str, Any]
    steps: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    attributions: list[dict[str, Any]]
    features: dict[str, list[float | None]]
    flagged: list[int] = field(default_factory=list)
    changes: dict[str, list[int]] = field(default_factory=dict)  # feature -> change-point steps
    has_spans: bool = False
    spans: tuple[SpanTiming, ...] = ()  # the span waterfall, when the trace has a span tree

    @property
    def trace_id(self) -> str:
        return str(self.head["trace_id"])


@dataclass(frozen=True)
class Receipt:
    """A human write, kept so it can be undone."""

    table: Literal["labels", "attributions"]
    row_id: int
    trace_id: str
    description: str
