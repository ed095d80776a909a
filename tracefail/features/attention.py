"""A custom attention function that reduces attention maps to features inside the forward pass.

Registered once through transformers' AttentionInterface. For layers that are asked for, it
computes exact fp32 softmax attention over query chunks (keys cut at the chunk's last row) and
folds every chunk into O(n) per-head accumulators before dropping it, so memory is bounded by
chunk x window, never by all L x H x n x n maps. Other layers run plain SDPA.

Chunks are aligned with step boundaries, so every chunk lies inside one scored segment (or in
unscored context) and the per-step statistics need no per-row bookkeeping.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise

import torch

from tracefail.features import formulas

ATTN_NAME = "tracefail_features"
_MASKED = torch.finfo(torch.float32).min
CHUNK_ROWS = 256
LOG2_E = 1 / math.log(2)  # scores are kept in base 2: exp2 costs half of exp on the CPU


@dataclass(frozen=True)
class Segment:
    """A scored span [start, end) in window positions; `key` identifies it to the caller."""

    key: object
    start: int
    end: int


@dataclass
class SegmentStats:
    """Per-head (H,) sums and vectors of one segment in one layer."""

    logdiag: torch.Tensor
    entropy: torch.Tensor
    lookback: torch.Tensor | None
    lookback_nosink: torch.Tensor | None
    first_message: torch.Tensor | None
    prev: torch.Tensor  # (H, len): a_{i,i-1} per token (first token: attention to the header)
    lap_topk: torch.Tensor
    phi_prefix: torch.Tensor
    phi_argmin: torch.Tensor
    phi_step_cut: torch.Tensor | None
    g_frob: torch.Tensor


@dataclass
class Collector:
    """What one window's forward pass should measure, and what it measured, per layer."""

    segments: list[Segment]
    anchor_end: int  # window positions [0, anchor_end) are the task / first message
    layers: set[int]
    lap_k: int = 5
    chunk_rows: int = CHUNK_ROWS
    stats: dict[int, dict[object, SegmentStats]] = field(default_factory=dict)


_active: Collector | None = None


@contextmanager
def collecting(collector: Collector) -> Iterator[Collector]:
    """Route the registered attention function's measurements into `collector`."""
    global _active
    previous, _active = _active, collector
    try:
        yield collector
    finally:
        _active = previous


def register() -> str:
    """Register the function (and SDPA's mask builder under the same name); idempotent."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_NAME, feature_attention)
    AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)
    return ATTN_NAME


def feature_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """AttentionInterface signature; measures the layer if the active collector asks for it."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layer = getattr(module, "layer_idx", None)
    collector = _active
    if collector is None or layer not in collector.layers or query.shape[0] != 1:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    output, stats = _measure(
        query[0], key[0], value[0], scaling, collector, kwargs.get("sliding_window"), kwargs.get("softcap")
    )
    collector.stats[layer] = stats
    return output.unsqueeze(0).transpose(1, 2).contiguous(), None


def _boundaries(n: int, segments: list[Segment], chunk: int) -> list[int]:
    """Chunk rows end at every step end, so each chunk's scored rows belong to one step."""
    cuts = {0, n, *range(0, n, chunk)}
    cuts.update(seg.end for seg in segments)
    return sorted(c for c in cuts if 0 <= c <= n)


