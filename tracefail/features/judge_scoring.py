"""Yes/no scoring with a local causal LM: the torch half of the local judge.

The trace is the long part of every question, so it is read once: one forward pass over the
shared prefix (instructions + fenced trace) fills the KV cache, then each question is a short
forward pass on top of that cache, which is cropped back to the prefix afterwards. A question's
score is P(yes) / (P(yes) + P(no)) from the next-token distribution right after it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

_YES = ("Yes", "yes", " Yes", " yes", "YES")
_NO = ("No", "no", " No", " no", "NO")
QUESTION_MARK = "\x00QUESTION\x00"


@dataclass
class Scores:
    probabilities: list[float]  # P(yes)/(P(yes)+P(no)) per question
    answer_mass: list[float]  # P(yes)+P(no): how much the model answered in the asked format
    tokens_in: int  # tokens actually run through the model


def limit_threads(threads: int) -> None:
    """Fewer torch threads than cores: on a busy machine spinning threads slow everything down."""
    import torch

    torch.set_num_threads(max(1, threads))


class YesNoScorer:
    """Wraps a loaded causal LM (features.loading.LoadedModel or a raw model + tokenizer)."""

    def __init__(
        self, model: Any, tokenizer: Any, name: str, device: str = "cpu", max_tokens: int | None = None
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.device = device
        limit = getattr(model.config, "max_position_embeddings", 2048)
        self.max_tokens = min(limit, max_tokens) if max_tokens else limit
        self.yes_ids, self.no_ids = self._answer_ids()
        # transformers 5 renamed `past_key_values` to `cache` (argument and output field).
        params = inspect.signature(model.forward).parameters
        self._cache_name = "cache" if "cache" in params else "past_key_values"

    def _answer_ids(self) -> tuple[list[int], list[int]]:
        """First tokens of yes/no spellings; a token shared by both (a bare space) says nothing."""

        def first(words: tuple[str, ...]) -> set[int]:
            return {self.tokenizer.encode(w, add_special_tokens=False)[0] for w in words}

        yes, no = first(_YES), first(_NO)
        shared = yes & no
        return sorted(yes - shared), sorted(no - shared)

    def split_prompt(self, system: str, user_prefix: str) -> tuple[str, str]:
        """(prefix text, text after the question) under the model's chat template, if it has one."""
        if getattr(self.tokenizer, "chat_template", None):
            messages = [
                {"role": "system", "content": system},
                {"role": "user", "content": user_prefix + QUESTION_MARK},
            ]
            rendered = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            rendered = f"{system}\n\n{user_prefix}{QUESTION_MARK}\nAnswer:"
        head, tail = rendered.split(QUESTION_MARK)
        return head, tail

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def read(self, prefix: str, *, reuse_cache: bool = True) -> ReadPrefix:
        """Read the shared prefix once; questions asked on the result reuse its KV cache."""
        return ReadPrefix(self, prefix, reuse_cache)

    def score(self, prefix: str, questions: list[str], *, reuse_cache: bool = True) -> Scores:
        """Score every question (already ending with the template's tail) after the shared prefix."""
        read = self.read(prefix, reuse_cache=reuse_cache)
        scores = read.score(questions)
        scores.tokens_in += read.prefix_tokens
        return scores


class ReadPrefix:
    """A prefix in the model's KV cache. Questions can come in several rounds (the judge asks for
    evidence steps only after it knows which modes it found) without reading the prefix again."""

    def __init__(self, scorer: YesNoScorer, prefix: str, reuse_cache: bool) -> None:
        import torch

        self.scorer = scorer
        self.reuse_cache = reuse_cache
        ids = scorer.tokenizer.encode(prefix, add_special_tokens=False)
        self.prefix_ids = torch.tensor([ids], device=scorer.device)
        self.prefix_tokens = 0  # tokens run to read the prefix (0 when each question re-reads it)
        self.cache: Any = None  # transformers' DynamicCache (or the model's own cache class)
        if reuse_cache:
            with torch.inference_mode():
                out = scorer.model(input_ids=self.prefix_ids, use_cache=True)
            self.cache = getattr(out, scorer._cache_name)
            self.prefix_tokens = len(ids)

    def score(self, questions: list[str]) -> Scores:
        """P(yes)/(P(yes)+P(no)) per question; tokens_in counts the question tokens run (and the
        prefix again for every question when the cache is not reused)."""
        import torch

        scorer, model = self.scorer, self.scorer.model
        probabilities, mass, tokens = [], [], 0
        with torch.inference_mode():
            for question in questions:
                ids = scorer.tokenizer.encode(question, add_special_tokens=False)
                q_ids = torch.tensor([ids], device=scorer.device)
                if self.reuse_cache:
                    logits = model(input_ids=q_ids, use_cache=True, **{scorer._cache_name: self.cache}).logits
                    self.cache.crop(-q_ids.shape[1])  # negative: drop the question, keep the prefix
                else:
                    full = torch.cat([self.prefix_ids, q_ids], dim=1)
                    logits = model(input_ids=full, use_cache=False).logits
                    tokens += self.prefix_ids.shape[1]
                tokens += q_ids.shape[1]
                p = torch.softmax(logits[0, -1].float(), dim=-1)
                p_yes = float(p[scorer.yes_ids].sum())
                p_no = float(p[scorer.no_ids].sum())
                total = p_yes + p_no
                probabilities.append(p_yes / total if total > 0 else 0.5)
                mass.append(total)
        return Scores(probabilities, mass, tokens)
