"""A custom attention function that reduces attention maps to features inside the forward pass.

Registered once through transformers' AttentionInterface. For layers that are asked for, it
computes exact fp32 softmax attention over query chunks (keys cut at the chunk's last row) and
folds every chunk into O(n) per-head accumulators before dropping it, so memory is bounded by
chunk x window, never by all L x H x n x n maps. Other layers run plain SDPA.

Chunks are aligned with step boundaries, so every chunk lies inside one scored segment (or in
unscored context) and the per-step statistics need no per-row bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise

import torch

from tracefail.features import formulas

ATTN_NAME = "tracefail_features"
_MASKED = torch.finfo(torch.float32).min
CHUNK_ROWS = 256


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
    cuts = {0, n, *range(0, n, chunk)}
    for seg in segments:
        cuts.update((seg.start, seg.end))
    return sorted(c for c in cuts if 0 <= c <= n)


def _flash_lse(queries, keys, values):
    """Output and row log-sum-exp of causal attention from torch's fused CPU kernel, or None.

    `queries` are already scaled. The kernel is a private aten op; if this torch lacks it (or
    the tensors are not on the CPU) the caller computes both itself.
    """
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or queries.device.type != "cpu":
        return None
    try:
        output, lse = op(queries.unsqueeze(0), keys.unsqueeze(0), values.unsqueeze(0), 0.0, True, scale=1.0)
    except (RuntimeError, NotImplementedError):
        return None
    return output[0], lse[0].float()


def _measure(q, k, v, scaling, collector: Collector, window: int | None, softcap: float | None):
    """Exact attention output for one layer plus per-segment feature statistics.

    Fast path (CPU, plain causal attention): the fused SDPA kernel gives the output and each
    row's log-sum-exp; per chunk of query rows one matmul of [q, -lse] and [k, 1] gives log p
    directly, exp_ in place gives P, and sum_j p_ij s_ij = q_i . (P @ K)_i (a matmul) gives the
    entropy, so the map is written once and read by reductions only. Rows after the last
    scored step are not revisited. Otherwise (GPU, sliding window, softcap) each chunk computes
    E = exp(scores - rowmax) and one matmul E @ [V | K | 1] gives output, row sums and P @ K.
    """
    heads, n, dim = q.shape
    groups = heads // k.shape[0]
    if groups > 1:
        k = k.repeat_interleave(groups, dim=0)
        v = v.repeat_interleave(groups, dim=0)
    device = q.device
    colsum = torch.zeros(heads, n, device=device, dtype=torch.float32)
    colsq = torch.zeros_like(colsum)
    diag = torch.zeros_like(colsum)
    by_start = {seg.start: seg for seg in collector.segments}
    by_end = {seg.end: seg for seg in collector.segments}
    partial: dict[object, dict[str, torch.Tensor]] = {}
    results: dict[object, SegmentStats] = {}
    current: Segment | None = None
    cuts = _boundaries(n, collector.segments, collector.chunk_rows)
    longest = max(r1 - r0 for r0, r1 in pairwise(cuts))
    future = torch.ones(longest, longest, device=device, dtype=torch.bool).triu(1)
    queries = q.float() * scaling  # fp32 scores and softmax even for bf16 models
    keys = k.float()
    last = max((seg.end for seg in collector.segments), default=0)
    fused = _flash_lse(queries, keys, v.float()) if window is None and softcap is None else None
    if fused is not None:
        flash_out, lse = fused
        output = flash_out.to(q.dtype)
        ones = torch.ones(heads, n, 1, device=device)
        rows_in = torch.cat([queries, -lse.unsqueeze(-1)], -1)
        keys_t = torch.cat([keys, ones], -1).transpose(-1, -2)
    else:
        output = torch.empty_like(q)
        rows_in, keys_t = queries, keys.transpose(-1, -2)
        # Softcapped scores are not q.k, so their entropy takes the elementwise path instead.
        extended = [v.float(), keys, torch.ones(heads, n, 1, device=device)]
        if softcap is not None:
            del extended[1]
        values = torch.cat(extended, -1)
    for r0, r1 in pairwise(cuts):
        if r0 in by_start:
            current = by_start[r0]
        elif current is not None and r0 >= current.end:
            current = None
        if fused is not None and r0 >= last:
            break  # rows after the last scored step feed no statistic; their output is done
        m = r1 - r0
        scores = torch.bmm(rows_in[:, r0:r1], keys_t[:, :, :r1])
        if softcap is not None:
            scores = torch.tanh(scores / softcap) * softcap
        # Finite mask value: masked weights are exactly 0.
        scores[:, :, r0:r1].masked_fill_(future[:m, :m], _MASKED)
        if window is not None:
            rows = torch.arange(r0, r1, device=device).unsqueeze(1)
            scores.masked_fill_(torch.arange(r1, device=device).unsqueeze(0) <= rows - window, _MASKED)
        raw = scores.clone() if current is not None and softcap is not None else None
        if fused is not None:
            weights = scores.exp_()  # scores were s - lse: these are the probabilities
            inv_z = None
            chunk_lse = lse[:, r0:r1]
        else:
            top = scores.amax(-1, keepdim=True)
            weights = scores.sub_(top).exp_()  # E, in place: row sums z
            mixed = torch.bmm(weights, values[:, :r1])
            inv_z = 1.0 / mixed[:, :, -1]
            output[:, r0:r1] = (mixed[:, :, :dim] * inv_z.unsqueeze(-1)).to(q.dtype)
            chunk_lse = top[:, :, 0] - inv_z.log()
            if r0 >= last:
                continue
        del scores
        own = _rescale(weights[:, :, r0:r1].diagonal(0, 1, 2), inv_z)
        diag[:, r0:r1] = own
        chunk_colsum = weights.sum(1) if inv_z is None else torch.bmm(inv_z.unsqueeze(1), weights)[:, 0]
        colsum[:, :r1] += chunk_colsum
        if current is not None:
            if raw is not None:
                expected = _rescale(torch.linalg.vecdot(weights, raw), inv_z)
            elif inv_z is None:
                expected = torch.linalg.vecdot(queries[:, r0:r1], torch.bmm(weights, keys[:, :r1]))
            else:
                expected = torch.linalg.vecdot(queries[:, r0:r1], mixed[:, :, dim : 2 * dim]) * inv_z
            entropy = chunk_lse - expected  # -sum p log p = lse - sum p s
            acc = partial.setdefault(current.key, {})
            _segment_chunk(acc, weights, inv_z, own, entropy, chunk_colsum, current, collector, r0, r1)
        squares = weights.square_()
        if inv_z is None:
            colsq[:, :r1] += squares.sum(1)
        else:
            colsq[:, :r1] += torch.bmm(inv_z.square().unsqueeze(1), squares)[:, 0]
        if r1 in by_end and current is not None and by_end[r1] is current:
            results[current.key] = _finish(partial.pop(current.key), current, collector, colsum, colsq, diag)
    return output, results


def _rescale(values: torch.Tensor, inv_z: torch.Tensor | None) -> torch.Tensor:
    """Row values of E times 1/z (the probabilities); unchanged when the rows are already P."""
    return values if inv_z is None else values * inv_z


def _add(acc: dict[str, torch.Tensor], name: str, value: torch.Tensor) -> None:
    acc[name] = acc[name] + value if name in acc else value


def _segment_chunk(
    acc, weights, inv_z, own, entropy, chunk_colsum, seg: Segment, collector, r0: int, r1: int
) -> None:
    """Fold one chunk of a segment's rows in; p = weights * inv_z (inv_z None: weights are p)."""
    s = seg.start
    _add(acc, "logdiag", own.clamp_min(1e-30).log().sum(-1))
    _add(acc, "entropy", entropy.sum(-1))
    idx = torch.arange(r0, r1, device=weights.device)
    prev = _rescale(weights[:, idx - r0, (idx - 1).clamp_min(0)], inv_z)
    if r0 == 0:
        prev[:, 0] = 0.0  # the window's first token has no previous token
    acc.setdefault("prev", []).append(prev)
    acc["colsum_seg"] = _extend(acc.get("colsum_seg"), chunk_colsum[:, s:r1], r1 - s)
    if s > 0:
        new = _rescale(weights[:, :, s:].sum(-1), inv_z)
        ctx = (1.0 - new).clamp_min(0.0)  # rows sum to 1: the context mass is the rest
        n_new = torch.arange(r0 - s + 1, r1 - s + 1, device=weights.device, dtype=weights.dtype)
        _add(acc, "lookback", formulas.lookback_ratio(ctx, new, s, n_new).sum(-1))
        if s > 1:
            ctx_ns = (ctx - _rescale(weights[:, :, 0], inv_z)).clamp_min(0.0)
            _add(acc, "lookback_nosink", formulas.lookback_ratio(ctx_ns, new, s - 1, n_new).sum(-1))
    if s >= collector.anchor_end and collector.anchor_end > 0:
        _add(acc, "first_message", _rescale(weights[:, :, : collector.anchor_end].sum(-1), inv_z).sum(-1))


