"""The ledger's stores on both databases it supports (``ledger_url``: SQLite, then PostgreSQL):
links seen from both directions, rejects, OAuth tokens and their cross-process lock, webhook
events; and the request budget across processes on PostgreSQL, on the database's clock."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import queue
import sys
import threading
import time
import types
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, make_url, select, text

from sync_ledger import budget as budget_module
from sync_ledger.budget import RateBudget
from sync_ledger.db import LedgerDriverMissingError, make_engine
from sync_ledger.events import (
    HANDLED,
    IGNORED_ECHO,
    PENDING,
    EventStore,
    Lane,
    NewEvent,
    webhook_events,
)
from sync_ledger.ledger import CREATING, LINKED, WRITTEN, Direction, IdLedger, links
from sync_ledger.tokens import StoredToken, TokenStore, TokenStoreError, oauth_tokens

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NOW = dt.datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
SPAWN = multiprocessing.get_context("spawn")


@contextmanager
def running(*processes: multiprocessing.process.BaseProcess) -> Iterator[None]:
    """Start ``processes``; after the block wait for them, and kill any still running."""
    for process in processes:
        process.start()
    try:
        yield
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join(10)


def test_both_directions_read_and_write_the_same_links(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    forward = IdLedger(engine, "loc")
    reverse = IdLedger(engine, "loc", Direction.REVERSE)

    forward.mark_creating("contacts", "5")
    intent = forward.get("contacts", "5")
    assert intent is not None
    assert (intent.state, intent.target_id, intent.written) == (CREATING, None, False)
    forward.record_written("contacts", "5", "crm-5", "h5", extra={"tags": ["moco", "Größe €"]})
    forward.record_written(
        "notes", "70", "note-70", "h70", contact_source_id="5", contact_target_id="crm-5"
    )

    # The reverse direction finds the forward pairs by their CRM ids, without a baseline of its own.
    seen = reverse.get("contacts", "crm-5")
    assert seen is not None
    assert (seen.target_id, seen.state, seen.payload_hash, seen.two_way) == (
        "5",
        LINKED,
        None,
        True,
    )
    assert reverse.target_ids_for_contact("notes", "crm-5") == {"70"}
    # A record's own link is not another record's claim (its lookup after a lost answer may
    # adopt what its own row already holds).
    assert reverse.target_ids_for_contact("notes", "crm-5", other_than="note-70") == set()
    assert forward.target_ids_for_contact("notes", "5", other_than="71") == {"note-70"}
    # ... and the forward direction the reverse's.
    reverse.mark_creating("contacts", "crm-9")
    reverse.record_written("contacts", "crm-9", "9", "r9")
    assert forward.get("contacts", "9").target_id == "crm-9"  # type: ignore[union-attr]
    # One row, a baseline per direction.
    reverse.record_written("contacts", "crm-5", "5", "r5")
    mine = forward.get("contacts", "5")
    assert mine is not None
    assert (mine.state, mine.payload_hash, mine.extra) == (
        WRITTEN,
        "h5",
        {"tags": ["moco", "Größe €"]},
    )
    assert reverse.get("contacts", "crm-5").payload_hash == "r5"  # type: ignore[union-attr]
    assert forward.link_count() == 3

    assert forward.claimant("contacts", "crm-5") == "5"
    assert forward.claimant("contacts", "crm-5", other_than="5") is None
    assert reverse.find_by_target("contacts", "9") == "crm-9"
    # Lookups go in chunks; ids the ledger does not know are simply missing.
    wanted = [str(n) for n in range(1200)]
    assert set(forward.lookup("contacts", wanted)) == {"5", "9"}
    assert IdLedger(engine, "other-location").lookup("contacts", wanted) == {}

    forward.forget("contacts", "9")
    assert reverse.get("contacts", "crm-9") is None
    assert forward.link_count() == 2


def test_a_pair_found_while_the_other_direction_still_creates_it_stays_one_link(
    ledger_url: str,
) -> None:
    """target-contacts recorded its intent for MOCO person 7 and the create's answer was lost;
    the next cycle's reverse run meets that CRM contact and links it to person 7 (same e-mail).
    The pair is the intent's row, not a second row for person 7."""
    engine = make_engine(ledger_url)
    forward = IdLedger(engine, "loc")
    reverse = IdLedger(engine, "loc", Direction.REVERSE)
    forward.mark_creating("contacts", "7")

    reverse.record_written("contacts", "crm-7", "7", "r7")

    assert forward.link_count() == 1
    assert forward.get("contacts", "7").target_id == "crm-7"  # type: ignore[union-attr]
    assert reverse.get("contacts", "crm-7").target_id == "7"  # type: ignore[union-attr]
    # Later writes of either direction land on that row too.
    forward.record_written("contacts", "7", "crm-7", "h7")
    reverse.record_written("contacts", "crm-7", "7", "r7b")
    assert forward.link_count() == 1


