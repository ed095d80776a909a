"""Teacher-forced features of every step of a trace: one forward pass per window.

The forward pass runs with the registered feature attention (see `attention.py`), so attention
statistics for the chosen layers come out of the same pass as the hidden states; logits are
computed through the LM head in position chunks, only for scored tokens, never n x V at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import torch

from tracefail.features import attention, formulas
from tracefail.features.errors import FeatureError
from tracefail.features.layout import Piece, Window, default_stride, plan_windows, render
from tracefail.features.loading import LoadedModel
from tracefail.model import Step

# Bump when a formula, a name or the windowing changes: stored rows are keyed on it.
EXTRACTOR_VERSION = "2"  # 2: steps read as full_text (tool calls, results, errors)
LOGIT_CHUNK = 512
RAUQ_ALPHA = 0.5  # lm-polygraph's default for instruct scorers
LAP_K = 5
TOKEN_NAMES = ("maxprob", "margin", "entropy", "surprisal", "prob_observed")
LAYER_FEATURES = ("lookback_ratio", "entropy", "first_message", "logdet", "lap_topk", "phi_prefix", "g_frob")
# (feature name, SegmentStats field), in the order the rows are written.
_STAT_FIELDS = (
    ("lookback_ratio", "lookback"),
    ("entropy", "entropy"),
    ("first_message", "first_message"),
    ("logdet", "logdiag"),
    ("lap_topk", "lap_topk"),
    ("phi_prefix", "phi_prefix"),
    ("g_frob", "g_frob"),
    ("lookback_ratio_nosink", "lookback_nosink"),
    ("phi_argmin", "phi_argmin"),
    ("phi_step_cut", "phi_step_cut"),
    ("prev_token", "prev"),
)
_LAYER_PART = re.compile(r"^(-?\d+)(?:-(\d+))?$")
_PER_LAYER = re.compile(r"\.l\d+$")


@dataclass(frozen=True)
class ExtractConfig:
    window: int = 2048
    stride: int | None = None  # default 3/4 window (layout.default_stride)
    layers: str = "all"
    chunk_rows: int | None = None  # None: chosen by torch's thread count (attention.chunk_rows_for)

    def as_dict(self) -> dict:
        return {
            "window": self.window,
            "stride": self.stride or default_stride(self.window),
            "layers": self.layers,
            "version": EXTRACTOR_VERSION,
        }


@dataclass
class TraceFeatures:
    rows: list[tuple[int, str, float]]  # (step_idx, name, value); step_idx -1 = trace level
    tokens: int
    windows: int


def parse_layers(spec: str, n_layers: int) -> list[int]:
    """'all', 'none', 'middle' (middle third), or a list like '0-3,10,-1' (negative from the end)."""
    spec = spec.strip().lower()
    if spec == "all":
        return list(range(n_layers))
    if spec == "none":
        return []
    if spec == "middle":
        return list(range(n_layers // 3, math.ceil(2 * n_layers / 3)))
    chosen: set[int] = set()
    for part in spec.split(","):
        match = _LAYER_PART.match(part.strip())
        if not match:
            raise FeatureError(f"--layers {spec!r}: use all, none, middle, or numbers like 0-3,10,-1")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if not (-n_layers <= lo < n_layers and -n_layers <= hi < n_layers):
            raise FeatureError(f"--layers {spec!r}: the model has layers 0..{n_layers - 1}")
        chosen.update(range(lo % n_layers, hi % n_layers + 1))
    return sorted(chosen)


@dataclass
class _StepAcc:
    """Everything measured for one step, across its pieces."""

    tokens: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    prev: list[torch.Tensor] = field(default_factory=list)  # (L, H, n) per piece
    attn: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # name -> (value, weight)
    parts: int = 0
    context: int = 0
    n_tokens: int = 0


class Extractor:
    """Holds a loaded scorer switched to the feature attention; `extract` does one trace."""

    def __init__(self, loaded: LoadedModel, config: ExtractConfig | None = None) -> None:
        self.loaded = loaded
        self.config = config or ExtractConfig()
        self.model = loaded.model
        model_config = self.model.config
        n_layers = model_config.num_hidden_layers
        self.layers = parse_layers(self.config.layers, n_layers)
        middle = set(range(n_layers // 3, math.ceil(2 * n_layers / 3)))
        self.rauq_layers = [layer for layer in self.layers if layer in middle] or self.layers
        self.model.set_attn_implementation(attention.register())
        self.softcap = getattr(model_config, "final_logit_softcapping", None)

    def extract(self, steps: list[Step], on_tokens: Callable[[int], None] | None = None) -> TraceFeatures:
        layout = render(steps, self.loaded.tokenizer)
        windows = plan_windows(layout, self.config.window, self.config.stride)
        accs: dict[int, _StepAcc] = {span.step_idx: _StepAcc() for span in layout.spans}
        for window in windows:
            self._run_window(layout.ids, window, accs)
            if on_tokens:
                on_tokens(window.length)
        rows = self.arrow_rows(layout, accs)
        rows += [(-1, "len.trace_tokens", float(len(layout.ids))), (-1, "len.windows", float(len(windows)))]
        return TraceFeatures(rows=rows, tokens=sum(w.length for w in windows), windows=len(windows))

    # --- one window ---------------------------------------------------------------------------
    @torch.inference_mode()
    def _run_window(self, ids: list[int], window: Window, accs: dict[int, _StepAcc]) -> None:
        device = self.loaded.device
        flat = [token for start, end in window.ranges for token in ids[start:end]]
        input_ids = torch.tensor([flat], device=device)
        located = [
            (piece, window.to_window(piece.start), window.to_window(piece.end)) for piece in window.pieces
        ]
        segments = [attention.Segment(piece, s, e) for piece, s, e in located]
        collector = attention.Collector(
            segments, window.anchor_end, set(self.layers), lap_k=LAP_K, chunk_rows=self.config.chunk_rows
        )
        with attention.collecting(collector):
            hidden = self.model.get_decoder()(input_ids=input_ids).last_hidden_state[0]
        per_piece = self._token_stats(hidden, input_ids[0], [(s, e) for _, s, e in located])
        for (piece, s, e), token_values in zip(located, per_piece, strict=True):
            acc = accs[piece.step_idx]
            acc.parts += 1
            acc.n_tokens += e - s
            if piece.part == 0:
                acc.context = s
            for name, values in token_values.items():
                acc.tokens.setdefault(name, []).append(values)
            self._add_attention(acc, piece, collector, e - s)

    def _token_stats(self, hidden, ids, spans: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        """Stats of the tokens of every span s..e-1 from the logits at s-1..e-2 (the window's first
        token has no prediction): all spans' positions go through the LM head together, in
        chunks of LOGIT_CHUNK positions, and are split back per span."""
        head = self.model.get_output_embeddings()
        ranges = [torch.arange(max(s, 1), e, device=hidden.device) for s, e in spans]
        positions = torch.cat(ranges) if ranges else torch.empty(0, dtype=torch.long)
        parts: dict[str, list[torch.Tensor]] = {}
        for lo in range(0, positions.numel(), LOGIT_CHUNK):
            chunk = positions[lo : lo + LOGIT_CHUNK]
            logits = head(hidden[chunk - 1]).float()
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            for name, value in formulas.token_stats(logits, ids[chunk]).items():
                parts.setdefault(name, []).append(value)
        if not parts:
            return [{} for _ in spans]
        sizes = [r.numel() for r in ranges]
        split = {name: torch.cat(values).cpu().split(sizes) for name, values in parts.items()}
        return [{name: values[i] for name, values in split.items()} for i in range(len(spans))]

    def _add_attention(
        self, acc: _StepAcc, piece: Piece, collector: attention.Collector, weight: int
    ) -> None:
        if not self.layers:
            return
        acc.prev.append(
            torch.stack([collector.stats[layer][piece].prev.float().cpu() for layer in self.rauq_layers])
        )
        per_layer: dict[str, list[float]] = {}
        stats = [collector.stats[layer][piece] for layer in self.layers]
        for name, attr in _STAT_FIELDS:
            if attr == "prev":
                if stats[0].prev.shape[1] < 2:
                    continue
                heads = torch.stack([item.prev[:, 1:] for item in stats]).mean(-1)
            else:
                if getattr(stats[0], attr) is None:  # same for every layer: depends on the step's start
                    continue
                heads = torch.stack([getattr(item, attr) for item in stats])  # (layers, heads)
            # LLM-Check sums log-diagonals over heads; every other feature is a head mean.
            values = (heads.sum(-1) if name == "logdet" else heads.mean(-1)).tolist()
            for layer, value in zip(self.layers, values, strict=True):
                if math.isfinite(value):
                    per_layer.setdefault(name, []).append(value)
                    if name in LAYER_FEATURES:
                        acc.attn.setdefault(f"attn.{name}.l{layer}", []).append((value, weight))
        for name, values in per_layer.items():
            acc.attn.setdefault(f"attn.{name}", []).append((sum(values) / len(values), weight))

    # --- rows -----------------------------------------------------------------------------------
    def arrow_rows(self, layout, accs: dict[int, _StepAcc]) -> list[tuple[int, str, float]]:
        rows: list[tuple[int, str, float]] = []
        previous: dict[str, float] = {}
        series: list[tuple[int, float]] = []
        totals: dict[str, list[torch.Tensor]] = {}
        for span in layout.spans:
            acc = accs[span.step_idx]
            values = {
                "len.step_tokens": float(span.end - span.start),
                "len.context_tokens": float(acc.context),
                "len.parts": float(acc.parts),
            }
            tokens = {name: torch.cat(parts) for name, parts in acc.tokens.items()}
            if tokens and tokens["surprisal"].numel():
                values.update(_token_features(tokens))
                for name, part in tokens.items():
                    totals.setdefault(name, []).append(part)
                series.append((span.step_idx, values["tok.surprisal_mean"]))
                if acc.prev:
                    rauq = formulas.rauq(tokens["prob_observed"], torch.cat(acc.prev, -1), RAUQ_ALPHA)
                    values["attn.rauq"] = float(rauq.max())
            for name, pairs in acc.attn.items():
                weight = sum(w for _, w in pairs)
                values[name] = sum(v * w for v, w in pairs) / weight
            for name, value in list(values.items()):
                if not _PER_LAYER.search(name) and name.startswith(("tok.", "attn.")) and name in previous:
                    values[f"dyn.d_{name}"] = value - previous[name]
            previous = {k: v for k, v in values.items() if not k.startswith("dyn.")}
            rows += [(span.step_idx, name, value) for name, value in values.items() if math.isfinite(value)]
        if totals:
            whole = {name: torch.cat(parts) for name, parts in totals.items()}
            rows += [
                (-1, name, value) for name, value in _token_features(whole).items() if math.isfinite(value)
            ]
        rows += [(-1, name, float(step)) for name, step in _dynamics(series).items()]
        return rows


def _token_features(tokens: dict[str, torch.Tensor]) -> dict[str, float]:
    surprisal = tokens["surprisal"].double()
    spikes, first = formulas.surprisal_spikes(surprisal)
    values = {
        "tok.maxprob_mean": float(tokens["maxprob"].mean()),
        "tok.maxprob_min": float(tokens["maxprob"].min()),
        "tok.margin_mean": float(tokens["margin"].mean()),
        "tok.entropy_mean": float(tokens["entropy"].mean()),
        "tok.entropy_max": float(tokens["entropy"].max()),
        "tok.surprisal_mean": float(surprisal.mean()),
        "tok.surprisal_max": float(surprisal.max()),
        "tok.perplexity": float(surprisal.mean().exp()),
        "tok.prob_observed_mean": float(tokens["prob_observed"].mean()),
        "tok.spikes": float(spikes),
    }
    if first is not None:
        values["tok.first_spike"] = float(first)
    return values


def _dynamics(series: list[tuple[int, float]]) -> dict[str, int]:
    """Where the trace's uncertainty peaks, and the first step whose mean surprisal rises over
    the previous step's by more than one standard deviation of the trace's step means."""
    if not series:
        return {}
    result = {"trace.surprisal_peak_step": max(series, key=lambda item: item[1])[0]}
    if len(series) >= 3:
        means = torch.tensor([value for _, value in series], dtype=torch.float64)
        spread = float(means.std())
        for (_, before), (step, value) in pairwise(series):
            if value - before > spread:
                result["trace.uncertainty_jump_step"] = step
                break
    return result
