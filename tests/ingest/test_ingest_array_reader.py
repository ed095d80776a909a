"""The JSON array reader finds every record whatever the file's layout, cut by reads anywhere.

Records of a one-per-line or pretty-printed array are found by their layout and confirmed by
orjson; everything else by the string-aware scan. Both must give the records `json.loads` of
the whole file gives, with the same locators, and a bad record must cost only itself.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import pytest

import tracefail.ingest.reader as reader
from tracefail.ingest.reader import SourceError, iter_json_array
from tracefail.model import Trace

RECORDS = [
    {"a": "}\n{", "b": [1, {"c": "],\\"}], "d": None},
    [1, [2, {"e": "]"}]],
    {},
    [],
    "a string }",
    42,
    {"f": "é中" * 50, "g": {"h": {"i": [True, False]}}},
    {"j": "x" * 5000, "k": "\\" * 7 + '"'},
]


def _layouts(records: list) -> dict[str, str]:
    """The same array as writers lay it out: one record per line, pretty-printed at several
    indents, minified, minified with a closing newline, CRLF line ends."""
    per_line = "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n]\n"
    return {
        "per-line": per_line,
        "per-line-comma-first": "[" + "\n,".join(json.dumps(r) for r in records) + "]",
        "indent-0": json.dumps(records, indent=0),
        "indent-1": json.dumps(records, indent=1),
        "indent-4": json.dumps(records, indent=4, ensure_ascii=False),
        "tabs": json.dumps(records, indent="\t"),
        "minified": json.dumps(records),
        "minified-newline": json.dumps(records) + "\n",
        "crlf": json.dumps(records, indent=2).replace("\n", "\r\n"),
        "bom": "\ufeff" + json.dumps(records, indent=2),
    }


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("layout", sorted(_layouts(RECORDS)))
def test_every_layout_gives_the_records_json_loads_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, chunk: int
) -> None:
    path = tmp_path / "array.json"
    path.write_text(_layouts(RECORDS)[layout], encoding="utf-8")
    monkeypatch.setattr(reader, "CHUNK", chunk)
    raws = list(iter_json_array(path))
    assert [raw.json() for raw in raws] == RECORDS
    assert [raw.locator for raw in raws] == [f"record {n}" for n in range(len(RECORDS))]
    assert [json.loads(raw.text) for raw in raws] == RECORDS  # the text is each record's own


@pytest.mark.parametrize("seed", range(6))
def test_random_records_in_random_layouts_cut_at_random_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)

    def value(depth: int) -> object:
        kind = rng.randrange(6 if depth < 3 else 3)
        if kind == 0:
            return "".join(rng.choice('\\"{}[],\n x\té') for _ in range(rng.randrange(12)))
        if kind == 1:
            return rng.choice([0, -1.5, None, True, 10**20])
        if kind == 2:
            return ""
        if kind == 3:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {f'k{n}\\"': value(depth + 1) for n in range(rng.randrange(4))}

    records = [rng.choice([{"v": value(0)}, [value(1)]]) for _ in range(30)]
    for name, text in _layouts(records).items():
        path = tmp_path / f"{name}.json"
        path.write_text(text, encoding="utf-8")
        monkeypatch.setattr(reader, "CHUNK", rng.choice([1, 3, 50, 400, 1 << 16]))
        assert [raw.json() for raw in iter_json_array(path)] == records, name


@pytest.mark.parametrize("indent", [None, 2])
def test_a_malformed_record_costs_only_itself(tmp_path: Path, indent: int | None) -> None:
    """The layout points at the record's end but orjson refuses the slice: the scan finds the
    end, the record is handed over as text and only its own `json()` fails."""
    good = [{"n": n, "text": "line\nbreak \\ } ]"} for n in range(4)]
    lines = [json.dumps(r, indent=indent) for r in good]
    lines[2] = lines[2].replace('"n": 2', '"n": tru')
    path = tmp_path / "bad.json"
    path.write_text("[\n" + ",\n".join(lines) + "\n]")
    raws = list(iter_json_array(path))
    assert [raw.locator for raw in raws] == ["record 0", "record 1", "record 2", "record 3"]
    with pytest.raises(ValueError):
        raws[2].json()
    assert '"n": tru' in raws[2].text
    assert [raws[n].json() for n in (0, 1, 3)] == [good[0], good[1], good[3]]


def test_values_orjson_refuses_are_read_by_the_fallback(tmp_path: Path) -> None:
    """NaN (MAST's human file has it) and lone surrogates are not orjson's JSON; such a record
    still arrives, read by the standard parser as before."""
    path = tmp_path / "odd.json"
    path.write_text('[\n{"a": NaN},\n{"c": "\\ud800"},\n{"d": 1}\n]')
    assert [raw.json() for raw in iter_json_array(path)] == [{"a": None}, {"c": "\ud800"}, {"d": 1}]


@pytest.mark.parametrize("indent", [None, 2])
def test_integers_over_64_bits_stay_exact_whole_or_in_runs(tmp_path: Path, indent: int | None) -> None:
    """orjson reads 2**127 + 1 as the float 1.7e38 without a word (an OTel trace id as some tools
    dump it); a record with such a run of digits is parsed by the standard parser instead, and so
    is a whole document."""
    big = 2**127 + 1
    records = [{"trace_id": big + n, "tokens": 10**19 + n, "note": "x"} for n in range(3)]
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(records, indent=indent))
    for values in (True, False):  # parsed while scanning, or in a reader process from its bytes
        raws = list(iter_json_array(path, values=values))
        for parsed in (
            [raw.json() for raw in raws],
            [pickle.loads(pickle.dumps(raw)).json() for raw in raws],
        ):
            assert parsed == records and all(type(r["trace_id"]) is int for r in parsed)
    assert reader.loads(json.dumps(records)) == records
    assert reader.loads(json.dumps({"text": "call 12345678901234567890123 now", "n": 1.5})) == {
        "text": "call 12345678901234567890123 now",
        "n": 1.5,
    }  # digits inside a string only cost the slower parser


def test_a_non_utf8_record_in_a_per_line_array_names_its_true_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin.json"
    head = b'[\n{"n": 0},\n{"n": 1, "t": "caf'
    path.write_bytes(head + b'\xe9"},\n{"n": 2}\n]')
    seen = []
    with pytest.raises(SourceError) as failure:
        for raw in iter_json_array(path):
            seen.append(raw.json())
    assert seen == [{"n": 0}]
    assert failure.value.record == "record 1"
    assert str(failure.value).startswith(f"not UTF-8 text at byte {len(head)} ")


def test_a_record_larger_than_the_window_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [{"n": n, "t": 'y\\"' * (n * 300)} for n in range(8)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(records, indent=1))
    monkeypatch.setattr(reader, "CHUNK", 1000)
    assert [raw.json() for raw in iter_json_array(path)] == records


@pytest.mark.parametrize("layout", ["per-line", "indent-1", "indent-4", "tabs", "crlf"])
def test_per_line_and_pretty_printed_records_need_no_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    """What keeps a 50 MB MAST array fast: its records are found by their layout alone (the
    masked scan copies the window twice). Scalars have no layout; objects and arrays do."""
    records = [r for r in RECORDS if isinstance(r, dict | list)]
    path = tmp_path / "array.json"
    path.write_text(_layouts(records)[layout], encoding="utf-8")

    def no_scan(buf: bytes) -> bytes:
        raise AssertionError("the masked scan ran")

    monkeypatch.setattr(reader, "_masked", no_scan)
    assert [raw.json() for raw in iter_json_array(path)] == records


def test_a_record_sent_to_a_reader_process_travels_as_its_bytes(tmp_path: Path) -> None:
    """Worker processes get runs of records pickled: each arrives whole (locator, text, value)
    whether it was cut out with its parsed value, without one, or by the fallback scan."""
    import pickle

    path = tmp_path / "array.json"
    path.write_text('[\n{"a": "é\\n"},\n{"b": NaN},\n[1, 2]\n]', encoding="utf-8")
    for values in (True, False):
        raws = list(iter_json_array(path, values=values))
        sent = pickle.loads(pickle.dumps(raws))
        assert [(r.locator, r.text, r.json()) for r in sent] == [(r.locator, r.text, r.json()) for r in raws]
        assert [r.json() for r in sent] == [{"a": "é\n"}, {"b": None}, [1, 2]]
        assert [r.size for r in sent] == [len(r.text.encode()) for r in raws]


def test_a_whowhen_array_with_a_leading_newline_is_read_record_by_record(tmp_path: Path) -> None:
    """The Who&When adapter picks array or whole-object reading from the first non-blank
    character (it took the file's first byte, so a newline before `[` made one bad record)."""
    from tracefail.ingest.whowhen import WhoWhenAdapter

    samples = Path(__file__).resolve().parents[2] / "data_samples" / "whowhen"
    records = [json.loads((samples / f"{n}.json").read_text()) for n in (1, 9)]
    path = tmp_path / "both.json"
    path.write_text("\n " + json.dumps(records, indent=2))
    traces = list(WhoWhenAdapter().parse(path))
    assert all(isinstance(t, Trace) for t in traces), traces
    assert [t.native_id.split("/")[1] for t in traces if isinstance(t, Trace) and t.native_id] == [
        str(r["question_ID"]) for r in records
    ]


@pytest.mark.parametrize("tail", ["\n", "\n\n"])
def test_a_wrong_layout_guess_is_not_retried_for_every_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tail: str
) -> None:
    """A minified array of arrays whose only newline ends the file: every record's line-end
    guess is the rest of the file, which orjson would check whole each time (quadratic). After
    one failed guess the window is scanned instead, so orjson reads about the file twice."""
    records = [[n, "x" * 50] for n in range(2000)]
    path = tmp_path / "lists.json"
    path.write_text(json.dumps(records) + tail)
    read: list[int] = []
    real = reader.orjson.loads

    class Counting:
        JSONDecodeError = reader.orjson.JSONDecodeError

        @staticmethod
        def loads(data: bytes | memoryview | str) -> object:
            read.append(len(data))
            return real(data)

    monkeypatch.setattr(reader, "orjson", Counting)
    assert [raw.json() for raw in iter_json_array(path)] == records
    assert sum(read) < 3 * path.stat().st_size
