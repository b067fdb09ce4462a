"""Input records to Contacts API request bodies: validation, normalisation, hashing.

Pure functions with no I/O, so every rule here is unit-tested on its own. A record that cannot be
sent raises :class:`RecordRejected` naming the field and the reason; the sink keeps it in the
ledger instead of sending it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import phonenumbers

from sync_ledger.validation import RecordCheck
from sync_ledger.writer import RecordRejected, stable_hash

if TYPE_CHECKING:
    from collections.abc import Mapping

# The input streams' fields (DESIGN.md "target-contacts input streams"). Extra fields are allowed
# (a stream map may pass more through) and ignored unless a setting uses them.
_NULLABLE_STRING = {"type": ["string", "null"]}
_ID = {"type": ["string", "integer"], "minLength": 1}

INPUT_SCHEMAS: dict[str, dict[str, Any]] = {
    "contacts": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": _ID,
            "firstName": _NULLABLE_STRING,
            "lastName": _NULLABLE_STRING,
            "email": _NULLABLE_STRING,
            "phone": _NULLABLE_STRING,
            "companyName": _NULLABLE_STRING,
            "address1": _NULLABLE_STRING,
            "city": _NULLABLE_STRING,
            "postalCode": _NULLABLE_STRING,
            "country": _NULLABLE_STRING,
            "website": _NULLABLE_STRING,
            "dateOfBirth": _NULLABLE_STRING,
            "source": _NULLABLE_STRING,
            "tags": {"type": ["array", "null"], "items": {"type": "string"}},
            "custom_properties": {"type": ["object", "null"]},
            "sourceUpdatedAt": _NULLABLE_STRING,
        },
    },
    "tasks": {
        "type": "object",
        "required": ["taskId", "contactId", "title", "dueDate"],
        "properties": {
            "taskId": _ID,
            "contactId": _ID,
            "title": {"type": "string", "minLength": 1},
            "dueDate": {"type": "string", "minLength": 1},
            "status": {"enum": ["open", "completed", None]},
            "body": _NULLABLE_STRING,
            "sourceUpdatedAt": _NULLABLE_STRING,
        },
    },
    "notes": {
        "type": "object",
        "required": ["notesId", "contactId", "content"],
        "properties": {
            "notesId": _ID,
            "contactId": _ID,
            "content": {"type": "string", "minLength": 1},
            "createdAt": _NULLABLE_STRING,
            "sourceUpdatedAt": _NULLABLE_STRING,
        },
    },
}

SOURCE_ID_FIELD = {"contacts": "id", "tasks": "taskId", "notes": "notesId"}

# Limits the Contacts API enforces or that no CRM user could want beyond (UNCONFIRMED exact
# values on the API side; these keep a runaway field from being sent at all).
MAX_FIELD_LENGTH = {
    "firstName": 255,
    "lastName": 255,
    "companyName": 255,
    "address1": 500,
    "city": 255,
    "title": 500,
    "website": 2000,
}
MAX_NOTE_LENGTH = 50_000
# The longest address RFC 5321 lets a mail server accept.
MAX_EMAIL_LENGTH = 254
# ``YYYY-MM-DD``: a date without a time.
_DATE_LENGTH = len("2026-01-31")

# The trailing digits that identify a phone whatever its prefix (+49 30 ... vs 030 ...).
_MIN_PHONE_DIGITS = 7
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CHECKS = {name: RecordCheck(schema) for name, schema in INPUT_SCHEMAS.items()}


@dataclass
class ContactPayload:
    """What the Contacts API gets for one source contact."""

    source_id: str
    fields: dict[str, Any]  # body fields for create/update, without tags
    tags: list[str] = field(default_factory=list)
    #: When the source record last changed (``sourceUpdatedAt``); decides two-way conflicts.
    source_updated_at: str | None = None

    @property
    def fields_hash(self) -> str:
        """The hash of the body fields alone (a change means an update call)."""
        return stable_hash(self.fields)

    @property
    def payload_hash(self) -> str:
        """The hash of everything sent (fields and tags); equal hashes need no call."""
        return stable_hash({"fields": self.fields, "tags": self.tags})


@dataclass
class TaskPayload:
    """What the Contacts API gets for one source task."""

    source_id: str
    contact_source_id: str
    fields: dict[str, Any]  # title, dueDate, body
    completed: bool
    source_updated_at: str | None = None

    @property
    def payload_hash(self) -> str:
        """The hash of everything sent (fields and completion); equal hashes need no call."""
        return stable_hash({"fields": self.fields, "completed": self.completed})


@dataclass
class NotePayload:
    """What the Contacts API gets for one source note."""

    source_id: str
    contact_source_id: str
    body: str
    source_updated_at: str | None = None

    @property
    def payload_hash(self) -> str:
        """The hash of the note's body; equal hashes need no call."""
        return stable_hash({"body": self.body})


