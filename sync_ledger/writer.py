"""Writing batches of records through a ledger: the part both targets share.

:class:`BatchWriter` takes a batch of one input stream and writes it on a bounded pool of
threads: records with the same source id (or the same identity, e.g. email) one after another,
in input order; every other group concurrently. Each record ends written, unchanged, rejected
(kept in the ledger with its reason, :class:`RecordRejected`) or held until its contact is
written. Any failure that is not the record's own stops every worker and ends the run as
:class:`FatalSyncError`, after the workers have stopped, so nothing writes unobserved and the
ledger holds exactly what was written.

A target subclasses it with its API's write rules (:meth:`BatchWriter._dispatch`) and its API's
error vocabulary (:meth:`BatchWriter.classify`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from sync_ledger.heap import release_free_memory
from sync_ledger.progress import ProgressLog
from sync_ledger.summary import RunSummary

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from contextlib import AbstractContextManager

    from sync_ledger.ledger import LedgerEntry

logger = logging.getLogger("sync_ledger.writer")

#: The stream every other stream's records belong to, and the field that names it.
PARENT_STREAM = "contacts"
PARENT_FIELD = "contactId"
#: The reject kind of a record whose contact is not written (yet).
MISSING_CONTACT = "missing_contact"
#: The Singer soft-delete marker: a record carrying it says "this source record is gone".
DELETED_AT = "_sdc_deleted_at"
# Below this many links a share cap says little: only the count cap applies.
_SHARE_CAP_MIN_LINKS = 10


@dataclass(frozen=True)
class DeletePolicy:
    """Which deletions a target propagates, and the caps that stop a run instead of deleting.

    Off by default (``streams`` empty). A run that would delete more than ``max_deletes`` records
    of one stream, or more than ``max_share`` of the stream's linked records (e.g. after an API
    returned an empty list), stops before deleting anything.
    """

    streams: frozenset[str] = frozenset()
    max_deletes: int = 100
    max_share: float = 0.5


def delete_policy(
    config: Mapping[str, Any], error: type[Exception], env_prefix: str
) -> DeletePolicy:
    """The :class:`DeletePolicy` a target's settings ask for.

    Reads ``delete_streams``, ``max_deletes`` and ``max_delete_share``; ``error`` is raised for a
    bad value, naming its environment variable.
    """
    streams = config.get("delete_streams") or []
    if isinstance(streams, str):
        streams = [s.strip() for s in streams.split(",") if s.strip()]
    try:
        max_deletes = int(config.get("max_deletes", 100) or 0)
        max_share = float(config.get("max_delete_share", 0.5) or 0)
    except (TypeError, ValueError):
        max_deletes, max_share = -1, -1.0
    if max_deletes < 0 or not 0 <= max_share <= 1:
        msg = (
            f"max_deletes must be a whole number >= 0 and max_delete_share between 0 and 1 "
            f"({env_prefix}MAX_DELETES, {env_prefix}MAX_DELETE_SHARE)"
        )
        raise error(msg)
    return DeletePolicy(frozenset(str(s) for s in streams), max_deletes, max_share)


class RecordRejected(Exception):  # noqa: N818  public name, a verdict rather than a failure
    """A record that cannot be written as it is.

    Names the field (None: the whole record) and the reason; ``kind`` groups rejects (invalid,
    api, missing_contact, shared_identity).
    """

    def __init__(self, field: str | None, reason: str, *, kind: str = "invalid") -> None:
        self.field = field
        self.reason = reason
        self.kind = kind
        super().__init__(f"field {field}: {reason}" if field else reason)


#: :func:`stable_hash`'s JSON text. Made once: ``json.dumps`` with any option builds an encoder
#: per call, ~5 us each, and a contact written takes two hashes.
_STABLE_JSON = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
)


def stable_hash(value: object) -> str:
    """A hash that is the same for equal JSON values, whatever the key order."""
    return hashlib.sha256(_STABLE_JSON.encode(value).encode("utf-8")).hexdigest()


class FatalSyncError(Exception):
    """The run cannot go on (auth, quota, API unreachable); nothing after it is written."""


@dataclass
class WorkItem:
    """One input record as it reached the sink."""

    stream: str
    record: dict[str, Any]
    source_id: str | None
    #: What the writer built ahead of the write (:meth:`BatchWriter._prepare_create`).
    prepared: Any = field(default=None, repr=False, compare=False)


class LedgerLike(Protocol):
    """What the writers need from a ledger: an ``IdLedger``, or a dry run's overlay."""

    location_id: str

    def lookup(self, stream: str, source_ids: Iterable[str]) -> dict[str, LedgerEntry]:
        """Entries for the given source ids (absent ids are missing from the result)."""
        ...

    def count(self, stream: str) -> int:
        """How many records of ``stream`` have a counterpart."""
        ...

    def get(self, stream: str, source_id: str) -> LedgerEntry | None:
        """The entry of one source record, or None when the ledger does not know it."""
        ...

    def target_ids_for_contact(
        self, stream: str, contact_source_id: str, *, other_than: str | None = None
    ) -> set[str]:
        """Target ids claimed on one contact by records of ``stream`` but ``other_than``."""
        ...

    def created_by_the_other_direction(self, stream: str, contact_target_id: str) -> set[str]:
        """Target ids on one contact whose counterpart the other direction left uncreated."""
        ...

    def mark_creating(
        self, stream: str, source_id: str, *, contact_source_id: str | None = None
    ) -> None:
        """Record the intent to create, before the create call is sent."""
        ...

    def mark_creating_ahead(self, stream: str, source_ids: list[str]) -> None:
        """Record the intents of several creates at once; their ``mark_creating`` is then free."""
        ...

    def drop_unsent(self, stream: str, source_ids: list[str]) -> None:
        """Drop intents recorded ahead whose ``mark_creating`` never came (never sent)."""
        ...

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
        """Record what was written; a reject for the same record is cleared."""
        ...

    def claimant(self, stream: str, target_id: str, *, other_than: str | None = None) -> str | None:
        """A source record other than ``other_than`` that owns ``target_id``, or None."""
        ...

    def forget(self, stream: str, source_id: str) -> None:
        """Drop the mapping (the object is gone from the CRM and must be created anew)."""
        ...

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
        """Keep a rejected record with its reason."""
        ...

    def clear_reject(self, stream: str, source_id: str) -> None:
        """Forget that a record was rejected."""
        ...

    def reject_reason(self, stream: str, source_id: str) -> str | None:
        """The kind and reason a record is rejected for (``"kind: reason"``), None if it is not."""
        ...

    def carrying(self) -> AbstractContextManager[None]:
        """A block in which the thread's written rows may wait for its next write."""
        ...


