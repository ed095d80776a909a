"""Group failing traces by their failure signature with scikit-learn.

Each trace's signature is its own text (task, agents' messages, tool results, errors); with
`mode_tokens` also its present modes (as tokens like `mode_1_3`, weighted up), for signatures
that carry the labellers' words too. TF-IDF, then LSA (TruncatedSVD, seeded) to a few dense
dimensions, then Ward agglomerative clustering of the length-normalized vectors (Ward on unit
vectors orders pairs like cosine distance). Clusters under `min_size` traces are pooled as
unclustered.

Same corpus and seed, same clusters on any machine: the dense vectors and every score that
orders something are rounded before use (BLAS kernels and thread counts differ in the last
bits), and every ordering ends in a tie-break on the trace id or the term.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import polars as pl

MODE_WEIGHT = 3  # a mode token counts like this many mentions of a word
DECIMALS = 6  # rounding that makes float ties exact ties, broken by a stable key
N_TERMS = 6
N_EXAMPLES = 3


@dataclass(frozen=True)
class ModeShare:
    mode_id: str
    traces: int  # traces of the cluster with the mode present
    rate: float  # traces / cluster size
    share: float  # traces / all clustered traces with the mode: how much of the mode this cluster holds


@dataclass(frozen=True)
class Cluster:
    cluster_id: int  # 1, 2, ... by size; 0 holds the unclustered traces
    size: int
    terms: tuple[str, ...]  # the most distinctive words of the cluster's signatures
    modes: tuple[ModeShare, ...]  # most frequent first
    frameworks: dict[str, int]
    examples: tuple[str, ...]  # the traces nearest the cluster's centre
    trace_ids: tuple[str, ...]

    @property
    def name(self) -> str:
        modes = [m.mode_id for m in self.modes if m.rate >= 0.5]
        parts = [" ".join(self.terms[:3])] if self.terms else []
        return " ".join(parts + ([f"[{', '.join(modes)}]"] if modes else [])) or "(no shared words)"


def _documents(signatures: pl.DataFrame, mode_tokens: bool) -> list[str]:
    docs = []
    for modes, text in signatures.select("modes", "text").iter_rows():
        tokens = " ".join(f"mode_{m.replace('.', '_')}" for m in modes or []) if mode_tokens else ""
        docs.append(" ".join([tokens] * MODE_WEIGHT + [text or ""]))
    return docs


def default_clusters(n: int) -> int:
    """About sqrt(n/2) clusters: 126 traces give 8."""
    return max(2, round((n / 2) ** 0.5))


def cluster(
    signatures: pl.DataFrame,
    *,
    n_clusters: int | None = None,
    min_size: int = 2,
    seed: int = 0,
    mode_tokens: bool = False,
) -> list[Cluster]:
    """Clusters of `signatures` (trace_id, framework, modes, text), largest first, then the
    unclustered traces as cluster 0 if any."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    n = signatures.height
    if n < 2:
        raise ValueError(f"{n} failing trace(s) with a signature: clustering needs at least 2")
    vectorizer = TfidfVectorizer(
        stop_words="english", sublinear_tf=True, min_df=2 if n >= 20 else 1, max_df=0.9,
        token_pattern=r"(?u)\b[^\W\d_]\w+\b",
    )  # fmt: skip
    try:
        tfidf = vectorizer.fit_transform(_documents(signatures, mode_tokens))
    except ValueError:  # scikit-learn's "no terms remain": nothing in common to group by
        raise ValueError(f"the {n} failing traces share no words: nothing to cluster by") from None
    terms = vectorizer.get_feature_names_out()
    dims = min(100, tfidf.shape[1] - 1, n - 1)
    dense = (
        TruncatedSVD(n_components=dims, random_state=seed).fit_transform(tfidf)
        if dims >= 2
        else tfidf.toarray()
    )
    dense = np.round(normalize(dense), DECIMALS)
    k = min(n, n_clusters or default_clusters(n))
    assigned = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(dense)

    ids = signatures.get_column("trace_id").to_list()
    frameworks = signatures.get_column("framework").to_list()
    modes = signatures.get_column("modes").to_list()
    mode_totals = Counter(m for ms in modes for m in ms or [])
    overall = np.asarray(tfidf.mean(axis=0)).ravel()
    is_word = np.array([not t.startswith("mode_") for t in terms])

    groups = [np.flatnonzero(assigned == c) for c in range(k)]
    big = sorted((g for g in groups if len(g) >= min_size), key=lambda g: (-len(g), ids[g[0]]))
    small = np.concatenate([g for g in groups if len(g) < min_size] or [np.array([], dtype=int)])
    found = []
    for number, members in enumerate([*big, small] if len(small) else big, start=1):
        unclustered = len(small) > 0 and members is small
        lift = np.asarray(tfidf[members].mean(axis=0)).ravel() - overall
        lift = np.round(lift, DECIMALS)
        order = [i for i in np.lexsort((terms, -lift)) if is_word[i] and lift[i] > 0]
        centre = dense[members].mean(axis=0)
        closeness = np.round(dense[members] @ centre, DECIMALS)
        nearest = members[np.lexsort((np.array([ids[i] for i in members]), -closeness))]
        counts = Counter(m for i in members for m in modes[i] or [])
        in_frameworks = Counter(frameworks[i] or "(none)" for i in members)
        shares = tuple(
            ModeShare(m, c, c / len(members), c / mode_totals[m])
            for m, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        found.append(
            Cluster(
                cluster_id=0 if unclustered else number,
                size=len(members),
                terms=tuple(str(terms[i]) for i in order[:N_TERMS]),
                modes=shares,
                frameworks=dict(sorted(in_frameworks.items(), key=lambda kv: (-kv[1], kv[0]))),
                examples=tuple(ids[i] for i in nearest[:N_EXAMPLES]),
                trace_ids=tuple(sorted(ids[i] for i in members)),
            )
        )
    return found
