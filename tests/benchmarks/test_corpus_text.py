"""The synthetic benchmark corpora keep their samples' structure but not their words: every step,
agent, header and character other than a word is the sample's, and nearly every text differs."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from benchmarks.corpus_text import SAMPLES, Words, pool_words, synthesize_mast
from benchmarks.synth import synthesize
from tracefail.ingest.logsplit import Split, split_trajectory
from tracefail.services.ingest import ingest
from tracefail.store import Database

_WORD = re.compile(r"[A-Za-z]+")


def _skeleton(text: str) -> str:
    """Everything but the words."""
    return _WORD.sub("", text)


def _records(path: Path) -> list[tuple[dict, Split]]:
    records = json.loads(path.read_text(encoding="utf-8"))
    return [(r, split_trajectory(r["trace"]["trajectory"], r["mas_name"])) for r in records]


def test_words_keep_everything_between_them_and_their_case() -> None:
    words = Words(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"])
    text = "Hello, WORLD! 42 foo-bar\n[x] é"
    out = words.text(text)
    assert _skeleton(out) == _skeleton(text) and out != text
    first, second, *_ = _WORD.findall(out)
    assert first[0].isupper() and first[1:].islower() and second.isupper()
    assert Words(words.words, seed=3).text(text) == Words(words.words, seed=3).text(text)  # seeded


def test_mast_synth_keeps_every_records_steps_and_agents_in_new_words(tmp_path: Path) -> None:
    diverse, repeated = tmp_path / "diverse.json", tmp_path / "repeated.json"
    made = synthesize_mast(diverse, 2)
    synthesize_mast(repeated, 2, diverse=False)
    new, old = _records(diverse), _records(repeated)
    assert made.records == len(new) and len(new) >= 45 and len(old) >= 45
    for (record, split), (sample, sample_split) in zip(new, old, strict=False):
        assert {k: v for k, v in record.items() if k != "trace"} == {
            k: v for k, v in sample.items() if k != "trace"
        }
        assert split.style == sample_split.style
        assert len(split.columns) == len(sample_split.columns)
        assert split.columns.agent == sample_split.columns.agent
        assert split.columns.recipient == sample_split.columns.recipient
        assert _skeleton(json.dumps(record)) == _skeleton(json.dumps(sample))  # headers, layout
    assert made.kept_sample_text == 0
    texts = [text for _, split in new for text in split.columns.content]
    assert made.steps == len(texts) and made.distinct_texts == len(set(texts))
    filled = [text for text in texts if _WORD.search(text)]
    assert len(set(filled)) > 0.8 * len(filled)  # real runs: Who&When 920 distinct of 1,099
    old_texts = [text for _, split in old for text in split.columns.content]
    assert len(set(old_texts)) < 0.05 * len(old_texts)
    # word frequencies as in real text (Zipf-like): the ten commonest words are a tenth to a
    # third of all words (a uniform draw from the pool's vocabulary would give under 1%)
    counts = Counter(word.lower() for text in filled for word in _WORD.findall(text))
    assert 0.1 < sum(n for _, n in counts.most_common(10)) / counts.total() < 0.35


def _corpus(path: Path, words: Words | None) -> Database:
    db = Database(path)
    ingest(db, [SAMPLES / "whowhen"])
    synthesize(db, 200, text=None if words is None else words.text)
    return db


def test_synthetic_corpus_copies_sample_steps_in_new_words(tmp_path: Path) -> None:
    query = (
        "SELECT trace_id, step_idx, agent, role, kind, content FROM steps "
        "WHERE trace_id LIKE 'synth:%' ORDER BY trace_id, step_idx"
    )
    with _corpus(tmp_path / "repeated.duckdb", None) as db:
        old = db.rows(query)
    with _corpus(tmp_path / "diverse.duckdb", Words(pool_words())) as db:
        new = db.rows(query)
    assert len(new) == len(old) > 600
    for step, sample in zip(new, old, strict=True):
        assert step[:5] == sample[:5] and _skeleton(step[5] or "") == _skeleton(sample[5] or "")
    filled = [step[5] for step in new if _WORD.search(step[5] or "")]
    old_filled = [step[5] for step in old if _WORD.search(step[5] or "")]
    assert len(set(filled)) > 0.8 * len(filled) and len(set(old_filled)) < 0.5 * len(old_filled)
