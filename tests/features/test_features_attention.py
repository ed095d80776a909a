"""The chunked feature attention against eager attention with full maps on the tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from test_features_formulas import explicit_cut, explicit_phi
from tiny_lm import tiny_lm  # noqa: F401 - fixture

from tracefail.features import attention, formulas


def brute_force(attn: torch.Tensor, seg: attention.Segment, anchor_end: int) -> dict[str, torch.Tensor]:
    """The same statistics from one full (H, n, n) map, the slow obvious way."""
    s, e = seg.start, seg.end
    prefix = attn[:, :e, :e]
    rows = torch.arange(s, e)
    own = prefix[:, rows, rows]
    colsum = prefix.sum(1)
    result = {
        "logdiag": own.log().mean(-1),
        "entropy": formulas.row_entropy(prefix[:, s:e]).mean(-1),
        "prev": prefix[:, rows, rows - 1],
        "g_frob": formulas.g_frob(colsum, prefix.square().sum(1), prefix.diagonal(0, 1, 2)),
    }
    result["phi_prefix"], result["phi_argmin"] = explicit_phi(prefix)
    cut = explicit_cut(prefix)[:, s]
    vol = s + colsum[:, :s].sum(-1)
    result["phi_step_cut"] = cut / torch.minimum(vol, 2 * e - vol)
    lap = colsum[:, s:e] / (e - rows) - own
    result["lap_topk"] = lap.topk(5, -1).values.mean(-1)
    ratios = []
    for i in range(s, e):
        ctx = prefix[:, i, :s].mean(-1)
        new = prefix[:, i, s : i + 1].mean(-1)
        ratios.append(ctx / (ctx + new))
    result["lookback"] = torch.stack(ratios, -1).mean(-1)
    ratios = []
    for i in range(s, e):
        ctx = prefix[:, i, 1:s].mean(-1)
        new = prefix[:, i, s : i + 1].mean(-1)
        ratios.append(ctx / (ctx + new))
    result["lookback_nosink"] = torch.stack(ratios, -1).mean(-1)
    result["first_message"] = prefix[:, s:e, :anchor_end].sum(-1).mean(-1)
    return result


@pytest.mark.parametrize("chunk_rows", [7, 256])
def test_feature_attention_matches_eager(tiny_lm, chunk_rows):  # noqa: F811 - fixture
    model, _ = tiny_lm
    torch.manual_seed(1)
    ids = torch.randint(3, 200, (1, 90))
    segments = [
        attention.Segment("a", 20, 41),
        attention.Segment("b", 41, 60),
        attention.Segment("c", 70, 90),
    ]
    model.set_attn_implementation("eager")
    with torch.no_grad():
        eager = model(ids, output_attentions=True)
    name = attention.register()
    model.set_attn_implementation(name)
    collector = attention.Collector(segments, anchor_end=12, layers={0, 1}, chunk_rows=chunk_rows)
    try:
        with torch.no_grad(), attention.collecting(collector):
            ours = model(ids)
    finally:
        model.set_attn_implementation("sdpa")
    assert torch.allclose(ours.logits, eager.logits, atol=1e-5)
    for layer in (0, 1):
        maps = eager.attentions[layer][0].float()
        for seg in segments:
            expected = brute_force(maps, seg, 12)
            got = collector.stats[layer][seg.key]
            for stat, value in expected.items():
                assert torch.allclose(getattr(got, stat), value, atol=2e-5), (layer, seg.key, stat)


@pytest.mark.parametrize(("softcap", "window"), [(None, None), (5.0, None), (None, 16), (5.0, 16)])
def test_softcap_and_sliding_window_match_full_maps(softcap, window):
    """Soft-capped and sliding-window layers (Gemma-style) against maps computed in full."""
    torch.manual_seed(2)
    heads, kv_heads, n, dim = 4, 2, 60, 8
    q, k, v = torch.randn(heads, n, dim) * 2, torch.randn(kv_heads, n, dim) * 2, torch.randn(kv_heads, n, dim)
    scaling = dim**-0.5
    scores = q @ k.repeat_interleave(2, 0).transpose(-1, -2) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    position = torch.arange(n)
    allowed = position[None, :] <= position[:, None]
    if window is not None:
        allowed &= position[None, :] > position[:, None] - window
    maps = scores.masked_fill(~allowed, -math.inf).softmax(-1)
    segments = [attention.Segment("a", 10, 31), attention.Segment("b", 31, 60)]
    collector = attention.Collector(segments, anchor_end=6, layers={0}, chunk_rows=7)
    output, stats = attention._measure(q, k, v, scaling, collector, window, softcap)
    assert torch.allclose(output, maps @ v.repeat_interleave(2, 0), atol=1e-5)
    for seg in segments:
        expected = brute_force(maps, seg, 6)
        for stat in ("entropy", "logdiag", "prev", "g_frob", "phi_prefix", "lookback", "first_message"):
            assert torch.allclose(getattr(stats[seg.key], stat), expected[stat], atol=2e-5), (seg.key, stat)
