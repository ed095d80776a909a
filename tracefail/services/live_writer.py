"""The one thread that writes a served corpus: each request's checked spans in, a commit out,
and only then the request's answer.

Group commit: the writer takes every request that waits (up to `BATCH_SPANS` spans), merges
them into their stored traces and commits them in one transaction; each request's future is
resolved after that commit, so a 2xx means the spans are in the database file and survive a
SIGKILL. If the batch cannot be written, each request is written alone, so a request that
cannot be stored fails by itself (its future raises; the receiver answers 503 and the exporter
retries) and the others are stored. Refused spans are quarantined, with their content, in the
same transaction as the request's good spans.

Readers cannot open a file DuckDB holds for writing, so after commits the writer publishes a
read-only copy (`Database.publish_snapshot`) that read commands open instead; copies are spaced
so that publishing takes at most a tenth of the writer's time.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass, field

from tracefail.ingest.otlp_live import Rejected, SpanGroup
from tracefail.services.span_merge import IncomingSpans, merge_spans
from tracefail.store import Database
from tracefail.store import runs as run_store
from tracefail.store import traces as trace_store

BATCH_SPANS = 5000  # one commit holds the requests waiting, up to about this many spans
PUBLISH_EVERY_S = 1.0  # the least time between two published snapshots ...
PUBLISH_SHARE = 0.1  # ... stretched so that copying takes at most this share of the time
QUEUED_REQUESTS = 256


@dataclass(frozen=True)
class ServeReport:
    requests: int
    bad_requests: int
    spans: int
    rejected_spans: int
    traces_written: int
    steps_written: int
    quarantined: int
    failed_requests: int
    run_id: str
    publish_error: str | None = None  # why the last copy for readers could not be published


@dataclass
class Stored:
    """What a request's write did: the lines about spans it could not merge (conflicts)."""

    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Job:
    groups: dict[str, list[SpanGroup]]
    rejected: list[Rejected]
    bad_request: bool
    future: Future[Stored]

    @property
    def spans(self) -> int:
        return sum(len(spans) for groups in self.groups.values() for _, spans in groups)


class WriteFailed(RuntimeError):
    """This request's spans could not be committed; nothing of it is stored, a retry may work."""


