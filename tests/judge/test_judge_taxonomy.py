"""Taxonomy files: the shipped MAST file, validation errors on user files, legacy remapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tracefail.taxonomy import TaxonomyError, find, load_file, register, taxonomy_dir

ROOT = Path(__file__).resolve().parents[2]
HUMAN_SAMPLE = ROOT / "data_samples" / "mast" / "mad_human_sample.json"
ROUNDS = {"Round 1": "round1-18", "Round 2": "round2-17", "Round 3": "round3-17", "Generlazability": "v1"}


def test_mast_v1_has_14_modes_in_3_categories():
    loaded = find("mast-v1")
    tax = loaded.taxonomy
    assert loaded.path == taxonomy_dir() / "mast-v1.yaml"
    assert [m.id for m in tax.modes] == [
        "1.1",
        "1.2",
        "1.3",
        "1.4",
        "1.5",
        "2.1",
        "2.2",
        "2.3",
        "2.4",
        "2.5",
        "2.6",
        "3.1",
        "3.2",
        "3.3",
    ]
    assert set(tax.categories) == {"FC1", "FC2", "FC3"}
    for mode in tax.modes:
        assert mode.positive_example and mode.negative_example and mode.stage in {"pre", "exec", "post"}
    # 3.2 is about the check being absent, 3.3 about a check that happened but was wrong
    assert "omitted" in tax.mode("3.2").definition and "3.3" in tax.mode("3.2").definition
    assert "check is done" in tax.mode("3.3").definition and "3.2" in tax.mode("3.3").definition


def test_find_by_id_version_and_path(tmp_path):
    assert find("mast").taxonomy.version == "1.0"
    assert find("mast@1.0").taxonomy.id == "mast"
    assert find(str(taxonomy_dir() / "mast-v1.yaml")).taxonomy.id == "mast"
    with pytest.raises(TaxonomyError, match="no such taxonomy"):
        find("nope")


def _user_file(tmp_path: Path, data: dict, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


GOOD = {
    "id": "mine",
    "version": "0.1",
    "name": "My taxonomy",
    "categories": {"A": "Alpha"},
    "modes": [
        {"id": "A1", "name": "Tool misuse", "category": "A", "definition": "Calls a tool with bad args."}
    ],
}


def test_user_taxonomy_loads_and_is_registered(tmp_path, db):
    loaded = load_file(_user_file(tmp_path, GOOD))
    assert loaded.taxonomy.mode("A1").name == "Tool misuse"
    register(db, loaded)
    register(db, loaded)  # idempotent
    rows = db.rows("SELECT taxonomy_id, version, definition FROM taxonomies")
    assert len(rows) == 1 and rows[0][:2] == ("mine", "0.1")
    assert json.loads(rows[0][2])["modes"][0]["id"] == "A1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["modes"][0].pop("definition"), r"modes/0: 'definition' is a required property"),
        (lambda d: d["modes"][0].update(category="B"), r"modes/0: category 'B' is not in categories"),
        (lambda d: d["modes"].append(dict(d["modes"][0])), r"duplicate mode id\(s\) A1"),
        (lambda d: d["modes"][0].update(stage="during"), r"modes/0/stage: 'during' is not one of"),
        (lambda d: d.update(legacy={"old": {"9": {"maps_to": "Z9"}}}), r"legacy/old/9: maps_to 'Z9'"),
        (lambda d: d.update(colour="red"), r"\(top level\): Additional properties"),
    ],
)
def test_invalid_user_taxonomy_gives_one_clear_line(tmp_path, change, message):
    data = json.loads(json.dumps(GOOD))
    change(data)
    path = _user_file(tmp_path, data)
    with pytest.raises(TaxonomyError, match=message) as info:
        load_file(path)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text


def test_broken_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match=r"bad.yaml: not valid YAML"):
        load_file(path)


def test_legacy_codes_map_by_meaning():
    mast = find("mast-v1")
    assert mast.remap("round1-18", "4.2", "Lack of result verification") == ("3.2", "mapped")
    assert mast.remap("round1-18", "4.3")[0] == "3.3"
    assert mast.remap("round2-17", "3.3")[0] == "3.2"  # result verification = checking omitted
    assert mast.remap("round3-17", "1.5")[0] == "1.3"
    assert mast.remap("v1", "3.2", "No or Incomplete Verification")[0] == "3.3"  # its text is 3.3's
    assert mast.remap("round2-17", "1.4")[0] is None  # unbatched repetitive execution: dropped
    assert mast.remap("1.0", "2.6")[0] == "2.6"
    mapped, why = mast.remap("round1-18", "1.2", "Step repetition")
    assert mapped is None and "does not match" in why
    assert mast.remap("round9", "1.1")[0] is None


def test_every_code_in_the_real_human_file_is_covered():
    """Each round's codes and title lines in the shipped MAST human sample resolve in the mapping."""
    mast = find("mast-v1")
    targets = {}
    for record in json.loads(HUMAN_SAMPLE.read_text(encoding="utf-8")):
        version = ROUNDS[record["round"]]
        for annotation in record["annotations"]:
            head = annotation["failure mode"].splitlines()[0].strip()
            code, _, title = head.partition(" ")
            mapped, why = mast.remap(version, code, title)
            assert "does not match" not in why and "has no code" not in why, (version, head, why)
            targets.setdefault(version, set()).add(mapped)
    assert targets["v1"] == {m.id for m in mast.taxonomy.modes}
    assert len(targets["round1-18"] - {None}) == 14 and len(targets["round2-17"] - {None}) == 14
