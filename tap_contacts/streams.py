"""tap-contacts' streams: contacts, and per contact its tasks, notes and appointments.

Every stream emits the Contacts API's own field names (schemas in ``schemas/<stream>.json``, from
the official OpenAPI file and reference/contacts-api.md §5). What a caller may rely on:

- ``contacts`` is incremental on ``dateUpdated``: ``POST /contacts/search`` with a range filter
  (``gte`` the bookmark minus ``lookback_seconds``, which absorbs the search index's lag), sorted
  by ``dateUpdated`` ascending and paged with ``searchAfter`` (never ``page``, so more than 10,000
  contacts are read). A version (``id`` + ``dateUpdated``) emitted before is not emitted again:
  the versions in the overlap window are kept in state (at most
  :attr:`ContactsStream.max_remembered_versions`). The bookmark moves only when the whole read
  has ended, to the newest ``dateUpdated`` emitted but never past the moment the read began.
  ``dateUpdated`` is emitted in UTC with milliseconds (``2026-05-01T10:00:00.000Z``, the API's own
  form) so that bookmarks compare correctly.
- ``tasks``, ``notes`` and ``appointments`` are child streams: each record carries its contact's
  ``contactId``. They are read for every contact the ``contacts`` stream emits (a changed one),
  and, because whether adding a task, note or appointment bumps the contact's ``dateUpdated`` is
  unconfirmed, for every contact in a periodic full pass (every ``child_full_pass_hours``; the
  first read is one). Child records carry no update timestamp, so an unchanged one is recognised
  by a digest of its content kept in state (:mod:`tap_contacts.digests`). Outside a full pass, an
  unchanged location costs one search request and no sub-resource read.
- Deletes (the API lists no deleted records): the ids read are kept in state
  (:mod:`tap_contacts.known_ids`). A *reconciliation pass* (every ``reconcile_every_hours``, or
  when ``reconcile_now`` is set; the first run is one) searches every contact (no range filter,
  or only ``start_date``'s); a contact known before, missing from it and answered 404 by
  ``GET /contacts/{id}`` is emitted once as a tombstone (``_sdc_deleted_at`` and
  ``dateUpdated`` set to the moment it was found gone, every other property null but ``id``).
  Whenever a contact's tasks, notes or appointments are read (a changed contact, or any in a
  full pass), each one known before and missing from the list now (a task also answered 404) is
  emitted as a tombstone carrying ``id``, ``contactId`` and ``_sdc_deleted_at``. The children
  of a deleted contact get no tombstones of their own: the contact's says it all. Nothing is
  reported from a failed read or with nothing known yet, and a tombstone does not move the
  bookmark. ``reconcile_now`` also makes the run a full pass of the child streams.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import typing as t
from datetime import datetime, timedelta, timezone
from pathlib import Path

from singer_sdk import SchemaDirectory, Stream, StreamSchema
from singer_sdk.exceptions import (
    AbortedSyncFailedException,
    AbortedSyncPausedException,
    FatalAPIError,
)
from typing_extensions import override

from contacts_api.errors import ContactsAPIError, NotFoundError, UnexpectedAnswerError
from tap_contacts.children import ChildReadError, task_from_contact_row
from tap_contacts.digests import DigestMap
from tap_contacts.known_ids import KnownIds
from tap_contacts.pool import ReadAheadPool

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Iterator, Mapping

    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.tap_base import Tap

    from tap_contacts.session import ReadSession

__all__ = [
    "DELETED_AT",
    "KNOWN_IDS_STATE_KEY",
    "RECONCILED_STATE_KEY",
    "STREAM_TYPES",
    "AppointmentsStream",
    "ChildStream",
    "ContactsReadError",
    "ContactsStream",
    "NotesStream",
    "TasksStream",
]

_SCHEMAS = SchemaDirectory(Path(__file__).parent / "schemas")

#: State key (in the contacts bookmark) of the versions emitted in the overlap window:
#: ``{"<id>": "<dateUpdated>"}``.
EMITTED_STATE_KEY = "emitted_in_overlap"
#: State key (in the contacts bookmark) of the last completed full pass of the child streams:
#: ``{"started_at", "completed_at", "streams"}``.
FULL_PASS_STATE_KEY = "child_full_pass"  # noqa: S105  a state key, not a password
#: State key (in each child stream's bookmark) of the content digests (:mod:`.digests`).
DIGESTS_STATE_KEY = "digests"
#: State keys (in the tasks bookmark) of the task read that ran last, and why.
TASK_PATH_STATE_KEY = "task_read_path"
TASK_PATH_REASON_STATE_KEY = "task_read_reason"
#: State key (in the contacts bookmark and each child stream's) of the ids read before
#: (:mod:`.known_ids`): contacts in one group, children grouped by their contact.
KNOWN_IDS_STATE_KEY = "known_ids"
#: State key (in the contacts bookmark) of when the last reconciliation pass began.
RECONCILED_STATE_KEY = "reconciled_at"
#: Singer's soft-delete marker: a record carrying it says "this record is gone".
DELETED_AT = "_sdc_deleted_at"
#: Warn when a pass finds at least this many known contacts gone and more than half of them.
_MASS_DELETE_WARNING = 10
#: At most this many contacts missing from a pass are confirmed gone (one GET each); the rest
#: stay known and are confirmed by later passes.
MAX_CONFIRMATIONS = 500
#: After this many contacts missing from the search turned out to exist, the search is taken to
#: be lagging or partial: the rest stay known, unconfirmed.
MAX_STILL_THERE = 20

#: Defaults of the settings the streams read (the tap's config schema declares the same).
SETTING_DEFAULTS: dict[str, float] = {
    "page_size": 100,
    "lookback_seconds": 300,
    "child_full_pass_hours": 24,
    "reconcile_every_hours": 24,
}


def setting(config: Mapping[str, t.Any], name: str) -> float:
    """The numeric setting ``name``, else its :data:`SETTING_DEFAULTS` value."""
    value = config.get(name)
    return float(SETTING_DEFAULTS[name] if value is None else value)


def format_api_time(moment: datetime) -> str:
    """``2026-05-01T10:00:00.000Z``: UTC with milliseconds, the API's own timestamp form."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_api_time(value: object) -> datetime:
    """An aware datetime from an ISO-8601 string (``Z`` or an offset; naive means UTC).

    Raises ValueError for anything else.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


class ContactsReadError(FatalAPIError):
    """A read failed; the message names the stream (and contact), the request and what to do."""


def _read_error(stream: str, error: Exception, contact_id: str | None = None) -> ContactsReadError:
    where = f"stream '{stream}'" + (f", contact {contact_id}" if contact_id else "")
    return ContactsReadError(f"tap-contacts {where}: {error}")


class ContactsStream(Stream):
    """Contacts, incremental on ``dateUpdated`` through ``POST /contacts/search``."""

    name = "contacts"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    replication_key = "dateUpdated"
    # Index lag and contacts changed during the read: the bookmark may only move once the whole
    # read has ended (the SDK keeps it in progress markers until then, capped by the signpost).
    is_sorted = False
    schema: t.ClassVar[StreamSchema] = StreamSchema(_SCHEMAS)

    #: At most this many versions are remembered for the overlap window (the newest are kept);
    #: a version beyond it may be emitted once more, which is safe, never lost.
    max_remembered_versions: t.ClassVar[int] = 10_000

    def __init__(self, tap: Tap, *, session: ReadSession) -> None:
        """Create the stream for ``tap``; ``session`` is the run's client and child reader."""
        super().__init__(tap=tap)
        self._session = session
        self._started: datetime | None = None

    # --- SDK hooks ----------------------------------------------------------------------------
    @override
    def get_child_context(self, record: Record, context: Context | None) -> dict[str, t.Any]:
        return {"contactId": record["id"]}

    @override
    def generate_child_contexts(
        self, record: Record, context: Context | None
    ) -> Iterable[Context | None]:
        if record.get(DELETED_AT):
            return  # a deleted contact has no children to read; its tombstone says it all
        yield from super().generate_child_contexts(record, context)

    @override
    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        if latest_record.get(DELETED_AT):
            return  # not a version read from the API: it must not move the bookmark
        super()._increment_stream_state(latest_record, context=context)

    @override
    def get_replication_key_signpost(self, context: Context | None = None) -> str:
        """When the read began, in the records' own form (so that the SDK compares like with like).

        A contact changed after that moment is emitted, but the bookmark stays at this moment,
        so that the next run reads from it again (minus the lookback).
        """
        return format_api_time(self.started)

    @property
    def started(self) -> datetime:
        """The moment this stream's read began (fixed for the run)."""
        if self._started is None:
            self._started = datetime.now(timezone.utc)
        return self._started

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Yield the contacts changed since the bookmark, each version once; see the module doc."""
        plan = _Plan.make(self, context)
        state = self.get_context_state(context)
        # The remembered versions and digests leave the state while the read runs, so that the
        # STATE messages the SDK writes meanwhile stay small; _finish puts back what is current.
        stored = state.pop(EMITTED_STATE_KEY, None)
        stored_known = state.pop(KNOWN_IDS_STATE_KEY, None)
        previous: dict[str, str] = dict(stored or {})
        recent = _RecentVersions(self.max_remembered_versions)
        children = self.selected_children()
        for child in children:
            child.begin_read()
        if children:
            self._session.reader.kinds = tuple(child.name for child in children)
        self._log_plan(plan, children)
        seen: list[str] = []
        finished = False
        try:
            yield from self._read(plan, previous, recent, seen, with_children=bool(children))
            known = yield from self._reconcile(plan, stored_known, seen)
            self._finish(state, plan, previous, recent, children)
            state[KNOWN_IDS_STATE_KEY] = known
            finished = True
        finally:
            # The read is over (ended, failed or abandoned): stop the reads still in flight.
            self._session.close()
            if not finished:  # what an unfinished read learnt is not kept; the old state is
                if stored is not None:
                    state[EMITTED_STATE_KEY] = stored
                if stored_known is not None:
                    state[KNOWN_IDS_STATE_KEY] = stored_known
                for child in children:
                    child.abandon_read()

    def _read(
        self,
        plan: _Plan,
        previous: Mapping[str, str],
        recent: _RecentVersions,
        seen: list[str],
        *,
        with_children: bool,
    ) -> Iterator[dict[str, t.Any]]:
        """The contacts to emit, page by page; the children of each page are read ahead.

        Every contact id the search answers is appended to ``seen``.
        """
        passes = self.stream_maps[0].get_filter_result  # the SDK reads no children of the others
        for page in self._pages(plan.search_from):
            wanted: list[tuple[dict[str, t.Any], bool]] = []
            for row in page:
                contact = self._record(row)
                seen.append(str(contact["id"]))
                new = plan.is_new(contact, previous)
                if new or (plan.full_pass and with_children):
                    wanted.append((contact, new))
            if with_children:
                self._session.reader.prefetch([c["id"] for c, _new in wanted if passes(c)])
            for contact, new in wanted:
                if new:
                    recent.add(contact)
                    yield contact  # the SDK reads its children as it passes
                elif passes(contact):
                    self._sync_children_only(contact)

    # --- reading --------------------------------------------------------------------------
    def selected_children(self) -> list[ChildStream]:
        """The child streams this run reads."""
        return [
            child
            for child in self.child_streams
            if isinstance(child, ChildStream) and (child.selected or child.has_selected_descendents)
        ]

    def _pages(self, search_from: datetime | None) -> Iterator[list[dict[str, t.Any]]]:
        """Every page of the search, the next one requested while this one is processed."""
        client = self._session.client
        page_size = int(setting(self.config, "page_size"))
        body: dict[str, t.Any] = {
            "pageLimit": page_size,
            "sort": [{"field": self.replication_key, "direction": "asc"}],
        }
        if search_from is not None:
            body["filters"] = [
                {
                    "field": self.replication_key,
                    "operator": "range",
                    "value": {"gte": format_api_time(search_from)},
                }
            ]
        cursors: set[str] = set()
        pool = ReadAheadPool(1, "tap-contacts-search")
        try:
            future = pool.submit(client.search_contacts_page, body)
            while True:
                try:
                    page = future.result()
                except ContactsAPIError as exc:
                    raise _read_error(self.name, exc) from exc
                if len(page) < page_size:
                    yield page
                    return
                cursor = page[-1].get("searchAfter")
                if not isinstance(cursor, list) or repr(cursor) in cursors:
                    raise _read_error(
                        self.name,
                        UnexpectedAnswerError(
                            "POST /contacts/search answered a full page whose last contact has "
                            f"{'a repeated' if isinstance(cursor, list) else 'no'} searchAfter "
                            "cursor; stopping instead of reading the same page again. Report "
                            "this; the bookmark stays where it was."
                        ),
                    )
                cursors.add(repr(cursor))
                future = pool.submit(client.search_contacts_page, {**body, "searchAfter": cursor})
                yield page
        finally:
            pool.shutdown()

    def _record(self, row: Mapping[str, t.Any]) -> dict[str, t.Any]:
        """The record of a search row: no paging cursor, ``dateUpdated`` in the API's UTC form."""
        record = {key: value for key, value in row.items() if key != "searchAfter"}
        try:
            record[self.replication_key] = format_api_time(
                parse_api_time(row.get(self.replication_key))
            )
        except ValueError:
            raise _read_error(
                self.name,
                UnexpectedAnswerError(
                    f"POST /contacts/search answered contact {row.get('id')} with dateUpdated "
                    f"{row.get(self.replication_key)!r}, not a timestamp; nothing after it can "
                    "be bookmarked. Report this; the bookmark stays where it was."
                ),
            ) from None
        return record

    def _sync_children_only(self, contact: Mapping[str, t.Any]) -> None:
        """Read an unchanged contact's children (a full pass), without emitting the contact."""
        context = {"contactId": contact["id"]}
        for child in self.selected_children():
            # A record limit (tests, --test) aborts a child: as the SDK's own child sync does.
            with contextlib.suppress(AbortedSyncFailedException, AbortedSyncPausedException):
                child.sync(context=dict(context))

    def _log_plan(self, plan: _Plan, children: list[ChildStream]) -> None:
        names = ", ".join(child.name for child in children) or "none selected"
        if plan.full_pass and children:
            what = f"full pass of the child streams ({names}) over every contact"
        else:
            what = f"children ({names}) of changed contacts only"
        self.log(
            "contacts: reading %s (bookmark %s, lookback %d s); %s%s",
            "everything" if plan.search_from is None else f"from {plan.search_from.isoformat()}",
            plan.bookmark.isoformat() if plan.bookmark else "none",
            int(setting(self.config, "lookback_seconds")),
            what,
            "; a reconciliation pass (deleted contacts are reported)" if plan.reconcile else "",
        )

    # --- deletes ------------------------------------------------------------------------------
    def _reconcile(
        self, plan: _Plan, stored: object, seen: list[str]
    ) -> Generator[dict[str, t.Any], None, str]:
        """Tombstones for the contacts a reconciliation pass no longer found; the ids to keep.

        Outside a pass the ids seen are added to the known ones. In a pass, a known contact the
        search did not answer is reported only once ``GET /contacts/{id}`` answers 404 (the
        search is an index: a contact it misses for a moment is not deleted).
        """
        known = KnownIds.load(stored)
        if stored is not None and known is None:
            self.log(
                "contacts: the known ids in state are unreadable; they start anew (no deletes "
                "are reported from this read)",
                level=logging.WARNING,
            )
        before = known.of("") if known is not None else frozenset()
        if not plan.reconcile:
            if known is not None and before.issuperset(seen):
                return t.cast("str", stored)
            return KnownIds({"": [*before, *seen]}).dump()
        missing = sorted(before.difference(seen)) if known is not None else []
        if missing and not tombstones_selected(self):
            missing = []
        gone, still_there = self._confirm_gone(missing, plan.search_from)
        self._warn_if_most_are_gone(len(gone), len(before), len(set(seen)))
        moment = format_api_time(datetime.now(timezone.utc))
        for contact_id in gone:
            record = tombstone(self, contact_id, moment)
            record[self.replication_key] = moment
            yield record
        self.log(
            "contacts: reconciliation pass over %d contacts; %s",
            len(set(seen)),
            "no ids known before (first pass): nothing reported as deleted"
            if known is None
            else f"{len(gone)} of {len(before)} known contacts gone, emitted as tombstones",
        )
        return KnownIds({"": [*seen, *still_there]}).dump()

    def _confirm_gone(
        self, missing: list[str], since: datetime | None
    ) -> tuple[list[str], list[str]]:
        """Split contacts the search did not answer into (deleted, still known).

        Still known: those that exist, and those not asked about (beyond
        :data:`MAX_CONFIRMATIONS`, or after :data:`MAX_STILL_THERE` existed). A contact that
        exists but changed before ``since`` (start_date moved later) is out of scope, and
        forgotten.
        """
        gone: list[str] = []
        still_there: list[str] = []
        unasked: list[str] = []
        for position, contact_id in enumerate(missing):
            if position >= MAX_CONFIRMATIONS or len(still_there) >= MAX_STILL_THERE:
                unasked = missing[position:]
                break
            try:
                found = self._session.client.get_contact(contact_id)
            except NotFoundError:
                gone.append(contact_id)
                continue
            except ContactsAPIError as exc:
                raise _read_error(self.name, exc, contact_id) from exc
            try:
                out_of_scope = since is not None and parse_api_time(found["dateUpdated"]) < since
            except (KeyError, ValueError):
                out_of_scope = False
            if not out_of_scope:
                still_there.append(contact_id)
        if still_there:
            self.log(
                "contacts: %d known contact(s) missing from the search still exist (%s): not "
                "reported deleted (the search index lags)",
                len(still_there),
                ", ".join(still_there[:5]),
                level=logging.WARNING,
            )
        if unasked:
            self.log(
                "contacts: %d more known contact(s) missing from the search were not checked in "
                "this pass (%s); they stay known, and later passes check them",
                len(unasked),
                "the search seems to lag or be partial"
                if len(still_there) >= MAX_STILL_THERE
                else f"at most {MAX_CONFIRMATIONS} are checked per pass",
                level=logging.WARNING,
            )
        return gone, still_there + unasked

    def _warn_if_most_are_gone(self, gone: int, known: int, seen: int) -> None:
        if gone < _MASS_DELETE_WARNING or gone * 2 <= known:
            return
        self.log(
            "contacts: %d of %d known contacts are gone (the search now finds %d)%s; the "
            "targets' max_deletes / max_delete_share stop a run that would delete that many",
            gone,
            known,
            seen,
            ": the search came back EMPTY" if seen == 0 else "",
            level=logging.WARNING,
        )

    # --- the end of a complete read -------------------------------------------------------------
    def _finish(
        self,
        state: dict[str, t.Any],
        plan: _Plan,
        previous: dict[str, str],
        recent: _RecentVersions,
        children: list[ChildStream],
    ) -> None:
        """Record what a complete read established: versions, digests, the full pass."""
        next_bookmark = plan.bookmark
        if recent.newest is not None:
            signpost = parse_api_time(self.get_replication_key_signpost())
            next_bookmark = min(recent.newest, signpost)
        state[EMITTED_STATE_KEY] = self._versions_to_remember(
            {**previous, **recent.versions()}, next_bookmark
        )
        complete = plan.full_pass
        for child in children:
            child.commit(complete=complete)
        if complete and children:
            state[FULL_PASS_STATE_KEY] = {
                "started_at": format_api_time(self.started),
                "completed_at": format_api_time(datetime.now(timezone.utc)),
                "streams": sorted(child.name for child in children),
            }
        if plan.reconcile:
            state[RECONCILED_STATE_KEY] = format_api_time(self.started)

    def _versions_to_remember(
        self, versions: dict[str, str], next_bookmark: datetime | None
    ) -> dict[str, str]:
        if next_bookmark is None:
            return {}
        cutoff = next_bookmark - timedelta(seconds=setting(self.config, "lookback_seconds"))
        kept = sorted(
            (
                (parse_api_time(updated), record_id, updated)
                for record_id, updated in versions.items()
            ),
            reverse=True,
        )
        return {
            record_id: updated
            for moment, record_id, updated in kept[: self.max_remembered_versions]
            if moment >= cutoff
        }