def _measure(q, k, v, scaling, collector: Collector, window: int | None, softcap: float | None):
    """Exact attention output for one layer plus per-segment feature statistics.

    Per chunk of query rows: one matmul gives the scores (base 2; the query heads that share a
    key head stacked, so keys and values are never repeated), E = exp2(scores - rowmax) in one
    pass, its row sums z, one matmul E @ V the output, and E / z in place gives P (no separate
    softmax kernel and no second score matmul). Then column sums of P and of P^2 (torch
    reductions: a BLAS gemv's fp32 sums had 4-6x their error in phi against float64), and for
    the scored rows the entropy log z - sum_j p_ij (s_ij - max_i), the masses on the first
    message, the own step and the context (row sums of slices). Per-row values go into (H, n)
    buffers; per-step means and the prefix-map values are computed for all steps at once at the
    end (`_summarise`).
    """
    heads, n, dim = q.shape
    kv_heads = k.shape[0]
    groups = heads // kv_heads
    device = q.device
    colsum = torch.zeros(heads, n, device=device, dtype=torch.float32)
    colsq = torch.zeros_like(colsum)
    diag = torch.zeros_like(colsum)
    rows = {name: torch.zeros_like(colsum) for name in ("entropy", "new", "context_nosink", "anchor", "prev")}
    segments = [seg for seg in collector.segments if seg.end > seg.start]
    by_end = {seg.end: seg for seg in segments}
    cuts = _boundaries(n, segments, collector.chunk_rows)
    longest = max(r1 - r0 for r0, r1 in pairwise(cuts))
    # Added to each chunk's diagonal block: a finite mask value, so masked weights are exactly 0
    # (an add costs a quarter of a masked_fill with a broadcast mask)
    future = torch.zeros(longest, longest, device=device).masked_fill_(
        torch.ones(longest, longest, device=device, dtype=torch.bool).triu(1), _MASKED
    )
    # fp32 scores and softmax even for bf16 models; query heads grouped by the key head they share
    queries = (q.float() * (scaling * LOG2_E)).view(kv_heads, groups, n, dim)  # base-2 scores
    keys_t = k.float().transpose(-1, -2)
    values = v.float()
    output = torch.empty_like(q)
    last = max((seg.end for seg in segments), default=0)
    anchor = collector.anchor_end
    # Two chunk-sized buffers reused by every chunk: the shifted scores and their exponentials.
    buffers = torch.empty(2, heads * longest * n, device=device)
    snapshots: list[tuple[Segment, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    results: dict[object, dict[str, torch.Tensor | None]] = {}  # segment key -> transport sums
    seg_index = 0
    for r0, r1 in pairwise(cuts):
        m = r1 - r0
        chunk = queries[:, :, r0:r1].reshape(kv_heads, groups * m, dim)
        scores = torch.bmm(
            chunk, keys_t[:, :, :r1], out=buffers[0, : heads * m * r1].view(kv_heads, groups * m, r1)
        )
        scores = scores.view(heads, m, r1)
        if softcap is not None:
            scores = scores.div_(softcap * LOG2_E).tanh_().mul_(softcap * LOG2_E)
        scores[:, :, r0:r1].add_(future[:m, :m])
        if window is not None:
            position = torch.arange(r0, r1, device=device).unsqueeze(1)
            scores.masked_fill_(torch.arange(r1, device=device).unsqueeze(0) <= position - window, _MASKED)
        scores.sub_(scores.amax(-1, keepdim=True))
        exps = torch.exp2(scores, out=buffers[1, : heads * m * r1].view(heads, m, r1))
        inv_z = 1.0 / exps.sum(-1, keepdim=True)  # (H, m, 1)
        mixed = torch.bmm(exps.view(kv_heads, groups * m, r1), values[:, :r1]).view(heads, m, dim)
        output[:, r0:r1] = (mixed * inv_z).to(q.dtype)
        if r0 >= last:
            continue  # rows after the last scored step feed no statistic
        while seg_index < len(segments) and segments[seg_index].end <= r0:
            seg_index += 1
        seg = segments[seg_index] if seg_index < len(segments) else None
        a = max(r0, seg.start) if seg is not None and seg.start < r1 else r1  # scored rows a..r1
        attn = exps.mul_(inv_z)  # P, in place
        diag[:, r0:r1] = attn[:, :, r0:r1].diagonal(0, 1, 2)
        colsum[:, :r1] += attn.sum(1)
        if seg is not None and a < r1:  # a < r1 only inside a segment
            _rows_chunk(
                rows, attn[:, a - r0 :], scores[:, a - r0 :], inv_z[:, a - r0 :, 0], anchor, seg.start, a, r1
            )
        colsq[:, :r1] += attn.square_().sum(1)
        if r1 in by_end:
            snapshots.append((by_end[r1], colsum.clone(), colsq.clone(), diag.clone()))
            if len(snapshots) >= SNAPSHOT_BATCH:
                results.update(_transport(snapshots, collector.lap_k))
                snapshots = []
    if snapshots:
        results.update(_transport(snapshots, collector.lap_k))
    return output, _summarise(segments, results, rows, diag, anchor)


# Prefix-map snapshots (3 x H x n floats each) are reduced in batches of this many steps.
SNAPSHOT_BATCH = 32


def _rows_chunk(rows, attn, shifted, inv_z, anchor: int, s: int, a: int, r1: int) -> None:
    """Per-row values of the scored rows a..r1 (of a step starting at s) into the buffers.

    `attn` = exp2(`shifted`) * `inv_z`, `shifted` = base-2 scores - rowmax; masked weights are 0
    with a finite shifted score, so they add nothing to the entropy.
    """
    expected = shifted.mul_(attn).sum(-1)  # sum p log2 p + log2 z; `shifted` is not needed after
    rows["entropy"][:, a:r1] = -(expected * math.log(2) + inv_z.log())
    rows["anchor"][:, a:r1] = attn[:, :, :anchor].sum(-1)
    rows["new"][:, a:r1] = attn[:, :, s:].sum(-1)
    if s > 1:  # summed directly: 1 - own - sink cancels badly in fp32 when the sink takes most
        rows["context_nosink"][:, a:r1] = attn[:, :, 1:s].sum(-1)
    idx = torch.arange(a, r1, device=attn.device)
    rows["prev"][:, a:r1] = attn[:, idx - a, (idx - 1).clamp_min(0)]
    if a == 0:
        rows["prev"][:, 0] = 0.0  # the window's first token has no previous token


def _transport(snapshots, lap_k: int) -> dict[object, dict[str, torch.Tensor | None]]:
    """phi, its argmin, the step-start cut ratio, g_frob and LapEigvals for a batch of steps,
    each from the column sums / squares / diagonal over the rows before the step's end
    (columns at or after the end are zero there, so zero-padding to n changes no sum)."""
    colsum = torch.stack([snap[1] for snap in snapshots])  # (B, H, n)
    colsq = torch.stack([snap[2] for snap in snapshots])
    diag = torch.stack([snap[3] for snap in snapshots])
    device = colsum.device
    ends = torch.tensor([snap[0].end for snap in snapshots], device=device)
    starts = torch.tensor([snap[0].start for snap in snapshots], device=device)
    phi, argmin = formulas.phi_prefix(colsum, ends)
    step_cut = formulas.ratio_at_cut(colsum, starts, ends)
    g = formulas.g_frob(colsum, colsq, diag)
    lap = formulas.laplacian_eigvals(colsum, diag, ends)
    positions = torch.arange(colsum.shape[-1], device=device)
    inside = (positions >= starts[:, None]) & (positions < ends[:, None])
    lap_topk = formulas.topk_mean(lap.masked_fill(~inside[:, None], -math.inf), lap_k, inside.sum(-1))
    out = {}
    for b, (seg, *_) in enumerate(snapshots):
        out[seg.key] = {
            "phi_prefix": phi[b],
            "phi_argmin": argmin[b],
            "phi_step_cut": step_cut[b] if seg.start >= 1 else None,
            "g_frob": g[b],
            "lap_topk": lap_topk[b],
        }
    return out


def _summarise(segments, transport, rows, diag, anchor: int) -> dict[object, SegmentStats]:
    """Per-step means of the per-row values, all steps at once (one matmul per value)."""
    if not segments:
        return {}
    n = diag.shape[-1]
    device = diag.device
    member = torch.zeros(n, len(segments), device=device)
    start = torch.ones(n, device=device)  # rows outside steps: any positive value
    for index, seg in enumerate(segments):
        member[seg.start : seg.end, index] = 1.0 / (seg.end - seg.start)
        start[seg.start : seg.end] = max(seg.start, 1)
    position = torch.arange(n, device=device, dtype=torch.float32)
    n_new = (position - start + 1).clamp_min(1)
    new = rows["new"]
    ctx = (1.0 - new).clamp_min(0.0)  # rows sum to 1: the context mass is the rest
    ctx_ns = rows["context_nosink"]
    per_row = torch.stack(
        [
            diag.clamp_min(1e-30).log(),
            rows["entropy"],
            formulas.lookback_ratio(ctx, new, start, n_new),
            formulas.lookback_ratio(ctx_ns, new, (start - 1).clamp_min(1), n_new),
            rows["anchor"],
        ]
    )  # (5, H, n)
    means = per_row @ member  # (5, H, S)
    stats = {}
    for index, seg in enumerate(segments):
        s = seg.start
        extra = transport[seg.key]
        stats[seg.key] = SegmentStats(
            logdiag=means[0, :, index],
            entropy=means[1, :, index],
            lookback=means[2, :, index] if s > 0 else None,
            lookback_nosink=means[3, :, index] if s > 1 else None,
            first_message=means[4, :, index] if s >= anchor and anchor > 0 else None,
            prev=rows["prev"][:, s : seg.end],
            **extra,
        )
    return stats
