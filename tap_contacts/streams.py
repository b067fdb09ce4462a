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

from contacts_api.errors import ContactsAPIError, UnexpectedAnswerError
from tap_contacts.children import ChildReadError, task_from_contact_row
from tap_contacts.digests import DigestMap
from tap_contacts.pool import ReadAheadPool

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.tap_base import Tap

    from tap_contacts.session import ReadSession

__all__ = [
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

#: Defaults of the settings the streams read (the tap's config schema declares the same).
SETTING_DEFAULTS: dict[str, float] = {
    "page_size": 100,
    "lookback_seconds": 300,
    "child_full_pass_hours": 24,
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
        previous: dict[str, str] = dict(stored or {})
        recent = _RecentVersions(self.max_remembered_versions)
        children = self.selected_children()
        for child in children:
            child.begin_read()
        if children:
            self._session.reader.kinds = tuple(child.name for child in children)
        self._log_plan(plan, children)
        finished = False
        try:
            yield from self._read(plan, previous, recent, with_children=bool(children))
            self._finish(state, plan, previous, recent, children)
            finished = True
        finally:
            # The read is over (ended, failed or abandoned): stop the reads still in flight.
            self._session.close()
            if not finished:  # what an unfinished read learnt is not kept; the old state is
                if stored is not None:
                    state[EMITTED_STATE_KEY] = stored
                for child in children:
                    child.abandon_read()

    def _read(
        self,
        plan: _Plan,
        previous: Mapping[str, str],
        recent: _RecentVersions,
        *,
        with_children: bool,
    ) -> Iterator[dict[str, t.Any]]:
        """The contacts to emit, page by page; the children of each page are read ahead."""
        passes = self.stream_maps[0].get_filter_result  # the SDK reads no children of the others
        for page in self._pages(plan.search_from):
            wanted: list[tuple[dict[str, t.Any], bool]] = []
            for row in page:
                contact = self._record(row)
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
            "contacts: reading %s (bookmark %s, lookback %d s); %s",
            "everything" if plan.search_from is None else f"from {plan.search_from.isoformat()}",
            plan.bookmark.isoformat() if plan.bookmark else "none",
            int(setting(self.config, "lookback_seconds")),
            what,
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
        full_pass = bool(children) and (bookmark is None or _full_pass_due(stream, state, children))
        return cls(bookmark, lower, start if full_pass else lower, full_pass)

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
    try:
        completed = parse_api_time(last.get("completed_at"))
    except ValueError:
        return True
    return stream.started - completed >= timedelta(hours=hours)


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
    state, :mod:`tap_contacts.digests`).
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
        self._schema_written = False

    @property
    def digests(self) -> DigestMap:
        """The digests remembered in state, and what this run has seen."""
        if self._digests is None:
            self.begin_read()
        return t.cast("DigestMap", self._digests)

    def begin_read(self) -> None:
        """Take the remembered digests out of state for the read (see ContactsStream)."""
        self._stored_digests = self.stream_state.pop(DIGESTS_STATE_KEY, None)
        self._digests = DigestMap.load(self._stored_digests)

    def abandon_read(self) -> None:
        """Put the remembered digests back unchanged: the read did not end."""
        if self._stored_digests is not None:
            self.stream_state[DIGESTS_STATE_KEY] = self._stored_digests
        self._digests = None

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
        for row in rows:
            record = self.to_record(row)
            record["contactId"] = contact_id  # the contact whose list it is
            if digests.changed(str(record["id"]), record):
                yield record

    def to_record(self, row: Mapping[str, t.Any]) -> dict[str, t.Any]:
        """The record of one row of the API's answer."""
        return dict(row)

    def commit(self, *, complete: bool) -> None:
        """Keep this run's digests in state (``complete``: a full pass read every record)."""
        state = self.stream_state
        state[DIGESTS_STATE_KEY] = self.digests.dump(complete=complete)
        self._digests = None
        self._stored_digests = None
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
