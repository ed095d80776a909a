"""The trace screen's layout: which panels show and how wide the timeline is, remembered between
sessions in a small JSON file. Panels the user never toggled follow the terminal's size, so the step
text stays the largest panel on an 80x24 terminal."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

MIN_LEFT, MAX_LEFT, LEFT_STEP = 20, 60, 5  # timeline width, % of the screen


def default_layout_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tracefail" / "browse-layout.json"


@dataclass
class TraceLayout:
    """None means "decided by the terminal size"; a key press sets a value, which then sticks."""

    timeline: bool | None = None
    labels: bool | None = None
    chart: bool | None = None
    left_width: int | None = None
    conversation: bool = False

    def resolved(
        self, width: int, height: int, has_labels: bool = True, has_features: bool = True
    ) -> ResolvedLayout:
        """Panels the user has not chosen: the labels when the trace has some, the chart when it has
        features and the terminal is at least 40 rows high."""
        small = height < 40
        return ResolvedLayout(
            timeline=self.timeline if self.timeline is not None else True,
            labels=self.labels if self.labels is not None else has_labels,
            chart=self.chart if self.chart is not None else has_features and not small,
            left_width=self.left_width or (28 if width < 100 else 35),
            labels_height=2 if height < 30 else 5 if height < 40 else 9 if height < 50 else 12,
            head_lines=2 if small else 4,
        )

    @classmethod
    def load(cls, path: Path | None) -> TraceLayout:
        """The remembered layout; a missing or unreadable file gives the defaults."""
        if path is None or not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known}) if isinstance(data, dict) else cls()

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        except OSError:
            pass  # a read-only home only costs remembering the layout

    def resize(self, width: int, height: int, wider: bool) -> None:
        current = self.resolved(width, height).left_width
        step = LEFT_STEP if wider else -LEFT_STEP
        self.left_width = max(MIN_LEFT, min(MAX_LEFT, current + step))


@dataclass(frozen=True)
class ResolvedLayout:
    timeline: bool
    labels: bool
    chart: bool
    left_width: int
    labels_height: int  # rows of the labels table
    head_lines: int
