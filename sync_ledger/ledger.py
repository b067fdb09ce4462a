"""The id ledger: source ids to Contacts API ids, payload hashes, and rejected records.

One row per (location, stream, source id) says which Contacts API object a source record became
and the hash of what was last sent, so an unchanged record costs no call. A row in state
``creating`` is an intent written before a create call: if the process dies or the answer is
lost, the next attempt knows it must look for the object before creating it again.

Rejected records are kept whole with the field and reason, so they can be listed and retried.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    Row,
    String,
    Table,
    Text,
    and_,
    delete,
    select,
    update,
)

from sync_ledger.db import metadata

if TYPE_CHECKING:
    from collections.abc import Iterable

id_map = Table(
    "id_map",
    metadata,
    Column("location_id", String(64), primary_key=True),
    Column("stream", String(32), primary_key=True),
    Column("source_id", String(255), primary_key=True),
    Column("target_id", String(64), nullable=True, index=True),
    Column("contact_source_id", String(255), nullable=True, index=True),
    Column("payload_hash", String(64), nullable=True),
    Column("state", String(16), nullable=False),  # "creating" or "written"
    Column("extra", Text, nullable=True),  # JSON: what a later diff needs (e.g. sent tags)
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

rejects = Table(
    "rejects",
    metadata,
    Column("location_id", String(64), primary_key=True),
    Column("stream", String(32), primary_key=True),
    Column("source_id", String(255), primary_key=True),
    Column("record", Text, nullable=False),
    Column("field", String(255), nullable=True),
    Column("reason", Text, nullable=False),
    Column("kind", String(32), nullable=False),  # invalid, missing_contact, api
    Column("attempts", Integer, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)

_LOOKUP_CHUNK = 500


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger knows of one source record."""

    stream: str
    source_id: str
    target_id: str | None
    payload_hash: str | None
    state: str
    extra: dict[str, Any]
    contact_source_id: str | None

    @property
    def written(self) -> bool:
        """Whether the record reached the Contacts API (not just an intent to create it)."""
        return self.state == "written" and self.target_id is not None


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


