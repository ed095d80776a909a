"""The feature formulas on plain tensors, so each one has a known-answer test.

Definitions follow `../shared/reference/features.md`. The transport values are the reference's
reconstruction from the paper's abstract (no public implementation), hence the names
`phi_prefix` and `g_frob` rather than the paper's symbols.
"""

from __future__ import annotations

import math

import torch

SPIKE_STDS = 2.0
MIN_SPIKE_TOKENS = 3
TOKEN_ROWS = 8  # rows of logits per block in `token_stats`


def token_stats(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-token uncertainty from next-token logits (rows) and the observed tokens.

    Returns 1-D tensors: maxprob, margin (top-1 minus top-2 probability), entropy (nats),
    surprisal (-log p of the observed token) and prob_observed. Rows go through in blocks of
    TOKEN_ROWS: a block's log-probabilities and probabilities (~1.5 MB for a 49k vocabulary)
    stay in the CPU cache across the passes, where a 512-row chunk (100 MB) went to memory and
    back for each of them (2.5x the time).
    """
    n = logits.shape[0]
    values = torch.empty(4, n, device=logits.device)  # top-1 and top-2 log p, entropy, observed log p
    for lo in range(0, n, TOKEN_ROWS):
        hi = min(lo + TOKEN_ROWS, n)
        logp = torch.log_softmax(logits[lo:hi].float(), dim=-1)
        values[3, lo:hi] = logp.gather(-1, targets[lo:hi].long().unsqueeze(-1)).squeeze(-1)
        prob = logp.exp()
        entropy = -torch.linalg.vecdot(prob, logp)
        bad = entropy.isnan()
        if bad.any():  # a -inf logit gives 0 * -inf; such a token contributes 0 to the entropy
            entropy[bad] = -(prob[bad] * logp[bad]).nan_to_num(0.0).sum(-1)
        values[2, lo:hi] = entropy
        # top-2 as two maxima (a tie gives the same value twice, as topk does): topk(2) costs
        # 3-7x a max on rows this long
        top, where = logp.max(-1, keepdim=True)
        values[0, lo:hi] = top[:, 0]
        values[1, lo:hi] = logp.scatter_(-1, where, -math.inf).amax(-1)
    top1, top2 = values[0].exp(), values[1].exp()
    return {
        "maxprob": top1,
        "margin": top1 - top2,
        "entropy": values[2],
        "surprisal": -values[3],
        "prob_observed": values[3].exp(),
    }


def surprisal_spikes(surprisal: torch.Tensor) -> tuple[int, int | None]:
    """(count, first index) of tokens whose surprisal exceeds the step mean by 2 std.

    Relative to the step itself so the threshold does not depend on the scorer's scale.
    """
    if surprisal.numel() < MIN_SPIKE_TOKENS:
        return 0, None
    threshold = surprisal.mean() + SPIKE_STDS * surprisal.std()
    hits = (surprisal > threshold).nonzero().flatten()
    return int(hits.numel()), (int(hits[0]) if hits.numel() else None)


def lookback_ratio(
    ctx_mass: torch.Tensor, new_mass: torch.Tensor, n_ctx: int | torch.Tensor, n_new: torch.Tensor
) -> torch.Tensor:
    """Lookback Lens: mean attention per context token over (that + mean per own token)."""
    ctx = ctx_mass / n_ctx
    new = new_mass / n_new
    return ctx / (ctx + new).clamp_min(1e-30)


def row_entropy(attn: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each attention row (last dim)."""
    return -(attn * attn.clamp_min(1e-30).log()).sum(-1)


def cut_from_colsum(colsum: torch.Tensor) -> torch.Tensor:
    """The prefix cuts from column sums alone: rows i < t of a causal map put all their mass
    on keys j < t, so sum_{j<t} colsum_j = t + cut[t], i.e. cut[t] = prefix(colsum)[t] - t.
    The prefix sums reach n while a cut can be ~1e-3: they are summed in float64, or fp32
    rounding of the prefix (~n x 6e-8) would be a visible part of the cut."""
    n = colsum.shape[-1]
    wide = colsum.double()
    before = torch.cat([torch.zeros_like(wide[..., :1]), wide.cumsum(-1)[..., :-1]], -1)
    cut = (before - torch.arange(n, device=colsum.device, dtype=wide.dtype)).clamp_min(0)
    return cut.to(colsum.dtype)


def _per_item(lengths: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) per-item values (or one 0-d value) shaped to broadcast against (B, ..., n) tensors."""
    return lengths.to(like.dtype).reshape(lengths.shape + (1,) * (like.dim() - lengths.dim()))


def phi_prefix(
    colsum: torch.Tensor, lengths: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bipartite prefix-cut capacity min_t cut(S_t)/min(vol, 2n-vol) and its argmin t/n.

    colsum is (..., n); rows are stochastic so query out-degrees are 1 and the total volume is
    2n; vol(S_t) = t + sum_{j<t} colsum_j. Returns (phi, argmin fraction), each (...,); n >= 2.
    With `lengths` (B,), colsum is (B, ..., N) zero-padded: item b is its first lengths[b]
    columns (NaN where a length is below 2). Without, every item has all n columns.
    """
    n = colsum.shape[-1]
    if lengths is None:
        lengths = torch.tensor(n, device=colsum.device)
    size = _per_item(lengths, colsum[..., :1])
    cut = cut_from_colsum(colsum)
    t = torch.arange(1, n, device=colsum.device, dtype=colsum.dtype)
    vol = t + colsum.cumsum(-1)[..., :-1]
    ratio = cut[..., 1:] / torch.minimum(vol, 2 * size - vol).clamp_min(1e-30)
    phi, where = ratio.masked_fill(t >= size, math.inf).min(-1)
    size = size[..., 0]
    argmin = (where + 1).to(colsum.dtype) / size
    short = size < 2
    return phi.masked_fill(short, math.nan), argmin.masked_fill(short, math.nan)


def ratio_at_cut(
    colsum: torch.Tensor, t: int | torch.Tensor, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """The prefix-cut ratio at one cut t (the step start): transport from context to the step.

    With tensors t and `lengths` (B,), colsum is (B, ..., N) zero-padded as in `phi_prefix`;
    without `lengths`, every item has all n columns. Summed in float64 like `cut_from_colsum`.
    """
    if lengths is None:
        lengths = torch.tensor(colsum.shape[-1], device=colsum.device)
    t = torch.as_tensor(t, device=colsum.device)
    wide = colsum.double()
    prefix = torch.cat([torch.zeros_like(wide[..., :1]), wide.cumsum(-1)], -1)
    index = t.reshape(t.shape + (1,) * (colsum.dim() - 1)).expand(*colsum.shape[:-1], 1)
    before = prefix.gather(-1, index)[..., 0]
    cut_at = _per_item(t, before)
    total = 2 * _per_item(lengths, before)
    vol = cut_at + before
    ratio = (before - cut_at).clamp_min(0) / torch.minimum(vol, total - vol).clamp_min(1e-30)
    return ratio.to(colsum.dtype)


def g_frob(colsum: torch.Tensor, colsq: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
    """Asymmetry ||P - P^T||_F / ||P + P^T||_F of P = D_out^-1/2 A D_in^-1/2, A causal.

    Lower-triangular P overlaps its transpose only on the diagonal, so the ratio follows from
    column sums, column sums of squares and the diagonal (all accumulable online).
    """
    d_in = colsum.clamp_min(1e-30)
    norm2 = (colsq / d_in).sum(-1)
    diag2 = (diag.square() / d_in).sum(-1)
    return ((norm2 - diag2).clamp_min(0) / (norm2 + diag2).clamp_min(1e-30)).sqrt()


def laplacian_eigvals(
    colsum: torch.Tensor, diag: torch.Tensor, n: int | torch.Tensor, first: int = 0
) -> torch.Tensor:
    """LapEigvals: eigenvalues of L = D - A for causal A are d_ii - a_ii, d_ii = colsum_i/(n-i).

    colsum/diag hold positions first..first+k-1 of an n-token map; returns (..., k). n may be
    a (B,) tensor for (B, ..., k) inputs (values at positions >= n are then meaningless).
    """
    positions = torch.arange(first, first + colsum.shape[-1], device=colsum.device, dtype=colsum.dtype)
    if isinstance(n, torch.Tensor):
        n = _per_item(n, colsum)
    return colsum / (n - positions) - diag


def topk_mean(values: torch.Tensor, k: int, counts: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the k largest values on the last dim (k capped at its size).

    With `counts` (B,), item b has counts[b] valid values (the rest are -inf) and k is capped
    at that count.
    """
    k = min(k, values.shape[-1])
    top = values.topk(k, dim=-1).values
    if counts is None:
        return top.mean(-1)
    used = _per_item(counts.clamp(max=k), top[..., 0])
    valid = torch.arange(k, device=values.device) < used.unsqueeze(-1)
    return torch.where(valid, top, 0.0).sum(-1) / used


def rauq(prob: torch.Tensor, prev_attn: torch.Tensor, alpha: float) -> torch.Tensor:
    """RAUQ per layer: pick the head with the largest mean previous-token attention, run
    c_1 = p_1, c_i = alpha p_i + (1 - alpha) a_{i,i-1} c_{i-1}, return -mean log c.

    prob: (N,) observed-token probabilities; prev_attn: (..., H, N) with a_{i,i-1} per token.
    Returns (...,): one score per leading index (layer).
    """
    if prob.numel() == 0:
        return torch.full(prev_attn.shape[:-2], math.nan)
    if prob.numel() == 1:
        return -prob.clamp_min(1e-30).log().expand(prev_attn.shape[:-2]).clone()
    head = prev_attn[..., 1:].mean(-1).argmax(-1, keepdim=True)
    attn = prev_attn.gather(-2, head.unsqueeze(-1).expand(*head.shape, prev_attn.shape[-1])).squeeze(-2)
    probs = prob.double().tolist()
    scores = []
    # A plain-float loop: the recurrence is sequential, and per-token tensor ops cost ~50x more.
    for row in attn.reshape(-1, attn.shape[-1]).double().tolist():
        confidence = probs[0]
        total = math.log(max(confidence, 1e-30))
        for p, a in zip(probs[1:], row[1:], strict=True):
            confidence = alpha * p + (1 - alpha) * a * confidence
            total += math.log(max(confidence, 1e-30))
        scores.append(-total / len(probs))
    return torch.tensor(scores, dtype=torch.float64).reshape(attn.shape[:-1])
