"""Failure clusters: failing traces grouped by what went wrong, shared by CLI and TUI."""

from __future__ import annotations

from dataclasses import dataclass

from tracefail.analysis.clusters import Cluster, cluster
from tracefail.analysis.stats import SourceError, check_source
from tracefail.store import Database
from tracefail.store.clusters import failure_signatures

__all__ = ["Cluster", "ClusterUsageError", "Clusters", "failure_clusters"]


class ClusterUsageError(ValueError):
    """Too few failing traces, or an impossible option; the message says which."""


@dataclass(frozen=True)
class Clusters:
    source: str
    seed: int
    rationales: bool  # the labellers' words were part of the signatures
    n_traces: int  # failing traces clustered
    clusters: tuple[Cluster, ...]  # largest first; cluster_id 0 (if any) holds the unclustered


def failure_clusters(
    db: Database,
    *,
    source: str = "all",
    min_size: int = 2,
    seed: int = 0,
    n_clusters: int | None = None,
    rationales: bool = False,
) -> Clusters:
    """Cluster the traces that failed or carry a present mode or an attribution from `source`,
    by their own text; with `rationales` also by what the labellers wrote and the modes they
    found (which otherwise only describe the clusters)."""
    if min_size < 1:
        raise ClusterUsageError(f"--min-size {min_size}: must be at least 1")
    if n_clusters is not None and n_clusters < 2:
        raise ClusterUsageError(f"--clusters {n_clusters}: must be at least 2")
    try:
        patterns = check_source(db, source)
    except SourceError as exc:
        raise ClusterUsageError(str(exc)) from None
    signatures = failure_signatures(db, patterns, rationales=rationales)
    if signatures.height < 2:
        raise ClusterUsageError(
            f"{signatures.height} failing trace(s) with labels from source {source!r}: "
            "clustering needs at least 2"
        )
    try:
        found = cluster(
            signatures, n_clusters=n_clusters, min_size=min_size, seed=seed, mode_tokens=rationales
        )
    except ValueError as exc:
        raise ClusterUsageError(str(exc)) from None
    return Clusters(source, seed, rationales, signatures.height, tuple(found))
