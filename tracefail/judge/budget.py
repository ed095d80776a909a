"""The request budget of an HTTP judge: how many requests may be open at once, and a pause that
every request honours after the server asked for one (429 / Retry-After).

One process uses `LocalBudget`; a Ray run gives each worker a budget leased from one shared
Limiter (tracefail.services.distributed), so the server sees one client, not one per worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


class Budget(Protocol):
    def slot(self) -> AbstractAsyncContextManager[None]:
        """An async context: one request may be open while it is held."""
        ...

    def pause(self, seconds: float) -> None:
        """No request starts for `seconds` (the server is rate limiting us)."""
        ...


class LocalBudget:
    """`slots` requests at once within this process, and a pause shared by all of them."""

    def __init__(self, slots: int) -> None:
        self._slots = asyncio.Semaphore(max(1, slots))
        self._resume_at = 0.0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            await wait_until(lambda: self._resume_at)
            yield

    def pause(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)


async def wait_until(resume_at: Callable[[], float]) -> None:
    """Sleep until the monotonic time `resume_at()` (re-read: a pause can grow while we sleep)."""
    while (left := resume_at() - time.monotonic()) > 0:
        await asyncio.sleep(left)
