"""A dry run's ledger: the real ledger for reads, this run's changes kept in memory only.

Both targets' dry runs use it, so that a dry run follows exactly the rules of a live run (look
before create, unchanged by hash, shared identities) and leaves the ledger as it found it.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from sync_ledger.ledger import LedgerEntry
from sync_ledger.writer import LedgerLike

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sync_ledger.ledger import IdLedger


class OverlayLedger(LedgerLike):
    """The real ledger for reads, with this run's changes kept in memory only."""

    def __init__(self, ledger: IdLedger) -> None:
        self._ledger = ledger
        self.location_id = ledger.location_id
        self._entries: dict[tuple[str, str], LedgerEntry | None] = {}
        self.rejected: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    @override
    def carrying(self) -> AbstractContextManager[None]:
        return nullcontext()  # this run's changes are in memory from the start

    @override
    def lookup(self, stream: str, source_ids: Iterable[str]) -> dict[str, LedgerEntry]:
        ids = list(source_ids)
        found = self._ledger.lookup(stream, ids)
        with self._lock:
            for source_id in ids:
                if (stream, source_id) in self._entries:
                    entry = self._entries[(stream, source_id)]
                    if entry is None:
                        found.pop(source_id, None)
                    else:
                        found[source_id] = entry
        return found

    @override
    def count(self, stream: str) -> int:
        return self._ledger.count(stream)

    @override
    def get(self, stream: str, source_id: str) -> LedgerEntry | None:
        return self.lookup(stream, [source_id]).get(source_id)

    @override
    def target_ids_for_contact(
        self, stream: str, contact_source_id: str, *, other_than: str | None = None
    ) -> set[str]:
        ids = self._ledger.target_ids_for_contact(stream, contact_source_id, other_than=other_than)
        with self._lock:
            for (s, sid), entry in self._entries.items():
                if (
                    s == stream
                    and sid != other_than
                    and entry
                    and entry.contact_source_id == contact_source_id
                    and entry.target_id
                ):
                    ids.add(entry.target_id)
        return ids

    @override
    def created_by_the_other_direction(self, stream: str, contact_target_id: str) -> set[str]:
        # The other direction's intents are in the real ledger; a dry run records none.
        return self._ledger.created_by_the_other_direction(stream, contact_target_id)

    @override
    def claimant(self, stream: str, target_id: str, *, other_than: str | None = None) -> str | None:
        with self._lock:
            overlaid = {sid for (s, sid) in self._entries if s == stream}
            for (s, sid), entry in self._entries.items():
                if s == stream and entry and entry.target_id == target_id and sid != other_than:
                    return sid
        owner = self._ledger.claimant(stream, target_id, other_than=other_than)
        # A source record this run moved elsewhere (or forgot) no longer owns it.
        return None if owner in overlaid else owner

    @override
    def mark_creating(
        self, stream: str, source_id: str, *, contact_source_id: str | None = None
    ) -> None:
        with self._lock:
            current = self._entries.get((stream, source_id))
            # Keep the real ledger's "creating" verdict: the dry run must look first as live would.
            if current is None:
                self._entries[(stream, source_id)] = LedgerEntry(
                    stream, source_id, None, None, "creating", {}, contact_source_id
                )

    @override
    def mark_creating_ahead(self, stream: str, source_ids: list[str]) -> None:
        # Nothing to make durable ahead: each create's own mark_creating records it here.
        del stream, source_ids

    @override
    def drop_unsent(self, stream: str, source_ids: list[str]) -> None:
        del stream, source_ids

    @override
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
        del contact_target_id  # the overlay keeps only what this run's own reads need
        entry = LedgerEntry(
            stream, source_id, target_id, payload_hash, "written", extra or {}, contact_source_id
        )
        with self._lock:
            self._entries[(stream, source_id)] = entry
            self.rejected.pop((stream, source_id), None)

    @override
    def forget(self, stream: str, source_id: str) -> None:
        with self._lock:
            self._entries[(stream, source_id)] = None

    @override
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
        with self._lock:
            self.rejected[(stream, source_id)] = {"field": field, "reason": reason, "kind": kind}

    @override
    def reject_reason(self, stream: str, source_id: str) -> str | None:
        with self._lock:
            if (stream, source_id) in self.rejected:
                found = self.rejected[(stream, source_id)]
                return f"{found['kind']}: {found['reason']}"
            if self._entries.get((stream, source_id)) is not None:
                return None  # written in this run
        return self._ledger.reject_reason(stream, source_id)

    @override
    def clear_reject(self, stream: str, source_id: str) -> None:
        with self._lock:
            self.rejected.pop((stream, source_id), None)
