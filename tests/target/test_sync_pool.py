"""The writer pool: any worker failure stops every worker and ends the run as fatal.

Unit tests with a fake client (no HTTP) and a real SQLite ledger.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from sync_ledger.db import make_engine
from sync_ledger.ledger import IdLedger
from target_contacts.sync import ContactsSync, FatalSyncError

if TYPE_CHECKING:
    from pathlib import Path


class FakeClient:
    """Creates contacts; the ``fail_on``-th create raises ``error`` after the others started.

    Creates that begin after the pool's stop signal for the batch (``pool.stopping``, set once
    it saw the failure) count as ``started_after_stop``.
    """

    def __init__(self, fail_on: int, error: BaseException) -> None:
        self.pool: ContactsSync | None = None
        self.fail_on = fail_on
        self.error = error
        self.lock = threading.Lock()
        self.creates = 0
        self.in_flight = 0
        self.finished_after_failure = 0
        self.started_after_stop = 0
        self.failed = threading.Event()

    def create_contact(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.creates += 1
            number = self.creates
            self.in_flight += 1
            if self.pool is not None and self.pool.stopping.is_set():
                self.started_after_stop += 1
        try:
            if number == self.fail_on:
                self.failed.set()
                raise self.error
            # Slow enough that other workers are mid-write when one fails.
            time.sleep(0.05)
            if self.failed.is_set():
                with self.lock:
                    self.finished_after_failure += 1
            return {"id": f"crm-{number}", **body}
        finally:
            with self.lock:
                self.in_flight -= 1


def records(n: int) -> list[dict[str, Any]]:
    return [
        {"id": str(i), "firstName": f"F{i}", "lastName": "L", "email": f"p{i}@example.com"}
        for i in range(1, n + 1)
    ]


@pytest.mark.parametrize(
    "error",
    [KeyError("id"), RuntimeError("database is locked")],
    ids=["missing-key", "database-locked"],
)
def test_an_unexpected_worker_error_stops_the_pool_and_is_fatal(tmp_path: Path, error):
    ledger = IdLedger(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"), "loc")
    client = FakeClient(fail_on=3, error=error)
    sync = ContactsSync(client, ledger, location_id="loc", concurrency=4)
    client.pool = sync
    with pytest.raises(FatalSyncError, match="failed unexpectedly"):
        sync.write_batch("contacts", records(200))
    # write_batch returned only after every worker stopped: nothing writes unobserved.
    assert client.in_flight == 0
    creates_at_return = client.creates
    time.sleep(0.3)
    assert client.creates == creates_at_return
    # The pool stopped taking new records once it saw the failure: at most one create per other
    # worker (which checked the stop just before) began after that; how many began between the
    # failure and the stop is the scheduler's affair.
    assert client.started_after_stop <= 3, client.started_after_stop
    assert creates_at_return < 200
    # The ledger is consistent: each finished create is recorded as written, none half-way
    # except the failed one (an intent, looked up before creating again on the next run).
    written = list(ledger.lookup("contacts", [str(i) for i in range(1, 201)]).values())
    assert sum(1 for e in written if e.written) == creates_at_return - 1
    assert sum(1 for e in written if e.state == "creating") == 1
    sync.close()


class WatchingClient:
    """Creates contacts and notes, at each create, what another process sees in the ledger."""

    def __init__(self, url: str, fail_on: int | None = None) -> None:
        self.other = IdLedger(make_engine(url), "loc")
        self.fail_on = fail_on
        self.seen: list[tuple[str, set[str]]] = []

    def create_contact(self, body: dict[str, Any]) -> dict[str, Any]:
        source_id = body["email"][1:].split("@")[0]
        entries = self.other.lookup("contacts", [str(i) for i in range(1, 21)])
        self.seen.append((source_id, {s for s, e in entries.items() if e.state == "creating"}))
        if len(self.seen) == self.fail_on:
            raise KeyError("id")
        return {"id": f"crm-{source_id}", **body}


def test_a_writer_commits_the_intents_of_its_next_new_contacts_together_before_their_calls(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = IdLedger(make_engine(url), "loc")
    client = WatchingClient(url)
    sync = ContactsSync(client, ledger, location_id="loc", concurrency=1)
    sync.write_batch("contacts", records(20))
    sync.close()
    # Each call's intent was durable before it was sent, with those of the writer's next new
    # contacts: one commit for a block of (at most) eight.
    assert [source_id for source_id, _ in client.seen] == [str(i) for i in range(1, 21)]
    for source_id, creating in client.seen:
        assert source_id in creating
    assert client.seen[0][1] == {str(i) for i in range(1, 9)}
    assert client.seen[8][1] == {str(i) for i in range(9, 17)}
    entries = ledger.lookup("contacts", [str(i) for i in range(1, 21)])
    assert {e.target_id for e in entries.values()} == {f"crm-{i}" for i in range(1, 21)}
    assert all(e.written for e in entries.values())


def test_a_writer_that_stops_drops_the_intents_of_the_contacts_it_did_not_send(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = IdLedger(make_engine(url), "loc")
    client = WatchingClient(url, fail_on=3)
    sync = ContactsSync(client, ledger, location_id="loc", concurrency=1)
    with pytest.raises(FatalSyncError, match="failed unexpectedly"):
        sync.write_batch("contacts", records(20))
    sync.close()
    # At the third call: the block's eight intents (1 and 2 written, their rows carried to the
    # writer's next commit).
    assert client.seen[2][1] == {str(i) for i in range(1, 9)}
    entries = ledger.lookup("contacts", [str(i) for i in range(1, 21)])
    # Two written; the third's call failed after it left, so its intent stays (the next run
    # looks for it first); the block's other five were never sent and left no row.
    assert {s: e.state for s, e in entries.items()} == {
        "1": "written",
        "2": "written",
        "3": "creating",
    }
