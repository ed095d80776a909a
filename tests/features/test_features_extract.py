"""Extraction on the tiny random Llama through the real transformers forward pass."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_lm import tiny_lm  # noqa: F401 - fixture

from tracefail.features import formulas
from tracefail.features.extract import ExtractConfig, Extractor, parse_layers
from tracefail.features.layout import plan_windows, render
from tracefail.features.loading import LoadedModel
from tracefail.model import Step

WORDS = ["the", "agent", "calls", "the", "tool", "and", "reads"]
WORDS += ["the", "result", "then", "answers", "the", "question"]


def make_steps(*lengths: int) -> list[Step]:
    steps = []
    for index, length in enumerate(lengths):
        text = " ".join(WORDS[(index + k) % len(WORDS)] for k in range(length))
        steps.append(Step(step_idx=index, agent=f"agent{index % 2}", content=text))
    return steps


def by_step(rows):
    table: dict[int, dict[str, float]] = {}
    for step, name, value in rows:
        table.setdefault(step, {})[name] = value
    return table


@pytest.fixture
def loaded(tiny_lm):  # noqa: F811 - fixture
    model, tokenizer = tiny_lm
    return LoadedModel(model, tokenizer, "tiny", "cpu")


def test_every_step_gets_token_attention_and_length_features(loaded):
    steps = make_steps(12, 0, 30, 25)
    result = Extractor(loaded, ExtractConfig(window=512)).extract(steps)
    table = by_step(result.rows)
    assert set(table) == {-1, 0, 1, 2, 3}
    assert table[1] == {"len.step_tokens": 0.0, "len.context_tokens": 0.0, "len.parts": 0.0}
    for step in (0, 2, 3):
        names = table[step]
        for name in (
            "tok.maxprob_mean",
            "tok.entropy_mean",
            "tok.perplexity",
            "attn.rauq",
            "attn.logdet",
            "attn.g_frob",
            "attn.phi_prefix",
            "attn.lap_topk",
        ):
            assert math.isfinite(names[name]), (step, name)
        for layer in (0, 1):
            assert f"attn.entropy.l{layer}" in names
        assert names["tok.entropy_max"] <= math.log(len(loaded.tokenizer)) + 1e-4
        assert 0 <= names["attn.g_frob"] <= 1
    # first message and lookback need earlier context: present from the second content step on
    assert "attn.first_message" not in table[0] and "attn.first_message" in table[2]
    assert 0 < table[3]["attn.lookback_ratio"] < 1
    assert table[3]["dyn.d_tok.surprisal_mean"] == pytest.approx(
        table[3]["tok.surprisal_mean"] - table[2]["tok.surprisal_mean"]
    )
    assert 0 < result.tokens <= table[-1]["len.trace_tokens"] and table[-1]["len.windows"] == 1


def test_features_do_not_depend_on_the_window_cut_when_context_is_kept(loaded):
    steps = make_steps(20, 25, 30, 30, 40, 35)
    whole = by_step(Extractor(loaded, ExtractConfig(window=2048)).extract(steps).rows)
    cut = Extractor(loaded, ExtractConfig(window=1024, stride=512))
    result = cut.extract(steps)
    assert result.windows > 1
    table = by_step(result.rows)
    layout = render(steps, loaded.tokenizer)
    first_window = plan_windows(layout, 1024, 512)[0]
    kept = {piece.step_idx for piece in first_window.pieces}
    assert kept and len(kept) < len(steps)
    for step in kept:
        for name, value in whole[step].items():
            assert table[step][name] == pytest.approx(value, rel=1e-4, abs=1e-5), (step, name)


def test_a_later_window_scores_tokens_like_a_plain_forward_of_that_window(loaded):
    steps = make_steps(20, 25, 30, 30, 40, 35)
    config = ExtractConfig(window=640, stride=320, layers="none")
    table = by_step(Extractor(loaded, config).extract(steps).rows)
    layout = render(steps, loaded.tokenizer)
    window = plan_windows(layout, 640, 320)[-1]
    assert len(window.ranges) == 2  # anchor + recent context
    piece = window.pieces[-1]
    flat = [t for start, end in window.ranges for t in layout.ids[start:end]]
    with torch.no_grad():
        logits = loaded.model(torch.tensor([flat])).logits[0]
    s, e = window.to_window(piece.start), window.to_window(piece.end)
    stats = formulas.token_stats(logits[s - 1 : e - 1], torch.tensor(flat[s:e]))
    assert table[piece.step_idx]["tok.surprisal_mean"] == pytest.approx(
        float(stats["surprisal"].mean()), rel=1e-5
    )
    assert not any(name.startswith("attn.") for name in table[piece.step_idx])


def test_a_step_longer_than_the_window_is_split_and_marked(loaded):
    steps = make_steps(10, 300, 10)
    table = by_step(Extractor(loaded, ExtractConfig(window=256, layers="0")).extract(steps).rows)
    long = table[1]
    assert long["len.parts"] > 1
    assert long["len.step_tokens"] > 256
    assert math.isfinite(long["tok.surprisal_mean"]) and "attn.entropy.l0" in long
    assert "attn.entropy.l1" not in long
    assert table[2]["len.parts"] == 1


def test_parse_layers():
    assert parse_layers("all", 4) == [0, 1, 2, 3]
    assert parse_layers("middle", 30) == list(range(10, 20))
    assert parse_layers("0-1,-1", 6) == [0, 1, 5]
    from tracefail.features.errors import FeatureError

    for bad in ("x", "0-9", "7"):
        with pytest.raises(FeatureError):
            parse_layers(bad, 6)