def source_id_of(stream: str, record: Mapping[str, Any]) -> str | None:
    """The record's source id as a string, or None when it has none."""
    value = record.get(SOURCE_ID_FIELD[stream])
    if value is None or value == "":
        return None
    return str(value)


def validate(stream: str, record: Mapping[str, Any]) -> None:
    """Check ``record`` against the stream's input schema; the first error names its field."""
    # Dates may arrive parsed (from another SDK target's habits); they count as strings here.
    record = {
        k: v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v for k, v in record.items()
    }
    _CHECKS[stream].check(record)


def _clean(value: object) -> str | None:
    """A trimmed string, or None for empty values; datetimes become ISO strings."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = (
            value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            if value.tzinfo
            else value.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
    elif isinstance(value, dt.date):
        value = value.isoformat()
    text = str(value).strip()
    return text or None


def normalize_email(value: object) -> str | None:
    """Trimmed and lower-cased; raises RecordRejected when it is not an email address."""
    email = _clean(value)
    if email is None:
        return None
    email = email.lower()
    if not _EMAIL.match(email) or len(email) > MAX_EMAIL_LENGTH:
        raise RecordRejected("email", f"{email!r} is not a valid email address")
    return email


def normalize_phone(value: object, default_region: str | None) -> str | None:
    """E.164 where the number can be read; raises RecordRejected when it cannot."""
    phone = _clean(value)
    if phone is None:
        return None
    try:
        parsed = phonenumbers.parse(phone, (default_region or "").upper() or None)
    except phonenumbers.NumberParseException as exc:
        hint = "" if default_region else " (set default_phone_region for numbers without +country)"
        raise RecordRejected(
            "phone", f"{phone!r} cannot be read as a phone number: {exc.args[0]}{hint}"
        ) from exc
    # IS_POSSIBLE_LOCAL_ONLY ("12", "030 1") has no E.164 form anyone could dial: refuse it too.
    if (
        phonenumbers.is_possible_number_with_reason(parsed)
        != phonenumbers.ValidationResult.IS_POSSIBLE
    ):
        raise RecordRejected("phone", f"{phone!r} is not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def identity_keys(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The identifiers a contact record may share with another one; never raises.

    Its email and its phone's last digits, as the Contacts API's duplicate rules compare them.
    """
    keys: list[tuple[str, str]] = []
    email = record.get("email")
    if isinstance(email, str) and email.strip():
        keys.append(("email", email.strip().lower()))
    phone = record.get("phone")
    digits = re.sub(r"\D", "", phone) if isinstance(phone, str) else ""
    if len(digits) >= _MIN_PHONE_DIGITS:
        keys.append(("phone", digits[-_MIN_PHONE_DIGITS:]))
    return keys


def normalize_date(value: object, field_name: str) -> str | None:
    """A ``YYYY-MM-DD`` date (from a date or date-time); rejects what is not a date."""
    text = _clean(value)
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text[:_DATE_LENGTH]).isoformat()
    except ValueError as exc:
        raise RecordRejected(field_name, f"{text!r} is not a date (YYYY-MM-DD)") from exc