class _Plan(t.NamedTuple):
    """What one read of the contacts stream covers."""

    bookmark: datetime | None
    lower_bound: datetime | None  # a contact changed at or after it is a candidate to emit
    search_from: datetime | None  # the search's range filter (None: every contact)
    full_pass: bool
    reconcile: bool  # every contact (since start_date) is searched; those gone are reported

    @classmethod
    def make(cls, stream: ContactsStream, context: Context | None) -> _Plan:
        state = stream.get_context_state(context)
        saved = state.get("replication_key_value")
        bookmark = None
        if saved and state.get("replication_key") == stream.replication_key:
            bookmark = parse_api_time(str(saved))
        start_date = stream.config.get("start_date")
        start = parse_api_time(str(start_date)) if start_date else None
        lower = start
        if bookmark is not None:
            lower = bookmark - timedelta(seconds=setting(stream.config, "lookback_seconds"))
            if start is not None and start > lower:
                lower = start
        children = stream.selected_children()
        now = bool(stream.config.get("reconcile_now"))
        full_pass = bool(children) and (
            bookmark is None or now or _full_pass_due(stream, state, children)
        )
        reconcile = now or _due(
            stream, state.get(RECONCILED_STATE_KEY), setting(stream.config, "reconcile_every_hours")
        )
        # A contact's dateUpdated only grows: every contact since start_date is every contact
        # ever read (and a known one missing is confirmed gone before it is reported).
        search_from = start if (full_pass or reconcile) else lower
        return cls(bookmark, lower, search_from, full_pass, reconcile)

    def is_new(self, contact: Mapping[str, t.Any], previous: Mapping[str, str]) -> bool:
        """Whether this version of ``contact`` is to be emitted (changed, not emitted before)."""
        updated = str(contact["dateUpdated"])
        if self.lower_bound is not None and parse_api_time(updated) < self.lower_bound:
            return False
        return previous.get(str(contact["id"])) != updated


