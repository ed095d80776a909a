"""The HTML report is one self-contained file with every chart, and trace text cannot inject HTML."""

from __future__ import annotations

import base64
import re

import pytest
from typer.testing import CliRunner

from tracefail.cli import app
from tracefail.model import Attribution, Label, Step, Trace
from tracefail.services.stats import report
from tracefail.store import Database
from tracefail.store.traces import add_traces, insert_labels

runner = CliRunner()
EVIL = "<script>alert(1)</script><img src=https://evil.example/x.png> $unbalanced \\frac"
CHARTS = (
    "prevalence-by-framework",
    "cooccurrence",
    "failure-position",
    "agent-blame",
    "agreement",
    "features",
)


def add_hostile_trace(db: Database) -> None:
    trace = Trace(
        trace_id="evil:1",
        source="evil",
        framework=EVIL,
        llm=EVIL,
        steps=[Step(step_idx=0, agent=EVIL, content=EVIL), Step(step_idx=1, agent="b", content="x")],
        attributions=[Attribution(trace_id="evil:1", agent=EVIL, step_idx=0, source="dataset:d")],
    )
    add_traces(db, [trace], None)
    with db.transaction():
        insert_labels(
            db,
            [
                Label(
                    trace_id="evil:1",
                    taxonomy_id="mast",
                    taxonomy_version="1.0",
                    mode_id="1.1",
                    present=True,
                    evidence_steps=[0],
                    agent=EVIL,
                    source="llm-judge:j",
                )
            ],
        )


def test_report_is_self_contained_with_all_charts(labelled_db: Database, tmp_path):
    add_hostile_trace(labelled_db)
    path = tmp_path / "report.html"
    assert report(labelled_db, path) == [path]
    text = path.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert not re.search(
        r"""(src|href)\s*=\s*['"]?(https?:)?//""", text, re.I
    )  # nothing fetched from a network
    assert "evil.example" not in text  # trace text never reaches the page unescaped or as a resource
    for slug in CHARTS:
        assert f"id='{slug}'" in text
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) == len(CHARTS) - text.count("<p class=warn>n too small")  # small-n panels: no plot
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "<style>" in text and "Disobey task specification" in text


def test_report_table_escapes_text(labelled_db: Database, tmp_path):
    from tracefail.analysis.report import html_report
    from tracefail.analysis.stats import compute
    from tracefail.taxonomy import find

    result = compute(labelled_db, find("mast-v1"))
    modes = result.sections["modes"]
    result.sections["modes"] = modes.with_columns(modes["name"].str.replace("^.*$", EVIL))
    page = html_report(result, [], {"traces": 1}, "now")
    assert "&lt;script&gt;" in page and "<script>" not in page


@pytest.mark.slow
def test_report_png_and_cli(labelled_db: Database, tmp_path):
    labelled_db.close()
    folder = tmp_path / "charts"
    result = runner.invoke(app, ["report", "--db", labelled_db.path, "--format", "png", "-o", str(folder)])
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in folder.iterdir()) == sorted(CHARTS)
    html = runner.invoke(app, ["report", "--db", labelled_db.path, "-o", str(tmp_path / "r.html")])
    assert html.exit_code == 0 and (tmp_path / "r.html").stat().st_size > 10_000
    bad = runner.invoke(app, ["report", "--db", labelled_db.path, "--format", "pdf"])
    assert bad.exit_code == 2 and "--format pdf" in bad.output


def test_report_states_policy_sources_and_small_samples(labelled_db: Database, tmp_path):
    path = tmp_path / "report.html"
    report(labelled_db, path)
    text = path.read_text(encoding="utf-8")
    assert "label policy trusted" in text and "sources human:h, llm-judge:j" in text
    assert "not validated: llm-judge:j" in text  # its kappa interval vs the human labels crosses 0
    assert "<section id='sources'>" in text
    # 1.1 and 1.3 have n = 5, 3.2 has n = 4: only 3.2 is grey; every row has a whisker
    rows = dict((m, grey) for grey, m in re.findall(r"<tr( class=small)?><td class=l>(\d\.\d)<", text))
    assert rows == {"1.1": "", "1.3": "", "3.2": " class=small"}
    assert text.count("class=w style=") == len(rows)