def test_a_written_record_lands_on_its_own_row_when_its_intent_row_went_away(
    ledger_url: str,
) -> None:
    # The written row updates the intent's row by its key; when another ledger object dropped
    # that pair meanwhile (and SQLite may give its key to the next new row), the write still
    # lands on the record's own row and leaves the other record's intent alone.
    engine = make_engine(ledger_url)
    ledger, other = IdLedger(engine, "loc"), IdLedger(engine, "loc")
    ledger.mark_creating("contacts", "1")
    ledger.record_written("contacts", "1", "c-1", "h1")
    ledger.mark_creating("contacts", "2")
    other.forget("contacts", "2")
    other.mark_creating("contacts", "3")

    ledger.record_written("contacts", "2", "c-2", "h2")

    found = ledger.lookup("contacts", ["1", "2", "3"])
    assert {k: (e.state, e.target_id, e.payload_hash) for k, e in found.items()} == {
        "1": (WRITTEN, "c-1", "h1"),
        "2": (WRITTEN, "c-2", "h2"),
        "3": (CREATING, None, None),
    }
    assert ledger.link_count() == 3


def test_creates_written_from_many_threads_at_once_each_land_once(ledger_url: str) -> None:
    # As a target's writer threads do: an intent, then the written row, per record (on SQLite
    # through each thread's own driver connection), with a reject cleared on the way.
    engine = make_engine(ledger_url)
    ledger = IdLedger(engine, "loc")
    ledger.reject("contacts", "t3-7", {"id": "t3-7"}, field="email", reason="bad", kind="api")
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)

    def write(thread: int) -> None:
        for n in range(40):
            ledger.mark_creating("contacts", f"t{thread}-{n}")
            ledger.record_written("contacts", f"t{thread}-{n}", f"c{thread}-{n}", f"h{n}")

    workers = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    wanted = [f"t{t}-{n}" for t in range(8) for n in range(40)]
    found = ledger.lookup("contacts", wanted)
    assert {k: (e.state, e.target_id) for k, e in found.items()} == {
        k: (WRITTEN, "c" + k[1:]) for k in wanted
    }
    assert ledger.link_count() == 320
    assert ledger.rejects() == []
    with engine.connect() as conn:
        times = conn.execute(select(links.c.updated_at)).scalars().all()
    assert all(isinstance(t, dt.datetime) for t in times)
    assert min(t.replace(tzinfo=t.tzinfo or dt.timezone.utc) for t in times) >= start


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
def test_an_in_memory_ledger_keeps_its_writes(url: str) -> None:
    # Its one connection is the database: no write may take it away from the engine.
    ledger = IdLedger(make_engine(url), "loc")
    ledger.mark_creating("contacts", "1")
    ledger.record_written("contacts", "1", "c-1", "h1")
    ledger.mark_creating("contacts", "2")

    found = ledger.lookup("contacts", ["1", "2"])
    assert {k: (e.state, e.target_id) for k, e in found.items()} == {
        "1": (WRITTEN, "c-1"),
        "2": (CREATING, None),
    }
    assert ledger.rejects() == []


