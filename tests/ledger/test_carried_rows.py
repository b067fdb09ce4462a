"""Written rows carried to the thread's next ledger write (IdLedger.carrying), and the writer's use.

A writer thread's written row (after a create's answer) shares the commit of its next record's
intent. The tests check what a user relies on: another process sees every written row once the
batch is done, the thread itself reads what it wrote at once, nothing is lost when the block
ends by an error, and a row that cannot be written is named.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest
from sqlalchemy import select

from sync_ledger.db import GroupCommit, make_engine
from sync_ledger.ledger import CarriedWriteError, IdLedger, links
from sync_ledger.summary import RunSummary
from sync_ledger.writer import BatchWriter, WorkItem


def written_elsewhere(url: str) -> dict[str, str | None]:
    """The CRM id of each MOCO id, as another process reads the ledger (its own engine)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(links.c.moco_id, links.c.crm_id, links.c.fwd_state)).all()
        return {r.moco_id: (r.crm_id if r.fwd_state == "written" else None) for r in rows}
    finally:
        engine.dispose()


@pytest.fixture
def ledger(ledger_url: str) -> IdLedger:
    return IdLedger(make_engine(ledger_url), "loc-1")


def create(ledger: IdLedger, source_id: str) -> None:
    ledger.mark_creating("contacts", source_id)
    ledger.record_written("contacts", source_id, f"crm-{source_id}", "hash")


def test_a_written_row_rides_with_the_next_intent_and_the_block_commits_the_rest(
    ledger, ledger_url
):
    with ledger.carrying():
        create(ledger, "1")
        assert written_elsewhere(ledger_url) == {"1": None}  # its intent only, so far
        create(ledger, "2")
        assert written_elsewhere(ledger_url) == {"1": "crm-1", "2": None}
    assert written_elsewhere(ledger_url) == {"1": "crm-1", "2": "crm-2"}


def test_outside_the_block_a_written_row_is_committed_when_its_call_returns(ledger, ledger_url):
    create(ledger, "1")
    assert written_elsewhere(ledger_url) == {"1": "crm-1"}


def test_the_thread_reads_what_it_wrote_at_once(ledger, ledger_url):
    with ledger.carrying():
        create(ledger, "1")
        entry = ledger.get("contacts", "1")
        assert entry is not None and entry.written and entry.target_id == "crm-1"
        assert ledger.claimant("contacts", "crm-1") == "1"


def test_other_threads_rows_wait_for_their_own_thread(ledger, ledger_url):
    first_done, check_done = threading.Event(), threading.Event()

    def other() -> None:
        with ledger.carrying():
            create(ledger, "other")
            first_done.set()
            assert check_done.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert first_done.wait(10)
    with ledger.carrying():
        create(ledger, "mine")  # this thread's intent commits none of the other thread's rows
    assert written_elsewhere(ledger_url) == {"other": None, "mine": "crm-mine"}
    check_done.set()
    thread.join(10)
    assert written_elsewhere(ledger_url) == {"other": "crm-other", "mine": "crm-mine"}


def test_a_block_ended_by_an_error_still_commits_its_rows(ledger, ledger_url):
    def block() -> None:
        with ledger.carrying():
            create(ledger, "1")
            raise RuntimeError("the API went away")

    with pytest.raises(RuntimeError, match="the API went away"):
        block()
    assert written_elsewhere(ledger_url) == {"1": "crm-1"}


def test_a_written_row_clears_the_records_reject_when_it_is_committed(ledger):
    ledger.reject("contacts", "1", {"id": 1}, field="email", reason="bad", kind="invalid")
    with ledger.carrying():
        create(ledger, "1")
    assert ledger.reject_reason("contacts", "1") is None
    assert ledger.rejects() == []


def test_a_carried_row_that_cannot_be_written_is_named_and_the_next_write_not_made(
    ledger, ledger_url
):
    with ledger.carrying():
        create(ledger, "1")
        (carried,) = ledger._carrying.rows

        def broken(_steps: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        carried.write = broken
        with pytest.raises(CarriedWriteError, match="recording contacts 1 as written") as caught:
            ledger.mark_creating("contacts", "2")
        assert "intents" in str(caught.value) and "disk I/O error" not in str(caught.value)
    assert written_elsewhere(ledger_url) == {"1": None}  # its intent: the next run looks first


class FakeCreates(BatchWriter):
    """A writer whose API call always creates: intent, call, written row."""

    def _dispatch(self, item: WorkItem, _entry: Any, _parents: Any) -> str:
        self.ledger.mark_creating("contacts", item.source_id or "")
        self.ledger.record_written("contacts", item.source_id or "", f"crm-{item.source_id}", "h")
        return "created"


def test_after_a_batch_every_created_record_is_written_for_other_processes(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = IdLedger(make_engine(url), "loc-1")
    commits = []
    run = GroupCommit.run

    def counting(self: GroupCommit, work: Any) -> Any:
        commits.append(1)
        return run(self, work)

    monkeypatch.setattr(GroupCommit, "run", counting)
    writer = FakeCreates(ledger, summary=RunSummary(["contacts"]), concurrency=4)
    try:
        writer.write_batch("contacts", [{"id": i} for i in range(200)])
    finally:
        writer.close()
    assert written_elsewhere(url) == {str(i): f"crm-{i}" for i in range(200)}
    # one ledger write per record (the intent, with the last written row) and one per worker
    assert len(commits) <= 200 + 4