def _full_pass_due(
    stream: ContactsStream, state: Mapping[str, t.Any], children: list[ChildStream]
) -> bool:
    hours = setting(stream.config, "child_full_pass_hours")
    last = state.get(FULL_PASS_STATE_KEY)
    if hours <= 0 or not isinstance(last, dict):
        return True
    if not {child.name for child in children} <= set(last.get("streams") or []):
        return True  # a child stream not covered by the last full pass
    return _due(stream, last.get("completed_at"), hours)


def _due(stream: ContactsStream, last: object, hours: float) -> bool:
    """Whether ``hours`` have passed since ``last`` (a timestamp; none or 0 hours: always)."""
    if hours <= 0:
        return True
    try:
        moment = parse_api_time(last)
    except ValueError:
        return True
    return stream.started - moment >= timedelta(hours=hours)


def tombstones_selected(stream: Stream) -> bool:
    """Whether ``stream``'s catalog selects the soft-delete marker (else none is emitted)."""
    # Without its marker a tombstone would reach the targets as a record of nulls.
    if stream.mask.get(("properties", DELETED_AT), False):
        return True
    stream.logger.warning(
        "%s: deleted records are not reported: the catalog does not select %s",
        stream.name,
        DELETED_AT,
    )
    return False


def tombstone(stream: Stream, record_id: str, moment: str) -> dict[str, t.Any]:
    """The record of ``stream`` that says ``record_id`` is gone (found so at ``moment``)."""
    record: dict[str, t.Any] = dict.fromkeys(stream.schema["properties"])
    record.update({"id": record_id, DELETED_AT: moment})
    return record