class LiveWriter:
    """Owns the database connection; `store` hands it a request and returns its future."""

    def __init__(self, db: Database, source: str, *, publish: bool = True) -> None:
        self.db = db
        self.source = source
        self.publish = publish and db.path != ":memory:"
        self.run_id = run_store.start_run(db, "serve", {"source": source})
        self.counts = dict.fromkeys(
            (
                "requests",
                "bad_requests",
                "spans",
                "rejected_spans",
                "traces",
                "steps",
                "quarantined",
                "failed_requests",
            ),
            0,
        )
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=QUEUED_REQUESTS)
        self._published_at = 0.0
        self._publish_cost = 0.0
        self._dirty = False
        self.publish_error: str | None = None  # the last failed publish, for the report
        if self.publish:
            self._publish()
        self._thread = threading.Thread(target=self._run, name="tracefail-live-writer", daemon=True)
        self._thread.start()

    def store(
        self, groups: dict[str, list[SpanGroup]], rejected: list[Rejected], *, bad_request: bool = False
    ) -> Future[Stored]:
        """Queue a request; its future resolves once it is committed (or raises WriteFailed).
        Blocks while `QUEUED_REQUESTS` wait: back-pressure instead of memory growth."""
        job = _Job(groups, rejected, bad_request, Future())
        self._queue.put(job)
        return job.future

    def close(self) -> ServeReport:
        """Write everything queued, stop the thread, close the run row and the snapshot."""
        self._queue.put(None)
        self._thread.join()
        counts = dict(self.counts)
        run_store.finish_run(self.db, self.run_id, counts=counts, n_errors=counts["quarantined"])
        if self.publish:
            with suppress(OSError):
                self.db.drop_snapshot()
        return ServeReport(
            requests=counts["requests"],
            bad_requests=counts["bad_requests"],
            spans=counts["spans"],
            rejected_spans=counts["rejected_spans"],
            traces_written=counts["traces"],
            steps_written=counts["steps"],
            quarantined=counts["quarantined"],
            failed_requests=counts["failed_requests"],
            run_id=self.run_id,
            publish_error=self.publish_error,
        )

    def _run(self) -> None:
        while True:
            timeout = None
            if self._dirty:
                timeout = max(0.0, self._next_publish() - time.monotonic())
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._publish()
                continue
            if first is None:
                return
            batch, spans, stop = [first], first.spans, False
            while spans < BATCH_SPANS:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
                spans += job.spans
            self._write_batch(batch)
            if self._dirty and time.monotonic() >= self._next_publish():
                self._publish()
            if stop:
                return

    def _write_batch(self, batch: list[_Job]) -> None:
        try:
            results = self._commit(batch)
        except Exception:  # which request broke it is found by writing each alone
            if len(batch) == 1:
                self._fail(batch[0])
                return
            for job in batch:
                self._write_batch([job])
            return
        for job, result in zip(batch, results, strict=True):
            if not job.future.done():  # a waiter cancelled at shutdown: stored all the same
                job.future.set_result(result)

    def _commit(self, batch: list[_Job]) -> list[Stored]:
        """Merge and commit the batch in one transaction; the counts move only after COMMIT."""
        pending: dict[str, list[SpanGroup]] = {}
        owner: dict[str, list[int]] = {}
        for number, job in enumerate(batch):
            for trace_id, groups in job.groups.items():
                pending.setdefault(trace_id, []).extend(groups)
                owner.setdefault(trace_id, []).append(number)
        results = [Stored() for _ in batch]
        delta = dict.fromkeys(self.counts, 0)
        with self.db.bulk_write():
            merged = merge_spans(
                self.db,
                [
                    IncomingSpans(native, groups, self.source, "otlp-live")
                    for native, groups in pending.items()
                ],
                self.run_id,
            )
            for native, problem in merged.problems:
                self._quarantine(f"trace {native}", problem, "")
                delta["quarantined"] += 1
                for number in owner.get(native, []):
                    results[number].problems.append(f"trace {native}: {problem}")
            for job in batch:
                for refused in job.rejected:
                    self._quarantine(refused.record, refused.reason, refused.content)
                delta["quarantined"] += len(job.rejected)
                delta["requests"] += 1
                delta["bad_requests"] += job.bad_request
                delta["spans"] += job.spans
                delta["rejected_spans"] += 0 if job.bad_request else len(job.rejected)
            delta["traces"] += merged.written.traces
            delta["steps"] += merged.written.steps
            counts = {key: self.counts[key] + delta[key] for key in self.counts}
            run_store.update_counts(self.db, self.run_id, counts)  # a killed run still says what it stored
        self.counts = counts
        self._dirty = True
        return results

    def _fail(self, job: _Job) -> None:
        self.counts["failed_requests"] += 1
        if not job.future.done():
            job.future.set_exception(WriteFailed("the spans could not be written; nothing of them is stored"))

    def _quarantine(self, record: str, reason: str, content: str) -> None:
        trace_store.quarantine(self.db, self.source, record, reason, content, self.run_id)

    def _next_publish(self) -> float:
        return self._published_at + max(PUBLISH_EVERY_S, self._publish_cost / PUBLISH_SHARE)

    def _publish(self) -> None:
        if not self.publish:
            self._dirty = False
            return
        started = time.monotonic()
        try:
            self.db.publish_snapshot()
        except Exception as exc:  # no copy (disk full?): readers see the last one; writing goes on
            self.publish_error = f"{type(exc).__name__}: {exc}"
        self._published_at = time.monotonic()
        self._publish_cost = self._published_at - started
        self._dirty = False