def normalize_datetime(value: object, field_name: str) -> str:
    """An ISO-8601 UTC timestamp without fractions (``2026-01-31T09:00:00Z``)."""
    text = _clean(value)
    if text is None:
        raise RecordRejected(field_name, "is required but missing")
    try:
        if len(text) == _DATE_LENGTH:
            parsed = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.timezone.utc)
        else:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise RecordRejected(field_name, f"{text!r} is not a date-time (ISO 8601)") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_country(value: object) -> str | None:
    """An upper-case ISO 3166 alpha-2 code; raises RecordRejected when it is not two letters."""
    country = _clean(value)
    if not country:
        return None
    if not re.fullmatch(r"[A-Za-z]{2}", country):
        raise RecordRejected("country", f"{country!r} is not a 2-letter country code")
    return country.upper()


def _limit(name: str, value: str | None) -> str | None:
    limit = MAX_FIELD_LENGTH.get(name)
    if value is not None and limit and len(value) > limit:
        raise RecordRejected(name, f"is {len(value)} characters long; the limit is {limit}")
    return value


def _custom_fields(record: Mapping[str, Any], mapping: Mapping[str, str]) -> list[dict[str, Any]]:
    """``custom_properties`` values mapped to Contacts API custom field ids, in a stable order."""
    props = record.get("custom_properties") or {}
    out = []
    for name, field_id in sorted(mapping.items()):
        if name not in props:
            continue
        value = props[name]
        if isinstance(value, list):
            value = [str(v) for v in value]
        elif value is not None:
            value = str(value)
        out.append({"id": field_id, "field_value": value})
    return out


def contact_payload(
    record: Mapping[str, Any],
    *,
    default_phone_region: str | None = None,
    custom_field_map: Mapping[str, str] | None = None,
) -> ContactPayload:
    """The Contacts API body for an input ``contacts`` record (tags kept apart)."""
    validate("contacts", record)
    source_id = source_id_of("contacts", record)
    if source_id is None:
        raise RecordRejected("id", "is required but missing")
    fields: dict[str, Any] = {}
    for name in (
        "firstName",
        "lastName",
        "companyName",
        "address1",
        "city",
        "postalCode",
        "website",
        "source",
    ):
        value = _limit(name, _clean(record.get(name)))
        if value is not None:
            fields[name] = value
    email = normalize_email(record.get("email"))
    if email:
        fields["email"] = email
    phone = normalize_phone(record.get("phone"), default_phone_region)
    if phone:
        fields["phone"] = phone
    country = normalize_country(record.get("country"))
    if country:
        fields["country"] = country
    birthday = normalize_date(record.get("dateOfBirth"), "dateOfBirth")
    if birthday:
        fields["dateOfBirth"] = birthday
    if custom_field_map:
        custom = _custom_fields(record, custom_field_map)
        if custom:
            fields["customFields"] = custom
    tags = sorted({t.strip() for t in (record.get("tags") or []) if t and t.strip()})
    return ContactPayload(
        source_id=source_id,
        fields=fields,
        tags=tags,
        source_updated_at=_clean(record.get("sourceUpdatedAt")),
    )


def task_payload(record: Mapping[str, Any]) -> TaskPayload:
    """The Contacts API body for an input ``tasks`` record."""
    validate("tasks", record)
    fields: dict[str, Any] = {
        "title": _limit("title", _clean(record.get("title"))),
        "dueDate": normalize_datetime(record.get("dueDate"), "dueDate"),
    }
    body = _clean(record.get("body"))
    if body:
        fields["body"] = body
    return TaskPayload(
        source_id=str(record["taskId"]),
        contact_source_id=str(record["contactId"]),
        fields=fields,
        completed=record.get("status") == "completed",
        source_updated_at=_clean(record.get("sourceUpdatedAt")),
    )


def note_payload(record: Mapping[str, Any]) -> NotePayload:
    """The Contacts API body for an input ``notes`` record."""
    validate("notes", record)
    body = _clean(record.get("content"))
    if body is None:
        raise RecordRejected("content", "is empty")
    if len(body) > MAX_NOTE_LENGTH:
        raise RecordRejected(
            "content", f"is {len(body)} characters long; the limit is {MAX_NOTE_LENGTH}"
        )
    return NotePayload(
        source_id=str(record["notesId"]),
        contact_source_id=str(record["contactId"]),
        body=body,
        source_updated_at=_clean(record.get("sourceUpdatedAt")),
    )
