"""Turn a trace into one token sequence with each step's span, then cut it into windows.

Steps are rendered as chat turns (the tokenizer's own turn markers when it has ChatML ones,
else "speaker:" lines), tokenized piece by piece so step spans are exact. A step's scored
tokens are its whole text (content, tool calls with arguments, tool results, status and errors:
`Step.full_text`); headers and turn ends are context.

Windows: each window is the anchor (the prefix and first message, capped) plus a recent
stretch, and it scores whole steps that fit with at least `W - stride - anchor` tokens of
preceding context (default stride 3/4 W). A step longer than a window's budget is split into
parts, each scored in its own window after the parts before it; the step is marked with the
number of parts (`len.parts`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tracefail.features.errors import FeatureError
from tracefail.model import Step

# The first message's leading tokens stay in every window (the task, and the attention sink).
# A fixed cap keeps "attention to the first message" the same whatever the window size.
ANCHOR_TOKENS = 256


@dataclass(frozen=True)
class StepSpan:
    step_idx: int
    start: int  # first content token (global position)
    end: int  # one past the last content token


@dataclass(frozen=True)
class Piece:
    """A scored stretch of one step (the whole step unless it was split)."""

    step_idx: int
    part: int
    start: int
    end: int


@dataclass
class Window:
    """Global positions fed as one sequence, and the pieces it scores."""

    ranges: list[tuple[int, int]]  # [(0, anchor), (context start, end)] or [(0, end)]
    pieces: list[Piece]
    anchor_end: int  # window positions [0, anchor_end) are the first message

    def to_window(self, position: int) -> int:
        offset = 0
        for start, end in self.ranges:
            if start <= position < end or (position == end and (start, end) == self.ranges[-1]):
                return offset + position - start
            offset += end - start
        raise ValueError(f"position {position} is not in this window")

    @property
    def length(self) -> int:
        return sum(end - start for start, end in self.ranges)


@dataclass
class Layout:
    ids: list[int]
    spans: list[StepSpan]


def _speaker(step: Step) -> str:
    return step.agent or step.role or step.name or "step"


def render(steps: list[Step], tokenizer) -> Layout:
    """Token ids of the whole trace and the content span of every step."""
    vocab = tokenizer.get_vocab()
    chatml = "<|im_start|>" in vocab and "<|im_end|>" in vocab
    ids: list[int] = list(tokenizer("", add_special_tokens=True)["input_ids"])  # BOS if any
    spans = []
    for step in steps:
        header = f"<|im_start|>{_speaker(step)}\n" if chatml else f"{_speaker(step)}:\n"
        footer = "<|im_end|>\n" if chatml else "\n\n"
        ids += tokenizer(header, add_special_tokens=False)["input_ids"]
        start = len(ids)
        text = step.full_text()
        if text:
            ids += tokenizer(text, add_special_tokens=False)["input_ids"]
        spans.append(StepSpan(step.step_idx, start, len(ids)))
        ids += tokenizer(footer, add_special_tokens=False)["input_ids"]
    return Layout(ids, spans)


def default_stride(window: int) -> int:
    """A quarter-window overlap: enough context per step without re-reading half of every window."""
    return window - window // 4


def plan_windows(
    layout: Layout, window: int, stride: int | None = None, anchor: int | None = None
) -> list[Window]:
    """Cover every step's content with windows of at most `window` tokens."""
    stride = stride if stride is not None else default_stride(window)
    anchor_cap = anchor if anchor is not None else ANCHOR_TOKENS
    if not 0 < stride <= window or window < 16:
        raise FeatureError(f"window {window} / stride {stride}: need window >= 16 and 0 < stride <= window")
    overlap = max(window - stride, 1)  # a scored token always has a token before it
    anchor_cap = min(anchor_cap, overlap // 2)
    first_end = layout.spans[0].end + 1 if layout.spans else 0
    anchor_end = min(first_end, anchor_cap)
    max_piece = max(1, window - anchor_end - max(1, overlap // 2))
    pieces: list[Piece] = []
    for span in layout.spans:
        if span.end == span.start:
            continue
        starts = range(span.start, span.end, max_piece)
        for part, start in enumerate(starts):
            pieces.append(Piece(span.step_idx, part, start, min(start + max_piece, span.end)))
    windows: list[Window] = []
    i = 0
    while i < len(pieces):
        first = pieces[i]
        end = first.end
        contiguous = first.end <= window
        if contiguous:
            context = 0
        else:
            context = max(first.start - overlap, first.end - (window - anchor_end))
            contiguous = context <= anchor_end
            context = 0 if contiguous else context
        budget_end = window if contiguous else context + window - anchor_end
        scored = []
        while i < len(pieces) and pieces[i].end <= budget_end:
            scored.append(pieces[i])
            end = pieces[i].end
            i += 1
        if contiguous:
            ranges = [(0, end)]
        else:
            ranges = [(0, anchor_end), (context, end)] if anchor_end else [(context, end)]
        windows.append(Window(ranges, scored, anchor_end=min(anchor_end, end)))
    return windows
