"""The ledger of links: which MOCO record and which Contacts API record belong together.

One row of ``links`` per pair, whichever side created it: a MOCO person and a CRM contact, a MOCO
comment and a CRM note (or the CRM task or appointment it mirrors), a MOCO to-do and the CRM task
made from it. Both directions read and write the same rows: the forward direction (MOCO -> CRM,
target-contacts) looks a pair up by its MOCO id, the reverse direction (CRM -> MOCO, target-moco) by
its CRM id, so what one direction created is never created again by the other.

Each direction keeps its own baseline on the row: its state (``creating``: an intent written before
a create call, so that after a crash or a lost answer the next attempt looks before it creates;
``written``), the hash of the payload it last wrote, and what a later diff needs (``extra``). A
link one direction never wrote reads as ``linked`` for it: written, with no baseline, so the first
record through compares with the other side before it writes anything.

Rejected records are kept whole with the field and reason, per direction, so that they can be
listed and retried.

With another source than MOCO feeding target-contacts, ``moco_id`` holds that source's ids.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    Row,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)

from sync_ledger.db import (
    DriverSQL,
    EngineSteps,
    GroupCommit,
    Steps,
    ThreadConnections,
    metadata,
    sqlite_path,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator


class Direction(str, Enum):
    """Which way records flow: ``forward`` into the Contacts API, ``reverse`` into MOCO."""

    FORWARD = "forward"
    REVERSE = "reverse"


#: Per direction and input stream: the record kind on the source side and on the target side.
KINDS: dict[Direction, dict[str, tuple[str, str]]] = {
    Direction.FORWARD: {
        "contacts": ("person", "contact"),
        "tasks": ("todo", "task"),
        "notes": ("comment", "note"),
    },
    Direction.REVERSE: {
        "contacts": ("contact", "person"),
        "notes": ("note", "comment"),
        "tasks": ("task", "comment"),
        "appointments": ("appointment", "comment"),
    },
}

links = Table(
    "links",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("location_id", String(64), nullable=False),
    Column("moco_type", String(16), nullable=False),  # person, comment, todo
    Column("moco_id", String(255), nullable=True),  # None while the reverse direction creates it
    Column("crm_type", String(16), nullable=False),  # contact, note, task, appointment
    Column("crm_id", String(255), nullable=True),  # None while the forward direction creates it
    Column("moco_parent", String(255), nullable=True),  # the person of a comment or to-do
    Column("crm_parent", String(255), nullable=True),  # the contact of a note, task, appointment
    Column("fwd_state", String(16), nullable=True),  # None, "creating" or "written"
    Column("fwd_hash", String(64), nullable=True),
    Column("fwd_extra", Text, nullable=True),  # JSON: what the next forward diff needs
    Column("rev_state", String(16), nullable=True),
    Column("rev_hash", String(64), nullable=True),
    Column("rev_extra", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_links_moco", "location_id", "moco_type", "moco_id", unique=True),
    # Not unique: with merge_shared_contacts several MOCO people may share one CRM contact.
    Index("ix_links_crm", "location_id", "crm_type", "crm_id"),
    Index("ix_links_moco_parent", "location_id", "moco_parent"),
    Index("ix_links_crm_parent", "location_id", "crm_parent"),
)

rejects = Table(
    "rejects",
    metadata,
    Column("location_id", String(64), primary_key=True),
    Column("direction", String(16), primary_key=True),
    Column("stream", String(32), primary_key=True),
    Column("source_id", String(255), primary_key=True),
    Column("record", Text, nullable=False),
    Column("field", String(255), nullable=True),
    Column("reason", Text, nullable=False),
    Column("kind", String(32), nullable=False),  # invalid, missing_contact, api, shared_identity
    Column("attempts", Integer, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)

_LOOKUP_CHUNK = 500
WRITTEN = "written"
CREATING = "creating"
#: The state of a link the asking direction never wrote: the other direction made the pair.
LINKED = "linked"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger knows of one source record, seen from one direction.

    ``target_id`` is the record's counterpart on the target side; ``payload_hash`` and ``extra``
    are this direction's baseline (None and empty for a ``linked`` pair this direction never
    wrote). ``two_way`` says the other direction has written or read this pair too, so that the
    target may hold changes this direction has not seen. ``mirror`` says the source record is
    itself the copy of a target record of another kind (a MOCO comment that mirrors a CRM task):
    this direction leaves it alone.
    """

    stream: str
    source_id: str
    target_id: str | None
    payload_hash: str | None
    state: str
    extra: dict[str, Any]
    contact_source_id: str | None
    two_way: bool = False
    mirror: bool = False
    #: The counterpart of the record's contact (the CRM contact of a note, the MOCO person of a
    #: comment), when the ledger knows it.
    contact_target_id: str | None = None
    #: The other direction's ``extra`` as stored (JSON), read through :attr:`other_extra`.
    other_extra_json: str | None = field(default=None, repr=False)

    @property
    def written(self) -> bool:
        """Whether the counterpart exists on the target side (not just an intent to create it)."""
        return self.state in (WRITTEN, LINKED) and self.target_id is not None

    @cached_property
    def other_extra(self) -> dict[str, Any]:
        """What the other direction kept of this pair after its last write (empty: nothing).

        A direction with no baseline of its own reads here whether the pair was left in sync
        (see :mod:`sync_ledger.merge`'s ``SYNCED_*`` keys).
        """
        return json.loads(self.other_extra_json) if self.other_extra_json else {}


