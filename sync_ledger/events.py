"""Webhook events in the ledger database: the listener's durable queue and audit trail.

One row per accepted delivery (table ``webhook_events``). What a caller may rely on:

- :meth:`EventStore.add` commits the row before it returns, and refuses a second row with the
  same ``dedupe_key`` (it returns None): a delivery is stored at most once, whatever its retries.
- An event is ``pending`` until a run that started after it was stored has finished well; then it
  is ``handled`` with that run's id and time. Events the listener decided not to act on are kept
  with a reason instead (``ignored_echo``, ``ignored_type``) and never start a run.
- A run claims its events (:meth:`EventStore.claim` writes its id on them) *before* it starts.
  While it runs they stay ``pending``; :meth:`EventStore.finish` marks them ``handled`` once it
  succeeded, :meth:`EventStore.release` gives them back if it failed, and
  :meth:`EventStore.recover` gives back the events of runs that never finished (the listener died)
  so that the next run covers them. Runs are idempotent incremental syncs, so running once more
  is safe; an event marked ``handled`` never starts a run again.
- Nothing here logs a payload: the raw body is kept for audit only (the sync re-reads the record
  through the API, a webhook is only a hint).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from sync_ledger.db import metadata

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Connection, Engine

#: Stored, waiting for (or covered by an unfinished) run.
PENDING = "pending"
#: A run that started after the event was stored finished well.
HANDLED = "handled"
#: Caused by the sync's own write (MOCO ``X-Moco-Origin: api`` by the sync's user): no run.
IGNORED_ECHO = "ignored_echo"
#: An authentic event of a kind the sync does not read (a MOCO invoice, a CRM opportunity).
IGNORED_TYPE = "ignored_type"

DEDUPE_KEY_LENGTH = 255

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),  # "moco" or "contacts"
    # MOCO: moco:<target>:<event>:<record id>:<sha256 of the body>; HighLevel: contacts:<webhookId>
    Column("dedupe_key", String(DEDUPE_KEY_LENGTH), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("direction", String(32), nullable=False),  # the job it starts: moco-to-contacts, ...
    Column("location_id", String(64), nullable=False),  # the Contacts API location of the sync
    # MOCO "<X-Moco-Target>.<X-Moco-Event>" (each at most 64 characters), HighLevel "NoteCreate"
    Column("event_type", String(160), nullable=False),
    Column("record_id", String(255), nullable=True),
    Column("origin", String(64), nullable=True),  # MOCO X-Moco-Origin ("api" or empty)
    Column("user_id", String(64), nullable=True),  # MOCO X-Moco-User-Id
    Column("event_at", DateTime(timezone=True), nullable=True),  # the sender's timestamp
    Column("payload", Text, nullable=False),  # the raw body, as received and verified
    Column("status", String(16), nullable=False),  # pending, handled, ignored_echo, ignored_type
    Column("run_id", String(64), nullable=True),  # the run that covers (or covered) it
    Column("attempts", Integer, nullable=False, default=0),  # failed runs that covered it
    Column("handled_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("dedupe_key", name="uq_webhook_events_dedupe_key"),
    Index("ix_webhook_events_lane", "status", "direction", "location_id"),
    Index("ix_webhook_events_run", "run_id"),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _row(event: NewEvent, received_at: dt.datetime) -> dict[str, object]:
    return {
        "source": event.source,
        "dedupe_key": event.dedupe_key,
        "received_at": received_at,
        "direction": event.direction,
        "location_id": event.location_id,
        "event_type": event.event_type,
        "record_id": event.record_id,
        "origin": event.origin,
        "user_id": event.user_id,
        "event_at": event.event_at,
        "payload": event.payload,
        "status": event.status,
        "attempts": 0,
    }


@dataclass(frozen=True)
class NewEvent:
    """A verified delivery, as the listener stores it."""

    source: str
    dedupe_key: str
    direction: str
    location_id: str
    event_type: str
    record_id: str | None
    origin: str | None
    user_id: str | None
    event_at: dt.datetime | None
    payload: str
    status: str


@dataclass(frozen=True)
class Lane:
    """The runs of one direction for one location: at most one at a time."""

    direction: str
    location_id: str


class EventStore:
    """The ``webhook_events`` table of one ledger database.

    Writes are serialised by a lock in this process: with SQLite, a second writer in the same
    process would otherwise wait in SQLite's busy handler, which sleeps in steps of milliseconds.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._write = threading.Lock()

    def add(self, event: NewEvent) -> int | None:
        """Store ``event`` and commit; its row id, or None when its dedupe key is already stored."""
        return self.add_many([event])[0]

    def add_many(self, events: Sequence[NewEvent]) -> list[int | None]:
        """Store ``events`` with one commit (one disk sync for a burst).

        For each event its row id, or None when its dedupe key is already stored or came earlier
        in ``events``.
        """
        with self._write:
            try:
                with self._engine.begin() as conn:
                    return self._insert(conn, events)
            except IntegrityError:
                # Another process stored one of these keys meanwhile: one transaction each, then.
                results: list[int | None] = []
                for event in events:
                    try:
                        with self._engine.begin() as conn:
                            results.extend(self._insert(conn, [event]))
                    except IntegrityError:  # noqa: PERF203  (rare: a race with another listener)
                        results.append(None)
                return results

    @staticmethod
    def _insert(conn: Connection, events: Sequence[NewEvent]) -> list[int | None]:
        keys = [event.dedupe_key for event in events]
        seen = set(
            conn.execute(
                select(webhook_events.c.dedupe_key).where(webhook_events.c.dedupe_key.in_(keys))
            ).scalars()
        )
        now = _now()
        results: list[int | None] = []
        for event in events:
            if event.dedupe_key in seen:
                results.append(None)
                continue
            seen.add(event.dedupe_key)
            inserted = conn.execute(insert(webhook_events).values(_row(event, now)))
            key = inserted.inserted_primary_key
            results.append(int(key[0]) if key else None)
        return results

    def claim(self, lane: Lane, run_id: str) -> int:
        """Write ``run_id`` on the lane's pending events no run covers yet; how many it took."""
        with self._write, self._engine.begin() as conn:
            result = conn.execute(
                update(webhook_events)
                .where(
                    and_(
                        webhook_events.c.status == PENDING,
                        webhook_events.c.direction == lane.direction,
                        webhook_events.c.location_id == lane.location_id,
                        webhook_events.c.run_id.is_(None),
                    )
                )
                .values(run_id=run_id)
            )
        return int(result.rowcount)

    def finish(self, run_id: str) -> int:
        """Mark the events of the finished, successful run ``run_id`` handled; how many."""
        with self._write, self._engine.begin() as conn:
            result = conn.execute(
                update(webhook_events)
                .where(and_(webhook_events.c.run_id == run_id, webhook_events.c.status == PENDING))
                .values(status=HANDLED, handled_at=_now())
            )
        return int(result.rowcount)

    def release(self, run_id: str) -> int:
        """Give the events of the failed run ``run_id`` back (pending, uncovered); how many."""
        with self._write, self._engine.begin() as conn:
            result = conn.execute(
                update(webhook_events)
                .where(and_(webhook_events.c.run_id == run_id, webhook_events.c.status == PENDING))
                .values(run_id=None, attempts=webhook_events.c.attempts + 1)
            )
        return int(result.rowcount)

    def recover(self) -> int:
        """Give back the events of runs that never finished (call before any run starts)."""
        with self._write, self._engine.begin() as conn:
            result = conn.execute(
                update(webhook_events)
                .where(
                    and_(webhook_events.c.status == PENDING, webhook_events.c.run_id.is_not(None))
                )
                .values(run_id=None)
            )
        return int(result.rowcount)

    def pending_lanes(self) -> list[Lane]:
        """The lanes that have pending events."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(webhook_events.c.direction, webhook_events.c.location_id)
                .where(webhook_events.c.status == PENDING)
                .group_by(webhook_events.c.direction, webhook_events.c.location_id)
            ).all()
        return [Lane(direction, location_id) for direction, location_id in rows]

    def count_pending(self) -> int:
        """How many events wait for a run to finish."""
        with self._engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(webhook_events)
                .where(webhook_events.c.status == PENDING)
            ).scalar_one()
        return int(count)

    def prune(self, older_than: dt.datetime) -> int:
        """Delete settled events received before ``older_than``; pending ones are always kept."""
        with self._write, self._engine.begin() as conn:
            result = conn.execute(
                delete(webhook_events).where(
                    and_(
                        webhook_events.c.status != PENDING,
                        webhook_events.c.received_at < older_than,
                    )
                )
            )
        return int(result.rowcount)