def test_rejects_are_kept_per_direction_and_cleared_by_a_write(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    forward = IdLedger(engine, "loc")
    reverse = IdLedger(engine, "loc", Direction.REVERSE)
    record = {"notesId": "71", "content": "", "title": "Grüße €"}

    for _ in range(2):
        forward.reject("notes", "71", record, field="content", reason="is empty", kind="invalid")
    reverse.reject("notes", "n-1", {"id": "n-1"}, field=None, reason="422 from MOCO", kind="api")

    (kept,) = forward.rejects()
    assert (kept.stream, kept.source_id, kept.record, kept.field, kept.attempts) == (
        "notes",
        "71",
        record,
        "content",
        2,
    )
    assert kept.first_seen <= kept.last_seen
    assert forward.reject_reason("notes", "71") == "invalid: is empty"
    assert forward.rejects(kind="api") == []
    assert [r.source_id for r in reverse.rejects(stream="notes")] == ["n-1"]
    # kept by another run, before this ledger object first needs to know its rejects
    IdLedger(engine, "loc").reject("tasks", "8", {}, field=None, reason="x", kind="api")

    forward.record_written("notes", "71", "note-71", "h71", contact_source_id="5")
    assert [(r.stream, r.source_id) for r in forward.rejects()] == [("tasks", "8")]
    assert forward.reject_reason("notes", "71") is None
    assert len(reverse.rejects()) == 1
    reverse.clear_reject("notes", "n-1")
    assert reverse.rejects() == []

    # Writing and clearing read the rejects once and then only delete what is there: a reject
    # another run kept before this ledger object's first need is cleared, one made afterwards by
    # this object too, and a record without a reject costs no delete.
    forward.clear_reject("tasks", "8")
    forward.reject("tasks", "9", {}, field=None, reason="y", kind="api")
    forward.clear_reject("tasks", "9")
    forward.clear_reject("tasks", "10")
    assert forward.rejects() == []


def token(location_id: str = "loc", **changes: Any) -> StoredToken:
    base = StoredToken(
        location_id=location_id,
        access_token="at-1",
        refresh_token="rt-1",
        expires_at=NOW + dt.timedelta(hours=1),
        scope="contacts.readonly contacts.write",
        user_type="Location",
        company_id="company",
        user_id="user",
        updated_at=NOW,
    )
    return replace(base, **changes)


def test_tokens_are_saved_replaced_deleted_and_encrypted_at_rest(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    plain = TokenStore(engine)

    plain.save(token())
    assert plain.load("loc") == token()
    plain.save(token(access_token="at-2", refresh_token=None))
    assert plain.load("loc") == token(access_token="at-2", refresh_token=None)
    info = plain.info("loc")
    assert info is not None
    assert (info.encrypted, info.has_refresh_token, info.expires_at) == (
        False,
        False,
        token().expires_at,
    )

    key = Fernet.generate_key().decode()
    secret = TokenStore(engine, encryption_key=key)
    secret.save(token("loc-2"))
    with engine.connect() as conn:
        row = conn.execute(select(oauth_tokens).where(oauth_tokens.c.location_id == "loc-2")).one()
    assert row.encrypted
    assert "at-1" not in row.access_token and "rt-1" not in row.refresh_token
    assert secret.load("loc-2") == token("loc-2")
    with pytest.raises(TokenStoreError, match="token_encryption_key"):
        plain.load("loc-2")
    with pytest.raises(TokenStoreError, match="cannot be decrypted"):
        TokenStore(engine, encryption_key=Fernet.generate_key().decode()).load("loc-2")
    assert plain.info("loc-2").encrypted  # type: ignore[union-attr]  readable without the key

    assert plain.delete("loc") is True
    assert plain.delete("loc") is False
    assert plain.load("loc") is None
    password = make_url(ledger_url).password
    assert password is None or password not in repr(plain)  # a URL's password stays hidden


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        ("postgresql+psycopg://ledger:s3cret@db.example/ledger", "-e .[postgres]"),
        ("postgresql://ledger:s3cret@db.example/ledger", "postgresql+psycopg://"),
    ],
)
def test_a_postgresql_ledger_without_its_driver_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, url: str, advice: str
) -> None:
    # A plugin venv installed with `pip_url: -e .`: no PostgreSQL driver at all.
    for driver in ("psycopg", "psycopg2"):
        monkeypatch.setitem(sys.modules, driver, None)
    with pytest.raises(LedgerDriverMissingError) as missing:
        make_engine(url)
    message = str(missing.value)
    assert advice in message and "ledger_url" in message
    assert "s3cret" not in message


