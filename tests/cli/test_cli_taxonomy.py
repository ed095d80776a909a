"""`tracefail taxonomy` lists every mode of the shipped and of a user's taxonomy file."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tracefail.cli import app
from tracefail.taxonomy import find

runner = CliRunner()


def test_lists_the_14_mast_modes_with_names_and_categories():
    result = runner.invoke(app, ["taxonomy"])
    assert result.exit_code == 0, result.output
    for mode in find("mast-v1").taxonomy.modes:
        assert f"{mode.id} │ {mode.name}" in result.stdout
    assert "FC3 = Task verification" in result.stdout
    doc = json.loads(runner.invoke(app, ["taxonomy", "--json"]).stdout)
    assert len(doc["modes"]) == 14 and doc["modes"][0]["positive_example"]


def test_a_user_file_and_an_unknown_name():
    path = find("mast-v1").path
    assert runner.invoke(app, ["taxonomy", "--taxonomy", str(path)]).exit_code == 0
    bad = runner.invoke(app, ["taxonomy", "--taxonomy", "nope"])
    assert bad.exit_code == 2 and "nope: no such taxonomy" in bad.stderr