@dataclass(frozen=True)
class Reject:
    """A rejected record with its reason."""

    stream: str
    source_id: str
    record: dict[str, Any]
    field: str | None
    reason: str
    kind: str
    attempts: int
    first_seen: dt.datetime
    last_seen: dt.datetime


@dataclass(frozen=True)
class _Side:
    """The column names of one direction's source side, target side and baseline."""

    source_id: str
    source_type: str
    source_parent: str
    target_id: str
    target_type: str
    target_parent: str
    state: str
    hash: str
    extra: str
    other_state: str
    other_extra: str


_SIDES = {
    Direction.FORWARD: _Side(
        "moco_id",
        "moco_type",
        "moco_parent",
        "crm_id",
        "crm_type",
        "crm_parent",
        "fwd_state",
        "fwd_hash",
        "fwd_extra",
        "rev_state",
        "rev_extra",
    ),
    Direction.REVERSE: _Side(
        "crm_id",
        "crm_type",
        "crm_parent",
        "moco_id",
        "moco_type",
        "moco_parent",
        "rev_state",
        "rev_hash",
        "rev_extra",
        "fwd_state",
        "fwd_extra",
    ),
}


@dataclass(frozen=True)
class _Statements:
    """One direction's hot statements, built once with bound parameters (``p_*``).

    Building a SQLAlchemy statement and its cache key anew for every call cost more CPU than the
    database work itself (about 0.5 ms per statement against 0.08 ms for a prebuilt one); these
    run for every record a target writes.
    """

    by_source: Any
    unsourced_by_target: Any
    update_row: Any
    update_intent: Any
    insert_row: Any
    lookup: Any
    clear_reject: Any
    drop_unsent_intent: Any


@cache
def _statements(direction: Direction) -> _Statements:
    side = _SIDES[direction]
    col = links.c
    here = col.location_id == bindparam("p_location")
    source_type = col[side.source_type] == bindparam("p_source_type")
    return _Statements(
        by_source=select(col.id)
        .where(here, source_type, col[side.source_id] == bindparam("p_source_id"))
        .order_by(col.id)
        .limit(1),
        unsourced_by_target=select(col.id)
        .where(
            here,
            col[side.target_type] == bindparam("p_target_type"),
            col[side.target_id] == bindparam("p_target_id"),
            col[side.source_id].is_(None),
        )
        .order_by(col.id)
        .limit(1),
        # SET takes the columns the parameters name (every key but p_row).
        update_row=update(links).where(col.id == bindparam("p_row")),
        update_intent=update(links).where(
            col.id == bindparam("p_row"),
            source_type,
            col[side.source_id] == bindparam("p_source_id"),
        ),
        insert_row=links.insert(),
        lookup=select(links)
        .where(
            here,
            source_type,
            col[side.source_id].in_(bindparam("p_source_ids", expanding=True)),
        )
        .order_by(col.id),
        clear_reject=delete(rejects).where(
            rejects.c.location_id == bindparam("p_location"),
            rejects.c.direction == direction.value,
            rejects.c.stream == bindparam("p_stream"),
            rejects.c.source_id == bindparam("p_source_id"),
        ),
        # An intent recorded ahead whose call was never sent, as long as it is just that.
        drop_unsent_intent=delete(links).where(
            col.id == bindparam("p_row"),
            col[side.state] == CREATING,
            col[side.target_id].is_(None),
        ),
    )