def test_kappa_is_never_good_on_small_or_uncertain_tables():
    from tracefail.analysis.report import GREY, kappa_mark

    assert kappa_mark(3, 0, 0, 3)[3] == GREY  # kappa 1 but n = 6
    assert kappa_mark(1, 0, 0, 0)[3:] == (GREY, "one class")
    assert kappa_mark(3, 4, 4, 3)[3] == GREY  # n = 14 but the interval crosses 0
    assert kappa_mark(40, 2, 3, 50)[3] == "#54a24b"


def _section(text: str, slug: str) -> str:
    return re.search(rf"<section id='{slug}'>(.*?)</section>", text, re.S).group(1)  # type: ignore[union-attr]


def test_panels_with_too_small_n_say_so_instead_of_a_plot(labelled_db: Database, tmp_path):
    """5 traces labelled by both the judge and the human: kappa (needs 10) and phi (needs 20 per
    pair) panels are marked "n too small" with the n they had, and carry no image."""
    path = tmp_path / "report.html"
    report(labelled_db, path)
    text = path.read_text(encoding="utf-8")
    for slug, need in (("agreement", "needs 10"), ("cooccurrence", "needs 20")):
        section = _section(text, slug)
        assert "n too small" in section and need in section and "<img" not in section
    assert "<img" in _section(text, "failure-position")


def test_histogram_bins_follow_n():
    import numpy as np

    from tracefail.analysis.report import hist_bins

    rng = np.random.default_rng(0)
    assert hist_bins(rng.normal(size=10)) <= 4  # 10 steps: a handful of bins, not 30
    assert hist_bins(np.array([1.0, 2.0, 3.0] * 40)) <= 3  # never more bins than distinct values
    assert hist_bins(np.array([7.0] * 9)) == 1
    assert 10 <= hist_bins(rng.normal(size=5000)) <= 50


def test_feature_histograms_state_their_bins_and_n(labelled_db: Database, tmp_path):
    from tracefail.store.features import replace_features

    lengths = labelled_db.rows("SELECT trace_id, n_steps FROM traces ORDER BY trace_id")
    for trace, n in lengths:  # three distinct values: never more than three bins
        replace_features(
            labelled_db, trace, "tiny", "v1", [(i, "tok.entropy_mean", float(i % 3)) for i in range(n)], None
        )
    path = tmp_path / "report.html"
    report(labelled_db, path)
    section = _section(path.read_text(encoding="utf-8"), "features")
    note = section.split("<img")[0]
    found = re.search(r"tok\.entropy_mean: (\d+) bins over n=(\d+)", note)
    assert found, note
    bins, n = int(found[1]), int(found[2])
    assert 1 < bins <= 3 and 10 < n <= sum(n for _, n in lengths)  # was 30 bins whatever the n
    assert "<img" in section


def test_a_heatmap_with_no_cell_to_colour_says_why() -> None:
    """Every framework under 5 labelled traces (the demo: n <= 3): no all-grey grid, the n instead."""
    import polars as pl

    from tracefail.analysis.report import _prevalence_too_small

    few = pl.DataFrame({"group": ["AG2", "MetaGPT"], "mode_id": ["1.1", "1.1"], "labelled": [3, 2]})
    said = _prevalence_too_small(few)
    assert said is not None and "2 frameworks" in said and "at most 3 labelled" in said and "n = 5" in said
    assert _prevalence_too_small(few.with_columns(labelled=pl.Series([5, 2]))) is None


@pytest.mark.parametrize(
    ("first", "years"), [("2025-01-01", None), ("2024-12-31", None), ("2016-03-01", "9.8 years")]
)
def test_the_days_chart_says_what_its_axis_spans(first: str, years: str | None) -> None:
    import polars as pl

    from tracefail.analysis.report import _days_caption

    caption = _days_caption(pl.DataFrame({"value": ["2025-06-01", first, "2025-12-31"]}))
    assert caption.startswith(f"<figcaption>3 days with steps, from {first} to 2025-12-31")
    assert (years is not None) == ("recorded years apart" in caption)
    if years:
        assert years in caption
