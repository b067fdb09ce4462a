"""Writing one record at a time, idempotently: the rules behind every Contacts API call.

:class:`ContactsSync` decides per record: unchanged (same payload hash: no call), update, or
create; it records an intent before every create, so that after a crash or a lost answer it looks
for the object before it creates again; it adopts the existing contact a duplicate answer names;
it adds tags and never removes tags someone set in the CRM. Batches run concurrently on a bounded
pool while records with the same source id run one after another.

In a dry run the same rules run against :class:`DryRunClient` and an in-memory ledger overlay, so
the plan lists exactly the calls a live run would make.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from typing_extensions import override

from contacts_api.errors import (
    AuthError,
    ContactsAPIError,
    DailyQuotaExhausted,
    DuplicateContactError,
    NotFoundError,
    RateLimitError,
    TransientError,
)
from moco_api.html import same_text
from sync_ledger.merge import SYNCED_AT, ConflictPolicy, text_baseline, text_extra
from sync_ledger.writer import (
    BatchWriter,
    DeletePolicy,
    FatalSyncError,
    LedgerLike,
    RecordRejected,
    WorkItem,
    stable_hash,
)
from target_contacts.payloads import (
    SOURCE_ID_FIELD,
    ContactPayload,
    NotePayload,
    TaskPayload,
    contact_payload,
    identity_keys,
    note_payload,
    task_payload,
)
from target_contacts.reconcile import merge_contact, merge_note, merge_task

__all__ = ["ContactsSync", "FatalSyncError", "LedgerLike", "RecordRejected", "WriteRules"]

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from sync_ledger.ledger import LedgerEntry
    from sync_ledger.summary import RunSummary

logger = logging.getLogger("target_contacts")

#: The reject kind of a contact whose email or phone belongs to another source record's contact.
SHARED_IDENTITY = "shared_identity"

# How often a create is tried again after an ambiguous failure (each time after looking first).
MAX_CREATE_ATTEMPTS = 3

# A create that got no answer in time may still be committed by the API after a look found
# nothing; sending it again could make a duplicate, so it waits for a later look instead.
UNCONFIRMED_CREATE = (
    "the create got no answer in time (the Contacts API may still commit it), so it was not sent "
    "again: a second create could make a duplicate. `contacts-admin rejects retry` (or the next "
    "run that reads this record) looks for it first and adopts it, or creates it if it is not "
    "there"
)


class ClientLike(Protocol):
    """What the write rules need from a Contacts API client: the live one, or a dry run's."""

    def search_duplicate(
        self, *, email: str | None = None, phone: str | None = None
    ) -> dict[str, Any] | None:
        """The contact the location's duplicate rules match for ``email``/``phone``, or None."""
        ...

    def search_contacts(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The whole ``POST /contacts/search`` answer (``contacts``, ``total``)."""
        ...

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        """The contact as the CRM holds it now."""
        ...

    def get_task(self, contact_id: str, task_id: str) -> dict[str, Any]:
        """One task as the CRM holds it now."""
        ...

    def get_note(self, contact_id: str, note_id: str) -> dict[str, Any]:
        """One note as the CRM holds it now."""
        ...

    def delete_contact(self, contact_id: str) -> None:
        """Delete a contact."""
        ...

    def delete_task(self, contact_id: str, task_id: str) -> None:
        """Delete a task."""
        ...

    def delete_note(self, contact_id: str, note_id: str) -> None:
        """Delete a note."""
        ...

    def list_tasks(self, contact_id: str) -> list[dict[str, Any]]:
        """The contact's tasks."""
        ...

    def list_notes(self, contact_id: str) -> list[dict[str, Any]]:
        """The contact's notes."""
        ...

    def create_contact(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a contact and return it (at least its ``id``)."""
        ...

    def update_contact(self, contact_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Update a contact and return it."""
        ...

    def upsert_contact(self, payload: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Create or update by the location's duplicate rules; returns (created, contact)."""
        ...

    def add_tags(self, contact_id: str, tags: list[str]) -> list[str]:
        """Add tags (the others stay); returns the contact's tags."""
        ...

    def create_task(self, contact_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a task on the contact and return it (at least its ``id``)."""
        ...

    def update_task(
        self, contact_id: str, task_id: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Update a task and return it."""
        ...

    def set_task_completed(
        self, contact_id: str, task_id: str, *, completed: bool = True
    ) -> dict[str, Any]:
        """Mark a task completed (or open again) and return it."""
        ...

    def create_note(self, contact_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a note on the contact and return it (at least its ``id``)."""
        ...

    def update_note(
        self, contact_id: str, note_id: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Update a note and return it."""
        ...


@dataclass(frozen=True)
class WriteRules:
    """The settings that shape what is written (target-contacts' settings of the same names)."""

    default_phone_region: str | None = None
    custom_field_map: Mapping[str, str] = field(default_factory=dict)
    merge_shared_contacts: bool = False
    #: None: one-way (the source overwrites what it maps); a policy: two-way, read first.
    conflict_policy: ConflictPolicy | None = None
    deletes: DeletePolicy = field(default_factory=DeletePolicy)


class ContactsSync(BatchWriter):
    """The write rules for contacts, tasks and notes of one location."""

    source_id_fields = SOURCE_ID_FIELD
    child_streams = ("tasks", "notes")

    def __init__(
        self,
        client: ClientLike,
        ledger: LedgerLike,
        *,
        location_id: str,
        summary: RunSummary | None = None,
        concurrency: int = 8,
        rules: WriteRules | None = None,
    ) -> None:
        super().__init__(
            ledger, summary=summary, concurrency=concurrency, thread_name="contacts-write"
        )
        rules = rules or WriteRules()
        self.client = client
        self.merge_shared_contacts = rules.merge_shared_contacts
        self.conflict_policy = rules.conflict_policy
        self.location_id = location_id
        self.default_phone_region = rules.default_phone_region
        self.custom_field_map = dict(rules.custom_field_map)
        self.deletes = rules.deletes

    @override
    def identity_keys(self, item: WorkItem) -> list[tuple[str, str]]:
        """Contacts sharing an email or phone are written one after another, in input order."""
        return identity_keys(item.record) if item.stream == "contacts" else []

    @override
    def classify(self, exc: Exception) -> RecordRejected | FatalSyncError | None:
        if isinstance(exc, (AuthError, DailyQuotaExhausted, RateLimitError)):
            return FatalSyncError(str(exc))
        if isinstance(exc, TransientError):
            return FatalSyncError(f"the Contacts API kept failing: {exc}")
        if isinstance(exc, ContactsAPIError):
            if not exc.record_fault:
                # No answer that blames this record (a proxy's page, a 2xx of another shape, a
                # 405 or 3xx, TLS): nothing the record can fix, so it must not become a reject.
                return FatalSyncError(str(exc))
            return RecordRejected(
                _field_from_messages(exc.messages),
                f"the Contacts API refused it: {exc}",
                kind="api",
            )
        return None

    @override
    def _delete(self, stream: str, entry: LedgerEntry) -> None:
        target_id = entry.target_id or ""
        try:
            if stream == "contacts":
                self.client.delete_contact(target_id)
                return
            contact_id = entry.contact_target_id or self.parent_target_id(
                entry.contact_source_id or "", {}
            )
            if contact_id is None:
                return  # its contact is gone, and the task or note with it
            if stream == "tasks":
                self.client.delete_task(contact_id, target_id)
            else:
                self.client.delete_note(contact_id, target_id)
        except NotFoundError:
            pass  # gone already

    @override
    def _creates_ahead(self, stream: str) -> bool:
        return stream == "contacts"

    @override
    def _prepare_create(self, item: WorkItem) -> bool:
        # A contact the ledger does not know is created (write_contact), its intent first.
        if item.stream != "contacts":
            return False
        try:
            item.prepared = self._contact_payload(item)
        except RecordRejected:
            return False  # rejected when its turn comes, with no intent
        return True

    def _contact_payload(self, item: WorkItem) -> ContactPayload:
        if isinstance(item.prepared, ContactPayload):
            return item.prepared
        return contact_payload(
            item.record,
            default_phone_region=self.default_phone_region,
            custom_field_map=self.custom_field_map,
        )

    @override
    def _dispatch(
        self, item: WorkItem, entry: LedgerEntry | None, parents: dict[str, LedgerEntry]
    ) -> str:
        if item.stream == "contacts":
            return self.write_contact(self._contact_payload(item), entry)
        if item.stream == "tasks":
            task = task_payload(item.record)
            contact_id = self.parent_target_id(task.contact_source_id, parents)
            if contact_id is None:
                return "held"
            return self.write_task(task, entry, contact_id)
        if item.stream == "notes":
            note = note_payload(item.record)
            contact_id = self.parent_target_id(note.contact_source_id, parents)
            if contact_id is None:
                return "held"
            return self.write_note(note, entry, contact_id)
        raise RecordRejected(None, f"unknown stream {item.stream!r}")

    # --- contacts --------------------------------------------------------------------------
    def write_contact(self, p: ContactPayload, entry: LedgerEntry | None) -> str:
        """Write one contact; returns its outcome (``created``, ``updated`` or ``unchanged``)."""
        if entry is not None and entry.written:
            if entry.payload_hash == p.payload_hash:
                self.ledger.clear_reject("contacts", p.source_id)
                return "unchanged"
            policy = self._policy_for(entry)
            try:
                if policy is not None:
                    return self._reconcile_contact(
                        entry.target_id or "", p, entry.extra.get("fields"), policy
                    )
                self._update_contact(entry.target_id or "", p, entry.extra)
            except NotFoundError:
                logger.warning(
                    "contact %s (source %s) is gone from the CRM; creating it again",
                    entry.target_id,
                    p.source_id,
                )
                self.ledger.forget("contacts", p.source_id)
                return self._create_contact(p, None)
            return "updated"
        return self._create_contact(p, entry)

    def _policy_for(self, entry: LedgerEntry) -> ConflictPolicy | None:
        """How to write a changed pair: ``None`` (overwrite) or the policy to merge with.

        Merge when two-way is on, or when the reverse direction syncs this pair too (the CRM may
        hold changes the source has not seen).
        """
        if self.conflict_policy is not None:
            return self.conflict_policy
        return ConflictPolicy.MOST_RECENT if entry.two_way else None

    def _contact_extra(
        self,
        p: ContactPayload,
        sent_tags: Iterable[str],
        fields: Mapping[str, Any] | None = None,
        *,
        synced_at: object = None,
    ) -> dict[str, Any]:
        held = dict(p.fields if fields is None else fields)
        extra = {
            "fields_hash": p.fields_hash,
            "fields": held,  # what the CRM holds after this write: the two-way baseline
            "tags": sorted(set(sent_tags)),
            "companyName": held.get("companyName"),
        }
        if synced_at:
            extra[SYNCED_AT] = synced_at
        return extra

    def _reconcile_contact(
        self,
        target_id: str,
        p: ContactPayload,
        baseline: Mapping[str, Any] | None,
        policy: ConflictPolicy,
    ) -> str:
        """Read CRM contact ``target_id``, write only what the merge decides; its outcome."""
        current = self.client.get_contact(target_id)
        merge, new_tags = merge_contact(p, current, baseline, policy=policy, summary=self.summary)
        # The contact as the last answer shows it: its dateUpdated marks the pair in sync.
        last: Mapping[str, Any] | None = current
        body = {k: v for k, v in merge.writes.items() if k != "companyName"}
        if body:
            last = self.client.update_contact(target_id, body)
        if "companyName" in merge.writes:
            last = self._set_company_name(target_id, p)
        if new_tags:
            self.client.add_tags(target_id, new_tags)
            last = None  # the tags answer carries no update time
        held_tags = {str(t) for t in current.get("tags") or []} | set(p.tags)
        synced_at = last.get("dateUpdated") if last is not None and merge.in_sync else None
        self.ledger.record_written(
            "contacts",
            p.source_id,
            target_id,
            p.payload_hash,
            extra=self._contact_extra(p, held_tags, merge.baseline, synced_at=synced_at),
        )
        return "updated" if merge.writes or new_tags else "unchanged"

    def _update_contact(
        self, target_id: str, p: ContactPayload, extra: dict[str, Any], *, force: bool = False
    ) -> None:
        if force or extra.get("fields_hash") != p.fields_hash:
            body = {k: v for k, v in p.fields.items() if k != "companyName"}
            self.client.update_contact(target_id, body)
            company = p.fields.get("companyName")
            if company and (force or company != extra.get("companyName")):
                self._set_company_name(target_id, p)
        known_tags = set(extra.get("tags") or [])
        new_tags = sorted(set(p.tags) - known_tags)
        if new_tags or (force and p.tags):
            self.client.add_tags(target_id, sorted(set(p.tags)) if force else new_tags)
        self.ledger.record_written(
            "contacts",
            p.source_id,
            target_id,
            p.payload_hash,
            extra=self._contact_extra(p, known_tags | set(p.tags)),
        )

    def _set_company_name(self, target_id: str, p: ContactPayload) -> dict[str, Any] | None:
        """Set companyName, which ``PUT /contacts/:id`` lacks, by upsert on the email/phone.

        Returns the contact the upsert answered with when that is ``target_id``.
        """
        key: dict[str, Any] = {k: p.fields[k] for k in ("email", "phone") if k in p.fields}
        if not key:
            logger.warning(
                "contact %s: companyName changed but the Contacts API can only set it "
                "through upsert, which needs an email or phone",
                p.source_id,
            )
            return None
        _new, contact = self.client.upsert_contact(
            {"locationId": self.location_id, **key, "companyName": p.fields["companyName"]}
        )
        if contact.get("id") != target_id:
            logger.warning(
                "contact %s: upsert for companyName matched contact %s, not %s",
                p.source_id,
                contact.get("id"),
                target_id,
            )
            return None
        return contact

    def _create_contact(self, p: ContactPayload, entry: LedgerEntry | None) -> str:
        look_first = entry is not None and entry.state == "creating"
        pending = False
        for _attempt in range(MAX_CREATE_ATTEMPTS):
            if look_first:
                found = self._find_contact(p)
                if found:
                    self._update_contact(found, p, {}, force=True)
                    return "created"
                if pending:
                    raise RecordRejected(None, UNCONFIRMED_CREATE, kind="api")
            self.ledger.mark_creating("contacts", p.source_id)
            body = {"locationId": self.location_id, **p.fields}
            if p.tags:
                body["tags"] = p.tags
            try:
                contact = self.client.create_contact(body)
            except DuplicateContactError as dup:
                self._check_not_shared(p, dup.contact_id, dup.matching_field)
                if self.conflict_policy is not None:
                    # First match of a two-way sync: both sides already hold this person.
                    logger.info(
                        "contact %s matches existing contact %s on %s; linking them",
                        p.source_id,
                        dup.contact_id,
                        dup.matching_field,
                    )
                    return self._reconcile_contact(dup.contact_id, p, None, self.conflict_policy)
                logger.info(
                    "contact %s matches existing contact %s on %s; adopting it",
                    p.source_id,
                    dup.contact_id,
                    dup.matching_field,
                )
                self._update_contact(dup.contact_id, p, {}, force=True)
                return "updated"
            except TransientError as exc:
                if not exc.ambiguous:
                    raise
                look_first, pending = True, exc.pending
                continue
            self.ledger.record_written(
                "contacts",
                p.source_id,
                contact["id"],
                p.payload_hash,
                extra=self._contact_extra(p, p.tags, synced_at=contact.get("dateUpdated")),
            )
            return "created"
        raise FatalSyncError(
            f"creating contact {p.source_id} failed {MAX_CREATE_ATTEMPTS} times "
            "with no answer from the Contacts API; rerun later"
        )

    def _check_not_shared(self, p: ContactPayload, target_id: str, field: str | None) -> None:
        """Refuse to write ``p`` into CRM contact ``target_id`` when another record owns it.

        A CRM contact belongs to one source record, unless merge_shared_contacts is set.
        """
        if self.merge_shared_contacts:
            return
        owner = self.ledger.claimant("contacts", target_id, other_than=p.source_id)
        if owner is None:
            return
        field = field if field in ("email", "phone") else None
        shared = f"its {field} {p.fields.get(field)!r}" if field else "an email or phone"
        raise RecordRejected(
            field,
            f"shares {shared} with source record {owner}, which owns CRM contact {target_id}; "
            "a CRM contact belongs to one source record, so this one is not written (nor its "
            "tasks and notes). Give it its own email and phone in the source, or set "
            "merge_shared_contacts to write both into one CRM contact",
            kind=SHARED_IDENTITY,
        )

    def _find_contact(self, p: ContactPayload) -> str | None:
        """Look for a contact this record may already have created (after a lost answer).

        Only a contact that no other source record owns is a candidate.
        """
        for key in ("email", "phone"):
            if key not in p.fields:
                continue
            found = self.client.search_duplicate(**{key: p.fields[key]})
            if not found or not found.get("id"):
                continue
            if self._adoptable(p, str(found["id"])):
                return str(found["id"])
            # The duplicate rules name another record's contact; a location that allows
            # duplicates may hold ours beside it (the search index may lag by seconds).
            for contact in self._search_eq(key, p.fields[key]):
                if self._adoptable(p, str(contact["id"])):
                    return str(contact["id"])
        name = " ".join(p.fields.get(k, "") for k in ("firstName", "lastName")).strip()
        if not name or "email" in p.fields or "phone" in p.fields:
            return None
        result = self.client.search_contacts(
            {"locationId": self.location_id, "query": name, "pageLimit": 100}
        )
        for contact in result.get("contacts", []):
            same_name = (contact.get("firstName") or "") == p.fields.get("firstName", "") and (
                contact.get("lastName") or ""
            ) == p.fields.get("lastName", "")
            if same_name and self._adoptable(p, str(contact["id"])):
                return str(contact["id"])
        return None

    def _search_eq(self, field: str, value: str) -> list[dict[str, Any]]:
        """Contacts whose ``field`` equals ``value`` (one search page; enough for a lookup)."""
        body = {
            "locationId": self.location_id,
            "pageLimit": 100,
            "filters": [{"field": field, "operator": "eq", "value": value}],
        }
        return [c for c in self.client.search_contacts(body).get("contacts", []) if c.get("id")]

    def _adoptable(self, p: ContactPayload, target_id: str) -> bool:
        owner = self.ledger.claimant("contacts", target_id, other_than=p.source_id)
        return owner is None or self.merge_shared_contacts

    # --- tasks -----------------------------------------------------------------------------
    def write_task(self, p: TaskPayload, entry: LedgerEntry | None, contact_id: str) -> str:
        """Write one task on CRM contact ``contact_id``; returns its outcome."""
        if entry is not None and entry.written:
            if entry.payload_hash == p.payload_hash:
                self.ledger.clear_reject("tasks", p.source_id)
                return "unchanged"
            task_id = entry.target_id or ""
            policy = self._policy_for(entry)
            try:
                if policy is not None:
                    return self._reconcile_task(p, entry, contact_id, policy)
                if entry.extra.get("fields_hash") != stable_hash(p.fields):
                    self.client.update_task(contact_id, task_id, dict(p.fields))
                if entry.extra.get("completed") != p.completed:
                    self.client.set_task_completed(contact_id, task_id, completed=p.completed)
            except NotFoundError:
                self.ledger.forget("tasks", p.source_id)
                return self._create_child("tasks", p, None, contact_id)
            self._record_task(p, task_id, contact_id)
            return "updated"
        return self._create_child("tasks", p, entry, contact_id)

    def _record_task(
        self,
        p: TaskPayload,
        task_id: str,
        contact_id: str,
        held: Mapping[str, Any] | None = None,
    ) -> None:
        fields = dict(held) if held is not None else {**p.fields, "completed": p.completed}
        self.ledger.record_written(
            "tasks",
            p.source_id,
            task_id,
            p.payload_hash,
            contact_source_id=p.contact_source_id,
            contact_target_id=contact_id,
            extra={
                "fields_hash": stable_hash(p.fields),
                "completed": p.completed,
                "fields": fields,  # what the CRM holds after this write: the two-way baseline
            },
        )

    def _reconcile_task(
        self, p: TaskPayload, entry: LedgerEntry, contact_id: str, policy: ConflictPolicy
    ) -> str:
        task_id = entry.target_id or ""
        current = self.client.get_task(contact_id, task_id)
        merge = merge_task(
            p, current, entry.extra.get("fields"), policy=policy, summary=self.summary
        )
        body = {k: v for k, v in merge.writes.items() if k != "completed"}
        if body:
            self.client.update_task(contact_id, task_id, {**p.fields, **body})
        if "completed" in merge.writes:
            self.client.set_task_completed(contact_id, task_id, completed=p.completed)
        self._record_task(p, task_id, contact_id, merge.baseline)
        return "updated" if merge.writes else "unchanged"

    # --- notes -----------------------------------------------------------------------------
    def write_note(self, p: NotePayload, entry: LedgerEntry | None, contact_id: str) -> str:
        """Write one note on CRM contact ``contact_id``; returns its outcome."""
        if entry is not None and entry.written:
            if entry.payload_hash == p.payload_hash:
                self.ledger.clear_reject("notes", p.source_id)
                return "unchanged"
            policy = self._policy_for(entry)
            note_id = entry.target_id or ""
            try:
                if policy is not None:
                    current = self.client.get_note(contact_id, note_id)
                    baseline = text_baseline(entry, "body", p.body, same=same_text)
                    merge = merge_note(p, current, baseline, policy=policy, summary=self.summary)
                    if merge.writes:
                        self.client.update_note(contact_id, note_id, {"body": p.body})
                    self._record_note(p, note_id, contact_id, merge.baseline, in_sync=merge.in_sync)
                    return "updated" if merge.writes else "unchanged"
                self.client.update_note(contact_id, note_id, {"body": p.body})
            except NotFoundError:
                self.ledger.forget("notes", p.source_id)
                return self._create_child("notes", p, None, contact_id)
            self._record_note(p, note_id, contact_id)
            return "updated"
        return self._create_child("notes", p, entry, contact_id)

    def _record_note(
        self,
        p: NotePayload,
        note_id: str,
        contact_id: str,
        held: Mapping[str, Any] | None = None,
        *,
        in_sync: bool = True,
    ) -> None:
        self.ledger.record_written(
            "notes",
            p.source_id,
            note_id,
            p.payload_hash,
            contact_source_id=p.contact_source_id,
            contact_target_id=contact_id,
            extra=text_extra("body", p.body, held, in_sync=in_sync),
        )

    # --- creating tasks and notes ------------------------------------------------------------
    def _create_child(
        self, stream: str, p: TaskPayload | NotePayload, entry: LedgerEntry | None, contact_id: str
    ) -> str:
        look_first = entry is not None and entry.state == "creating"
        pending = False
        for _attempt in range(MAX_CREATE_ATTEMPTS):
            if look_first:
                found = self._find_child(stream, p, contact_id)
                if found:
                    return self._adopt_child(stream, p, found, contact_id)
                if pending:
                    raise RecordRejected(None, UNCONFIRMED_CREATE, kind="api")
            self.ledger.mark_creating(stream, p.source_id, contact_source_id=p.contact_source_id)
            try:
                if isinstance(p, TaskPayload):
                    created = self.client.create_task(
                        contact_id, {**p.fields, "completed": p.completed}
                    )
                else:
                    created = self.client.create_note(contact_id, {"body": p.body})
            except TransientError as exc:
                if not exc.ambiguous:
                    raise
                look_first, pending = True, exc.pending
                continue
            if isinstance(p, TaskPayload):
                self._record_task(p, created["id"], contact_id)
            else:
                self._record_note(p, created["id"], contact_id)
            return "created"
        raise FatalSyncError(
            f"creating {stream} record {p.source_id} failed {MAX_CREATE_ATTEMPTS} "
            "times with no answer from the Contacts API; rerun later"
        )

    def _find_child(
        self, stream: str, p: TaskPayload | NotePayload, contact_id: str
    ) -> dict[str, Any] | None:
        """A task or note on the contact that matches ``p`` and no other source record claims."""
        claimed = self.ledger.target_ids_for_contact(
            stream, p.contact_source_id, other_than=p.source_id
        )
        if isinstance(p, TaskPayload):
            candidates = self.client.list_tasks(contact_id)
            want_due = p.fields["dueDate"][:19]
            for task in candidates:
                if task.get("id") in claimed:
                    continue
                if (
                    task.get("title") == p.fields["title"]
                    and str(task.get("dueDate") or "")[:19] == want_due
                ):
                    return task
            return None
        for note in self.client.list_notes(contact_id):
            if note.get("id") not in claimed and note.get("body") == p.body:
                return note
        return None

    def _adopt_child(
        self, stream: str, p: TaskPayload | NotePayload, found: dict[str, Any], contact_id: str
    ) -> str:
        if isinstance(p, TaskPayload):
            if bool(found.get("completed")) != p.completed:
                self.client.set_task_completed(contact_id, found["id"], completed=p.completed)
            self._record_task(p, found["id"], contact_id)
        else:
            self._record_note(p, found["id"], contact_id)
        logger.info(
            "%s %s was already created before an interrupted run; adopted %s",
            stream,
            p.source_id,
            found["id"],
        )
        return "created"


def _field_from_messages(messages: list[str]) -> str | None:
    """The field an API validation message is about (``property X ...``, ``X must ...``)."""
    for message in messages:
        words = message.split()
        if len(words) > 1 and words[0] == "property":
            return words[1]
        if words:
            return words[0]
    return None
