"""The embedded SmolLM2 on a short trace (first run converts the GGUF into the user cache)."""

from __future__ import annotations

import math

import pytest

from tracefail.features.extract import ExtractConfig, Extractor
from tracefail.features.loading import EMBEDDED_NAME, load_causal_lm
from tracefail.model import Step


@pytest.mark.slow
def test_embedded_smollm2_scores_a_short_trace():
    loaded = load_causal_lm(None, device="cpu")
    assert loaded.name == EMBEDDED_NAME
    steps = [
        Step(step_idx=0, role="user", agent="user", content="What is the capital of France?"),
        Step(step_idx=1, role="assistant", agent="assistant", content="The capital of France is Paris."),
        Step(step_idx=2, role="assistant", agent="critic", content="The capital of France is Madrid."),
    ]
    rows = Extractor(loaded, ExtractConfig(window=512, layers="middle")).extract(steps).rows
    table: dict[int, dict[str, float]] = {}
    for step, name, value in rows:
        table.setdefault(step, {})[name] = value
    for step in (0, 1, 2):
        assert all(math.isfinite(v) for v in table[step].values())
        assert "attn.rauq" in table[step] and "attn.lookback_ratio.l10" in table.get(2, {})
    # A real model finds "Paris" far less surprising than "Madrid" after the same question.
    assert table[1]["tok.surprisal_mean"] < table[2]["tok.surprisal_mean"]
