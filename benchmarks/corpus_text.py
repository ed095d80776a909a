"""Real words for the synthetic benchmark corpora, and the MAST-Data-style array made with them.

Corpora made by repeating the few shipped sample texts flatter whatever depends on text (DuckDB's
dictionary compression and string handling, the search index): the first synthesizers wrote 599
distinct step texts among 124,360 steps (50 MB MAST array) and 673 among 1,011,921 (100k-trace
corpus), where real runs repeat little (Who&When: 920 distinct among 1,099 steps). So each sample
keeps its layout (log headers, speaker prefixes, punctuation, line breaks, JSON shape, word count)
and the words of its bodies are replaced by runs of consecutive words of real text, each run from
a seeded random place in the pool: word frequencies and common phrases are those of real text
(Zipf-like), and nearly every step text differs.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracefail.ingest.logsplit import CHATDEV_NOISE, Split, header_rest, split_trajectory

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
SHARED = ROOT.parent / "shared" / "data"
MAST_SAMPLE = SAMPLES / "mast" / "mad_full_sample.json"

_WORD = re.compile(r"[A-Za-z]+")
_WORDS_AND_GAPS = re.compile(r"([A-Za-z]+)")  # split() keeps the words at odd indices
RUN = 8  # words copied from one place of the pool before the next jump
TEXT_KEYS = ("content", "message", "prompt", "problem_statement")  # what JSON-shaped runs say
# Kept at the start of what follows a header: a ChatDev bold mark ("**Programmer<->Chief
# Technology Officer on : Coding, turn 0**" names the recipient) or a loguru speaker ("✨ Manus's").
_SPEAKER_MARK = re.compile(r"\*\*[^*\n]*\*\*|[^\w\n]*\s*[A-Z][\w-]*(?:\([\w ]+\))?(?::|'s )")


def add_text_options(parser: argparse.ArgumentParser, flag: str, what: str) -> None:
    """`flag` (diverse or repeated text) and `--shared-data`, alike in every benchmark that
    synthesizes a corpus."""
    parser.add_argument(
        flag,
        choices=["diverse", "repeated"],
        default="diverse",
        help=f"{what} in real words drawn from a pool (diverse) or the samples' own text, repeated",
    )
    parser.add_argument(
        "--shared-data", type=Path, default=SHARED, help="the real-text pool's folder (Who&When, HaluEval)"
    )


def pool_texts(shared: Path = SHARED) -> list[str]:
    """The real texts words are drawn from: Who&When messages and questions (the shared data's
    126 runs when present, else the 20 shipped), plus HaluEval QA when present."""
    shared_whowhen = shared / "whowhen-algorithm-generated"
    folder = shared_whowhen if shared_whowhen.exists() else SAMPLES / "whowhen"
    texts: list[str] = []
    for path in sorted(folder.glob("*.json"), key=lambda p: p.name):
        run = json.loads(path.read_text(encoding="utf-8"))
        texts.append(str(run.get("question") or ""))
        texts += [str(message.get("content") or "") for message in run.get("history", [])]
    halueval = shared / "halueval" / "halueval_qa_first1000.jsonl"
    if halueval.exists():
        for line in halueval.read_text(encoding="utf-8").splitlines():
            qa = json.loads(line)
            texts += [str(qa[k]) for k in ("knowledge", "question", "right_answer", "hallucinated_answer")]
    return texts


def distinct_messages(folder: Path) -> tuple[int, int]:
    """Distinct message texts and all messages of a Who&When folder: how much real runs repeat."""
    texts = [
        str(message.get("content") or "")
        for path in folder.glob("*.json")
        for message in json.loads(path.read_text(encoding="utf-8")).get("history", [])
    ]
    return len(set(texts)), len(texts)


def pool_words(shared: Path = SHARED) -> list[str]:
    """The pool's words, lowercased, in reading order (so a run of them is real text)."""
    return [word.lower() for text in pool_texts(shared) for word in _WORD.findall(text)]


def _shaped(new: str, old: str) -> str:
    """`new` in the case of `old`: Capitalized, UPPER (two letters or more) or as it is."""
    if "A" <= old[0] <= "Z":
        return new.upper() if len(old) > 1 and old.isupper() else new.capitalize()
    return new


