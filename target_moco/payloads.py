"""Input records to MOCO request bodies: validation, normalisation, hashing.

Pure functions with no I/O. A record that cannot be written raises
:class:`~sync_ledger.writer.RecordRejected` naming the field and the reason; the sink keeps it in
the ledger instead of writing it.

Input streams (after the reverse stream maps; MOCO's field names; ids are Contacts API ids):
``contacts`` (id, firstname, lastname, work_email, work_phone, mobile_phone, title, job_position,
birthday, gender, tags, custom_properties, source_updated_at), ``notes`` (id, contactId, body,
dateAdded), ``appointments`` (id, contactId, title, startTime, endTime, status, calendarId) and
``tasks`` (id, contactId, title, dueDate, completed).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moco_api.html import text_to_html
from sync_ledger.validation import RecordCheck
from sync_ledger.writer import RecordRejected, stable_hash
from target_moco.activities import render_appointment, render_task

if TYPE_CHECKING:
    from collections.abc import Mapping

_TEXT = {"type": ["string", "null"]}
_ID = {"type": ["string", "integer"], "minLength": 1}
_CHILD = {"id": _ID, "contactId": _ID, "source_updated_at": _TEXT}

INPUT_SCHEMAS: dict[str, dict[str, Any]] = {
    "contacts": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": _ID,
            "firstname": _TEXT,
            "lastname": _TEXT,
            "work_email": _TEXT,
            "home_email": _TEXT,
            "work_phone": _TEXT,
            "mobile_phone": _TEXT,
            "title": _TEXT,
            "job_position": _TEXT,
            "birthday": _TEXT,
            "gender": _TEXT,
            "tags": {"type": ["array", "null"], "items": {"type": "string"}},
            "custom_properties": {"type": ["object", "null"]},
            "source_updated_at": _TEXT,
        },
    },
    "notes": {
        "type": "object",
        "required": ["id", "contactId", "body"],
        "properties": {**_CHILD, "body": {"type": "string"}, "dateAdded": _TEXT},
    },
    "tasks": {
        "type": "object",
        "required": ["id", "contactId", "title"],
        "properties": {
            **_CHILD,
            "title": {"type": "string", "minLength": 1},
            "dueDate": _TEXT,
            "completed": {"type": ["boolean", "null"]},
            "body": _TEXT,
        },
    },
    "appointments": {
        "type": "object",
        "required": ["id", "contactId"],
        "properties": {
            **_CHILD,
            "title": _TEXT,
            "startTime": _TEXT,
            "endTime": _TEXT,
            "status": _TEXT,
            "calendarId": _TEXT,
        },
    },
}
_CHECKS = {name: RecordCheck(schema) for name, schema in INPUT_SCHEMAS.items()}

#: The fields a person payload may carry, in MOCO's names (tags travel apart).
PERSON_FIELDS = (
    "firstname",
    "lastname",
    "work_email",
    "home_email",
    "work_phone",
    "mobile_phone",
    "title",
    "job_position",
    "birthday",
)
GENDERS = ("F", "M", "U")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_TEXT = 255
MAX_COMMENT_LENGTH = 50_000


@dataclass
class PersonPayload:
    """What MOCO gets for one CRM contact (``fields`` without tags; ``gender`` only on create)."""

    source_id: str
    fields: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    gender: str = "U"
    custom_properties: dict[str, Any] = field(default_factory=dict)
    source_updated_at: str | None = None

    @property
    def payload_hash(self) -> str:
        """The hash of everything written; equal hashes need no call."""
        return stable_hash(
            {"fields": self.fields, "tags": self.tags, "custom": self.custom_properties}
        )


@dataclass
class CommentPayload:
    """A MOCO comment on a person for one CRM note, task or appointment."""

    stream: str
    source_id: str
    contact_source_id: str
    #: What the comment shows, as plain text (compared with MOCO's text rendered as plain text).
    plain: str
    created_at: str | None = None
    source_updated_at: str | None = None

    @property
    def html(self) -> str:
        """The comment's ``text``: the plain text escaped, so markup in it stays visible."""
        return text_to_html(self.plain)

    @property
    def payload_hash(self) -> str:
        """The hash of what the comment shows; equal hashes need no call."""
        return stable_hash({"text": self.plain})