def hold_the_token_lock(url: str, holding: Any, release: Any, out: Any, *, die: bool) -> None:
    """Take the lock, say so, keep it until told to let go, then save new tokens (or die)."""
    store = TokenStore(make_engine(url))
    with store.locked("loc") as row:
        holding.set()
        release.wait(60)
        if die:
            os._exit(9)  # no commit, no rollback, no goodbye: like a SIGKILL
        assert row.token is not None
        row.save(replace(row.token, access_token="at-new", refresh_token="rt-new"))
    out.put("saved")


def wait_for_the_token_lock(url: str, holding: Any, trying: Any, release: Any, out: Any) -> None:
    """Once the other process holds the lock, take it; report whether the holder had let go
    by then, and what was stored."""
    store = TokenStore(make_engine(url))
    holding.wait(60)
    trying.set()
    with store.locked("loc") as row:
        let_go = release.is_set()
        assert row.token is not None
        out.put((let_go, row.token.refresh_token))


@pytest.mark.parametrize("holder", ["commits", "dies"])
def test_the_token_lock_holds_other_processes_until_the_holder_is_done(
    ledger_url: str, holder: str
) -> None:
    TokenStore(make_engine(ledger_url)).save(token())
    holding, trying, release, out = SPAWN.Event(), SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    first = SPAWN.Process(
        target=hold_the_token_lock,
        args=(ledger_url, holding, release, out),
        kwargs={"die": holder == "dies"},
    )
    second = SPAWN.Process(
        target=wait_for_the_token_lock, args=(ledger_url, holding, trying, release, out)
    )
    with running(first, second):
        assert trying.wait(60)
        # The waiter asks for the lock now; however long it is kept, it must not get it.
        with pytest.raises(queue.Empty):
            out.get(timeout=1.0)
        release.set()
        results = [out.get(timeout=60) for _ in range(1 if holder == "dies" else 2)]

    let_go, refresh_token = next(r for r in results if isinstance(r, tuple))
    assert let_go  # it got the lock only after the holder let go ...
    if holder == "commits":
        assert "saved" in results
        assert refresh_token == "rt-new"  # ... and then saw what the holder saved
        assert (first.exitcode, second.exitcode) == (0, 0)
    else:
        assert refresh_token == "rt-1"  # ... a dead holder's lock is released, its change undone
        assert (first.exitcode, second.exitcode) == (9, 0)


def event(key: str, **changes: Any) -> NewEvent:
    base = NewEvent(
        source="moco",
        dedupe_key=key,
        direction="moco-to-contacts",
        location_id="loc",
        event_type="contact.update",
        record_id="5",
        origin=None,
        user_id="933",
        event_at=NOW,
        payload='{"id": 5, "firstname": "Jürgen"}',
        status=PENDING,
    )
    return replace(base, **changes)


