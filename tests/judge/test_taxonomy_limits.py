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
    path.write_text(_bomb(4).replace("modes: *a3", "id: x\nversion: '1'\nname: n\ncategories: *a3\n"
                                     "modes: *a3"))  # 6,561 values: built, but invalid
    with pytest.raises(TaxonomyError) as failure:
        load_file(path)
    assert len(str(failure.value)) < 600 and "\n" not in str(failure.value)


def test_an_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("# " + "x" * (2 * 1024 * 1024) + "\n")
    with pytest.raises(TaxonomyError, match="a taxonomy file is at most 1,048,576"):
        load_file(path)
