"""A hostile taxonomy file is refused quickly, in one short line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tracefail.taxonomy import TaxonomyError, load_file


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append(f"modes: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_it_is_built(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(9))  # 9^9 = 387M values from a few hundred bytes
    started = time.monotonic()
    with pytest.raises(TaxonomyError, match="YAML aliases are expanded") as failure:
        load_file(path)
    assert time.monotonic() - started < 5 and len(str(failure.value)) < 400


def test_a_smaller_bomb_gives_a_short_error_line(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(
        _bomb(4).replace("modes: *a3", "id: x\nversion: '1'\nname: n\ncategories: *a3\nmodes: *a3")
    )  # 6,561 values: built, but invalid
    with pytest.raises(TaxonomyError) as failure:
        load_file(path)
    assert len(str(failure.value)) < 600 and "\n" not in str(failure.value)


def test_an_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("# " + "x" * (2 * 1024 * 1024) + "\n")
    with pytest.raises(TaxonomyError, match="a taxonomy file is at most 1,048,576"):
        load_file(path)


BIG = "x" * 1_000_000  # a 1 MB bad value; the file stays under the 1 MiB file limit


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("id", BIG + "!", "bad_value.yaml: id: "),  # fails the id pattern: the schema message quotes it
        ("version", [BIG], "bad_value.yaml: version: "),  # wrong type: the message quotes the list
        ("category", BIG, "bad_value.yaml: modes/0: category "),  # not among categories: a cross-check
    ],
    ids=["id-pattern", "version-type", "category-cross-check"],
)
def test_a_megabyte_bad_value_gives_one_short_line_naming_file_and_field(
    tmp_path: Path, field: str, value: object, where: str
) -> None:
    import yaml

    mode = {"id": "1.1", "name": "n", "category": "FC1", "definition": "ten or more characters"}
    document = {"id": "t", "version": "1", "name": "n", "categories": {"FC1": "design"}, "modes": [mode]}
    if field == "category":
        mode["category"] = value
    else:
        document[field] = value
    path = tmp_path / "bad_value.yaml"
    path.write_text(yaml.safe_dump(document, width=10**7))
    with pytest.raises(TaxonomyError) as failure:
        load_file(path)
    line = str(failure.value)
    assert where in line and "\n" not in line and len(line) <= 503
    if field == "category":
        assert line.endswith("' is not in categories")  # the verdict survives the cut
