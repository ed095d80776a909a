"""The chunked feature attention against eager attention with full maps on the tiny model."""

from __future__ import annotations

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


@pytest.mark.parametrize("fused", [True, False], ids=["fused-lse", "own-softmax"])
@pytest.mark.parametrize("chunk_rows", [7, 256])
def test_feature_attention_matches_eager(tiny_lm, chunk_rows, fused, monkeypatch):  # noqa: F811 - fixture
    model, _ = tiny_lm
    if not fused:  # the path for GPUs, sliding windows and softcaps: output and lse computed here
        monkeypatch.setattr(attention, "_flash_lse", lambda *args: None)
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
