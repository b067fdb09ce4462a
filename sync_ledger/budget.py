"""A request budget shared by processes through the ledger database: one sliding window per name.

tap-contacts and target-contacts may run at the same time against one location (two processes,
or two machines sharing a PostgreSQL ledger), and the Contacts API counts their requests
together. :class:`RateBudget` hands out at most ``max_requests`` slots per ``window_seconds``
across every process that opens the same budget name in the same ledger database.

What a caller may rely on:

- :meth:`RateBudget.take` (and :meth:`RateBudget.acquire`) blocks until a slot is free and
  takes it; no two takers ever hold more than ``max_requests`` slots within any
  ``window_seconds``. A slot is a row in ``rate_budget_slots`` with its moment; a crashed
  process's slots simply expire.
- :meth:`RateBudget.answered` moves a slot's moment to when its request's answer arrived. The
  API counted the request at some moment between sending and answering, so a slot held for a
  window from the answer covers the API's count whatever the delays on the way (a busy machine,
  a slow network); a window from the taking alone would need a margin as large as those delays.
  A budget whose window holds a margin (``answer_grace``: the Contacts limiter's 0.2 s on 10 s)
  moves no slot whose answer came within that margin: its window from the taking already ends
  a whole window after the answer, and most answers cost no write.
- Slots are taken in small blocks (:attr:`RateBudget.block`, one twentieth of the window's
  requests, at most 10; 1 for a budget of fewer than 40): one write transaction takes up to a
  block of free slots, and the following takes in this process hand them out without touching
  the database. A slot taken ahead and unused for :data:`RESERVED_MAX_AGE` of a window (at most
  :data:`RESERVED_MAX_SECONDS`) is given back; those left when the process ends (fewer than a
  block) expire with the window. Answers are written in bulk too: a moved slot waits in memory
  until the next block is taken, a block's worth of answers is in, or no request of this
  process is in flight, whichever comes first, and at most a quarter of a window. Per request
  that is about one transaction in ``block`` instead of two. On a SQLite file every step goes
  to the driver (SQL compiled once by SQLAlchemy) on a connection of each thread's own
  (:class:`~sync_ledger.db.ThreadConnections`, as the ledger's).
- Each database step is one short write transaction, serialised across processes: SQLite takes
  an exclusive write lock (``BEGIN IMMEDIATE``), PostgreSQL and others lock the budget's row in
  ``rate_budgets`` (``SELECT ... FOR UPDATE``). On PostgreSQL the moments come from the
  database's clock, so machines whose clocks disagree still share one window.
- The table stays small: every acquisition deletes the budget's expired slots.
- Within one process only one thread waits on the database at a time; the others wait on a lock.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    Column,
    Double,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.exc import IntegrityError

from sync_ledger.db import (
    DriverSQL,
    DriverSteps,
    EngineSteps,
    Steps,
    ThreadConnections,
    metadata,
    redact_url,
    sqlite_path,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Engine
    from sqlalchemy.engine import Connection

#: Longest budget name stored as it is; longer names keep a prefix and a digest of the whole.
MAX_NAME_LENGTH = 255
_DIGEST_CHARS = 16
#: Shortest and longest sleep between two looks at a full window, in seconds.
MIN_WAIT_SECONDS = 0.005
MAX_WAIT_SECONDS = 1.0
#: Up to this share of a wait is added at random, so that processes do not wake in lockstep.
WAIT_JITTER = 0.1
#: Slots taken per transaction: this share of the window's requests, within these bounds.
BLOCK_SHARE = 1 / 20
MAX_BLOCK = 10
#: A slot taken ahead is used within this share of a window, and within this many seconds, or
#: given back: its request must be sent close to the moment the other processes see it taken
#: (a caller that never reports answers, like the MOCO limiter, keeps a margin of 1 s).
RESERVED_MAX_AGE = 0.05
RESERVED_MAX_SECONDS = 0.5
#: Answers wait in memory at most this share of a window before they are written.
MOVES_MAX_AGE = 0.25


def default_block(max_requests: int) -> int:
    """Slots taken per transaction for a budget of ``max_requests`` per window."""
    return max(1, min(MAX_BLOCK, int(max_requests * BLOCK_SHARE)))


rate_budgets = Table(
    "rate_budgets",
    metadata,
    # One row per budget: the row other databases than SQLite lock for each acquisition.
    Column("budget", String(MAX_NAME_LENGTH), primary_key=True),
)

rate_budget_slots = Table(
    "rate_budget_slots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("budget", String(MAX_NAME_LENGTH), nullable=False, index=True),
    # Seconds since the epoch when the slot was taken (the database's clock on PostgreSQL).
    Column("taken_at", Double, nullable=False),
)


# Built once with bound parameters: every request takes a slot and answers it, and building the
# statements anew each time cost more CPU than the database work.
_slots = rate_budget_slots.c
_THIS_BUDGET = _slots.budget == bindparam("p_budget")
_DELETE_EXPIRED = delete(rate_budget_slots).where(
    _THIS_BUDGET, _slots.taken_at <= bindparam("p_expired")
)
_COUNT_AND_OLDEST = select(func.count(), func.min(_slots.taken_at)).where(_THIS_BUDGET)
_COUNT_SINCE = (
    select(func.count())
    .select_from(rate_budget_slots)
    .where(_THIS_BUDGET, _slots.taken_at > bindparam("p_since"))
)
_INSERT_SLOT = insert(rate_budget_slots)
# The writes of every request's slot, run by name (sync_ledger.db.Steps): on a SQLite file
# through the driver, SQLAlchemy's SQL compiled once (its own work per statement cost more CPU
# than SQLite's), elsewhere through SQLAlchemy.
_SLOT_STATEMENTS: dict[str, Any] = {  # statements both Executable and ClauseElement
    "insert_slot": _INSERT_SLOT,
    "move_slot": update(rate_budget_slots).where(_slots.id == bindparam("p_slot")),
    "free_slot": delete(rate_budget_slots).where(_slots.id == bindparam("p_slot")),
    "slot_exists": select(_slots.id).where(_slots.id == bindparam("p_slot")),
    "delete_expired": _DELETE_EXPIRED,
    "count_and_oldest": _COUNT_AND_OLDEST,
}
_DRIVER_SQL = DriverSQL(_SLOT_STATEMENTS, sqlite_dialect())
_LOCK_BUDGET = (
    select(rate_budgets.c.budget)
    .where(rate_budgets.c.budget == bindparam("p_budget"))
    .with_for_update()
)
# clock_timestamp(), not now(): now() is the transaction's start, the same all along.
_DATABASE_CLOCK = select(func.extract("epoch", func.clock_timestamp()))


class BudgetSlot(NamedTuple):
    """One taken slot: its row and the moment it was taken (the budget's clock)."""

    id: int
    taken_at: float


def budget_name(*parts: str) -> str:
    """A budget name from ``parts`` (e.g. API base URL and location), at most 255 characters."""
    name = " ".join(parts)
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    return f"{name[: MAX_NAME_LENGTH - _DIGEST_CHARS - 1]}#{digest}"


class RateBudget:
    """At most ``max_requests`` slots per sliding ``window_seconds`` for ``name``, across processes.

    ``engine`` is the ledger database; in-memory SQLite works but shares nothing (use the
    in-process limiter alone then). The ledger's migrations create the tables.
    """

    def __init__(
        self,
        engine: Engine,
        name: str,
        max_requests: int,
        window_seconds: float,
        *,
        block: int | None = None,
        answer_grace: float = 0.0,
    ) -> None:
        if max_requests < 1 or window_seconds <= 0:
            raise ValueError("max_requests must be >= 1 and window_seconds > 0")
        if not 0 <= answer_grace < window_seconds:
            raise ValueError("answer_grace must be >= 0 and shorter than the window")
        if not name or len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"a budget name is 1 to {MAX_NAME_LENGTH} characters (budget_name())")
        self.engine = engine
        self.name = name
        self.max_requests = max_requests
        self.window_seconds = float(window_seconds)
        self.block = default_block(max_requests) if block is None else max(1, block)
        self.answer_grace = float(answer_grace)
        self._reserved_max_age = min(RESERVED_MAX_AGE * self.window_seconds, RESERVED_MAX_SECONDS)
        self._sqlite = engine.dialect.name == "sqlite"
        # On a SQLite file, answers are written on a connection of each thread's own.
        self._threads = (
            ThreadConnections(engine, _DRIVER_SQL)
            if sqlite_path(str(engine.url)) is not None
            else None
        )
        self._postgres = engine.dialect.name == "postgresql"
        self._waiting = threading.Lock()
        # Below: this process's slots taken ahead (with the local moment they were taken), the
        # answers not yet written (slot id, moment on the budget's clock, local moment), the
        # slots handed out and not answered, and the budget clock minus the local one.
        self._local = threading.Lock()
        self._reserved: deque[tuple[BudgetSlot, float]] = deque()
        self._moves: list[tuple[int, float, float]] = []
        self._in_flight = 0
        self._clock_offset = 0.0
        if not self._sqlite:
            self._ensure_row()

    def take(self) -> BudgetSlot:
        """Block until a slot is free, then take it.

        The slot's moment is in seconds since the epoch on the budget's clock (the database's on
        PostgreSQL), the one the window is kept on.
        """
        with self._waiting:
            while True:
                slot = self._reserved_slot()
                if slot is None:
                    slot, wait = self._try_take()
                if slot is not None:
                    with self._local:
                        self._in_flight += 1
                    return slot
                wait = min(max(wait, MIN_WAIT_SECONDS), MAX_WAIT_SECONDS)
                time.sleep(wait * (1 + random.random() * WAIT_JITTER))  # noqa: S311  not a secret

    def acquire(self) -> float:
        """Block until a slot is free, then take it; returns the moment it was taken."""
        return self.take().taken_at

    def answered(self, slot: BudgetSlot) -> None:
        """Hold ``slot`` for a whole window from now: its request's answer (or failure) is here.

        With an ``answer_grace`` (the part of the window that is a margin on the caller's own
        window), an answer that came less than that after the slot was taken moves nothing: the
        window from the taking already ends more than a caller's window after the answer. A slot
        that expired meanwhile (a request slower than the window) is taken again now. The move
        is written with others (see the module's notes), at the latest when no request of this
        process is in flight.
        """
        local = time.time()
        moment = local + self._clock_offset
        with self._local:
            self._in_flight = max(0, self._in_flight - 1)
            if moment - slot.taken_at >= self.answer_grace:
                self._moves.append((slot.id, moment, local))
            due = bool(self._moves) and (
                self._in_flight == 0
                or len(self._moves) >= self.block
                or local - self._moves[0][2] >= MOVES_MAX_AGE * self.window_seconds
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the answers waiting in memory now."""
        with self._pending_moves() as moves:
            if not moves:
                return
            if self._threads is not None:
                with self._threads.transaction() as steps:
                    self._write_moves(steps, moves)
                return
            with self.engine.begin() as conn:
                self._write_moves(EngineSteps(conn, _SLOT_STATEMENTS), moves)

    def in_use(self) -> int:
        """How many slots taken within the last ``window_seconds`` (by every process)."""
        with self.engine.connect() as conn:
            now = self._now(conn)
            count = conn.execute(
                _COUNT_SINCE, {"p_budget": self.name, "p_since": now - self.window_seconds}
            ).scalar_one()
        return int(count)

    # --- internals ---------------------------------------------------------------------------
    @contextmanager
    def _pending_moves(self) -> Iterator[list[tuple[int, float, float]]]:
        """The answers and give-backs waiting in memory, taken out to be written.

        Put back if writing them fails.
        """
        with self._local:
            moves, self._moves = self._moves, []
        try:
            yield moves
        except BaseException:
            with self._local:
                self._moves[:0] = moves
            raise

    def _reserved_slot(self) -> BudgetSlot | None:
        """The oldest slot taken ahead and still fresh; stale ones are given back next time."""
        with self._local:
            while self._reserved:
                slot, taken = self._reserved.popleft()
                if time.time() - taken <= self._reserved_max_age:
                    return slot
                self._moves.append((slot.id, -1.0, taken))  # -1: free it
        return None

    def _try_take(self) -> tuple[BudgetSlot | None, float]:
        """(a slot taken, 0) or (None, seconds until one may be free); takes up to a block."""
        # Read before the database's clock: the offset comes out a little large, so answers'
        # moments estimated with it are a little late, on the safe side.
        local = time.time()
        if self._threads is not None:
            return self._try_take_on_file(self._threads, local)
        with self._pending_moves() as moves, self.engine.connect() as conn:
            self._lock(conn)
            try:
                steps = self._steps(conn)
                self._write_moves(steps, moves)
                now = self._now(conn)
                expired = now - self.window_seconds
                conn.execute(_DELETE_EXPIRED, {"p_budget": self.name, "p_expired": expired})
                count, oldest = conn.execute(_COUNT_AND_OLDEST, {"p_budget": self.name}).one()
                free = min(self.block, self.max_requests - int(count))
                row = {"budget": self.name, "taken_at": now}
                taken = [BudgetSlot(steps.insert("insert_slot", row), now) for _ in range(free)]
                conn.commit()  # with none taken, the expired slots stay deleted
            except BaseException:
                conn.rollback()
                raise
        return self._handed_out(taken, oldest, now, local)

    def _try_take_on_file(
        self, threads: ThreadConnections, local: float
    ) -> tuple[BudgetSlot | None, float]:
        """:meth:`_try_take` on a SQLite file: the same steps on this thread's driver connection.

        SQLAlchemy's connection checkout and statement execution cost several times SQLite's own
        work for these few short statements.
        """
        with self._pending_moves() as moves, threads.transaction() as steps:
            steps.cursor.execute("BEGIN IMMEDIATE")  # the budget's lock, until the commit
            self._write_moves(steps, moves)
            now = time.time()
            budget = {"p_budget": self.name}
            steps.run("delete_expired", {**budget, "p_expired": now - self.window_seconds})
            count, oldest = steps.cursor.execute(
                *_DRIVER_SQL("count_and_oldest", budget)
            ).fetchone()
            free = min(self.block, self.max_requests - int(count))
            row = {"budget": self.name, "taken_at": now}
            taken = [BudgetSlot(steps.insert("insert_slot", row), now) for _ in range(free)]
        return self._handed_out(taken, oldest, now, local)

    def _handed_out(
        self, taken: list[BudgetSlot], oldest: float, now: float, local: float
    ) -> tuple[BudgetSlot | None, float]:
        """The first slot taken (the others wait in reserve), or how long until one is free."""
        if not taken:
            return None, float(oldest) + self.window_seconds - now  # count >= max: not None
        with self._local:
            self._clock_offset = now - local
            self._reserved.extend((slot, local) for slot in taken[1:])
        return taken[0], 0.0

    def _steps(self, conn: Connection) -> Steps:
        """The slot writes in ``conn``'s transaction (on SQLite through its driver's cursor)."""
        if self._sqlite:
            return DriverSteps(conn.connection.cursor(), _DRIVER_SQL)
        return EngineSteps(conn, _SLOT_STATEMENTS)

    def _write_moves(self, steps: Steps, moves: list[tuple[int, float, float]]) -> None:
        """Write answers (a slot held from its answer's moment) and free unused slots (-1)."""
        if not moves:
            return
        freed = [{"p_slot": slot_id} for slot_id, moment, _local in moves if moment < 0]
        if freed:
            steps.many("free_slot", freed)
        answered = [(slot_id, moment) for slot_id, moment, _local in moves if moment >= 0]
        if not answered:
            return
        params = [{"taken_at": moment, "p_slot": slot_id} for slot_id, moment in answered]
        if steps.many("move_slot", params) == len(answered):
            return
        # Some slot expired before its answer (a request slower than the window): hold it
        # again from its answer. Rare, so the slots are looked at one by one.
        for slot_id, moment in answered:
            if steps.first("slot_exists", {"p_slot": slot_id}) is None:
                steps.insert("insert_slot", {"budget": self.name, "taken_at": moment})

    def _lock(self, conn: Connection) -> None:
        """Start the transaction that serialises acquisitions of this budget across processes."""
        if self._sqlite:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        conn.execute(_LOCK_BUDGET, {"p_budget": self.name}).first()

    def _now(self, conn: Connection) -> float:
        if self._postgres:
            return float(conn.execute(_DATABASE_CLOCK).scalar_one())
        return time.time()

    def _ensure_row(self) -> None:
        with self.engine.connect() as conn:
            exists = conn.execute(
                select(rate_budgets.c.budget).where(rate_budgets.c.budget == self.name)
            ).first()
            if exists is not None:
                return
            try:
                conn.execute(insert(rate_budgets).values(budget=self.name))
                conn.commit()
            except IntegrityError:
                conn.rollback()  # another process inserted it first: just as good

    def __repr__(self) -> str:
        return (
            f"RateBudget({redact_url(str(self.engine.url))!r}, {self.name!r}, "
            f"max_requests={self.max_requests}, window_seconds={self.window_seconds})"
        )
