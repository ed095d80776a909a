"""The browser's in-memory corpus index, kept only while the file is as it was when read.

Once the first page is shown, the TUI asks the service to build a `CorpusIndex` (one row per
trace with its modes, sources, agreement flags and feature ranges) and later filter changes,
counts and pages are answered from it in memory (numpy masks over row positions, every sort
order precomputed), in milliseconds, without opening the file. The index belongs to one state
of the file: it is stamped with the file's and its write-ahead log's identity, size and change
times before it is read, and any call that finds another stamp drops it and answers with SQL
until a new one is built (so a `tracefail label` run, an ingest or a human label elsewhere is
never hidden). The service's own human writes drop it too. Free-text words are answered by the
search service's full-text index (the same matches as `tracefail search`), once per search text
and index.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from tracefail.services.search import matching_traces
from tracefail.store import corpus_index as store
from tracefail.store.corpus_index import CorpusIndex
from tracefail.store.db import Database
from tracefail.store.selection import SORT_COLUMNS, CorpusFilter

FileStamp = tuple[tuple[int, int, int, int] | None, ...]


@dataclass(frozen=True)
class _Indexed:
    index: CorpusIndex
    stamp: FileStamp
    built_s: float


class IndexCache:
    """One corpus file's index, the last selection made from it and the last text searches."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self._indexed: _Indexed | None = None
        self._building = threading.Lock()
        self.writes = 0  # the owner's own writes, counted so a build overlapping one is dropped
        self._selection: tuple[CorpusFilter, _Indexed, np.ndarray] | None = None
        self._text: dict[tuple[str, int], pl.Series] = {}

    def stamp(self) -> FileStamp:
        """Identity, size and modification times of the file and its WAL: any commit changes them."""
        found: list[tuple[int, int, int, int] | None] = []
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                found.append(None)
            else:
                found.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return tuple(found)

    def drop(self) -> None:
        self._indexed = None
        self._selection = None
        self._text.clear()

    def _fresh(self) -> _Indexed | None:
        indexed = self._indexed
        if indexed is None or not self.enabled:
            return None
        if indexed.stamp != self.stamp():
            if self._indexed is indexed:
                self.drop()
            return None
        return indexed

    @property
    def ready(self) -> bool:
        return self._fresh() is not None

    @property
    def wanted(self) -> bool:
        """True when filters would be answered with SQL and no index is being built."""
        return self.enabled and not self._building.locked() and self._fresh() is None

    def build(self, read: Callable[[Callable[[Database], CorpusIndex]], CorpusIndex]) -> float | None:
        """Read the index (2-3 s on 100k traces / 1.4M labels on a busy 2-core machine); seconds
        taken, or None when the index is off or another thread is building it."""
        if not self.enabled or not self._building.acquire(blocking=False):
            return None
        try:
            started, writes = time.perf_counter(), self.writes
            stamp = self.stamp()  # before reading: a commit during the read makes it stale at once
            index = read(store.corpus_index)
            for column in SORT_COLUMNS:  # every order now, so no filter change has to sort
                for descending in (False, True):
                    index.order(column, descending)
            built = _Indexed(index, stamp, time.perf_counter() - started)
            if self.writes == writes:  # else one of the owner's writes overlapped the read
                self.drop()  # selections and text hits of any earlier index go with it
                self._indexed = built
            return built.built_s
        finally:
            self._building.release()

    def select(
        self,
        f: CorpusFilter,
        read: Callable[[Callable[[Database], pl.Series]], pl.Series],
        scan: bool = True,
    ) -> tuple[CorpusIndex, np.ndarray] | None:
        """The selection from the index, or None when there is no index for the file as it is
        (or, without `scan`, when its text words were not searched yet)."""
        indexed = self._fresh()
        if indexed is None:
            return None
        last = self._selection
        if last is not None and last[0] == f and last[1] is indexed:
            return indexed.index, last[2]
        text_ids = None
        if f.text:
            key = (f.text.lower(), id(indexed))
            text_ids = self._text.get(key)
            if text_ids is None and not scan:
                return None
            if text_ids is None:
                text = f.text
                text_ids = read(lambda db: matching_traces(db, text))
                if len(self._text) >= 8:
                    self._text.clear()
                self._text[key] = text_ids
        selected = store.select_indexed(indexed.index, f, text_ids)
        if self._fresh() is not indexed:  # the file changed while we filtered
            return None
        self._selection = (f, indexed, selected)
        return indexed.index, selected
