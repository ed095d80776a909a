"""One read-only connection to the corpus, shared by a process' threads and let go when idle.

Why: opening a 1 GB corpus costs 0.1-0.25 s and closing it 0.15 s, so a browser that opened a
connection per call paid both on every filter change. Kept open, every call takes a cursor of
it (cheap, one per thread). But a read-only connection blocks writers in other processes, and
DuckDB refuses a read-write connection in this process while a read-only one is open (another
configuration of the same file). So the connection is closed `idle_s` after its last use (other
processes can write again), and before this process' own writes (`exclusive`), which wait for
the reads in flight; reads wait for the writes. A copy published by `tracefail serve` is never
kept: it is replaced after each commit and must be reopened to be seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tracefail.store import Database


class ReadHold:
    """A read-only `Database` kept for `idle_s` after its last use (0: closed after each use)."""

    def __init__(self, open_read: Callable[[], Database], idle_s: float) -> None:
        self._open_read = open_read
        self.idle_s = idle_s
        self._cond = threading.Condition()
        self._db: Database | None = None
        self._readers = 0
        self._writers = 0
        self._last_use = 0.0
        self._timer: threading.Timer | None = None

    @property
    def held(self) -> bool:
        """True while a connection is open (in use or idle)."""
        return self._db is not None

    @contextmanager
    def reading(self) -> Iterator[Database]:
        """A cursor of the held connection (opened first when none is)."""
        with self._cond:
            while self._writers:
                self._cond.wait()
            if self._db is None:
                self._db = self._open_read()  # under the lock: other readers wait for this one open
            db = self._db
            self._readers += 1
        cursor: Database | None = None
        try:
            cursor = db.cursor()
            yield cursor
        finally:
            if cursor is not None:
                cursor.close()
            with self._cond:
                self._readers -= 1
                self._last_use = time.monotonic()
                if not self._readers:
                    self._cond.notify_all()
                    if self.idle_s <= 0 or db.snapshot_of is not None:
                        self._close()
                    else:
                        self._arm(self.idle_s)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """No connection of this holder is open inside: for this process' own writes."""
        with self._cond:
            self._writers += 1
            while self._readers:
                self._cond.wait()
            self._close()
        try:
            yield
        finally:
            with self._cond:
                self._writers -= 1
                self._cond.notify_all()

    def close(self) -> None:
        """Let go of the file now (waits for the reads in flight)."""
        with self._cond:
            while self._readers:
                self._cond.wait()
            self._close()

    def _arm(self, delay_s: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(delay_s, self._release_if_idle)
        self._timer.daemon = True  # the process may exit while it waits
        self._timer.start()

    def _release_if_idle(self) -> None:
        with self._cond:
            if self._readers or self._db is None:
                return
            left = self._last_use + self.idle_s - time.monotonic()
            if left > 0:  # used again since this timer was armed
                self._arm(left)
                return
            self._close()

    def _close(self) -> None:
        """Close the connection (the caller holds the lock and no read is in flight)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._db is not None:
            db, self._db = self._db, None
            db.close()