P = ParamSpec("P")
R = TypeVar("R")


class CarriedWriteError(RuntimeError):
    """A written row carried to a later commit (:meth:`IdLedger.carrying`) could not be written."""


@dataclass
class _Carried:
    """A written row waiting for its thread's next ledger write."""

    stream: str
    source_id: str
    write: Callable[[Steps], None]


class _Carrying(threading.local):
    """Per thread: whether written rows are carried, and those waiting."""

    def __init__(self) -> None:
        self.on = False
        self.rows: list[_Carried] = []


def _sees_carried_rows(
    method: Callable[Concatenate[IdLedger, P], R],
) -> Callable[Concatenate[IdLedger, P], R]:
    """Commit the calling thread's carried written rows before ``method`` reads or writes."""

    @functools.wraps(method)
    def wrapper(self: IdLedger, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._carrying.rows:
            self.flush()
        return method(self, *args, **kwargs)

    return wrapper


class IdLedger:
    """The links of one Contacts API location, seen from one direction.

    Thread-safe: every write is committed when its call returns (the intents and written rows of
    concurrent writer threads may share one commit: :class:`~sync_ledger.db.GroupCommit`), except
    the written rows of a thread inside :meth:`carrying`, which ride along with that thread's next
    write. Source
    ids are the ids of the records a target receives (MOCO ids for target-contacts, CRM ids for
    target-moco); target ids are their counterparts.
    """

    def __init__(
        self, engine: Engine, location_id: str, direction: Direction = Direction.FORWARD
    ) -> None:
        self.engine = engine
        self.location_id = location_id
        self.direction = direction
        self._side = _SIDES[direction]
        self._kinds = KINDS[direction]
        self._sql = _statements(direction)
        # The (stream, source id) of this direction's rejects, read once on first need: most
        # records have none, and clearing a reject that is not there still took a write
        # transaction per unchanged record. Kept current by this object's own writes (one
        # target writes a location at a time: the run lock).
        self._rejected: set[tuple[str, str]] | None = None
        self._rejected_lock = threading.Lock()
        # The row of each intent this object marked and has not yet recorded as written: the
        # written row then updates it by its primary key instead of looking it up again.
        self._intent_rows: dict[tuple[str, str], int] = {}
        # The creates whose intents mark_creating_ahead committed and mark_creating has not
        # been called for yet: that call is then free.
        self._marked_ahead: set[tuple[str, str]] = set()
        # A SQLite file: the intent and the written row of a create go to the driver itself, on
        # a connection of each writing thread's own (taken from the engine's pool once, with its
        # settings, and kept: a checkout and return per statement cost as much as the
        # statement). Not in-memory SQLite: its one connection is the database.
        on_file = sqlite_path(str(engine.url)) is not None
        self._threads = (
            ThreadConnections(engine, DriverSQL(vars(self._sql), engine.dialect))
            if on_file
            else None
        )
        # Intents and written rows of the writer threads share commits (sync_ledger.db).
        self._group = GroupCommit(self._writing)
        self._carrying = _Carrying()

    # --- reading -------------------------------------------------------------------------
    def _col(self, name: str) -> Any:  # noqa: ANN401  a SQLAlchemy column of links
        return links.c[name]

    def _kind(self, stream: str) -> tuple[str, str]:
        try:
            return self._kinds[stream]
        except KeyError:
            msg = f"the ledger knows no {self.direction.value} stream {stream!r}"
            raise ValueError(msg) from None

    def _entry(self, stream: str, row: Row[Any]) -> LedgerEntry:
        side = self._side
        mapping = row._mapping  # noqa: SLF001  SQLAlchemy's documented row mapping
        state = mapping[side.state]
        target_id = mapping[side.target_id]
        if state is None:
            state = LINKED if target_id is not None else CREATING
        extra = mapping[side.extra]
        return LedgerEntry(
            stream=stream,
            source_id=str(mapping[side.source_id]),
            target_id=target_id,
            payload_hash=mapping[side.hash],
            state=state,
            extra=json.loads(extra) if extra else {},
            contact_source_id=mapping[side.source_parent],
            two_way=mapping[side.other_state] is not None,
            mirror=mapping[side.target_type] != self._kind(stream)[1],
            contact_target_id=mapping[side.target_parent],
            other_extra_json=mapping[side.other_extra],
        )

    @_sees_carried_rows
    def lookup(self, stream: str, source_ids: Iterable[str]) -> dict[str, LedgerEntry]:
        """Entries for the given source ids (absent ids are simply missing from the result)."""
        source_type, _target_type = self._kind(stream)
        side = self._side
        ids = list(dict.fromkeys(source_ids))
        found: dict[str, LedgerEntry] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[start : start + _LOOKUP_CHUNK]
                rows = conn.execute(
                    self._sql.lookup,
                    {
                        "p_location": self.location_id,
                        "p_source_type": source_type,
                        "p_source_ids": chunk,
                    },
                )
                for row in rows:
                    found.setdefault(str(row._mapping[side.source_id]), self._entry(stream, row))  # noqa: SLF001
        return found

    def get(self, stream: str, source_id: str) -> LedgerEntry | None:
        """The entry of one source record, or None when the ledger does not know it."""
        return self.lookup(stream, [source_id]).get(source_id)

    @_sees_carried_rows
    def target_ids_for_contact(
        self, stream: str, contact_source_id: str, *, other_than: str | None = None
    ) -> set[str]:
        """Target ids already linked for ``stream`` on one contact, whichever direction linked them.

        A lookup after a lost answer skips them, so it never adopts another record's counterpart.
        ``other_than`` is the looking record's own source id: what its own link holds (the other
        direction met the counterpart first and linked it) is not another record's claim.
        """
        _source_type, target_type = self._kind(stream)
        side = self._side
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(self._col(side.target_id), self._col(side.source_id)).where(
                    and_(
                        links.c.location_id == self.location_id,
                        self._col(side.target_type) == target_type,
                        self._col(side.source_parent) == contact_source_id,
                        self._col(side.target_id).is_not(None),
                    )
                )
            )
            return {
                str(target_id)
                for target_id, source_id in rows
                if other_than is None or str(source_id) != other_than
            }

    @_sees_carried_rows
    def created_by_the_other_direction(self, stream: str, contact_target_id: str) -> set[str]:
        """Targets of ``stream`` on one contact whose counterpart the other direction is creating.

        Its intent is recorded and the id unknown (a lost answer, a crash). A source record this
        direction meets unlinked may be that counterpart: it is matched against these before
        anything is created for it, so the pair is not made twice.
        """
        source_type, target_type = self._kind(stream)
        side = self._side
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(self._col(side.target_id)).where(
                    and_(
                        links.c.location_id == self.location_id,
                        self._col(side.target_type) == target_type,
                        self._col(side.source_type) == source_type,
                        self._col(side.target_parent) == contact_target_id,
                        self._col(side.other_state) == CREATING,
                        self._col(side.source_id).is_(None),
                        self._col(side.target_id).is_not(None),
                    )
                )
            )
            return {str(row[0]) for row in rows}

    @_sees_carried_rows
    def claimant(self, stream: str, target_id: str, *, other_than: str | None = None) -> str | None:
        """A source record of ``stream`` linked to target ``target_id``, or None.

        ``other_than`` (the asking record) does not count: None means no other record claims it.
        A link the other direction made counts too (its source-side id is the claimant).
        """
        source_type, target_type = self._kind(stream)
        side = self._side
        query = select(self._col(side.source_id)).where(
            and_(
                links.c.location_id == self.location_id,
                self._col(side.target_type) == target_type,
                self._col(side.target_id) == target_id,
                self._col(side.source_type) == source_type,
                self._col(side.source_id).is_not(None),
            )
        )
        if other_than is not None:
            query = query.where(self._col(side.source_id) != other_than)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(links.c.id).limit(1)).first()
        return None if row is None else str(row[0])

    def find_by_target(self, stream: str, target_id: str) -> str | None:
        """The source id linked to ``target_id`` (any direction), or None."""
        return self.claimant(stream, target_id)

    # --- writing -------------------------------------------------------------------------
    def _upsert(self, steps: Steps, stream: str, source_id: str, values: dict[str, Any]) -> int:
        """Write ``values`` into the source record's row (made if missing); returns its id."""
        source_type, target_type = self._kind(stream)
        side = self._side
        # The first pair of this source record (with merge_shared_contacts a CRM contact may
        # pair with several MOCO people; the reverse direction writes to the first of them).
        row_id = steps.first(
            "by_source",
            {
                "p_location": self.location_id,
                "p_source_type": source_type,
                "p_source_id": source_id,
            },
        )
        values = {**values, "updated_at": _now()}
        if row_id is None and values.get(side.target_id) is not None:
            # The other direction is creating this target's counterpart (its intent, no id yet,
            # after a lost answer or a crash): the source record written here is that
            # counterpart, so the pair stays one row (a second row for the target would break
            # the unique index on every later write).
            row_id = steps.first(
                "unsourced_by_target",
                {
                    "p_location": self.location_id,
                    "p_target_type": target_type,
                    "p_target_id": values[side.target_id],
                },
            )
            values = {**values, side.source_id: source_id, side.source_type: source_type}
        if row_id is not None:
            steps.run("update_row", {**values, "p_row": row_id})
            return int(row_id)
        row = {
            "location_id": self.location_id,
            side.source_type: source_type,
            side.source_id: source_id,
            side.target_type: target_type,
        }
        return steps.insert("insert_row", {**row, **values})

    @contextmanager
    def _writing(self) -> Iterator[Steps]:
        """One write transaction: through the driver on a SQLite file, else SQLAlchemy's."""
        if self._threads is None:
            with self.engine.begin() as conn:
                yield EngineSteps(conn, vars(self._sql))
            return
        with self._threads.transaction() as steps:
            yield steps

    def mark_creating(
        self, stream: str, source_id: str, *, contact_source_id: str | None = None
    ) -> None:
        """Record the intent to create, before the create call is sent.

        Free for a create whose intent :meth:`mark_creating_ahead` recorded: that row is
        committed already, and this call is the one it stood for.
        """
        try:
            self._marked_ahead.remove((stream, source_id))
        except KeyError:
            pass
        else:
            return
        values = self._intent(contact_source_id)
        row_id = self._commit(lambda steps: self._upsert(steps, stream, source_id, values))
        self._intent_rows[stream, source_id] = row_id

    def mark_creating_ahead(self, stream: str, source_ids: list[str]) -> None:
        """Record the intents of several creates in one commit, before any of their calls.

        A writer thread that takes a block of new records commits their intents together
        (with its written rows carried so far): one commit for the block instead of one per
        record. Each create's own :meth:`mark_creating` then costs nothing. An intent whose
        call is never sent (the run stopped first) is what a crash during the call leaves: the
        next run looks for the record before creating it.
        """
        values = self._intent(None)

        def mark(steps: Steps) -> list[int]:
            return [self._upsert(steps, stream, source_id, values) for source_id in source_ids]

        rows = self._commit(mark)
        for source_id, row_id in zip(source_ids, rows, strict=True):
            self._intent_rows[stream, source_id] = row_id
            self._marked_ahead.add((stream, source_id))

    def drop_unsent(self, stream: str, source_ids: list[str]) -> None:
        """Drop the intents :meth:`mark_creating_ahead` recorded for creates never started.

        A writer that stops before it reaches some records of its block hands them back: their
        rows were made by the intent alone, and no call was sent for them. Those whose
        :meth:`mark_creating` came (their call may be under way or lost) are kept.
        """
        rows = []
        for source_id in source_ids:
            key = (stream, source_id)
            if key in self._marked_ahead:
                self._marked_ahead.discard(key)
                row_id = self._intent_rows.pop(key, None)
                if row_id is not None:
                    rows.append({"p_row": row_id})
        if rows:
            self._commit(lambda steps: steps.many("drop_unsent_intent", rows))

    def _intent(self, contact_source_id: str | None) -> dict[str, Any]:
        """The columns of this direction's intent to create."""
        side = self._side
        return {
            side.state: CREATING,
            side.target_id: None,
            side.hash: None,
            side.extra: None,
            side.source_parent: contact_source_id,
        }

    def record_written(
        self,
        stream: str,
        source_id: str,
        target_id: str,
        payload_hash: str,
        *,
        extra: dict[str, Any] | None = None,
        contact_source_id: str | None = None,
        contact_target_id: str | None = None,
    ) -> None:
        """Record what was written (this direction's new baseline); its reject is cleared.

        ``contact_target_id`` is the target-side parent (the contact or person the written note,
        task or comment belongs to), so that the other direction sees the pair on its parent too.
        """
        side = self._side
        source_type, target_type = self._kind(stream)
        values: dict[str, Any] = {
            side.state: WRITTEN,
            side.target_id: target_id,
            side.target_type: target_type,
            side.hash: payload_hash,
            side.extra: json.dumps(extra) if extra else None,
            side.source_parent: contact_source_id,
        }
        if contact_target_id is not None:
            values[side.target_parent] = contact_target_id
        row_id = self._intent_rows.pop((stream, source_id), None)
        rejected = self._may_be_rejected(stream, source_id)

        def write(steps: Steps) -> None:
            # The row of this object's own intent, by its key; if that row is gone (the pair was
            # dropped meanwhile), the record's row is looked up or made as for any other write.
            by_key = {"p_row": row_id, "p_source_type": source_type, "p_source_id": source_id}
            updated = row_id is not None and steps.run(
                "update_intent", {**values, "updated_at": _now(), **by_key}
            )
            if updated != 1:
                self._upsert(steps, stream, source_id, values)
            if rejected:  # in the same transaction as the written row
                steps.run("clear_reject", self._reject_params(stream, source_id))

        if self._carrying.on:
            self._carrying.rows.append(_Carried(stream, source_id, write))
            return
        self._group.run(write)
        self._forget_rejected(stream, source_id)

    # --- written rows carried to the next commit ---------------------------------------------
    @contextmanager
    def carrying(self) -> Iterator[None]:
        """Within the block, this thread's written rows wait for its next ledger write.

        A writer thread's written row (after a create's answer) then shares the commit of its
        next record's intent instead of taking a commit of its own: half the commits of a first
        sync. Every other call of this ledger on the thread commits the waiting rows first (so
        the thread reads what it wrote), and the block commits the rest when it ends, however
        it ends. A crash before that leaves those creates as intents without their answer, as a
        crash during their calls does: the next run looks for each before creating it.
        """
        state = self._carrying
        state.on = True
        try:
            yield
        finally:
            state.on = False
            self.flush()

    def flush(self) -> None:
        """Commit the calling thread's carried written rows (see :meth:`carrying`)."""
        carried, self._carrying.rows = self._carrying.rows, []
        if carried:
            self._write_carried(carried)

    def _commit(self, work: Callable[[Steps], R]) -> R:
        """``work`` in a committed transaction, with the thread's carried written rows."""
        carried, self._carrying.rows = self._carrying.rows, []
        if not carried:
            return self._group.run(work)

        def with_carried(steps: Steps) -> R:
            for row in carried:
                row.write(steps)
            return work(steps)

        try:
            result = self._group.run(with_carried)
        except Exception:  # noqa: BLE001  each part again alone, so a failure is its own
            self._write_carried(carried)
            return self._group.run(work)
        self._carried_done(carried)
        return result

    def _write_carried(self, carried: list[_Carried]) -> None:
        def write_all(steps: Steps) -> None:
            for row in carried:
                row.write(steps)

        try:
            self._group.run(write_all)
        except Exception as error:
            names = ", ".join(f"{row.stream} {row.source_id}" for row in carried)
            msg = (
                f"recording {names} as written in the ledger failed ({type(error).__name__}); "
                "their creates are kept as intents, and the next run looks for them before "
                "creating them again"
            )
            raise CarriedWriteError(msg) from error
        self._carried_done(carried)

    def _carried_done(self, carried: list[_Carried]) -> None:
        for row in carried:
            self._forget_rejected(row.stream, row.source_id)

    @_sees_carried_rows
    def forget(self, stream: str, source_id: str) -> None:
        """Drop the pair (its target was deleted and must be created anew)."""
        source_type, _target_type = self._kind(stream)
        side = self._side
        self._intent_rows.pop((stream, source_id), None)
        self._marked_ahead.discard((stream, source_id))
        with self.engine.begin() as conn:
            conn.execute(
                delete(links).where(
                    and_(
                        links.c.location_id == self.location_id,
                        self._col(side.source_type) == source_type,
                        self._col(side.source_id) == source_id,
                    )
                )
            )

    @_sees_carried_rows
    def count(self, stream: str) -> int:
        """How many records of ``stream`` have a counterpart (links of its kind, any direction)."""
        source_type, target_type = self._kind(stream)
        side = self._side
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(links)
                    .where(
                        and_(
                            links.c.location_id == self.location_id,
                            self._col(side.source_type) == source_type,
                            self._col(side.target_type) == target_type,
                            self._col(side.source_id).is_not(None),
                            self._col(side.target_id).is_not(None),
                        )
                    )
                ).scalar_one()
            )

    @_sees_carried_rows
    def link_count(self) -> int:
        """How many pairs this location has (both directions)."""
        with self.engine.connect() as conn:
            return len(
                conn.execute(
                    select(links.c.id).where(
                        and_(
                            links.c.location_id == self.location_id,
                            or_(links.c.moco_id.is_not(None), links.c.crm_id.is_not(None)),
                        )
                    )
                ).all()
            )

    # --- rejects -------------------------------------------------------------------------
    def _may_be_rejected(self, stream: str, source_id: str) -> bool:
        with self._rejected_lock:
            if self._rejected is None:
                query = select(rejects.c.stream, rejects.c.source_id).where(
                    rejects.c.location_id == self.location_id,
                    rejects.c.direction == self.direction.value,
                )
                with self.engine.connect() as conn:
                    self._rejected = {(row[0], row[1]) for row in conn.execute(query)}
            return (stream, source_id) in self._rejected

    def _forget_rejected(self, stream: str, source_id: str) -> None:
        with self._rejected_lock:
            if self._rejected is not None:
                self._rejected.discard((stream, source_id))

    def _reject_params(self, stream: str, source_id: str) -> dict[str, str]:
        return {"p_location": self.location_id, "p_stream": stream, "p_source_id": source_id}

    def _reject_key(self, stream: str, source_id: str) -> Any:  # noqa: ANN401  a SQL condition
        return and_(
            rejects.c.location_id == self.location_id,
            rejects.c.direction == self.direction.value,
            rejects.c.stream == stream,
            rejects.c.source_id == source_id,
        )

    @_sees_carried_rows
    def reject(
        self,
        stream: str,
        source_id: str,
        record: dict[str, Any],
        *,
        field: str | None,
        reason: str,
        kind: str,
    ) -> None:
        """Keep a rejected record with its reason (attempts count up on each rejection)."""
        now = _now()
        text = json.dumps(record, default=str, ensure_ascii=False)
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(rejects)
                .where(self._reject_key(stream, source_id))
                .values(
                    record=text,
                    field=field,
                    reason=reason,
                    kind=kind,
                    attempts=rejects.c.attempts + 1,
                    last_seen=now,
                )
            ).rowcount
            if not changed:
                conn.execute(
                    rejects.insert().values(
                        location_id=self.location_id,
                        direction=self.direction.value,
                        stream=stream,
                        source_id=source_id,
                        record=text,
                        field=field,
                        reason=reason,
                        kind=kind,
                        attempts=1,
                        first_seen=now,
                        last_seen=now,
                    )
                )
        with self._rejected_lock:
            if self._rejected is not None:
                self._rejected.add((stream, source_id))

    @_sees_carried_rows
    def clear_reject(self, stream: str, source_id: str) -> None:
        """Forget that a record was rejected (it went through, or needs no call any more)."""
        if not self._may_be_rejected(stream, source_id):
            return
        with self.engine.begin() as conn:
            conn.execute(self._sql.clear_reject, self._reject_params(stream, source_id))
        self._forget_rejected(stream, source_id)

    @_sees_carried_rows
    def reject_reason(self, stream: str, source_id: str) -> str | None:
        """The kind and reason a record is rejected for (``"kind: reason"``), None if it is not."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(rejects.c.kind, rejects.c.reason).where(self._reject_key(stream, source_id))
            ).first()
        return None if row is None else f"{row.kind}: {row.reason}"

    @_sees_carried_rows
    def rejects(self, stream: str | None = None, kind: str | None = None) -> list[Reject]:
        """This direction's rejected records, oldest first."""
        query = select(rejects).where(
            and_(
                rejects.c.location_id == self.location_id,
                rejects.c.direction == self.direction.value,
            )
        )
        if stream:
            query = query.where(rejects.c.stream == stream)
        if kind:
            query = query.where(rejects.c.kind == kind)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(rejects.c.first_seen, rejects.c.source_id))
            return [
                Reject(
                    stream=r.stream,
                    source_id=r.source_id,
                    record=json.loads(r.record),
                    field=r.field,
                    reason=r.reason,
                    kind=r.kind,
                    attempts=r.attempts,
                    first_seen=r.first_seen,
                    last_seen=r.last_seen,
                )
                for r in rows
            ]
