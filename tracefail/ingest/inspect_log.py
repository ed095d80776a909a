"""Inspect AI eval logs: `.eval` (zip of header.json + samples/*.json) or one `.json` log.

Each sample x epoch is a trace: its `messages` map like any chat; the score decides the outcome.
The `.eval` zip is read one sample member at a time, so memory is bounded by one sample.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, excerpt, reason, text_of, with_id
from tracefail.ingest.chat import first_user_text, message_steps
from tracefail.ingest.reader import MAX_RECORD_BYTES, loads, parse_whole_object
from tracefail.model import Outcome, Trace

# An .eval zip is read member by member within these limits (a 1 MB zip expanded to 5.5 GB):
# a member over the record limit, or expanding more than MAX_RATIO times its compressed size,
# costs itself; past MAX_MEMBERS or MAX_EXPANDED bytes the rest of the archive is refused.
MAX_MEMBERS = 100_000
MAX_RATIO = 200
MAX_EXPANDED = 8 * 1024**3
_READ = 1024 * 1024

_LOG_START = re.compile(r'^\s*\{\s*"version"\s*:\s*\d')  # Inspect writes `version` first
_CORRECT = {"C", "CORRECT", "1", "1.0", "TRUE"}
_INCORRECT = {"I", "INCORRECT", "0", "0.0", "FALSE"}


def outcome_of(scores: Any) -> Outcome:
    """The first scorer's value: C/1/True -> success, I/0/False -> failure, else unknown."""
    if not isinstance(scores, dict) or not scores:
        return Outcome.UNKNOWN
    first = next(iter(scores.values()))
    value = str(first.get("value") if isinstance(first, dict) else first).upper()
    if value in _CORRECT:
        return Outcome.SUCCESS
    if value in _INCORRECT:
        return Outcome.FAILURE
    return Outcome.UNKNOWN


def sample_to_trace(sample: dict[str, Any], spec: dict[str, Any], source_file: str) -> Trace:
    messages = sample.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("the sample has no `messages`")
    if sample.get("id") is None:
        raise ValueError("the sample has no `id`")
    run = spec.get("eval_id") or spec.get("run_id") or spec.get("task_id") or "run"
    sample_input = sample.get("input")
    task = first_user_text(sample_input) if isinstance(sample_input, list) else text_of(sample_input)
    target = sample.get("target")
    return with_id(
        Trace(
            trace_id="",
            source="inspect",
            native_id=f"{spec.get('task', 'task')}/{run}/{sample['id']}/{sample.get('epoch', 1)}",
            framework="Inspect",
            llm=spec.get("model"),
            benchmark=spec.get("task"),
            task=task or None,
            ground_truth=None
            if target is None
            else ("\n".join(target) if isinstance(target, list) else str(target)),
            outcome=outcome_of(sample.get("scores")),
            source_file=source_file,
            metadata={k: sample[k] for k in ("scores", "metadata", "model_usage", "error") if sample.get(k)},
            steps=message_steps(messages),
        )
    )


def _member(archive: zipfile.ZipFile, name: str, budget: list[int]) -> bytes:
    """A member's bytes, read in steps and stopped at the record limit, at MAX_RATIO times its
    compressed size or at the archive's remaining budget (the sizes a zip declares can lie);
    ValueError naming the limit, or what the zip library found broken."""
    info = archive.getinfo(name)
    limit = min(MAX_RECORD_BYTES.get(), budget[0], max(MAX_RATIO * info.compress_size, _READ))
    chunks, size = [], 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(min(_READ, limit + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    break
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
        raise ValueError(f"unreadable zip member: {exc}") from None
    finally:
        budget[0] -= size
    if size > limit:
        raise ValueError(
            f"expands past {limit:,} bytes ({info.compress_size:,} compressed; limits: the record "
            f"limit, {MAX_RATIO}x its compressed size, {MAX_EXPANDED:,} bytes per archive)"
        )
    return b"".join(chunks)


class InspectAdapter:
    name = "inspect"
    description = "Inspect AI eval logs: .eval zip (header.json + samples/*.json) or .json log"
    suffixes = (".eval", ".json")

    def sniff(self, path: Path, head: str) -> bool:
        if path.suffix == ".eval":
            return zipfile.is_zipfile(path)
        return bool(_LOG_START.match(head)) and '"eval"' in head

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        if path.suffix == ".eval":
            yield from self._parse_zip(path)
            return
        yield from parse_whole_object(path, lambda log: self._samples(log, str(path)))

    def _samples(self, log: dict[str, Any], source_file: str) -> list[Trace | Rejected]:
        if not isinstance(log.get("eval"), dict):
            raise ValueError("not an Inspect log (no `eval` object)")
        return [
            self._one(f"samples[{number}]", sample, log["eval"], source_file)
            for number, sample in enumerate(log.get("samples") or [])
        ]

    def _parse_zip(self, path: Path) -> Iterator[Trace | Rejected]:
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            yield Rejected("whole file", f"not a readable .eval zip: {exc}")
            return
        with archive:
            names = archive.namelist()
            header = next((n for n in ("header.json", "_journal/start.json") if n in names), None)
            if header is None:
                yield Rejected("whole file", "the .eval zip has no header.json")
                return
            if len(names) > MAX_MEMBERS:
                yield Rejected(
                    "whole file", f"the .eval zip has {len(names):,} members, over {MAX_MEMBERS:,}"
                )
                return
            budget = [MAX_EXPANDED]
            try:
                spec = loads(_member(archive, header, budget))["eval"]
            except (ValueError, KeyError, TypeError) as exc:
                yield Rejected(header, f"unreadable eval header: {exc}")
                return
            for name in sorted(n for n in names if n.startswith("samples/") and n.endswith(".json")):
                if budget[0] <= 0:
                    yield Rejected(
                        name, f"the archive expands past {MAX_EXPANDED:,} bytes; the rest is skipped"
                    )
                    return
                try:
                    sample = loads(_member(archive, name, budget))
                except ValueError as exc:
                    yield Rejected(name, reason(exc))
                    continue
                yield self._one(name, sample, spec, str(path))

    @staticmethod
    def _one(locator: str, sample: Any, spec: dict[str, Any], source_file: str) -> Trace | Rejected:
        try:
            if not isinstance(sample, dict):
                raise ValueError("the sample is not an object")
            return sample_to_trace(sample, spec, source_file)
        except (ValueError, TypeError) as exc:
            return Rejected(locator, reason(exc), excerpt(json.dumps(sample, default=str)))