class BatchWriter:
    """The write pool of one target; see the module docstring.

    Subclasses set :attr:`source_id_fields` and :attr:`child_streams` and implement
    :meth:`_dispatch` (one record's write rules: returns ``created``, ``updated``, ``unchanged``
    or ``held``) and :meth:`classify` (an API error: a reject, a fatal error, or None).
    """

    #: Per input stream, the field holding the record's source id.
    source_id_fields: ClassVar[Mapping[str, str]] = {}
    #: The streams whose records belong to a contact (written after the contacts).
    child_streams: ClassVar[tuple[str, ...]] = ()
    #: How many groups a writer thread takes at once from a batch of a stream whose creates it
    #: prepares (:meth:`_prepare_create`): their intents share one ledger commit.
    take_ahead: ClassVar[int] = 8

    def __init__(
        self,
        ledger: LedgerLike,
        *,
        summary: RunSummary | None = None,
        concurrency: int = 8,
        thread_name: str = "writer",
    ) -> None:
        self.ledger = ledger
        self.summary = summary or RunSummary()
        self.concurrency = max(1, concurrency)
        self._pool = ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix=thread_name
        )
        self._held: list[WorkItem] = []
        self._held_lock = threading.Lock()
        #: Progress lines at a steady pace while a long run writes.
        self.progress = ProgressLog(self.summary)
        self._tombstones: list[WorkItem] = []
        self.deletes = DeletePolicy()
        #: Set when a worker of the current batch failed: the others take no further record.
        self.stopping = threading.Event()

    def source_id_of(self, stream: str, record: Mapping[str, Any]) -> str | None:
        """The source id of ``record`` as a string, None when it is missing."""
        value = record.get(self.source_id_fields.get(stream, "id"))
        if value is None or value == "":
            return None
        return str(value)

    def identity_keys(self, item: WorkItem) -> list[tuple[str, str]]:
        """Identities a record may share with another one of the same batch (none by default)."""
        del item
        return []

    def classify(self, exc: Exception) -> RecordRejected | FatalSyncError | None:
        """What an exception from :meth:`_dispatch` means for the run.

        The record's fault (a reject), the run's (fatal), or None to let it through as an
        unexpected failure (also fatal).
        """
        del exc
        return None

    def _creates_ahead(self, stream: str) -> bool:
        """Whether :meth:`_prepare_create` may prepare records of ``stream`` (none by default)."""
        del stream
        return False

    def _prepare_create(self, item: WorkItem) -> bool:
        """Prepare ``item``, which the ledger does not know, if its write starts with a create.

        Called by the writer thread that took the item, before it writes any item of its block:
        True says that the write's first ledger step is ``mark_creating(item.stream,
        item.source_id)`` (the intents of the block's prepared items are then recorded in one
        commit, before any of their calls), with what it built kept in ``item.prepared``. False
        (the default; also for a record to be rejected) leaves the item as it was.
        """
        del item
        return False

    def _batch_starts(
        self, stream: str, items: list[WorkItem], known: Mapping[str, LedgerEntry]
    ) -> None:
        """Called once a batch's ledger entries (``known``, by source id) are read (no-op)."""
        del stream, items, known

    def _dispatch(
        self, item: WorkItem, entry: LedgerEntry | None, parents: dict[str, LedgerEntry]
    ) -> str:
        raise NotImplementedError

    def _delete(self, stream: str, entry: LedgerEntry) -> None:
        """Delete ``entry``'s counterpart through the API (gone already counts as done)."""
        raise NotImplementedError

    def close(self) -> None:
        """Wait for the writer pool to finish and stop it."""
        self._pool.shutdown(wait=True)

    # --- batches ---------------------------------------------------------------------------
    def write_batch(
        self, stream: str, records: list[dict[str, Any]], *, count_read: bool = True
    ) -> None:
        """Write a batch; returns when every record is written, unchanged, rejected or held.

        Raises :class:`FatalSyncError` when the run must stop (the rest of the batch is not
        started; what was written is in the ledger).
        """
        items = [WorkItem(stream, r, self.source_id_of(stream, r)) for r in records]
        if count_read:
            self.summary.read(stream, len(items))
        groups = self._groups(items)
        prefetched = self.ledger.lookup(stream, [i.source_id for i in items if i.source_id])
        if stream != PARENT_STREAM:
            parent_ids = {
                str(i.record.get(PARENT_FIELD))
                for i in items
                if i.record.get(PARENT_FIELD) not in (None, "")
            }
            parents = self.ledger.lookup(PARENT_STREAM, parent_ids)
        else:
            parents = {}
        self._batch_starts(stream, items, prefetched)
        stop = self.stopping = threading.Event()
        errors: list[BaseException] = []
        seen: set[str] = set()
        seen_lock = threading.Lock()

        def run_group(group: list[WorkItem]) -> None:
            for item in group:
                if stop.is_set():
                    return
                key = item.source_id or ""
                with seen_lock:
                    first = key not in seen
                    seen.add(key)
                try:
                    entry = prefetched.get(key) if first else None
                    self._write_one(item, entry, parents, first=first)
                    self.progress.tick()
                except FatalSyncError as exc:
                    stop.set()
                    errors.append(exc)
                    return
                except Exception as exc:
                    stop.set()  # first: logging a traceback takes long enough for other starts
                    logger.exception(
                        "writing %s record %s failed unexpectedly", item.stream, item.source_id
                    )
                    errors.append(
                        FatalSyncError(
                            f"writing {item.stream} record {item.source_id} failed unexpectedly "
                            f"({type(exc).__name__}: {exc}); the run stopped, what was written "
                            "is in the ledger, and the next run continues from there"
                        )
                    )
                    return

        if self._creates_ahead(stream):
            self._run_groups(
                groups,
                run_group,
                stop,
                take=self.take_ahead,
                prepare=lambda block: self._intents_ahead(stream, block, prefetched),
            )
        else:
            self._run_groups(groups, run_group, stop)
        # The batch's payloads, answers and rows are freed: give their pages back (heap.py).
        release_free_memory()
        if errors:
            raise errors[0]

    def _intents_ahead(
        self, stream: str, block: list[list[WorkItem]], known: Mapping[str, LedgerEntry]
    ) -> list[str]:
        """Prepare the block's new records that start with a create; commit their intents.

        ``known`` holds the batch's ledger entries by source id. A record alone in its group
        (no other record of the batch shares its id or identity) that the ledger does not know
        goes to :meth:`_prepare_create`. Returns the source ids whose intents were recorded.
        """
        ahead = [
            group[0].source_id
            for group in block
            if len(group) == 1
            and group[0].source_id is not None
            and group[0].source_id not in known
            and not group[0].record.get(DELETED_AT)
            and self._prepare_create(group[0])
        ]
        if not ahead:
            return ahead
        try:
            self.ledger.mark_creating_ahead(stream, ahead)
        except Exception as exc:
            logger.exception("recording the intents of %d %s records failed", len(ahead), stream)
            raise FatalSyncError(
                f"recording the intents to create {stream} records {', '.join(ahead)} failed "
                f"({type(exc).__name__}: {exc}), so none of them was sent"
            ) from exc
        return ahead

    def _drop_unsent(self, stream: str, source_ids: list[str]) -> None:
        """Drop the intents recorded ahead for records the worker did not reach."""
        try:
            self.ledger.drop_unsent(stream, source_ids)
        except Exception:  # an intent left behind only costs the next run a look
            logger.warning(
                "could not drop the intents of %s records that were not sent; the next run "
                "looks each of them up before creating it",
                stream,
                exc_info=True,
            )

    def _run_groups(
        self,
        groups: list[list[WorkItem]],
        run_group: Callable[[list[WorkItem]], None],
        stop: threading.Event,
        *,
        take: int = 1,
        prepare: Callable[[list[list[WorkItem]]], list[str]] | None = None,
    ) -> None:
        """``run_group`` on each group, on the pool's threads; returns when every worker stopped.

        Each worker takes the next groups in input order, up to ``take`` at once (fewer as the
        batch's end nears, so that no worker is left with a tail while the others idle), calls
        ``prepare`` on them (the source ids whose intents it recorded ahead; those the worker
        does not reach are dropped again), then writes them, until none is left or ``stop`` is
        set: a task per group cost the reading thread a future, a lock and a worker's wake-up
        per record.
        A worker's written rows ride along with its next ledger write
        (:meth:`IdLedger.carrying`) and are all committed before this returns. A worker that
        fails (``prepare`` raising, a carried row's commit) stops the others.
        """
        workers = min(self.concurrency, len(groups))
        position = 0
        queue_lock = threading.Lock()

        def work() -> None:
            nonlocal position
            try:
                with self.ledger.carrying():
                    while not stop.is_set():
                        with queue_lock:
                            start = position
                            size = max(1, min(take, (len(groups) - start) // workers))
                            position = start + size
                        block = groups[start : start + size]
                        if not block:
                            return
                        ahead = prepare(block) if prepare is not None else []
                        try:
                            for group in block:
                                if stop.is_set():
                                    return
                                run_group(group)
                        finally:
                            if ahead:
                                self._drop_unsent(block[0][0].stream, ahead)
            except BaseException:
                stop.set()
                raise

        done, _ = wait([self._pool.submit(work) for _ in range(workers)])  # none writes after
        failed = [f.exception() for f in done if f.exception() is not None]
        if failed:  # committing a worker's carried written rows (run_group keeps the rest)
            stop.set()
            raise FatalSyncError(f"{failed[0]}; the run stopped") from failed[0]

    def _groups(self, items: list[WorkItem]) -> list[list[WorkItem]]:
        """Records that must be written one after another, in input order.

        Those with the same source id, and those that share an identity (:meth:`identity_keys`:
        e.g. contacts with the same email, which the API's duplicate rules match, so which one
        owns the counterpart must not be a race).
        """
        parent = list(range(len(items)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        first_with: dict[tuple[str, str], int] = {}
        for index, item in enumerate(items):
            keys = [("id", item.source_id)] if item.source_id else []
            keys += self.identity_keys(item)
            for key in keys:
                other = first_with.setdefault(key, index)
                parent[root(index)] = root(other)
        groups: dict[int, list[WorkItem]] = defaultdict(list)
        for index, item in enumerate(items):
            groups[root(index)].append(item)
        return list(groups.values())

    def _write_one(
        self,
        item: WorkItem,
        entry: LedgerEntry | None,
        parents: dict[str, LedgerEntry],
        *,
        first: bool,
    ) -> None:
        stream = item.stream
        if item.source_id is None:
            field_name = self.source_id_fields.get(stream, "id")
            self._reject(item, RecordRejected(field_name, "is required but missing"))
            return
        if item.record.get(DELETED_AT):
            with self._held_lock:  # applied at the end, once every record is in
                self._tombstones.append(item)
            return
        try:
            if not first:
                entry = self.ledger.get(stream, item.source_id)
            if entry is not None and entry.mirror:
                # The source record is the copy of a target record of another kind (a MOCO
                # comment that target-moco made from a CRM task): the other side owns it.
                self.ledger.clear_reject(stream, item.source_id)
                outcome = "unchanged"
            else:
                outcome = self._dispatch(item, entry, parents)
        except RecordRejected as exc:
            self._reject(item, exc)
            return
        except Exception as exc:
            verdict = self.classify(exc)
            if verdict is None:
                raise
            if isinstance(verdict, RecordRejected):
                self._reject(item, verdict)
                return
            raise verdict from exc
        if outcome == "held":
            with self._held_lock:
                self._held.append(item)
            return
        self.summary.outcome(stream, outcome)

    def _reject(self, item: WorkItem, exc: RecordRejected) -> None:
        source_id = item.source_id or f"<missing:{stable_hash(item.record)[:12]}>"
        self.ledger.reject(
            item.stream, source_id, item.record, field=exc.field, reason=exc.reason, kind=exc.kind
        )
        message = (
            f"rejected {item.stream} record {source_id}"
            + (f", field {exc.field}" if exc.field else "")
            + f": {exc.reason}"
        )
        logger.warning(message)
        self.summary.outcome(item.stream, "rejected")
        self.summary.note_reject(item.stream, message, exc.kind)

    def parent_target_id(
        self, contact_source_id: str, parents: dict[str, LedgerEntry]
    ) -> str | None:
        """The counterpart of contact ``contact_source_id`` once it is written, else None."""
        entry = parents.get(contact_source_id)
        if entry is None or not entry.written:
            entry = self.ledger.get(PARENT_STREAM, contact_source_id)
        return entry.target_id if entry is not None and entry.written else None

    # --- held records ----------------------------------------------------------------------
    @property
    def held_count(self) -> int:
        """How many child records wait for their contact (see :meth:`resolve_held`)."""
        with self._held_lock:
            return len(self._held)

    def hold_pending(self) -> None:
        """Keep the held records in the ledger too, so a crash cannot lose them."""
        with self._held_lock:
            held = list(self._held)
        for item in held:
            self.ledger.reject(
                item.stream,
                item.source_id or "?",
                item.record,
                field=PARENT_FIELD,
                kind=MISSING_CONTACT,
                reason=f"waiting for contact {item.record.get(PARENT_FIELD)} "
                "to be written in this run",
            )

    def resolve_held(self) -> None:
        """Retry held records now that the run's contacts are written; reject what is left.

        Then write the tasks and notes rejected in earlier runs for want of their contact, whose
        contact is written now (a tap does not send them again unless they change); the summary
        counts them as read in this run.
        """
        with self._held_lock:
            held, self._held = self._held, []
        if held:
            logger.info("retrying %d records that arrived before their contact", len(held))
            for stream in self.child_streams:
                records = [i.record for i in held if i.stream == stream]
                if records:
                    self.write_batch(stream, records, count_read=False)
            with self._held_lock:
                still, self._held = self._held, []
            for item in still:
                self._reject(item, self._missing_contact(str(item.record.get(PARENT_FIELD))))
        self._write_waiting()

    def _missing_contact(self, contact: str) -> RecordRejected:
        """Why a task or note waits: its contact was rejected (with that reason) or is unknown."""
        rejected = self.ledger.reject_reason(PARENT_STREAM, contact)
        if rejected is not None:
            reason = (
                f"waits for contact {contact}, which was rejected ({rejected}); it is written "
                "once its contact is"
            )
        else:
            reason = (
                f"contact {contact} is unknown: it was neither in this run nor synced before "
                "(filtered out by the stream maps, rejected, or deleted at the source)"
            )
        return RecordRejected(PARENT_FIELD, reason, kind=MISSING_CONTACT)

    def _write_waiting(self) -> None:
        ledger = getattr(self.ledger, "_ledger", self.ledger)  # a dry run reads the real ledger
        if not hasattr(ledger, "rejects"):
            return
        for stream in self.child_streams:
            waiting = [r.record for r in ledger.rejects(stream=stream, kind=MISSING_CONTACT)]
            written = self.ledger.lookup(PARENT_STREAM, {str(r.get(PARENT_FIELD)) for r in waiting})
            ready = [
                r
                for r in waiting
                if (e := written.get(str(r.get(PARENT_FIELD)))) is not None and e.written
            ]
            if ready:
                logger.info(
                    "writing %d %s record(s) that were waiting for their contact",
                    len(ready),
                    stream,
                )
                self.write_batch(stream, ready)

    # --- deletes -----------------------------------------------------------------------------
    def apply_deletes(self) -> None:
        """Propagate the run's tombstones (records marked ``_sdc_deleted_at``).

        A tombstone deletes the counterpart linked to its source id, and only that one, in the
        streams :attr:`deletes` names; elsewhere, or without a counterpart, it is counted as
        unchanged. Raises :class:`FatalSyncError`, deleting nothing, when a stream's deletes
        exceed the caps.
        """
        with self._held_lock:
            tombstones, self._tombstones = self._tombstones, []
        by_stream: dict[str, list[WorkItem]] = defaultdict(list)
        for item in tombstones:
            by_stream[item.stream].append(item)
        planned: list[tuple[WorkItem, LedgerEntry]] = []
        for stream, items in by_stream.items():
            entries = self.ledger.lookup(stream, [i.source_id for i in items if i.source_id])
            doomed = []
            for item in items:
                entry = entries.get(item.source_id or "")
                if entry is None or not entry.written or entry.mirror:
                    self.summary.outcome(stream, "unchanged")  # nothing of ours to delete
                elif stream not in self.deletes.streams:
                    logger.info(
                        "%s %s was deleted at the source; its counterpart %s stays (deletes are "
                        "off for %s)",
                        stream,
                        item.source_id,
                        entry.target_id,
                        stream,
                    )
                    self.summary.outcome(stream, "unchanged")
                else:
                    doomed.append((item, entry))
            self._check_caps(stream, len(doomed))
            planned += doomed
        # Children before their contacts: a contact's delete may take its children along.
        planned.sort(key=lambda pair: pair[0].stream == PARENT_STREAM)
        for item, entry in planned:
            self._delete(item.stream, entry)
            self.ledger.forget(item.stream, item.source_id or "")
            logger.warning(
                "deleted %s %s: its source record %s was deleted",
                item.stream,
                entry.target_id,
                item.source_id,
            )
            self.summary.outcome(item.stream, "deleted")

    def _check_caps(self, stream: str, count: int) -> None:
        if not count:
            return
        linked = self.ledger.count(stream)
        share = count / linked if linked else 1.0
        too_many = count > self.deletes.max_deletes
        too_much = linked >= _SHARE_CAP_MIN_LINKS and share > self.deletes.max_share
        if too_many or too_much:
            raise FatalSyncError(
                f"this run would delete {count} {stream} record(s) of {linked} linked "
                f"({share:.0%}), above the caps (max_deletes {self.deletes.max_deletes}, "
                f"max_delete_share {self.deletes.max_share:.0%}); nothing was deleted. If the "
                "source really lost them, raise the caps for one run; if a source answered an "
                "empty or partial list, fix that first"
            )
