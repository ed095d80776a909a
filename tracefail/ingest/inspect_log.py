"""Inspect AI eval logs: `.eval` (zip of header.json + samples/*.json) or one `.json` log.

Each sample x epoch is a trace: its `messages` map like any chat (timed by the sample's `events`);
the score decides the outcome.
The `.eval` zip is read one sample member at a time, so memory is bounded by one sample.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest import archive as zipped
from tracefail.ingest import fidelity
from tracefail.ingest.base import Rejected, excerpt, parse_time, reason, text_of, with_id
from tracefail.ingest.chat import first_user_text, message_steps
from tracefail.ingest.reader import loads, parse_whole_object
from tracefail.model import Outcome, Step, Trace

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
    attachments = sample.get("attachments")
    if isinstance(attachments, dict) and attachments:  # deduplicated text: "attachment://<hash>"
        sample = _resolved(sample, attachments)
        messages = sample["messages"]
    run = spec.get("eval_id") or spec.get("run_id") or spec.get("task_id") or "run"
    sample_input = sample.get("input")
    task = first_user_text(sample_input) if isinstance(sample_input, list) else text_of(sample_input)
    target = sample.get("target")
    steps = message_steps(messages)
    _time(steps, messages, sample.get("events"))
    kept = ("scores", "metadata", "model_usage", "error")
    stored = fidelity.Stored.of_steps(steps, task, target, *(sample.get(k) for k in kept))
    unread = stored.unread({k: v for k, v in sample.items() if k not in (*kept, "messages", "attachments")})
    header = stored.unread(spec)  # the eval's task arguments, solver plan, system messages
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
            metadata={k: sample[k] for k in kept if sample.get(k)}
            | ({"sample": unread} if unread else {})
            | ({"eval": header} if header else {}),
            steps=steps,
        )
    )


def _time(steps: list[Step], messages: list[Any], events: Any) -> None:
    """Inspect messages carry no time; the sample's transcript does: a `model` event's output
    message has the assistant message's `id`, a `tool` event the `id` of the call a tool message
    answers. Such steps take the event's `timestamp` and `completed`. Logs written before
    messages had ids (2024) are matched by the output message's text instead, each model event
    once and in order."""
    times: dict[str, tuple[Any, Any]] = {}
    said_times: dict[str, list[tuple[Any, Any]]] = {}  # output text -> its events' times, in order
    for event in events if isinstance(events, list) else ():
        if not isinstance(event, dict):
            continue
        when = (event.get("timestamp"), event.get("completed"))
        if event.get("event") == "tool" and event.get("id"):
            times[f"tool:{event['id']}"] = when
        output = event.get("output") if event.get("event") == "model" else None
        for choice in output.get("choices") or () if isinstance(output, dict) else ():
            said = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(said, dict) and said.get("id"):
                times[str(said["id"])] = when
            elif isinstance(said, dict):
                said_times.setdefault(text_of(said.get("content")), []).append(when)
    for step, message in zip(steps, messages, strict=True):
        key = f"tool:{message.get('tool_call_id')}" if message.get("role") == "tool" else message.get("id")
        if key in times:
            step.start_ts, step.end_ts = (parse_time(t) for t in times[key])
        elif key is None and message.get("role") == "assistant" and said_times.get(step.content):
            step.start_ts, step.end_ts = (parse_time(t) for t in said_times[step.content].pop(0))


def _resolved(value: Any, attachments: dict[str, Any]) -> Any:
    """`value` with each "attachment://<hash>" string replaced by the text it stands for."""
    if isinstance(value, str):
        if value.startswith(_ATTACHMENT):
            found = attachments.get(value[len(_ATTACHMENT) :])
            return found if isinstance(found, str) else value
        return value
    if isinstance(value, dict):
        return {k: _resolved(v, attachments) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, attachments) for v in value]
    return value


_ATTACHMENT = "attachment://"


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
            if len(names) > zipped.MAX_MEMBERS:
                yield Rejected(
                    "whole file", f"the .eval zip has {len(names):,} members, over {zipped.MAX_MEMBERS:,}"
                )
                return
            budget = [zipped.MAX_EXPANDED]
            try:
                spec = loads(zipped.member(archive, header, budget))["eval"]
            except (ValueError, KeyError, TypeError) as exc:
                yield Rejected(header, f"unreadable eval header: {exc}")
                return
            for name in sorted(n for n in names if n.startswith("samples/") and n.endswith(".json")):
                if budget[0] <= 0:
                    yield Rejected(
                        name, f"the archive expands past {zipped.MAX_EXPANDED:,} bytes; the rest is skipped"
                    )
                    return
                try:
                    sample = loads(zipped.member(archive, name, budget))
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