class _RecentVersions:
    """The newest ``limit`` versions emitted in this run (bounded memory however many there are)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._heap: list[tuple[datetime, str, str]] = []
        self.newest: datetime | None = None

    def add(self, contact: Mapping[str, t.Any]) -> None:
        updated = str(contact["dateUpdated"])
        moment = parse_api_time(updated)
        version = (moment, str(contact["id"]), updated)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, version)
        elif version > self._heap[0]:
            heapq.heapreplace(self._heap, version)
        if self.newest is None or moment > self.newest:
            self.newest = moment

    def versions(self) -> dict[str, str]:
        return {record_id: updated for _moment, record_id, updated in sorted(self._heap)}


class ChildStream(Stream):
    """A contact's sub-resources, read as the contact's context arrives (no bookmark).

    Records whose content is unchanged since they were last emitted are skipped (digests in
    state, :mod:`tap_contacts.digests`); records known before and missing from their contact's
    list now are emitted as tombstones (ids in state, :mod:`tap_contacts.known_ids`).
    """

    parent_stream_type = ContactsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)

    def __init__(self, tap: Tap, *, session: ReadSession) -> None:
        """Create the stream for ``tap``; ``session`` is the run's client and child reader."""
        super().__init__(tap=tap)
        # One bookmark for the stream, not one state partition per contact.
        self.state_partitioning_keys = []
        self._session = session
        self._digests: DigestMap | None = None
        self._stored_digests: object = None
        self._known: KnownIds | None = None
        self._stored_known: object = None
        self._lists_read: dict[str, tuple[str, ...]] = {}  # contact id -> ids of its list now
        self._schema_written = False

    @property
    def digests(self) -> DigestMap:
        """The digests remembered in state, and what this run has seen."""
        if self._digests is None:
            self.begin_read()
        return t.cast("DigestMap", self._digests)

    def begin_read(self) -> None:
        """Take the remembered digests and ids out of state for the read (see ContactsStream)."""
        self._stored_digests = self.stream_state.pop(DIGESTS_STATE_KEY, None)
        self._digests = DigestMap.load(self._stored_digests)
        self._stored_known = self.stream_state.pop(KNOWN_IDS_STATE_KEY, None)
        self._known = KnownIds.load(self._stored_known)
        self._lists_read = {}

    def abandon_read(self) -> None:
        """Put the remembered digests and ids back unchanged: the read did not end."""
        if self._stored_digests is not None:
            self.stream_state[DIGESTS_STATE_KEY] = self._stored_digests
        if self._stored_known is not None:
            self.stream_state[KNOWN_IDS_STATE_KEY] = self._stored_known
        self._digests = None
        self._known = None
        self._lists_read = {}

    @override
    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: the stream is synced once per contact, not as one whole table."""
        return False

    @override
    def _write_schema_message(self) -> None:
        """Write the SCHEMA message once per run, not once per contact (as the SDK would)."""
        if not self._schema_written:
            self._schema_written = True
            super()._write_schema_message()

    @override
    def _write_state_message(self) -> None:
        """Leave STATE messages to the contacts stream (the SDK would write one per contact).

        A child stream's state (its digests) only changes when the contacts read has ended, and
        the contacts stream writes the whole tap state then.
        """

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        contact_id = str((context or {}).get("contactId") or "")
        if not contact_id:
            return
        try:
            rows = self._session.reader.take(self.name, contact_id)
        except ChildReadError as exc:
            raise _read_error(self.name, exc.error, contact_id) from exc.error
        digests = self.digests
        listed: list[str] = []
        for row in rows:
            record = self.to_record(row)
            record["contactId"] = contact_id  # the contact whose list it is
            listed.append(str(record["id"]))
            if digests.changed(str(record["id"]), record):
                yield record
        yield from self._tombstones(contact_id, listed)

    def _tombstones(self, contact_id: str, listed: list[str]) -> Iterator[dict[str, t.Any]]:
        """Tombstones for the records of ``contact_id`` known before and not listed now."""
        known = self._known.of(contact_id) if self._known is not None else frozenset()
        missing = sorted(known.difference(listed))
        if missing and not tombstones_selected(self):
            missing = []
        moment = format_api_time(datetime.now(timezone.utc))
        for record_id in missing:
            if not self.confirm_gone(contact_id, record_id):
                listed.append(record_id)  # still there: known, and not reported
                continue
            record = tombstone(self, record_id, moment)
            record["contactId"] = contact_id
            yield record
        # Most contacts have no tasks, notes or appointments: an empty list is kept only where
        # it replaces known ids (one entry per contact per stream grew memory with the location).
        if listed or known:
            self._lists_read[contact_id] = tuple(listed)

    def confirm_gone(self, contact_id: str, record_id: str) -> bool:
        """Whether a record missing from its contact's list is really gone (a direct read is)."""
        del contact_id, record_id
        return True

    def to_record(self, row: Mapping[str, t.Any]) -> dict[str, t.Any]:
        """The record of one row of the API's answer."""
        return dict(row)

    def commit(self, *, complete: bool) -> None:
        """Keep this run's digests and ids in state (``complete``: a full pass read every list).

        After a full pass only the lists it read are kept (a contact it did not read is gone or
        out of scope); otherwise the lists read replace their contacts' earlier ones.
        """
        state = self.stream_state
        state[DIGESTS_STATE_KEY] = self.digests.dump(complete=complete)
        groups: dict[str, t.Any] = {} if complete else dict((self._known or KnownIds()).groups)
        groups.update(self._lists_read)
        state[KNOWN_IDS_STATE_KEY] = KnownIds(groups).dump()
        self._digests = None
        self._stored_digests = None
        self._known = None
        self._stored_known = None
        self._lists_read = {}
        self.log(
            "%s: %s records' digests kept in state (%s)",
            self.name,
            f"{len(DigestMap.load(state[DIGESTS_STATE_KEY])):,}",
            "full pass: replaced" if complete else "added to the earlier ones",
            level=logging.DEBUG,
        )


