"""Judge and ranker failures are counted, numbers from outside are checked (issue 24, case 5:
`label` said "judged 0, 0 errors" and exit 0 when a judge raised something unexpected; 1e25
tokens left the run "running" after a DuckDB traceback; NaN coefficients gave probability 1.0)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from judge_server import StubServer, completion, valid_answer
from typer.testing import CliRunner

from tracefail.analysis.ranker import LinearRanker
from tracefail.analysis.step_features import FEATURES
from tracefail.cli import app
from tracefail.judge.ranker import RankerJudge
from tracefail.services.label import JudgeSpec, label
from tracefail.taxonomy import find

MODES = [mode.id for mode in find("mast-v1").taxonomy.modes]
EXIT_PARTIAL = 3


def _ranker(path: Path, **change: object) -> Path:
    n = len(FEATURES)
    model = LinearRanker(FEATURES, (0.0,) * n, (0.0,) * n, (1.0,) * n, (0.1,) * n, 0.0)
    data = json.loads(model.to_json())
    data.update(change)
    path.write_text(json.dumps(data))  # NaN is written as the NaN token, as a hostile file would
    return path


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"coef": [0.1, 0.2]}, "coef has 2 values"),
        ({"coef": [math.nan] * len(FEATURES)}, "coef holds a value that is not a finite number"),
        ({"scale": [0.0] * len(FEATURES)}, "a scale of 0"),
        ({"temperature": -1.0}, "temperature must be positive"),
    ],
)
def test_a_bad_ranker_file_is_refused_before_judging(tmp_path: Path, change: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        RankerJudge(_ranker(tmp_path / "ranker.json", **change))


def test_an_unexpected_judge_exception_is_an_error_of_its_trace(
    whowhen_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self, trace):
        raise IndexError("index 3 is out of bounds for axis 0 with size 2")

    monkeypatch.setattr(RankerJudge, "ranking", broken)
    path = _ranker(tmp_path / "ranker.json")
    report = label(whowhen_db, judge=JudgeSpec(spec=f"ranker:{path}"), tasks="attribution", limit=3)
    assert (report.judged, len(report.errors)) == (0, 3)
    assert report.errors[0][1].startswith("IndexError: index 3 is out of bounds")
    (status, n_errors) = whowhen_db.rows(
        "SELECT status, n_errors FROM runs WHERE run_id = ?", [report.run_id]
    )[0]
    assert (status, n_errors) == ("done", 3)
    whowhen_db.close()
    result = CliRunner().invoke(
        app,
        [
            "label",
            "--db",
            whowhen_db.path,
            "--judge",
            f"ranker:{path}",
            "--limit",
            "2",
            "--task",
            "attribution",
        ],
    )
    assert result.exit_code == EXIT_PARTIAL, result.output


@pytest.mark.parametrize("tokens", ["1e999", "1e25", "-5", "2.5", '"many"'])
def test_usage_counts_from_a_reply_are_checked(whowhen_db, tokens: str) -> None:
    def reply(body, number, headers):
        text = json.dumps(completion(valid_answer(body, MODES)))
        return 200, text.replace('"prompt_tokens": 100', f'"prompt_tokens": {tokens}'), {}

    with StubServer(reply) as server:
        report = label(whowhen_db, judge=JudgeSpec(spec="openai:stub", base_url=server.base_url), limit=2)
    assert (report.judged, len(report.errors)) == (0, 2)
    assert "usage.prompt_tokens" in report.errors[0][1]
    run = whowhen_db.rows("SELECT status, n_errors, tokens_in FROM runs WHERE run_id = ?", [report.run_id])
    assert run[0][0] == "done" and run[0][1] == 2 and run[0][2] < 10**9