def statuses(engine: Any) -> dict[str, tuple[str, str | None, int, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(select(webhook_events)).all()
    return {r.dedupe_key: (r.status, r.run_id, r.attempts, r.handled_at is not None) for r in rows}


def test_webhook_events_are_stored_once_claimed_finished_released_and_recovered(
    ledger_url: str,
) -> None:
    engine = make_engine(ledger_url)
    store = EventStore(engine)
    forward = Lane("moco-to-contacts", "loc")
    reverse = Lane("contacts-to-moco", "loc")

    assert isinstance(store.add(event("k1")), int)
    assert store.add(event("k1")) is None  # a retried delivery
    ids = store.add_many(
        [
            event("k2"),
            event("k2"),
            event("k3", source="contacts", direction="contacts-to-moco"),
            event("k4", status=IGNORED_ECHO),
        ]
    )
    assert ids[1] is None
    assert len({ids[0], ids[2], ids[3]} - {None}) == 3
    assert store.count_pending() == 3
    assert set(store.pending_lanes()) == {forward, reverse}

    assert store.claim(forward, "run-1") == 2
    assert store.claim(forward, "run-2") == 0  # covered already
    store.add(event("k5"))  # arrives while run-1 runs: run-1 does not cover it
    assert store.finish("run-1") == 2
    assert store.claim(forward, "run-2") == 1
    assert store.release("run-2") == 1  # run-2 failed
    assert store.claim(forward, "run-3") == 1
    assert store.recover() == 1  # the listener died while run-3 ran
    assert store.claim(forward, "run-4") == 1
    assert store.finish("run-4") == 1

    assert statuses(engine) == {
        "k1": (HANDLED, "run-1", 0, True),
        "k2": (HANDLED, "run-1", 0, True),
        "k3": (PENDING, None, 0, False),
        "k4": (IGNORED_ECHO, None, 0, False),
        "k5": (HANDLED, "run-4", 1, True),
    }
    assert store.pending_lanes() == [reverse]
    assert store.prune(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)) == 4
    assert set(statuses(engine)) == {"k3"}  # pending events are never pruned


def store_at_once(stores: list[EventStore], burst: list[NewEvent]) -> list[list[int | None]]:
    """Each store adds ``burst`` in its own thread, all released at the same moment."""
    together = threading.Barrier(len(stores))
    results: list[list[int | None]] = [[] for _ in stores]

    def deliver(index: int) -> None:
        together.wait(30)
        results[index] = stores[index].add_many(burst)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_two_listeners_storing_the_same_deliveries_at_once_store_each_once(
    ledger_url: str,
) -> None:
    make_engine(ledger_url)
    stores = [EventStore(make_engine(ledger_url)) for _ in range(2)]
    for round_ in range(3):
        results = store_at_once(stores, [event(f"r{round_}-k{n}") for n in range(20)])
        for n in range(20):
            assert sum(r[n] is not None for r in results) == 1, (round_, n, results)
    assert len(statuses(stores[0]._engine)) == 60


# --- the request budget on PostgreSQL: row lock and database clock ---------------------------
MAX = 10
WINDOW = 0.5
PER_PROCESS = 12
#: Each process's own clock is off by this much: only the database's clock counts.
SKEWS = (-3600.0, 0.0, 3600.0)


def take_budget_slots(url: str, skew: float, start: Any, out: Any) -> None:
    """A worker whose wall clock is ``skew`` seconds off takes PER_PROCESS slots of one budget."""
    real = time.time
    budget_module.time = types.SimpleNamespace(  # type: ignore[assignment]
        time=lambda: real() + skew, sleep=time.sleep
    )
    start.wait(60)  # together: they migrate the fresh database and create the budget's row at once
    budget = RateBudget(make_engine(url), "contacts-api https://example loc", MAX, WINDOW)
    out.put([budget.acquire() for _ in range(PER_PROCESS)])


def database_clock(url: str) -> float:
    engine = create_engine(url)
    with engine.connect() as conn:
        now = float(conn.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
    engine.dispose()
    return now


def test_processes_with_disagreeing_clocks_share_one_budget_on_postgres(postgres_url: str) -> None:
    before = database_clock(postgres_url)
    start, out = SPAWN.Barrier(len(SKEWS)), SPAWN.Queue()
    workers = [
        SPAWN.Process(target=take_budget_slots, args=(postgres_url, skew, start, out))
        for skew in SKEWS
    ]
    with running(*workers):
        moments = sorted(m for _ in workers for m in out.get(timeout=60))
    after = database_clock(postgres_url)

    assert [w.exitcode for w in workers] == [0] * len(SKEWS)
    assert len(moments) == len(SKEWS) * PER_PROCESS
    # Every moment is on the database's clock, whatever the process's own clock said ...
    assert before <= moments[0] and moments[-1] <= after
    # ... and no window of WINDOW seconds on it holds more than MAX slots of all processes.
    assert all(moments[k] - moments[k - MAX] >= WINDOW for k in range(MAX, len(moments)))
    budget = RateBudget(make_engine(postgres_url), "contacts-api https://example loc", MAX, WINDOW)
    assert budget.in_use() <= MAX


def test_answers_move_their_slots_and_unused_ones_are_given_back_on_postgres(
    postgres_url: str,
) -> None:
    budget = RateBudget(make_engine(postgres_url), "contacts-api https://example loc", 100, 10.0)
    assert budget.block == 5
    first, second = budget.take(), budget.take()  # a block of 5: 3 more are held ahead
    time.sleep(0.2)  # the answers took a while
    budget.answered(first)
    budget.answered(second)  # nothing in flight now: both answers are written

    def slots() -> dict[int, float]:
        engine = create_engine(postgres_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, taken_at FROM rate_budget_slots")).all()
        engine.dispose()
        return {int(i): float(t) for i, t in rows}

    held = slots()
    assert len(held) == 5
    assert held[first.id] >= first.taken_at + 0.2
    assert held[second.id] >= second.taken_at + 0.2
    # The three taken ahead and never used go back once they are stale, at the next write.
    time.sleep(0.55)
    third = budget.take()
    budget.answered(third)
    assert set(slots()) == {first.id, second.id, third.id, *(s.id for s, _ in budget._reserved)}


def test_on_a_sqlite_file_a_threads_ledger_and_budget_share_a_connection_and_commit_apart(
    tmp_path: Path,
) -> None:
    # One driver connection per thread for the ledger and the budget (SQLite keeps its page
    # cache while no other connection writes); their transactions stay their own.
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    ledger = IdLedger(engine, "loc")
    budget = RateBudget(engine, "contacts-api https://example loc", 100, 10.0)
    assert ledger._threads is not None
    assert budget._threads is not None
    mine = ledger._threads._connection()
    assert budget._threads._connection() is mine
    elsewhere: list[object] = []
    worker = threading.Thread(target=lambda: elsewhere.append(ledger._threads._connection()))  # type: ignore[union-attr]
    worker.start()
    worker.join()
    assert elsewhere
    assert elsewhere[0] is not mine

    ledger.mark_creating("contacts", "1")
    slot = budget.take()
    ledger.record_written("contacts", "1", "crm-1", "h1")
    budget.answered(slot)

    def expire_all_then_fail() -> None:
        with budget._threads.transaction() as steps:  # type: ignore[union-attr]
            steps.run("delete_expired", {"p_budget": budget.name, "p_expired": time.time() + 60})
            raise RuntimeError  # rolled back: the budget's slots stay, the ledger's row too

    with pytest.raises(RuntimeError):
        expire_all_then_fail()
    # Another process's view: both writes are committed.
    seen = make_engine(url)
    assert IdLedger(seen, "loc").get("contacts", "1").target_id == "crm-1"  # type: ignore[union-attr]
    assert RateBudget(seen, budget.name, 100, 10.0).in_use() >= 1
