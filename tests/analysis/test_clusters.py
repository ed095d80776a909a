"""Failure clusters on the Who&When sample (dataset mistake reasons) and the MAST samples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from tests.conftest import SAMPLES
from tracefail.services import clusters as service
from tracefail.services.ingest import ingest
from tracefail.store import Database
from tracefail.store.clusters import failure_signatures


def _text(db: Database, rationales: bool = False) -> dict[str, str]:
    frame = failure_signatures(db, [], rationales=rationales)
    return dict(zip(frame["trace_id"], frame["text"], strict=True))


def test_whowhen_signatures_hold_the_dataset_reasons_only_on_request(whowhen_db: Database) -> None:
    texts, with_reasons = _text(whowhen_db), _text(whowhen_db, rationales=True)
    reasons = whowhen_db.rows("SELECT trace_id, reason FROM attributions WHERE source = 'dataset:whowhen'")
    tasks = dict(whowhen_db.rows("SELECT trace_id, task FROM traces"))
    assert len(texts) == 20 and len(reasons) == 20
    for trace_id, reason in reasons:
        assert reason in with_reasons[trace_id] and reason not in texts[trace_id]
        assert texts[trace_id].startswith(tasks[trace_id][:200])  # the trace's own text


@pytest.mark.parametrize("source", ["bogus", "human:root", "llm-judge:nothere"])
def test_an_unknown_source_is_a_usage_error_naming_the_valid_ones(whowhen_db: Database, source: str) -> None:
    with pytest.raises(service.ClusterUsageError, match=r"not a source kind \(human, dataset, llm-judge"):
        service.failure_clusters(whowhen_db, source=source)
    assert service.failure_clusters(whowhen_db, source="dataset:whowhen").n_traces == 20


def test_whowhen_clusters_cover_every_trace_once_and_are_deterministic(whowhen_db: Database) -> None:
    first = service.failure_clusters(whowhen_db, source="dataset", seed=3)
    again = service.failure_clusters(whowhen_db, source="dataset", seed=3)
    assert first == again
    members = [t for c in first.clusters for t in c.trace_ids]
    assert sorted(members) == sorted(_text(whowhen_db)) and first.n_traces == 20
    sizes = [c.size for c in first.clusters if c.cluster_id]
    assert sizes == sorted(sizes, reverse=True) and all(s >= 2 for s in sizes) and len(sizes) >= 2
    texts = _text(whowhen_db)
    for found in first.clusters:
        assert set(found.examples) <= set(found.trace_ids)
        assert found.frameworks == {"AG2": found.size}
        for term in found.terms:  # a cluster's words come from its own traces
            assert any(term in texts[t].lower() for t in found.trace_ids)


def test_whowhen_clusters_are_tighter_than_the_corpus(whowhen_db: Database) -> None:
    texts = _text(whowhen_db)
    result = service.failure_clusters(whowhen_db, source="dataset")
    ids = sorted(texts)
    sim = cosine_similarity(TfidfVectorizer(stop_words="english").fit_transform([texts[t] for t in ids]))
    label = {t: c.cluster_id for c in result.clusters for t in c.trace_ids}
    same = np.array([[label[a] == label[b] and label[a] != 0 for b in ids] for a in ids])
    np.fill_diagonal(same, False)
    other = ~same
    np.fill_diagonal(other, False)
    assert sim[same].mean() > sim[other].mean()


def test_mode_shares_match_the_labels(db: Database) -> None:
    ingest(db, [SAMPLES / "mast"])
    result = service.failure_clusters(db, source="dataset", min_size=1)
    rows = db.rows("SELECT trace_id, mode_id FROM labels WHERE present AND source LIKE 'dataset:%'")
    with_mode: dict[str, set[str]] = {}
    for trace_id, mode_id in rows:
        with_mode.setdefault(mode_id, set()).add(trace_id)
    for found in result.clusters:
        for share in found.modes:
            inside = with_mode[share.mode_id] & set(found.trace_ids)
            assert share.traces == len(inside)
            assert share.share == pytest.approx(len(inside) / len(with_mode[share.mode_id]))
            assert share.rate == pytest.approx(len(inside) / found.size)


def test_shared_whowhen_corpus(db: Database, shared_data) -> None:
    ingest(db, [shared_data / "whowhen-algorithm-generated"])
    result = service.failure_clusters(db, source="dataset")
    assert result.n_traces == 126
    assert len([c for c in result.clusters if c.cluster_id]) >= 4
    assert result == service.failure_clusters(db, source="dataset")
    assert result != service.failure_clusters(db, source="dataset", n_clusters=3)


def test_too_few_failing_traces(db: Database) -> None:
    with pytest.raises(service.ClusterUsageError, match="needs at least 2"):
        service.failure_clusters(db)


def test_ties_are_broken_by_trace_id_not_by_float_noise() -> None:
    """Two members of a two-trace cluster are equally near its centre (only the last bits of a
    BLAS dot product tell them apart): the example order must come from the ids."""
    import polars as pl

    from tracefail.analysis.clusters import cluster

    docs = {
        "t-b": "timeout fetching the weather api",
        "t-a": "timeout fetching the weather api again",
        "t-d": "wrong answer about population census",
        "t-c": "wrong answer about population census figures",
    }
    ids = sorted(docs)
    frame = pl.DataFrame(
        {"trace_id": ids, "framework": ["x"] * 4, "modes": [[]] * 4, "text": [docs[t] for t in ids]},
        schema={
            "trace_id": pl.String,
            "framework": pl.String,
            "modes": pl.List(pl.String),
            "text": pl.String,
        },
    )
    found = cluster(frame, n_clusters=2)
    assert [c.examples for c in found] == [("t-a", "t-b"), ("t-c", "t-d")]
