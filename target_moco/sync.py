"""Writing CRM records into MOCO, idempotently: the rules behind every MOCO call.

:class:`MocoSync` decides per record, for contacts (MOCO people) and for notes, tasks and
appointments (each a comment on the person):

- linked through the ledger and unchanged (same payload hash): no call;
- linked and changed: one-way, the changed fields are written; two-way (or a pair target-contacts
  also syncs), MOCO's record is read first and only what the merge decides is written, so an
  echo of MOCO's own change costs a read and no write;
- not linked: a person is matched by e-mail (compared exactly on ``work_email``/``home_email``)
  or phone, found by MOCO's ``term`` and ``phone`` searches or, for batches with many new
  contacts, in :class:`~target_moco.people.PeopleDirectory`; only a person no other CRM contact
  is linked to is adopted; else it is created with its tags in the body. An intent is recorded
  before every create, so after a crash or a lost answer the next attempt looks before it
  creates again (comments have no external id: the ledger and that look are all there is).

Tags are only ever added (``PATCH /taggings``), never removed; names compare case-insensitively,
since the CRM lower-cases them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from typing_extensions import override

from moco_api.errors import (
    AuthError,
    MocoAPIError,
    NotFoundError,
    RateLimitError,
    TransientError,
)
from moco_api.html import html_to_text, same_text
from sync_ledger.merge import (
    SYNCED_AT,
    ConflictPolicy,
    merge_fields,
    parse_time,
    text_baseline,
    text_extra,
)
from sync_ledger.writer import (
    BatchWriter,
    DeletePolicy,
    FatalSyncError,
    RecordRejected,
    WorkItem,
    stable_hash,
)
from target_moco.payloads import CommentPayload, PersonPayload, comment_payload, person_payload
from target_moco.people import PHONE_TAIL, PeopleDirectory, same_phone

if TYPE_CHECKING:
    from collections.abc import Mapping

    from moco_api.client import PeopleCount
    from sync_ledger.ledger import LedgerEntry
    from sync_ledger.summary import RunSummary
    from sync_ledger.writer import LedgerLike

logger = logging.getLogger("target_moco")

STREAMS = ("contacts", "notes", "tasks", "appointments")
SHARED_IDENTITY = "shared_identity"
MAX_CREATE_ATTEMPTS = 3
UNCONFIRMED_CREATE = (
    "the create got no answer in time (MOCO may still commit it), so it was not sent again: a "
    "second create could make a duplicate. The next run that reads this record looks for it "
    "first and adopts it, or creates it if it is not there"
)
_MOCO_TIME = "%Y-%m-%dT%H:%M:%S"  # what POST /comments takes as created_at


class MocoClientLike(Protocol):
    """What the write rules need from a MOCO client: the live one, or a dry run's."""

    def get_person(self, person_id: str) -> dict[str, Any]:
        """One person."""
        ...

    def find_people(self, **filters: str) -> list[dict[str, Any]]:
        """People matching MOCO's list filters."""
        ...

    def count_people(self) -> PeopleCount:
        """How many people the account holds, and MOCO's time then."""
        ...

    def create_person(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a person."""
        ...

    def update_person(self, person_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Change a person's fields."""
        ...

    def delete_person(self, person_id: str) -> None:
        """Delete a person."""
        ...

    def delete_comment(self, comment_id: str) -> None:
        """Delete a comment."""
        ...

    def add_tags(self, entity: str, record_id: str, tags: list[str]) -> list[str]:
        """Add tags to a record."""
        ...

    def get_comment(self, comment_id: str) -> dict[str, Any]:
        """One comment."""
        ...

    def comments_on(self, commentable_type: str, commentable_id: str) -> list[dict[str, Any]]:
        """The comments on a record."""
        ...

    def create_comment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a comment."""
        ...

    def update_comment(self, comment_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Change a comment."""
        ...


@dataclass(frozen=True)
class MocoRules:
    """The settings that shape what is written (target-moco's settings of the same names)."""

    default_gender: str = "U"
    merge_shared_contacts: bool = False
    #: None: one-way (the CRM's mapped values overwrite); a policy: two-way, read first.
    conflict_policy: ConflictPolicy | None = None
    timezone_name: str = "UTC"
    deletes: DeletePolicy = field(default_factory=DeletePolicy)
    #: How new contacts are matched to people: ``auto``, ``always`` or ``never`` read MOCO's
    #: people once (:class:`~target_moco.people.PeopleDirectory`) instead of searching.
    people_directory: str = "auto"


def _digits(value: object) -> str:
    return re.sub(r"\D", "", str(value or ""))


def same_person_field(name: str, a: object, b: object) -> bool:
    """Whether two values of MOCO person field ``name`` mean the same."""
    if name.endswith("_phone"):
        return same_phone(a, b)
    left = "" if a is None else str(a).strip()
    right = "" if b is None else str(b).strip()
    if name.endswith("_email"):
        return left.casefold() == right.casefold()
    return left == right


def _current_person(person: Mapping[str, Any]) -> dict[str, Any]:
    """A person as the forward mapping reads it (one e-mail, one phone).

    Each may sit in either of MOCO's two slots, so a CRM value matching the other slot is the
    same value.
    """
    current = dict(person)
    current["work_email"] = person.get("work_email") or person.get("home_email")
    current["work_phone"] = person.get("work_phone") or person.get("mobile_phone")
    return current


class MocoSync(BatchWriter):
    """The write rules for MOCO people and comments, for one (MOCO account, CRM location)."""

    source_id_fields = dict.fromkeys(STREAMS, "id")
    child_streams = ("notes", "tasks", "appointments")

    def __init__(
        self,
        client: MocoClientLike,
        ledger: LedgerLike,
        *,
        summary: RunSummary | None = None,
        concurrency: int = 2,
        rules: MocoRules | None = None,
    ) -> None:
        super().__init__(ledger, summary=summary, concurrency=concurrency, thread_name="moco-write")
        self.client = client
        self.rules = rules or MocoRules()
        self.deletes = self.rules.deletes
        self.people = PeopleDirectory(client, mode=self.rules.people_directory)

    # --- the pool's questions ------------------------------------------------------------
    @override
    def identity_keys(self, item: WorkItem) -> list[tuple[str, str]]:
        """People sharing an e-mail or phone are written one after another, in input order."""
        if item.stream != "contacts":
            return []
        keys = [
            ("email", str(item.record[name]).strip().lower())
            for name in ("work_email", "home_email")
            if item.record.get(name)
        ]
        keys += [
            ("phone", _digits(item.record[name])[-PHONE_TAIL:])
            for name in ("work_phone", "mobile_phone")
            if len(_digits(item.record.get(name))) >= PHONE_TAIL
        ]
        return keys

    @override
    def classify(self, exc: Exception) -> RecordRejected | FatalSyncError | None:
        if isinstance(exc, (AuthError, RateLimitError)):
            return FatalSyncError(str(exc))
        if isinstance(exc, TransientError):
            return FatalSyncError(f"MOCO kept failing: {exc}")
        if isinstance(exc, MocoAPIError):
            if not exc.record_fault:
                return FatalSyncError(str(exc))
            field_name = exc.messages[0].split()[0] if exc.messages else None
            return RecordRejected(field_name, f"MOCO refused it: {exc}", kind="api")
        return None

    @override
    def _batch_starts(self, stream: str, items: list[WorkItem], known: Mapping[str, Any]) -> None:
        """Ready the people directory for a batch of contacts (or not: see PeopleDirectory)."""
        if stream == "contacts":
            new = sum(
                1
                for i in items
                if (entry := known.get(i.source_id or "")) is None or not entry.written
            )
            self.people.prepare(new)

    @override
    def _creates_ahead(self, stream: str) -> bool:
        # With MOCO's people read once, matching a new contact costs no call.
        return stream == "contacts" and self.people.in_use

    @override
    def _prepare_create(self, item: WorkItem) -> bool:
        # A contact the ledger does not know whose e-mails and phones no MOCO person read so
        # far has is created (_create_person), its intent first; its match at its turn still
        # finds a person read since (the intent's row then holds that link instead).
        if not self._creates_ahead(item.stream):
            return False
        try:
            payload = self._person_payload(item)
        except RecordRejected:
            return False  # rejected when its turn comes, with no intent
        keys = ("work_email", "home_email", "work_phone", "mobile_phone")
        if any(payload.fields.get(k) and self.people.indexed(k, payload.fields[k]) for k in keys):
            return False  # it may match a person: not surely a create
        item.prepared = payload
        return True

    def _person_payload(self, item: WorkItem) -> PersonPayload:
        if isinstance(item.prepared, PersonPayload):
            return item.prepared
        return person_payload(item.record, default_gender=self.rules.default_gender)

    @override
    def _dispatch(
        self, item: WorkItem, entry: LedgerEntry | None, parents: dict[str, LedgerEntry]
    ) -> str:
        if item.stream == "contacts":
            return self.write_person(self._person_payload(item), entry)
        if item.stream in self.child_streams:
            comment = comment_payload(
                item.stream, item.record, timezone_name=self.rules.timezone_name
            )
            person_id = self.parent_target_id(comment.contact_source_id, parents)
            if person_id is None:
                return "held"
            return self.write_comment(comment, entry, person_id)
        raise RecordRejected(None, f"unknown stream {item.stream!r}")

    @override
    def _delete(self, stream: str, entry: LedgerEntry) -> None:
        if stream == "contacts":
            self.client.delete_person(entry.target_id or "")
            self.people.forget(entry.target_id or "")
        else:
            self.client.delete_comment(entry.target_id or "")

    def _policy_for(self, entry: LedgerEntry) -> ConflictPolicy | None:
        if self.rules.conflict_policy is not None:
            return self.rules.conflict_policy
        return ConflictPolicy.MOST_RECENT if entry.two_way else None

    # --- people --------------------------------------------------------------------------
    def write_person(self, p: PersonPayload, entry: LedgerEntry | None) -> str:
        """Write one CRM contact into MOCO; returns its outcome."""
        if entry is not None and entry.written:
            if entry.payload_hash == p.payload_hash:
                self.ledger.clear_reject("contacts", p.source_id)
                return "unchanged"
            policy = self._policy_for(entry)
            person_id = entry.target_id or ""
            try:
                if policy is not None:
                    return self._reconcile_person(person_id, p, self._baseline(p, entry), policy)
                return self._overwrite_person(person_id, p, entry.extra)
            except NotFoundError:
                logger.warning(
                    "MOCO person %s (CRM contact %s) is gone; creating it again",
                    person_id,
                    p.source_id,
                )
                self.ledger.forget("contacts", p.source_id)
                entry = None
        return self._create_person(p, entry)

    @staticmethod
    def _baseline(p: PersonPayload, entry: LedgerEntry) -> Mapping[str, Any] | None:
        """What MOCO held for this pair after the last sync, as far as the ledger tells.

        This direction's own baseline; for a pair only target-contacts wrote, the CRM contact's
        values when it has not changed since target-contacts left the pair in sync (its
        ``dateUpdated`` is still that write's): MOCO held them then, so a difference now is
        MOCO's own change, not a conflict.
        """
        baseline = entry.extra.get("fields")
        if baseline is None:
            synced_at = parse_time(entry.other_extra.get(SYNCED_AT))
            if synced_at is not None and synced_at == parse_time(p.source_updated_at):
                return dict(p.fields)
        return baseline

    def _record_person(
        self, p: PersonPayload, person_id: str, held: Mapping[str, Any], tags: set[str]
    ) -> None:
        self.ledger.record_written(
            "contacts",
            p.source_id,
            person_id,
            p.payload_hash,
            extra={
                "fields": dict(held),
                "fields_hash": stable_hash(p.fields),
                "custom_hash": stable_hash(p.custom_properties),
                "tags": sorted(tags),
            },
        )

    def _new_tags(self, p: PersonPayload, have: list[str] | set[str]) -> list[str]:
        known = {str(t).strip().casefold() for t in have}
        return [t for t in p.tags if t.casefold() not in known]

    def _overwrite_person(self, person_id: str, p: PersonPayload, extra: Mapping[str, Any]) -> str:
        body: dict[str, Any] = {}
        if extra.get("fields_hash") != stable_hash(p.fields):
            body.update(p.fields)
        if p.custom_properties and extra.get("custom_hash") != stable_hash(p.custom_properties):
            body["custom_properties"] = p.custom_properties
        if body:
            self.people.wrote(person_id, body, self.client.update_person(person_id, body))
        new_tags = self._new_tags(p, set(extra.get("tags") or []))
        if new_tags:
            self.client.add_tags("Contact", person_id, new_tags)
        self._record_person(p, person_id, p.fields, set(extra.get("tags") or []) | set(p.tags))
        return "updated" if body or new_tags else "unchanged"

    def _reconcile_person(
        self,
        person_id: str,
        p: PersonPayload,
        baseline: Mapping[str, Any] | None,
        policy: ConflictPolicy,
        person: dict[str, Any] | None = None,
    ) -> str:
        """Merge ``p`` into MOCO person ``person_id`` (``person``: as MOCO answered it just now)."""
        if person is None:
            person = self.client.get_person(person_id)
        current = _current_person(person)
        merge = merge_fields(
            p.fields,
            {name: current.get(name) for name in p.fields},
            baseline,
            same=same_person_field,
            policy=policy,
            source_is_moco=False,
            source_time=parse_time(p.source_updated_at),
            target_time=parse_time(person.get("updated_at")),
        )
        for name, winner in sorted(merge.conflicts.items()):
            self.summary.conflict("contacts", winner)
            logger.info(
                "contacts %s: %s changed on both sides since the last sync; %s",
                p.source_id,
                name,
                "the CRM's value was written"
                if winner == "source"
                else "MOCO's value was kept (newer, or no way to tell which is newer)",
            )
        body = dict(merge.writes)
        current_custom = person.get("custom_properties") or {}
        changed_custom = {
            k: v for k, v in p.custom_properties.items() if current_custom.get(k) != v
        }
        if changed_custom:
            body["custom_properties"] = changed_custom
        if body:
            self.people.wrote(person_id, body, self.client.update_person(person_id, body))
        have = [str(t) for t in person.get("tags") or []]
        new_tags = self._new_tags(p, have)
        if new_tags:
            self.client.add_tags("Contact", person_id, new_tags)
        self._record_person(p, person_id, merge.baseline, set(have) | set(p.tags))
        return "updated" if body or new_tags else "unchanged"

    def _create_person(self, p: PersonPayload, entry: LedgerEntry | None) -> str:
        look_first = entry is not None and entry.state == "creating"
        pending = False
        for _attempt in range(MAX_CREATE_ATTEMPTS):
            found = self._match_person(p, after_lost_answer=look_first)
            if found is not None and look_first:
                # Our own create, committed although its answer was lost (or the run died).
                self._record_person(p, found, p.fields, set(p.tags))
                logger.info(
                    "CRM contact %s was already created in MOCO before an interrupted run; "
                    "adopted person %s",
                    p.source_id,
                    found,
                )
                return "created"
            if found is not None:
                policy = self.rules.conflict_policy
                if policy is None:
                    # One-way: the CRM's mapped values overwrite the matched person.
                    return self._overwrite_person(found, p, {})
                return self._reconcile_person(
                    found, p, None, policy, person=self.people.just_read(found)
                )
            if pending:
                raise RecordRejected(None, UNCONFIRMED_CREATE, kind="api")
            self.ledger.mark_creating("contacts", p.source_id)
            body: dict[str, Any] = {**p.fields, "gender": p.gender}
            if p.tags:
                body["tags"] = p.tags
            if p.custom_properties:
                body["custom_properties"] = p.custom_properties
            try:
                person = self.client.create_person(body)
            except TransientError as exc:
                if not exc.ambiguous:
                    raise
                look_first, pending = True, exc.pending
                continue
            self.people.wrote(str(person["id"]), body, person)
            self._record_person(p, str(person["id"]), p.fields, set(p.tags))
            return "created"
        raise FatalSyncError(
            f"creating MOCO person for CRM contact {p.source_id} failed {MAX_CREATE_ATTEMPTS} "
            "times with no answer from MOCO; rerun later"
        )

    def _match_person(self, p: PersonPayload, *, after_lost_answer: bool) -> str | None:
        """The MOCO person this contact is, if no other CRM contact is linked to it.

        Same e-mail, else phone; after a lost create answer also a person showing every field
        the create sent (one without e-mail and phone is found by name). A person linked
        to another contact makes this one a shared identity: rejected, unless
        merge_shared_contacts is set.
        """
        for field_name in ("work_email", "home_email"):
            email = p.fields.get(field_name)
            if not email:
                continue
            # MOCO's term search covers work_email but not home_email: the name finds those.
            searches = (
                [self.people.candidates(field_name, email)]
                if self.people.in_use
                else (self.client.find_people(term=term) for term in (email, p.fields["lastname"]))
            )
            for people in searches:
                hits = [
                    person
                    for person in people
                    if email.casefold()
                    in {str(person.get(k) or "").casefold() for k in ("work_email", "home_email")}
                ]
                found = self._unclaimed(p, hits, field_name)
                if found is not None:
                    return found
        for field_name in ("work_phone", "mobile_phone"):
            phone = p.fields.get(field_name)
            if phone and len(_digits(phone)) >= PHONE_TAIL:
                people = (
                    self.people.candidates(field_name, phone)
                    if self.people.in_use
                    else self.client.find_people(phone=_digits(phone)[-PHONE_TAIL:])
                )
                hits = [
                    person
                    for person in people
                    if any(same_phone(phone, person.get(k)) for k in ("work_phone", "mobile_phone"))
                ]
                found = self._unclaimed(p, hits, field_name)
                if found is not None:
                    return found
        if after_lost_answer:
            # Our own create shows every field it sent; a namesake that was there before (with
            # another phone, say) is someone else.
            people = self.client.find_people(term=p.fields["lastname"])
            hits = [
                person
                for person in people
                if all(same_person_field(k, v, person.get(k)) for k, v in p.fields.items())
            ]
            claimed = [h for h in hits if self._owner(p, str(h["id"])) is None]
            return str(claimed[0]["id"]) if claimed else None
        return None

    def _owner(self, p: PersonPayload, person_id: str) -> str | None:
        if self.rules.merge_shared_contacts:
            return None
        return self.ledger.claimant("contacts", person_id, other_than=p.source_id)

    def _unclaimed(
        self, p: PersonPayload, hits: list[dict[str, Any]], field_name: str
    ) -> str | None:
        owners = []
        for person in sorted(hits, key=lambda h: int(h.get("id") or 0)):
            owner = self._owner(p, str(person["id"]))
            if owner is None:
                return str(person["id"])
            owners.append((owner, person["id"]))
        if owners:
            owner, person_id = owners[0]
            raise RecordRejected(
                field_name,
                f"shares its {field_name} {p.fields.get(field_name)!r} with CRM contact {owner}, "
                f"which is linked to MOCO person {person_id}; a MOCO person belongs to one CRM "
                "contact, so this one is not written (nor its notes, tasks and appointments). "
                "Give it its own e-mail and phone, or set merge_shared_contacts",
                kind=SHARED_IDENTITY,
            )
        return None

    # --- comments ------------------------------------------------------------------------
    def write_comment(self, p: CommentPayload, entry: LedgerEntry | None, person_id: str) -> str:
        """Write one CRM note, task or appointment as a comment on MOCO person ``person_id``."""
        if entry is not None and entry.written:
            if entry.payload_hash == p.payload_hash:
                self.ledger.clear_reject(p.stream, p.source_id)
                return "unchanged"
            comment_id = entry.target_id or ""
            try:
                return self._update_comment(p, entry, comment_id, person_id)
            except NotFoundError:
                self.ledger.forget(p.stream, p.source_id)
                entry = None
        return self._create_comment(p, entry, person_id)

    def _record_comment(
        self,
        p: CommentPayload,
        comment_id: str,
        person_id: str,
        held: Mapping[str, Any] | None = None,
        *,
        in_sync: bool = True,
    ) -> None:
        self.ledger.record_written(
            p.stream,
            p.source_id,
            comment_id,
            p.payload_hash,
            contact_source_id=p.contact_source_id,
            contact_target_id=person_id,
            extra=text_extra("text", p.plain, held, in_sync=in_sync),
        )

    def _update_comment(
        self, p: CommentPayload, entry: LedgerEntry, comment_id: str, person_id: str
    ) -> str:
        policy = self._policy_for(entry)
        if policy is not None:
            current = self.client.get_comment(comment_id)
            shown = html_to_text(str(current.get("text") or "")) or ""
            baseline = text_baseline(entry, "text", p.plain, same=same_text)
            merge = merge_fields(
                {"text": p.plain},
                {"text": shown},
                baseline,
                same=lambda _name, a, b: same_text(str(a or ""), str(b or "")),
                policy=policy,
                source_is_moco=False,
                source_time=parse_time(p.source_updated_at),
                target_time=parse_time(current.get("updated_at")),
            )
            for winner in merge.conflicts.values():
                self.summary.conflict(p.stream, winner)
            if not merge.writes:
                self._record_comment(
                    p, comment_id, person_id, merge.baseline, in_sync=merge.in_sync
                )
                return "unchanged"
        self.client.update_comment(comment_id, {"text": p.html})
        self._record_comment(p, comment_id, person_id)
        return "updated"

    def _create_comment(self, p: CommentPayload, entry: LedgerEntry | None, person_id: str) -> str:
        if entry is None:
            found = self._forward_counterpart(p, person_id)
            if found is not None:
                self._record_comment(p, found, person_id)
                return "unchanged"
        look_first = entry is not None and entry.state == "creating"
        pending = False
        for _attempt in range(MAX_CREATE_ATTEMPTS):
            if look_first:
                found = self._find_comment(p, person_id)
                if found is not None:
                    self._record_comment(p, found, person_id)
                    logger.info(
                        "%s %s was already written before an interrupted run; adopted comment %s",
                        p.stream,
                        p.source_id,
                        found,
                    )
                    return "created"
                if pending:
                    raise RecordRejected(None, UNCONFIRMED_CREATE, kind="api")
            self.ledger.mark_creating(p.stream, p.source_id, contact_source_id=p.contact_source_id)
            body: dict[str, Any] = {
                "commentable_type": "Contact",
                "commentable_id": int(person_id) if person_id.isdigit() else person_id,
                "text": p.html,
            }
            created_at = parse_time(p.created_at) if p.stream == "notes" else None
            if created_at is not None:
                body["created_at"] = created_at.strftime(_MOCO_TIME)
            try:
                comment = self.client.create_comment(body)
            except TransientError as exc:
                if not exc.ambiguous:
                    raise
                look_first, pending = True, exc.pending
                continue
            self._record_comment(p, str(comment["id"]), person_id)
            return "created"
        raise FatalSyncError(
            f"creating a MOCO comment for {p.stream} record {p.source_id} failed "
            f"{MAX_CREATE_ATTEMPTS} times with no answer from MOCO; rerun later"
        )

    def _forward_counterpart(self, p: CommentPayload, person_id: str) -> str | None:
        """The MOCO comment whose CRM copy ``p`` is, if target-contacts left that create unrecorded.

        A lost answer or a crash: the pair is linked, nothing is written. Costs a read only when
        the ledger holds such an unfinished create on this person.
        """
        for comment_id in sorted(self.ledger.created_by_the_other_direction(p.stream, person_id)):
            try:
                comment = self.client.get_comment(comment_id)
            except NotFoundError:
                continue
            if same_text(html_to_text(str(comment.get("text") or "")) or "", p.plain):
                logger.info(
                    "%s %s is the CRM copy of MOCO comment %s, whose create an interrupted "
                    "forward run left unrecorded; linked",
                    p.stream,
                    p.source_id,
                    comment_id,
                )
                return str(comment_id)
        return None

    def _find_comment(self, p: CommentPayload, person_id: str) -> str | None:
        """A comment on the person showing ``p``'s text that no other record is linked to."""
        claimed = self.ledger.target_ids_for_contact(
            p.stream, p.contact_source_id, other_than=p.source_id
        )
        for comment in self.client.comments_on("Contact", person_id):
            comment_id = str(comment.get("id"))
            shown = html_to_text(str(comment.get("text") or "")) or ""
            if comment_id not in claimed and same_text(shown, p.plain):
                return comment_id
        return None
