"""Known-answer tests for each feature formula on hand-made distributions and attention maps."""

from __future__ import annotations

import math

import pytest
import torch

from tracefail.features import formulas


def uniform_causal(n: int) -> torch.Tensor:
    rows = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    return torch.ones(n, n, dtype=torch.float64).tril() / (rows + 1)


def random_causal(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, n, generator=generator, dtype=torch.float64) * 2
    return scores.masked_fill(torch.ones(n, n).triu(1).bool(), float("-inf")).softmax(-1)


def test_token_stats_uniform_distribution():
    vocab = 50
    stats = formulas.token_stats(torch.zeros(3, vocab), torch.tensor([0, 7, 49]))
    assert torch.allclose(stats["entropy"], torch.full((3,), math.log(vocab)))
    assert torch.allclose(stats["surprisal"], torch.full((3,), math.log(vocab)))
    assert torch.allclose(stats["maxprob"], torch.full((3,), 1 / vocab))
    assert torch.allclose(stats["margin"], torch.zeros(3), atol=1e-7)


def test_token_stats_hand_made_distribution():
    probs = torch.tensor([[0.5, 0.3, 0.2]])
    stats = formulas.token_stats(probs.log(), torch.tensor([1]))
    assert stats["maxprob"].item() == pytest.approx(0.5)
    assert stats["margin"].item() == pytest.approx(0.2)
    assert stats["prob_observed"].item() == pytest.approx(0.3)
    assert stats["surprisal"].item() == pytest.approx(-math.log(0.3))
    expected = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))
    assert stats["entropy"].item() == pytest.approx(expected, rel=1e-6)


def test_surprisal_spikes():
    values = torch.tensor([1.0, 1.1, 0.9, 1.0, 9.0, 1.0, 1.05, 0.95])
    assert formulas.surprisal_spikes(values) == (1, 4)
    assert formulas.surprisal_spikes(torch.ones(5)) == (0, None)
    assert formulas.surprisal_spikes(torch.tensor([1.0, 50.0])) == (0, None)  # too short to judge


def test_row_entropy_of_uniform_rows_is_log_k():
    attn = uniform_causal(6)
    assert torch.allclose(formulas.row_entropy(attn), torch.log(torch.arange(1, 7, dtype=torch.float64)))


def test_lookback_ratio_known_values():
    # 4 context tokens get 0.6 in total, 2 own tokens get 0.4: 0.15 / (0.15 + 0.2).
    ratio = formulas.lookback_ratio(torch.tensor([0.6]), torch.tensor([0.4]), 4, torch.tensor([2.0]))
    assert ratio.item() == pytest.approx(0.15 / 0.35)
    same = formulas.lookback_ratio(torch.tensor([0.5]), torch.tensor([0.5]), 3, torch.tensor([3.0]))
    assert same.item() == pytest.approx(0.5)


def explicit_cut(attn: torch.Tensor) -> torch.Tensor:
    """cut[..., t] = sum_{i>=t} sum_{j<t} a_ij straight from the definition."""
    n = attn.shape[-1]
    return torch.stack([attn[..., t:, :t].sum((-1, -2)) for t in range(n)], -1)


