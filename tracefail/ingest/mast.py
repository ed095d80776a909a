"""MAST-Data (HF `mcemri/MAST-Data`): the LLM-labelled full file and the human-labelled file.

Both are one JSON array, read record by record (the full file is ~200 MB with trajectories up
to 2M characters). Trajectories are raw framework logs: `logsplit` cuts them into steps and
the raw text is kept in Trace.raw. Labels are stored as given, never remapped: the human file
mixes three taxonomy rounds whose codes were renumbered, so each label keeps its round.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, excerpt, reason, with_id
from tracefail.ingest.logsplit import CHATDEV_NOISE, split_trajectory
from tracefail.ingest.reader import RawRecord, first_char, iter_json_array
from tracefail.model import Label, Trace

TAXONOMY = "mast"
_MODE_CODE = re.compile(r"^\s*(\d+\.\d+)")
# Round names in MAD_human_labelled_dataset.json -> the taxonomy version its codes belong to.
ROUND_VERSIONS = {"round 1": "round1-18", "round 2": "round2-17", "round 3": "round3-17"}
FINAL_ROUND = "v1"  # the 14-mode "Generlazability" (sic) round uses the final codes


def _mapped(
    path: Path, records: Iterable[RawRecord], to_trace: Callable[[dict[str, Any], str], Trace]
) -> Iterator[Trace | Rejected]:
    for raw in records:
        try:
            record = raw.json()
        except ValueError as exc:
            yield Rejected(raw.locator, f"not valid JSON: {exc}", excerpt(raw.text))
            continue
        try:
            if not isinstance(record, dict):
                raise ValueError("record is not an object")
            yield to_trace(record, str(path))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            yield Rejected(raw.locator, reason(exc), excerpt(str(record)))


def _materialized(items: Iterable[Trace | Rejected]) -> Iterator[Trace | Rejected]:
    """The traces with Step objects, for callers other than the ingest."""
    for item in items:
        yield item.materialized() if isinstance(item, Trace) else item


def _trace(source: str, native: str, record: dict[str, Any], trajectory: Any, source_file: str) -> Trace:
    if not isinstance(trajectory, str) or not trajectory.strip():
        raise ValueError("the trajectory is missing or not text")
    framework = record.get("mas_name")
    split = split_trajectory(trajectory, framework)
    trace = Trace(
        trace_id="",
        source=source,
        native_id=native,
        framework=framework,
        llm=record.get("llm_name"),
        benchmark=record.get("benchmark_name"),
        task=split.task,
        outcome=split.outcome,
        source_file=source_file,
        raw=trajectory,
        metadata={"split": split.style, **split.metadata, **_noise(split.style, trajectory)},
    )
    return trace.with_columns(split.columns)


def full_record_to_trace(record: dict[str, Any], source_file: str) -> Trace:
    trace_obj = record.get("trace")
    if not isinstance(trace_obj, dict) or "trajectory" not in trace_obj:
        raise ValueError("no `trace.trajectory` (not a MAST-Data full-file record)")
    key, number = trace_obj.get("key"), record.get("trace_id", trace_obj.get("index"))
    if key is None or number is None:
        raise ValueError("no `trace.key`/`trace_id`: the record has no unique id")
    trace = with_id(_trace("mast", f"{key}/{number}", record, trace_obj["trajectory"], source_file))
    trace.metadata["trace_key"] = key
    annotation = record.get("mast_annotation")
    if annotation is not None and not isinstance(annotation, dict):
        raise ValueError("`mast_annotation` is not an object of mode -> 0/1")
    for mode, value in (annotation or {}).items():
        if value not in (0, 1, None, True, False):
            raise ValueError(f"mast_annotation[{mode!r}] is {value!r}, expected 0, 1 or null")
        trace.labels.append(
            Label(
                trace_id=trace.trace_id,
                taxonomy_id=TAXONOMY,
                taxonomy_version="v1",
                mode_id=str(mode),
                present=None if value is None else bool(value),
                source="dataset:mast",
            )
        )
    return trace


def _noise(style: str, trajectory: str) -> dict[str, Any]:
    """ChatDev's noise line, which its split drops from the steps: its text and count, so that
    what the log said stays readable."""
    count = trajectory.count(CHATDEV_NOISE) if style == "chatdev-log" else 0
    return {"noise": CHATDEV_NOISE, "noise_lines": count} if count else {}


def human_record_to_trace(record: dict[str, Any], source_file: str) -> Trace:
    round_name = str(record.get("round") or "")
    version = ROUND_VERSIONS.get(round_name.strip().lower(), FINAL_ROUND)
    if record.get("trace_id") is None:
        raise ValueError("no `trace_id`")
    trace = with_id(_trace("mast-human", str(record["trace_id"]), record, record.get("trace"), source_file))
    trace.metadata["round"] = round_name
    annotations = record.get("annotations")
    if not isinstance(annotations, list):
        raise ValueError("no `annotations` list")
    for number, annotation in enumerate(annotations):
        text = str(annotation.get("failure mode") or "") if isinstance(annotation, dict) else ""
        code = _MODE_CODE.match(text)
        if not code:
            raise ValueError(f"annotations[{number}] has no mode code at the start of `failure mode`")
        if "\n" in text.strip():  # the mode's definition and notes under its name: kept once
            trace.metadata.setdefault("mode_texts", {})[code.group(1)] = text.strip()
        for key in sorted(k for k in annotation if k.startswith("annotator_")):
            value = annotation[key]
            trace.labels.append(
                Label(
                    trace_id=trace.trace_id,
                    taxonomy_id=TAXONOMY,
                    taxonomy_version=version,
                    mode_id=code.group(1),
                    present=value if isinstance(value, bool) else None,
                    source=f"human:{key}",
                    metadata={"round": round_name, "mode_name": text.strip().splitlines()[0].strip()},
                )
            )
    return trace


class MastFullAdapter:
    name = "mast"
    description = "MAST-Data MAD_full_dataset.json (LLM-labelled, 14 modes), streamed record by record"
    suffixes = (".json",)

    def sniff(self, path: Path, head: str) -> bool:
        return (
            first_char(head) == "["
            and '"mas_name"' in head
            and ('"llm_name"' in head or '"mast_annotation"' in head)
        )

    def records(self, path: Path, parsed: bool = False) -> Iterator[RawRecord]:
        return iter_json_array(path, values=parsed)

    def columns_from_records(self, path: Path, records: Iterable[RawRecord]) -> Iterator[Trace | Rejected]:
        return _mapped(path, records, full_record_to_trace)

    def parse_columns(self, path: Path) -> Iterator[Trace | Rejected]:
        return self.columns_from_records(path, iter_json_array(path))

    def from_records(self, path: Path, records: Iterable[RawRecord]) -> Iterator[Trace | Rejected]:
        return _materialized(self.columns_from_records(path, records))

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        return self.from_records(path, iter_json_array(path))


class MastHumanAdapter:
    name = "mast-human"
    description = "MAST-Data MAD_human_labelled_dataset.json (annotator_1..3 per mode, per taxonomy round)"
    suffixes = (".json",)

    def sniff(self, path: Path, head: str) -> bool:
        return first_char(head) == "[" and '"mas_name"' in head and '"round"' in head

    def records(self, path: Path, parsed: bool = False) -> Iterator[RawRecord]:
        return iter_json_array(path, values=parsed)

    def columns_from_records(self, path: Path, records: Iterable[RawRecord]) -> Iterator[Trace | Rejected]:
        return _mapped(path, records, human_record_to_trace)

    def parse_columns(self, path: Path) -> Iterator[Trace | Rejected]:
        return self.columns_from_records(path, iter_json_array(path))

    def from_records(self, path: Path, records: Iterable[RawRecord]) -> Iterator[Trace | Rejected]:
        return _materialized(self.columns_from_records(path, records))

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        return self.from_records(path, iter_json_array(path))
