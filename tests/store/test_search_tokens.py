"""Query words and indexed documents are split by one tokeniser: random Unicode text, indexed
as a step, holds exactly the tokens (in order) that `tokenize` gives for the same text, and
those tokens are what a plain Python reading of the rules gives (lower-case, marks stripped,
runs of letters and digits)."""

from __future__ import annotations

import random
import unicodedata

from tracefail.model import Outcome, Step, Trace
from tracefail.store import Database
from tracefail.store import search as store
from tracefail.store.traces import add_traces

# letters with and without accents in several scripts, digits, marks, punctuation, spaces,
# JSON-ish characters, Han and kana, the dotted capital I and the final sigma
ALPHABET = (
    "abcXYZ019 _-.,;:'\"\\/\n\t()[]{}<>!?@#$%^&*+=|~"
    "éèêëàâäçñøåßæœÉÈÀÇÑÅ"
    "αβγΣσςΩωάέ"
    "абвЖЩЯёЁ"
    "\u0301\u0308\u0327"  # combining acute, diaeresis, cedilla
    "İıŁłĳ"
    "東京タワーひらがなカナ漢字"
    "٠١٢३४५"  # Arabic-Indic and Devanagari digits
    "\u00a0\u2003\u200b"  # no-break, em space, zero-width space
)


def _texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60))) for _ in range(n)]


def _reference(text: str) -> list[str]:
    """The rules in plain Python, for text without Han or kana (Python's `re` has no scripts)."""
    folded = unicodedata.normalize("NFD", text.lower())
    folded = unicodedata.normalize("NFC", "".join(c for c in folded if unicodedata.category(c)[0] != "M"))
    tokens, word = [], ""
    for c in folded:
        if unicodedata.category(c)[0] in "LN":
            word += c
        elif word:
            tokens.append(word)
            word = ""
    return [*tokens, word] if word else tokens


def test_index_holds_what_tokenize_gives(db: Database) -> None:
    texts = _texts(seed=7, n=300)
    steps = [Step(step_idx=i, agent="a", content=text) for i, text in enumerate(texts)]
    add_traces(db, [Trace(trace_id="t:1", source="t", outcome=Outcome.FAILURE, steps=steps)], run_id=None)
    rows = db.rows(
        "SELECT d.step_idx, d.len, t.term, unnest(p.positions) FROM search_postings p "
        "JOIN search_docs d USING (doc_id) JOIN search_terms t USING (term_id)"
    )
    indexed: dict[int, dict[int, str]] = {}
    lengths = {}
    for step_idx, length, term, position in rows:
        indexed.setdefault(step_idx, {})[position] = term
        lengths[step_idx] = length
    for i, text in enumerate(texts):
        expected = store.tokenize(text)
        held = indexed.get(i, {})
        assert [held[p] for p in sorted(held)] == expected, text
        assert sorted(held) == list(range(len(expected))), text
        assert lengths.get(i, 0) == len(expected)


def test_tokenize_follows_the_rules() -> None:
    cjk = set("東京タワーひらがなカナ漢字")
    for text in _texts(seed=11, n=2000):
        text = "".join(c for c in text if c not in cjk)
        assert store.tokenize(text) == _reference(text), repr(text)


def test_han_and_kana_are_one_token_per_character() -> None:
    assert store.tokenize("東京タワー tower") == ["東", "京", "タ", "ワ", "ー", "tower"]
    assert store.tokenize("İstanbul CRÈME brûlée") == ["istanbul", "creme", "brulee"]
