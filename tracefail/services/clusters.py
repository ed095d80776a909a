"""Failure clusters: failing traces grouped by what went wrong, shared by CLI and TUI."""

from __future__ import annotations

from dataclasses import dataclass

from tracefail.analysis.clusters import Cluster, cluster
from tracefail.analysis.stats import source_patterns
from tracefail.store import Database
from tracefail.store.clusters import failure_signatures

__all__ = ["Cluster", "ClusterUsageError", "Clusters", "failure_clusters"]


class ClusterUsageError(ValueError):
    """Too few failing traces, or an impossible option; the message says which."""


@dataclass(frozen=True)
class Clusters:
    source: str
    seed: int
    n_traces: int  # failing traces clustered
    clusters: tuple[Cluster, ...]  # largest first; cluster_id 0 (if any) holds the unclustered


def failure_clusters(
    db: Database, *, source: str = "all", min_size: int = 2, seed: int = 0, n_clusters: int | None = None
) -> Clusters:
    """Cluster the traces that failed or carry a present mode or an attribution from `source`."""
    if min_size < 1:
        raise ClusterUsageError(f"--min-size {min_size}: must be at least 1")
    signatures = failure_signatures(db, source_patterns(source))
    if signatures.height < 2:
        raise ClusterUsageError(
            f"{signatures.height} failing trace(s) with labels from source {source!r}: "
            "clustering needs at least 2"
        )
    found = cluster(signatures, n_clusters=n_clusters, min_size=min_size, seed=seed)
    return Clusters(source, seed, signatures.height, tuple(found))