def explicit_phi(attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = attn.shape[-1]
    colsum, cut = attn.sum(-2), explicit_cut(attn)
    vol = torch.arange(n, dtype=attn.dtype) + torch.stack([colsum[..., :t].sum(-1) for t in range(n)], -1)
    ratio = (cut / torch.minimum(vol, 2 * n - vol))[..., 1:]
    phi, where = ratio.min(-1)
    return phi, (where + 1).to(attn.dtype) / n


def test_cut_from_column_sums_matches_the_definition():
    attn = random_causal(9)
    assert torch.allclose(formulas.cut_from_colsum(attn.sum(0)), explicit_cut(attn))
    phi, argmin = formulas.phi_prefix(attn.sum(0))
    expected_phi, expected_argmin = explicit_phi(attn)
    assert phi.item() == pytest.approx(expected_phi.item()) and argmin.item() == expected_argmin.item()


@pytest.mark.parametrize("n", [200, 1000])
def test_phi_of_uniform_causal_attention(n):
    attn = uniform_causal(n)
    phi, argmin = formulas.phi_prefix(attn.sum(0))
    assert argmin.item() == pytest.approx(0.318, abs=0.005)
    assert phi.item() == pytest.approx(0.364, abs=0.003)
    assert phi.item() >= 0.2  # the abstract's floor


def test_phi_of_window_attention_is_about_w_over_2n():
    n, w = 1000, 16
    rows = torch.arange(n).unsqueeze(1)
    cols = torch.arange(n).unsqueeze(0)
    band = ((cols <= rows) & (cols > rows - w)).double()
    attn = band / band.sum(-1, keepdim=True)
    phi, _ = formulas.phi_prefix(attn.sum(0))
    assert phi.item() == pytest.approx(0.0075, abs=0.001)


def test_ratio_at_cut_equals_the_phi_curve():
    attn = random_causal(12)
    colsum, cut = attn.sum(0), explicit_cut(attn)
    t = 5
    vol = t + colsum[:t].sum()
    expected = cut[t] / min(vol, 24 - vol)
    assert formulas.ratio_at_cut(colsum, t).item() == pytest.approx(expected.item())


def test_g_frob_matches_the_explicit_operator():
    attn = random_causal(10, seed=3)
    d_in = attn.sum(0)
    op = attn / d_in.sqrt().unsqueeze(0)  # D_out = I for row-stochastic maps
    expected = torch.linalg.norm(op - op.T) / torch.linalg.norm(op + op.T)
    got = formulas.g_frob(d_in, attn.square().sum(0), attn.diagonal())
    assert got.item() == pytest.approx(expected.item(), rel=1e-9)
    # Uniform causal attention: 0.89 at n = 500 (the reference's figure), rising slowly with n.
    values = []
    for n in (200, 500, 1000):
        uniform = uniform_causal(n)
        values.append(formulas.g_frob(uniform.sum(0), uniform.square().sum(0), uniform.diagonal()).item())
    assert values[1] == pytest.approx(0.89, abs=0.005)
    assert values[0] < values[1] < values[2] < 1


def test_laplacian_eigvals_equal_the_eigenvalues_of_d_minus_a():
    n = 8
    attn = random_causal(n, seed=5)
    degree = torch.diag(attn.sum(0) / (n - torch.arange(n, dtype=torch.float64)))
    expected = torch.linalg.eigvals(degree - attn).real.sort().values
    got = formulas.laplacian_eigvals(attn.sum(0), attn.diagonal(), n).sort().values
    assert torch.allclose(got, expected, atol=1e-9)
    # A slice of positions gives the same values as the full vector.
    part = formulas.laplacian_eigvals(attn.sum(0)[3:6], attn.diagonal()[3:6], n, first=3)
    assert torch.allclose(part, formulas.laplacian_eigvals(attn.sum(0), attn.diagonal(), n)[3:6])
    assert formulas.topk_mean(torch.tensor([1.0, 5.0, 3.0]), 2).item() == pytest.approx(4.0)


def test_rauq_recurrence_by_hand():
    prob = torch.tensor([0.5, 0.4, 0.9])
    prev = torch.tensor([[[0.0, 0.1, 0.1], [0.0, 0.8, 0.6]]])  # layer 0, heads 0/1: head 1 wins
    alpha = 0.5
    c1 = 0.5
    c2 = alpha * 0.4 + (1 - alpha) * 0.8 * c1
    c3 = alpha * 0.9 + (1 - alpha) * 0.6 * c2
    expected = -(math.log(c1) + math.log(c2) + math.log(c3)) / 3
    assert formulas.rauq(prob, prev, alpha).item() == pytest.approx(expected, rel=1e-6)
    assert formulas.rauq(torch.tensor([0.25]), prev[..., :1], alpha).item() == pytest.approx(math.log(4))
