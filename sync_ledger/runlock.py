"""One writing run at a time per location and lane: a lease in the ledger, kept by a heartbeat.

Meltano refuses a second ``meltano run`` with the same state id while one is running, but not a
run with ``--force``, a run under another state id (another environment, an inherited plugin, a
``--state-id-suffix``), a target started outside Meltano, or a run on another machine with its
own system database. :class:`RunLock` covers those: a lane (the target's name, so one lock per
direction) of a location is held by one process at a time.

What a caller may rely on:

- :meth:`RunLock.acquire` takes the lock, or waits up to ``wait_seconds`` for it, or raises
  :class:`RunLockBusy`, whose message names the holder (plugin, process, host, since when).
- The lock is a lease: it expires ``lease_seconds`` after its holder's last heartbeat, so a holder
  that crashed or lost its machine blocks others for at most that long. A held lock renews itself
  on a daemon thread every quarter lease.
- A holder whose lease expired and was taken by another (the process was stalled longer than a
  lease) learns it from :meth:`RunLock.check`, which then raises :class:`RunLockLost`.
- Taking the lock is one conditional ``UPDATE`` of the lane's row (made by an ``INSERT`` that only
  one process can win), in an exclusive write transaction on SQLite; PostgreSQL serialises the
  ``UPDATE`` on the row, and its moments come from the database's clock, so machines whose clocks
  disagree still agree on when a lease ends.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Column, Double, String, Table, and_, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from sync_ledger.db import DEFAULT_LEDGER_URL, make_engine, metadata, redact_url
from sync_ledger.writer import FatalSyncError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy import Engine
    from sqlalchemy.engine import Connection

logger = logging.getLogger("sync_ledger.runlock")

#: How long a lock outlives its holder's last heartbeat, in seconds.
LEASE_SECONDS = 60.0
#: How long a second run waits for the lock by default (``run_lock_wait_seconds``).
DEFAULT_WAIT_SECONDS = 300.0
#: Seconds between two looks at a held lock while waiting (plus up to 10 % at random).
POLL_SECONDS = 1.0
#: Seconds between two "still waiting" lines in the log.
REPORT_SECONDS = 60.0
#: The setting every LedgerTarget takes (JSON schema, added to the target's config schema).
WAIT_SETTING: dict[str, Any] = {
    "type": ["number", "null"],
    "default": DEFAULT_WAIT_SECONDS,
    "description": "Seconds this run waits when another run of the same target is writing the "
    "same location (a run lock in the ledger; its holder renews it every 15 s and it expires 60 "
    "s after a crash). When the wait is over the run stops with a message naming the other run, "
    "writes nothing and passes no state on. 0: stop at once.",
}

run_locks = Table(
    "run_locks",
    metadata,
    Column("location_id", String(64), primary_key=True),
    Column("lane", String(64), primary_key=True),  # the target's name: one lock per direction
    Column("token", String(36), nullable=True),  # the holder's random id; None: free
    Column("holder", String(255), nullable=True),  # who holds it, for people
    # Seconds since the epoch (the database's clock on PostgreSQL).
    Column("acquired_at", Double, nullable=True),
    Column("heartbeat_at", Double, nullable=True),
    Column("expires_at", Double, nullable=True),
)


class RunLockBusy(FatalSyncError):  # noqa: N818  a verdict for the user, like RecordRejected
    """Another run holds the lock, and waiting for it did not help."""


class RunLockLost(FatalSyncError):  # noqa: N818  a verdict for the user
    """This run's lease expired and another run took the lock."""


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Holder:
    """Who holds a lock and since when (moments in seconds since the epoch)."""

    holder: str
    acquired_at: float
    heartbeat_at: float
    expires_at: float

    def describe(self) -> str:
        """``holder``, since when, last heartbeat and when the lease ends, for a message."""
        return (
            f"{self.holder}, running since {_when(self.acquired_at)}, alive at "
            f"{_when(self.heartbeat_at)}, lease until {_when(self.expires_at)}"
        )


def holder_name(lane: str) -> str:
    """This process as a lock's holder: plugin, pid, host, and Meltano's run id when set."""
    run = os.environ.get("MELTANO_RUN_ID")
    return f"{lane} (pid {os.getpid()} on {socket.gethostname()}{f', run {run}' if run else ''})"[
        :255
    ]


class RunLockLike(Protocol):
    """What a target does with its run lock: check it before writing, release it at the end."""

    def check(self) -> None:
        """Raise :class:`RunLockLost` when the lock was lost."""
        ...

    def release(self) -> None:
        """Give the lock back (idempotent)."""
        ...


