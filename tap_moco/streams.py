"""tap-moco's streams; the SDK syncs them by name: companies, contacts, notes, tasks.

Every stream emits MOCO's own field names (schemas in ``schemas/<stream>.json``), has the primary
key ``id`` and the replication key ``updated_at``; see :class:`tap_moco.client.MocoStream` for how
the incremental reads, paging, rate limit and retries work. contacts, notes and tasks also report
records deleted in MOCO, as tombstones (``_sdc_deleted_at``). MOCO's API has no appointment
resource (reference/moco-api.md §6.5), so there is no appointments stream.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

from singer_sdk import SchemaDirectory, StreamSchema
from typing_extensions import override

from moco_api.html import html_to_text
from tap_moco.client import DELETED_AT, MocoStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

__all__ = ["STREAM_TYPES", "CompaniesStream", "ContactsStream", "NotesStream", "TasksStream"]

_SCHEMAS = SchemaDirectory(Path(__file__).parent / "schemas")


class CompaniesStream(MocoStream):
    """Companies (customers, suppliers, organizations), archived ones included."""

    name = "companies"
    path = "/companies"
    schema: t.ClassVar[StreamSchema] = StreamSchema(_SCHEMAS)
    # Archived companies are hidden by default; contacts may still point at them.
    extra_params: t.ClassVar[dict[str, str]] = {"include_archived": "true"}


class ContactsStream(MocoStream):
    """Contacts (people)."""

    name = "contacts"
    path = "/contacts/people"
    schema: t.ClassVar[StreamSchema] = StreamSchema(_SCHEMAS)
    tracks_deletes: t.ClassVar[bool] = True


class TasksStream(MocoStream):
    """CRM to-dos attached to contacts.

    ``GET /todos`` has neither ``updated_after`` nor a ``todoable_type`` filter, so every run
    reads the whole list and keeps to-dos on contacts whose ``updated_at`` passed the bookmark;
    a to-do missing from it is reported deleted on the same run.
    """

    name = "tasks"
    path = "/todos"
    schema: t.ClassVar[StreamSchema] = StreamSchema(_SCHEMAS)
    server_side_updated_after: t.ClassVar[bool] = False
    keep_only: t.ClassVar[dict[str, str]] = {"todoable_type": "Contact"}
    tracks_deletes: t.ClassVar[bool] = True


class NotesStream(MocoStream):
    """Comments on contacts, with ``text_plain`` rendered from MOCO's HTML ``text``."""

    name = "notes"
    path = "/comments"
    schema: t.ClassVar[StreamSchema] = StreamSchema(_SCHEMAS)
    extra_params: t.ClassVar[dict[str, str]] = {"commentable_type": "Contact"}
    # The server filters already; this guards against an answer that ignored the filter.
    keep_only: t.ClassVar[dict[str, str]] = {"commentable_type": "Contact"}
    tracks_deletes: t.ClassVar[bool] = True

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        if not row.get(DELETED_AT):  # a tombstone has no text
            row["text_plain"] = html_to_text(row.get("text")) or ""
        return row


#: The tap's streams (the SDK syncs them sorted by name, which puts the parents first).
STREAM_TYPES: tuple[type[MocoStream], ...] = (
    CompaniesStream,
    ContactsStream,
    TasksStream,
    NotesStream,
)