def _extend(previous: torch.Tensor | None, chunk_sum: torch.Tensor, width: int) -> torch.Tensor:
    """Column sums over keys [seg.start, r1): earlier chunks covered fewer keys."""
    if previous is None:
        return chunk_sum
    grown = torch.zeros(chunk_sum.shape[0], width, device=chunk_sum.device, dtype=chunk_sum.dtype)
    grown[:, : previous.shape[1]] = previous
    return grown + chunk_sum


def _finish(acc, seg: Segment, collector: Collector, colsum, colsq, diag) -> SegmentStats:
    """Close a segment at its last row: prefix-map transport values and LapEigvals."""
    s, e = seg.start, seg.end
    count = e - s
    lap = formulas.laplacian_eigvals(acc["colsum_seg"], diag[:, s:e], e, first=s)
    if e >= 2:
        phi, argmin = formulas.phi_prefix(colsum[:, :e])
    else:
        phi = argmin = torch.full((colsum.shape[0],), float("nan"))
    return SegmentStats(
        logdiag=acc["logdiag"] / count,
        entropy=acc["entropy"] / count,
        lookback=acc["lookback"] / count if "lookback" in acc else None,
        lookback_nosink=acc["lookback_nosink"] / count if "lookback_nosink" in acc else None,
        first_message=acc["first_message"] / count if "first_message" in acc else None,
        prev=torch.cat(acc["prev"], -1),
        lap_topk=formulas.topk_mean(lap, collector.lap_k),
        phi_prefix=phi,
        phi_argmin=argmin,
        phi_step_cut=formulas.ratio_at_cut(colsum[:, :e], s) if s >= 1 else None,
        g_frob=formulas.g_frob(colsum[:, :e], colsq[:, :e], diag[:, :e]),
    )
