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
# Query rows per chunk: 64 keep a chunk's scores and E in the CPU cache (one layer 120-150 ms
# against 160-200 at 256 rows, 1 thread); with several threads every op of a chunk is a parallel
# region that waits for all of them, so fewer, larger chunks (256) cost less there (2 threads on
# a busy machine: 430-450 ms against 620-1,000 at 64 rows).
CHUNK_ROWS_ONE_THREAD = 64
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
    chunk_rows: int | None = None  # None: by torch's thread count (`chunk_rows_for`)
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


def chunk_rows_for(threads: int) -> int:
    """Rows per chunk for torch's intra-op thread count (values differ only in fp32 rounding)."""
    return CHUNK_ROWS_ONE_THREAD if threads == 1 else CHUNK_ROWS


def _boundaries(n: int, segments: list[Segment], chunk: int) -> list[int]:
    """Chunk rows end at every step end, so each chunk's scored rows belong to one step."""
    cuts = {0, n, *range(0, n, chunk)}
    cuts.update(seg.end for seg in segments)
    return sorted(c for c in cuts if 0 <= c <= n)


def _measure(q, k, v, scaling, collector: Collector, window: int | None, softcap: float | None):
    """Exact attention output for one layer plus per-segment feature statistics.

    Per chunk of query rows (64 with one thread: the chunk's scores and E, 2 x 4.7 MB at 2k
    tokens and 9 heads, stay in the CPU cache across the passes below; see CHUNK_ROWS): one
    matmul gives the scores (base 2; the query heads that share a key head stacked, so keys and
    values are never repeated), E = exp2(scores - rowmax), its row sums z, and, while E and the
    scores are cached, the row sums the per-row values need (E * scores for the entropy, the
    masses on the first message, the own step and the context). One matmul E @ V gives the
    output; E / z in place gives P for its column sums and those of P^2 (torch reductions: a
    BLAS gemv's fp32 sums had 4-6x their error in phi against float64), its diagonal and the
    diagonal below it. Per-row values go into (H, n) buffers and are divided by z for all rows
    at once; per-step means and the prefix-map values are computed for all steps at once at
    the end (`_summarise`).
    """
    heads, n, dim = q.shape
    kv_heads = k.shape[0]
    groups = heads // kv_heads
    device = q.device
    colsum = torch.zeros(heads, n, device=device, dtype=torch.float32)
    colsq = torch.zeros_like(colsum)
    diag = torch.zeros_like(colsum)
    # Per-row sums of E (not yet divided by z): sum E * shifted scores, masses on the first
    # message, the own step and the context without the sink; z = 1 on rows never computed.
    names = ("expected", "new", "context_nosink", "anchor", "prev")
    rows = {name: torch.zeros_like(colsum) for name in names}
    z_all = torch.ones_like(colsum)
    segments = [seg for seg in collector.segments if seg.end > seg.start]
    by_end = {seg.end: seg for seg in segments}
    cuts = _boundaries(n, segments, collector.chunk_rows or chunk_rows_for(torch.get_num_threads()))
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
        inv_z = torch.sum(exps, -1, out=z_all[:, r0:r1]).reciprocal().unsqueeze(-1)  # (H, m, 1)
        while seg_index < len(segments) and segments[seg_index].end <= r0:
            seg_index += 1
        seg = segments[seg_index] if seg_index < len(segments) else None
        if seg is not None and seg.start < r1:  # the chunk's rows from seg.start on are scored
            # Row sums of E while it and the scores are in the CPU cache; rows of the chunk
            # before the step's start get values that nothing reads.
            start = seg.start
            torch.sum(scores.mul_(exps), -1, out=rows["expected"][:, r0:r1])  # scores are spent
            torch.sum(exps[:, :, :anchor], -1, out=rows["anchor"][:, r0:r1])
            torch.sum(exps[:, :, start:], -1, out=rows["new"][:, r0:r1])
            if start > 1:  # summed directly: 1 - own - sink cancels in fp32 when the sink takes most
                torch.sum(exps[:, :, 1:start], -1, out=rows["context_nosink"][:, r0:r1])
        mixed = torch.bmm(exps.view(kv_heads, groups * m, r1), values[:, :r1]).view(heads, m, dim)
        torch.mul(mixed, inv_z, out=output[:, r0:r1])
        if r0 >= last:
            continue  # rows after the last scored step feed no statistic
        attn = exps.mul_(inv_z)  # P, in place
        diag[:, r0:r1] = attn.diagonal(r0, 1, 2)
        # a_{i,i-1}; the window's first token has none (stays 0)
        rows["prev"][:, max(r0, 1) : r1] = attn.diagonal(r0 - 1, 1, 2)
        colsum[:, :r1] += attn.sum(1)
        colsq[:, :r1] += attn.square_().sum(1)
        if r1 in by_end:
            snapshots.append((by_end[r1], colsum.clone(), colsq.clone(), diag.clone()))
            if len(snapshots) >= SNAPSHOT_BATCH:
                results.update(_transport(snapshots, collector.lap_k))
                snapshots = []
    if snapshots:
        results.update(_transport(snapshots, collector.lap_k))
    # All rows at once: sums of E / z, and the entropy log z - ln 2 * sum_j p_ij (s_ij - max_i)
    inv_z_all = z_all.reciprocal()
    rows["entropy"] = z_all.log_() - rows.pop("expected").mul_(inv_z_all).mul_(math.log(2))
    for name in ("new", "context_nosink", "anchor"):
        rows[name].mul_(inv_z_all)
    return output, _summarise(segments, results, rows, diag, anchor)


# Prefix-map snapshots (3 x H x n floats each) are reduced in batches of this many steps.
SNAPSHOT_BATCH = 32


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
