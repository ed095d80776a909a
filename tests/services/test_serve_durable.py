"""A 2xx from `tracefail serve` means stored: SIGKILL the server during a load from concurrent
clients, restart it, resend what got no 2xx, and every acknowledged span is stored exactly once;
malformed spans mixed into the load cost only themselves."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.services.serve_process import ServeProcess, post
from tracefail.store import Database

CLIENTS, REQUESTS, SPANS = 8, 25, 20  # 4,000 good spans
TRACES_PER_CLIENT = 5  # each trace arrives split over 5 requests


def _request(client: int, number: int, malformed: bool) -> tuple[bytes, list[str]]:
    """One export and the ids of its good spans; a malformed load adds two bad spans to each."""
    trace = f"{client:08x}{number % TRACES_PER_CLIENT:08x}{'0' * 16}"
    spans: list[dict[str, Any]] = [
        {
            "traceId": trace,
            "spanId": f"{client:04x}{number:04x}{n:08x}",
            "name": "chat",
            "startTimeUnixNano": str(1_700_000_000_000_000_000 + (number * SPANS + n) * 1000),
            "attributes": [
                {"key": "gen_ai.completion", "value": {"stringValue": f"answer {client}.{number}.{n}"}}
            ],
        }
        for n in range(SPANS)
    ]
    good = [span["spanId"] for span in spans]
    if malformed:
        spans.append({"traceId": trace, "spanId": f"{client:04x}{number:04x}ffffffff", "events": ["x"]})
        spans.append({"traceId": trace, "spanId": 5, "name": "wrong-typed id"})
    body = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]}
    return json.dumps(body).encode(), good


@pytest.mark.parametrize("malformed", [False, True], ids=["clean", "malformed"])
def test_sigkill_mid_load_loses_no_acknowledged_span_and_stores_none_twice(
    tmp_path: Path, malformed: bool
) -> None:
    db_path = tmp_path / "live.duckdb"
    requests = {(c, r): _request(c, r, malformed) for c in range(CLIENTS) for r in range(REQUESTS)}
    acknowledged: set[tuple[int, int]] = set()
    lock = threading.Lock()
    half = threading.Event()
    server = ServeProcess(db_path)

    def client(number: int) -> None:
        for r in range(REQUESTS):
            try:
                code, answer = post(server.url, requests[(number, r)][0], timeout=10)
            except (OSError, http.client.HTTPException):
                return  # the server is gone (mid-answer too): the rest is resent after the restart
            if code == 200:
                assert not malformed or answer["partialSuccess"]["rejectedSpans"] == "2"
                with lock:
                    acknowledged.add((number, r))
                    if len(acknowledged) >= CLIENTS * REQUESTS // 2:
                        half.set()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    assert half.wait(120)
    server.kill()  # SIGKILL while requests are in flight
    for thread in threads:
        thread.join()
    acked = set(acknowledged)
    acked_spans = {span for key in acked for span in requests[key][1]}

    with Database(db_path) as db:  # what the killed server had committed
        at_kill = {row[0] for row in db.rows("SELECT span_id FROM steps")}
        run_counts = json.loads(db.rows("SELECT counts FROM runs WHERE kind = 'serve'")[0][0])
    assert acked_spans <= at_kill
    assert run_counts["spans"] == len(at_kill)  # the killed run's row says what it stored

    server = ServeProcess(db_path)  # restart; resend what got no 2xx
    for key in sorted(set(requests) - acked):
        code, _ = post(server.url, requests[key][0])
        assert code == 200
    assert "stopped:" in server.stop()

    with Database(db_path, read_only=True) as db:
        stored = dict(db.rows("SELECT span_id, count(*) FROM steps GROUP BY span_id"))
        quarantined = db.rows(
            'SELECT count(*), count(*) FILTER (excerpt LIKE \'%"events": ["x"]%\') FROM quarantine'
        )[0]
    every_good = {span for _, good in requests.values() for span in good}
    print(
        f"\nkill test ({'malformed' if malformed else 'clean'}): {len(acked_spans):,} spans acknowledged "
        f"before SIGKILL, {len(at_kill):,} stored then "
        f"({len(at_kill - acked_spans):,} committed, unanswered), "
        f"{len(every_good):,} sent in all; stored {len(stored):,} span ids, "
        f"duplicates {sum(n - 1 for n in stored.values())}, "
        f"acknowledged missing {len(acked_spans - set(stored))}"
    )
    assert acked_spans <= set(stored)  # nothing acknowledged is lost
    assert set(stored) == every_good  # every good span is stored, no bad one
    assert set(stored.values()) == {1}  # nothing twice
    if malformed:  # each bad span quarantined with its content, at least once per request sent
        assert quarantined[0] >= 2 * len(requests) and quarantined[1] >= len(requests)