class IdLedger:
    """The ledger of one Contacts API location. Thread-safe (each call is one transaction)."""

    def __init__(self, engine: Engine, location_id: str) -> None:
        self.engine = engine
        self.location_id = location_id

    # --- id map ------------------------------------------------------------------------
    def _entry(self, row: Row[Any]) -> LedgerEntry:
        return LedgerEntry(
            stream=row.stream,
            source_id=row.source_id,
            target_id=row.target_id,
            payload_hash=row.payload_hash,
            state=row.state,
            extra=json.loads(row.extra) if row.extra else {},
            contact_source_id=row.contact_source_id,
        )

    def lookup(self, stream: str, source_ids: Iterable[str]) -> dict[str, LedgerEntry]:
        """Entries for the given source ids (absent ids are simply missing from the result)."""
        ids = list(dict.fromkeys(source_ids))
        found: dict[str, LedgerEntry] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[start : start + _LOOKUP_CHUNK]
                rows = conn.execute(
                    select(id_map).where(
                        and_(
                            id_map.c.location_id == self.location_id,
                            id_map.c.stream == stream,
                            id_map.c.source_id.in_(chunk),
                        )
                    )
                )
                for row in rows:
                    found[row.source_id] = self._entry(row)
        return found

    def get(self, stream: str, source_id: str) -> LedgerEntry | None:
        """The entry of one source record, or None when the ledger does not know it."""
        return self.lookup(stream, [source_id]).get(source_id)

    def target_ids_for_contact(self, stream: str, contact_source_id: str) -> set[str]:
        """Contacts API ids already claimed by source records of ``stream`` on one contact."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(id_map.c.target_id).where(
                    and_(
                        id_map.c.location_id == self.location_id,
                        id_map.c.stream == stream,
                        id_map.c.contact_source_id == contact_source_id,
                        id_map.c.target_id.is_not(None),
                    )
                )
            )
            return {row.target_id for row in rows}

    def _put(self, values: dict[str, Any], *, clear_reject: bool = False) -> None:
        key = and_(
            id_map.c.location_id == self.location_id,
            id_map.c.stream == values["stream"],
            id_map.c.source_id == values["source_id"],
        )
        with self.engine.begin() as conn:
            changed = conn.execute(update(id_map).where(key).values(**values)).rowcount
            if not changed:
                conn.execute(id_map.insert().values(location_id=self.location_id, **values))
            if clear_reject:  # in the same transaction: one commit per written record
                conn.execute(
                    delete(rejects).where(
                        and_(
                            rejects.c.location_id == self.location_id,
                            rejects.c.stream == values["stream"],
                            rejects.c.source_id == values["source_id"],
                        )
                    )
                )

    def mark_creating(
        self, stream: str, source_id: str, *, contact_source_id: str | None = None
    ) -> None:
        """Record the intent to create, before the create call is sent."""
        self._put(
            {
                "stream": stream,
                "source_id": source_id,
                "target_id": None,
                "payload_hash": None,
                "state": "creating",
                "extra": None,
                "contact_source_id": contact_source_id,
                "updated_at": _now(),
            }
        )

    def record_written(
        self,
        stream: str,
        source_id: str,
        target_id: str,
        payload_hash: str,
        *,
        extra: dict[str, Any] | None = None,
        contact_source_id: str | None = None,
    ) -> None:
        """Record what was written; a reject for the same record is cleared."""
        self._put(
            {
                "stream": stream,
                "source_id": source_id,
                "target_id": target_id,
                "payload_hash": payload_hash,
                "state": "written",
                "extra": json.dumps(extra) if extra else None,
                "contact_source_id": contact_source_id,
                "updated_at": _now(),
            },
            clear_reject=True,
        )

    def claimant(self, stream: str, target_id: str, *, other_than: str | None = None) -> str | None:
        """A source record of ``stream`` that owns Contacts API id ``target_id``, or None.

        ``other_than`` (the asking record) does not count: None means no other record claims it.
        """
        query = select(id_map.c.source_id).where(
            and_(
                id_map.c.location_id == self.location_id,
                id_map.c.stream == stream,
                id_map.c.target_id == target_id,
            )
        )
        if other_than is not None:
            query = query.where(id_map.c.source_id != other_than)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(id_map.c.source_id).limit(1)).first()
        return None if row is None else str(row.source_id)

    def forget(self, stream: str, source_id: str) -> None:
        """Drop the mapping (e.g. the object was deleted in the CRM and must be created anew)."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(id_map).where(
                    and_(
                        id_map.c.location_id == self.location_id,
                        id_map.c.stream == stream,
                        id_map.c.source_id == source_id,
                    )
                )
            )

    # --- rejects -------------------------------------------------------------------------
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
        key = and_(
            rejects.c.location_id == self.location_id,
            rejects.c.stream == stream,
            rejects.c.source_id == source_id,
        )
        text = json.dumps(record, default=str, ensure_ascii=False)
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(rejects)
                .where(key)
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

    def clear_reject(self, stream: str, source_id: str) -> None:
        """Forget that a record was rejected (it went through, or needs no call any more)."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(rejects).where(
                    and_(
                        rejects.c.location_id == self.location_id,
                        rejects.c.stream == stream,
                        rejects.c.source_id == source_id,
                    )
                )
            )

    def reject_reason(self, stream: str, source_id: str) -> str | None:
        """The kind and reason a record is rejected for (``"kind: reason"``), None if it is not."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(rejects.c.kind, rejects.c.reason).where(
                    and_(
                        rejects.c.location_id == self.location_id,
                        rejects.c.stream == stream,
                        rejects.c.source_id == source_id,
                    )
                )
            ).first()
        return None if row is None else f"{row.kind}: {row.reason}"

    def rejects(self, stream: str | None = None, kind: str | None = None) -> list[Reject]:
        """Rejected records, oldest first."""
        query = select(rejects).where(rejects.c.location_id == self.location_id)
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