class TasksStream(ChildStream):
    """Tasks of each contact: location-wide search (``task_read``) or one call per contact."""

    name = "tasks"
    schema: t.ClassVar[StreamSchema] = StreamSchema(_SCHEMAS)

    @override
    def to_record(self, row: Mapping[str, t.Any]) -> dict[str, t.Any]:
        return task_from_contact_row(row)

    @override
    def confirm_gone(self, contact_id: str, record_id: str) -> bool:
        """Ask ``GET /contacts/{contactId}/tasks/{taskId}``: the location-wide read is an index."""
        try:
            self._session.client.get_task(contact_id, record_id)
        except NotFoundError:
            return True
        except ContactsAPIError as exc:
            raise _read_error(self.name, exc, contact_id) from exc
        self.log(
            "tasks: task %s of contact %s is missing from the read but still exists: not "
            "reported deleted",
            record_id,
            contact_id,
            level=logging.WARNING,
        )
        return False

    @override
    def commit(self, *, complete: bool) -> None:
        super().commit(complete=complete)
        reader = self._session.reader
        self.stream_state[TASK_PATH_STATE_KEY] = reader.task_path.value
        self.stream_state[TASK_PATH_REASON_STATE_KEY] = reader.task_path_reason
        self.log(
            "tasks: read %s (%s)",
            "location-wide" if reader.task_path.value == "location" else "per contact",
            reader.task_path_reason,
        )


class NotesStream(ChildStream):
    """Notes of each contact (``GET /contacts/{contactId}/notes``; no location-wide read)."""

    name = "notes"
    schema: t.ClassVar[StreamSchema] = StreamSchema(_SCHEMAS)


class AppointmentsStream(ChildStream):
    """Appointments of each contact (``GET /contacts/{contactId}/appointments``, ``events``)."""

    name = "appointments"
    schema: t.ClassVar[StreamSchema] = StreamSchema(_SCHEMAS)


#: The tap's streams, parent first.
STREAM_TYPES: tuple[type[ContactsStream | ChildStream], ...] = (
    ContactsStream,
    TasksStream,
    NotesStream,
    AppointmentsStream,
)