def validate(stream: str, record: Mapping[str, Any]) -> None:
    """Check ``record`` against the stream's input schema; the first error names its field."""
    _CHECKS[stream].check(dict(record))


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _limited(name: str, value: str | None) -> str | None:
    if value is not None and len(value) > _MAX_TEXT:
        raise RecordRejected(name, f"is {len(value)} characters long; MOCO takes {_MAX_TEXT}")
    return value


def _ensure_lastname(fields: dict[str, Any]) -> None:
    """MOCO requires a last name: the first name moves there, else the e-mail's local part."""
    if "lastname" in fields:
        return
    if "firstname" in fields:
        fields["lastname"] = fields.pop("firstname")
        return
    email = fields.get("work_email") or fields.get("home_email")
    if email:
        fields["lastname"] = email.split("@", 1)[0]
        return
    raise RecordRejected(
        "lastname", "is empty, and so are firstname and the e-mail: MOCO needs a last name"
    )


def person_payload(record: Mapping[str, Any], *, default_gender: str = "U") -> PersonPayload:
    """MOCO person fields for a ``contacts`` record.

    MOCO requires ``lastname`` (and ``gender``): a contact with no last name gets its first
    name as last name (and no first name); with neither, the e-mail's local part; with none of
    them, it is rejected. ``gender`` is the record's when it is F, M or U, else
    ``default_gender``.
    """
    validate("contacts", record)
    fields: dict[str, Any] = {}
    for name in PERSON_FIELDS:
        value = _limited(name, _clean(record.get(name)))
        if value is not None:
            fields[name] = value
    for name in ("work_email", "home_email"):
        if name in fields:
            fields[name] = fields[name].lower()
            if not _EMAIL.match(fields[name]):
                raise RecordRejected(name, f"{fields[name]!r} is not an e-mail address")
    if "birthday" in fields:
        try:
            fields["birthday"] = dt.date.fromisoformat(fields["birthday"][:10]).isoformat()
        except ValueError:
            raise RecordRejected("birthday", f"{fields['birthday']!r} is not a date") from None
    _ensure_lastname(fields)
    gender = str(record.get("gender") or "").strip().upper()
    tags = sorted({t.strip() for t in record.get("tags") or [] if t and t.strip()})
    custom = record.get("custom_properties") or {}
    return PersonPayload(
        source_id=str(record["id"]),
        fields=fields,
        tags=tags,
        gender=gender if gender in GENDERS else default_gender,
        custom_properties=dict(custom) if isinstance(custom, dict) else {},
        source_updated_at=_clean(record.get("source_updated_at")),
    )


def comment_payload(
    stream: str, record: Mapping[str, Any], *, timezone_name: str = "UTC"
) -> CommentPayload:
    """The MOCO comment for a ``notes``, ``tasks`` or ``appointments`` record."""
    validate(stream, record)
    if stream == "notes":
        plain = _clean(record.get("body"))
        if plain is None:
            raise RecordRejected("body", "is empty")
    elif stream == "tasks":
        plain = render_task(record)
    else:
        plain = render_appointment(record, timezone_name=timezone_name)
    if len(plain) > MAX_COMMENT_LENGTH:
        raise RecordRejected(
            "body", f"is {len(plain)} characters long; the limit is {MAX_COMMENT_LENGTH}"
        )
    created = _clean(record.get("dateAdded"))
    return CommentPayload(
        stream=stream,
        source_id=str(record["id"]),
        contact_source_id=str(record["contactId"]),
        plain=plain,
        created_at=created,
        source_updated_at=_clean(record.get("source_updated_at")),
    )