class NoRunLock:
    """The lock of a run that writes nothing (a dry run): always held, nothing to give back."""

    def check(self) -> None:
        """Never lost."""

    def release(self) -> None:
        """Nothing to give back."""


NO_RUN_LOCK = NoRunLock()


class RunLock:
    """The run lock of one lane (e.g. ``target-contacts``) of one location in the ledger."""

    def __init__(
        self,
        engine: Engine,
        location_id: str,
        lane: str,
        *,
        lease_seconds: float = LEASE_SECONDS,
        holder: str | None = None,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be above 0")
        self.engine = engine
        self.location_id = location_id
        self.lane = lane
        self.lease_seconds = float(lease_seconds)
        self.holder = holder or holder_name(lane)
        self.token = str(uuid.uuid4())
        self._sqlite = engine.dialect.name == "sqlite"
        self._postgres = engine.dialect.name == "postgresql"
        self._held = False
        self._lost: str | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def what(self) -> str:
        """The lock in words: ``target-contacts on location X``."""
        return f"{self.lane} on location {self.location_id}"

    # --- taking ------------------------------------------------------------------------------
    def acquire(self, wait_seconds: float, *, heartbeat: bool = True) -> None:
        """Take the lock, waiting up to ``wait_seconds`` for its holder; then keep it renewed.

        Raises :class:`RunLockBusy` naming the holder when it is still held after the wait.
        """
        started = time.monotonic()
        deadline = started + max(0.0, wait_seconds)
        reported = 0.0
        while True:
            current = self.try_acquire()
            if current is None:
                break
            now = time.monotonic()
            if now >= deadline:
                waited = f"waited {now - started:.0f} s" if wait_seconds > 0 else "did not wait"
                raise RunLockBusy(
                    f"another run is writing {self.what}: {current.describe()}. This run "
                    f"{waited} (run_lock_wait_seconds={wait_seconds:g}) and stops: it wrote "
                    "nothing and passes no state on. Run it again once the other run has "
                    "finished, or raise run_lock_wait_seconds; a run that crashed frees the "
                    f"lock {self.lease_seconds:.0f} s after its last heartbeat."
                )
            if not reported or now - reported >= REPORT_SECONDS:
                logger.warning(
                    "waiting up to %.0f s more for the run lock of %s, held by %s",
                    deadline - now,
                    self.what,
                    current.describe(),
                )
                reported = now
            pause = min(POLL_SECONDS, max(0.0, deadline - now))
            time.sleep(pause * (1 + random.random() * 0.1))  # noqa: S311  not a secret
        waited_s = time.monotonic() - started
        if reported:
            logger.warning("took the run lock of %s after waiting %.0f s", self.what, waited_s)
        if heartbeat:
            self._start_heartbeat()

    def try_acquire(self) -> Holder | None:
        """Take the lock if it is free or its lease is over: None; else who holds it."""
        while True:
            with self.engine.connect() as conn:
                self._begin(conn)
                try:
                    now = self._now(conn)
                    taken = conn.execute(
                        update(run_locks)
                        .where(
                            self._key(),
                            or_(run_locks.c.token.is_(None), run_locks.c.expires_at <= now),
                        )
                        .values(
                            token=self.token,
                            holder=self.holder,
                            acquired_at=now,
                            heartbeat_at=now,
                            expires_at=now + self.lease_seconds,
                        )
                    ).rowcount
                    row = None
                    if not taken:
                        row = conn.execute(select(run_locks).where(self._key())).mappings().first()
                    if not taken and row is None:
                        conn.execute(
                            insert(run_locks).values(
                                location_id=self.location_id,
                                lane=self.lane,
                                token=self.token,
                                holder=self.holder,
                                acquired_at=now,
                                heartbeat_at=now,
                                expires_at=now + self.lease_seconds,
                            )
                        )
                        taken = 1
                    conn.commit()
                except IntegrityError:
                    conn.rollback()
                    continue  # another process made the row first: look again
                except BaseException:
                    conn.rollback()
                    raise
            if taken:
                self._held = True
                self._lost = None
                return None
            assert row is not None  # noqa: S101  not taken means the row is there
            return Holder(
                str(row["holder"]),
                float(row["acquired_at"]),
                float(row["heartbeat_at"]),
                float(row["expires_at"]),
            )

    def current(self) -> Holder | None:
        """Who holds the lock now (a holder whose lease is over counts as none)."""
        with self.engine.connect() as conn:
            now = self._now(conn)
            row = (
                conn.execute(
                    select(run_locks).where(
                        self._key(), run_locks.c.token.is_not(None), run_locks.c.expires_at > now
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        return Holder(
            str(row["holder"]),
            float(row["acquired_at"]),
            float(row["heartbeat_at"]),
            float(row["expires_at"]),
        )

    # --- keeping -----------------------------------------------------------------------------
    def renew(self) -> bool:
        """Move the lease on by ``lease_seconds``; False when the lock is no longer ours."""
        with self.engine.connect() as conn:
            self._begin(conn)
            now = self._now(conn)
            renewed = conn.execute(
                update(run_locks)
                .where(self._key(), run_locks.c.token == self.token)
                .values(heartbeat_at=now, expires_at=now + self.lease_seconds)
            ).rowcount
            conn.commit()
        return bool(renewed)

    def check(self) -> None:
        """Raise :class:`RunLockLost` when the heartbeat found the lock taken by another run."""
        if self._lost is not None:
            raise RunLockLost(self._lost)

    def release(self) -> None:
        """Stop the heartbeat and free the lock if it is still ours (idempotent)."""
        self._stop.set()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join(5)
        if not self._held:
            return
        self._held = False
        with self.engine.connect() as conn:
            self._begin(conn)
            conn.execute(
                update(run_locks)
                .where(self._key(), run_locks.c.token == self.token)
                .values(token=None, holder=None, expires_at=None)
            )
            conn.commit()

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"run-lock {self.what}", daemon=True
        )
        self._heartbeat.start()

    def _beat(self) -> None:
        interval = self.lease_seconds / 4
        last_ok = time.monotonic()
        while not self._stop.wait(interval):
            try:
                renewed = self.renew()
            except DBAPIError as exc:
                # The database may be back before the lease ends; past that, the lock is gone.
                logger.warning("could not renew the run lock of %s: %s", self.what, exc)
                if time.monotonic() - last_ok > self.lease_seconds:
                    self._lose("its lease ran out while the ledger could not be reached")
                    return
                continue
            if not renewed:
                holder = self.current()
                self._lose(
                    f"its lease ran out and {holder.describe() if holder else 'another run'} "
                    "took it"
                )
                return
            last_ok = time.monotonic()

    def _lose(self, why: str) -> None:
        self._held = False
        self._lost = (
            f"this run lost the run lock of {self.what}: {why}. It stops without passing state "
            "on; what it wrote is in the ledger, and the next run continues from there."
        )
        logger.error("%s", self._lost)

    # --- SQL ---------------------------------------------------------------------------------
    def _key(self) -> Any:  # noqa: ANN401  a SQLAlchemy condition
        return and_(run_locks.c.location_id == self.location_id, run_locks.c.lane == self.lane)

    def _begin(self, conn: Connection) -> None:
        if self._sqlite:
            # One writer at a time, and the row read is the row written (no stale snapshot).
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def _now(self, conn: Connection) -> float:
        if self._postgres:
            # clock_timestamp(), not now(): now() is the transaction's start.
            query = select(func.extract("epoch", func.clock_timestamp()))
            return float(conn.execute(query).scalar_one())
        return time.time()

    def __repr__(self) -> str:
        return (
            f"RunLock({redact_url(str(self.engine.url))!r}, {self.location_id!r}, {self.lane!r}, "
            f"lease_seconds={self.lease_seconds})"
        )


def wait_seconds(lane: str, config: Mapping[str, Any]) -> float:
    """``run_lock_wait_seconds`` of ``lane``'s config (:data:`DEFAULT_WAIT_SECONDS` if unset)."""
    value = config.get("run_lock_wait_seconds")
    if value is None:
        return DEFAULT_WAIT_SECONDS
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= 0:
        env = lane.upper().replace("-", "_") + "_RUN_LOCK_WAIT_SECONDS"
        raise ValueError(
            f"run_lock_wait_seconds must be a number of seconds >= 0, got {value!r} ({env})"
        )
    return number


def run_lock_for(lane: str, config: Mapping[str, Any]) -> RunLockLike:
    """Take the run lock of ``lane`` on the configured location, as a target starts writing.

    Waits up to ``run_lock_wait_seconds``; raises :class:`RunLockBusy` after that. A dry run
    writes nothing and takes no lock. The lock is released at interpreter exit at the latest.
    """
    if config.get("dry_run"):
        return NO_RUN_LOCK
    wait = wait_seconds(lane, config)
    engine = make_engine(str(config.get("ledger_url") or DEFAULT_LEDGER_URL))
    lock = RunLock(engine, str(config.get("location_id") or ""), lane)
    lock.acquire(wait)
    atexit.register(lock.release)
    return lock