class Words:
    """Replaces the words of texts by seeded runs of consecutive pool words."""

    def __init__(self, words: list[str], seed: int = 0) -> None:
        if len(words) <= RUN:
            raise ValueError(f"a pool of {len(words)} words is too small")
        self.words, self.rng = words, random.Random(seed)

    def draw(self, count: int) -> list[str]:
        drawn: list[str] = []
        last = len(self.words) - RUN
        while len(drawn) < count:
            start = self.rng.randrange(last)
            drawn += self.words[start : start + RUN]
        return drawn[:count]

    def text(self, text: str) -> str:
        """`text` with every ASCII word replaced, everything between words kept."""
        parts = _WORDS_AND_GAPS.split(text)
        if len(parts) > 1:
            parts[1::2] = map(_shaped, self.draw(len(parts) // 2), parts[1::2])
        return "".join(parts)

    def log(self, text: str) -> str:
        """A run log with the words of its bodies replaced: on a line that starts with a header
        the splitters read (timestamp, level, speaker, `ACTION:`...), only what follows it."""
        lines = text.split("\n")
        for i, line in enumerate(lines):
            rest = header_rest(line)
            if rest is None:
                lines[i] = self.text(line)
            elif rest and rest != CHATDEV_NOISE:  # a body of only the noise line is dropped
                cut = len(line.rstrip()) - len(rest)
                mark = _SPEAKER_MARK.match(line, cut)
                cut = mark.end() if mark else cut
                lines[i] = line[:cut] + self.text(line[cut:])
        return "\n".join(lines)

    def json(self, value: Any) -> Any:
        """A JSON value with the texts under TEXT_KEYS rewritten as logs (a MetaGPT run holds
        its loguru lines under `content`; an AG2 message its lines as a list)."""
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, v in value.items():
            if key in TEXT_KEYS and isinstance(v, str):
                out[key] = self.log(v)
            elif key in TEXT_KEYS and isinstance(v, list) and all(isinstance(s, str) for s in v):
                out[key] = [self.log(s) for s in v]
            else:
                out[key] = self.json(v)
        return out

    def trajectory(self, text: str) -> str:
        """A MAST trajectory in its own style: a JSON document, JSON lines or a log."""
        if text.lstrip().startswith(("{", "[")):
            try:
                return json.dumps(self.json(json.loads(text)), ensure_ascii=False)
            except ValueError:
                pass
            lines = text.split("\n")
            try:
                records = [json.loads(line) if line.strip() else None for line in lines]
            except ValueError:
                return self.log(text)
            return "\n".join(
                line if r is None else json.dumps(self.json(r), ensure_ascii=False)
                for line, r in zip(lines, records, strict=True)
            )
        return self.log(text)


def _longer(trajectory: str, repeat: int) -> str:
    """A run log `repeat` times as long, still in its own style: an AG2 run is a JSON document,
    so its message list is repeated (repeating the text would make it unreadable JSON, which no
    real MAST record is, and send it through every splitter)."""
    try:
        document = json.loads(trajectory)
    except ValueError:
        return trajectory * repeat
    if isinstance(document, list):
        return json.dumps(document * repeat, ensure_ascii=False)
    document["trajectory"] = document["trajectory"] * repeat  # AG2's {..., "trajectory": [...]}
    return json.dumps(document, ensure_ascii=False)


@dataclass
class MastSynth:
    """What `synthesize_mast` wrote: records, their steps as the splitter cuts them, how many
    distinct step texts, and how many records kept their sample's words (their rewrite split
    differently from the sample)."""

    records: int
    steps: int
    distinct_texts: int
    kept_sample_text: int


def _shape(split: Split) -> tuple[int, list[str | None], list[str | None]]:
    return len(split.columns), split.columns.agent, split.columns.recipient


def synthesize_mast(
    path: Path, megabytes: int, *, diverse: bool = True, seed: int = 0, shared: Path = SHARED
) -> MastSynth:
    """Write a MAST-Data full-file lookalike of about `megabytes` MB, streaming, from the shipped
    sample records. `diverse`: the words of each record's bodies come from the real text pool;
    each rewritten record must split into the steps, agents and recipients of its sample record
    (else the sample's text is kept, and counted). Not `diverse`: the sample text as it is (the
    first synthesizer, byte for byte)."""
    base = json.loads(MAST_SAMPLE.read_text())
    words = Words(pool_words(shared), seed) if diverse else None
    sources: dict[tuple[int, int], tuple[str, Split]] = {}  # (sample, repeat) -> text, split
    target, written, count = megabytes * 1_000_000, 0, 0
    steps, kept, texts = 0, 0, set[str]()
    with path.open("w", encoding="utf-8") as fh:
        fh.write("[\n")
        while written < target:
            sample = count % len(base)
            record = json.loads(json.dumps(base[sample]))
            # sizes like the real file: mostly ~10 KB, every 50th ~2 MB
            repeat = 400 if count % 50 == 49 else 1 + count % 7
            framework = record.get("mas_name")
            if (sample, repeat) not in sources:
                source = _longer(record["trace"]["trajectory"], repeat)
                sources[sample, repeat] = source, split_trajectory(source, framework)
            source, split = sources[sample, repeat]
            record["trace"]["trajectory"] = source
            if words is not None:
                rewritten = words.trajectory(source)
                rewritten_split = split_trajectory(rewritten, framework)
                if _shape(rewritten_split) == _shape(split):
                    record["trace"]["trajectory"], split = rewritten, rewritten_split
                else:
                    kept += 1
            steps += len(split.columns)
            texts.update(split.columns.content)
            record["trace_id"] = record["trace"]["index"] = count
            text = json.dumps(record, ensure_ascii=False)
            fh.write(("" if count == 0 else ",\n") + text)
            written += len(text)
            count += 1
        fh.write("\n]\n")
    return MastSynth(count, steps, len(texts), kept)
