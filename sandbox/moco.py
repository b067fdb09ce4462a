"""MOCO API v1 sandbox: contacts, companies, comments, to-dos, taggings and web hooks.

Faithful to reference/moco-api.md and the recorded responses in reference/moco-recorded/:

- Everything lives under ``/api/v1``. Auth: ``Authorization: Token token=KEY`` (the key may be
  quoted) or ``Authorization: Bearer KEY``; anything else answers 401
  ``{"message": "Unauthorized"}``.
- ``GET/POST /contacts/people``, ``GET/PUT/PATCH/DELETE /contacts/people/{id}``;
  ``GET/POST /companies``, ``GET/PUT/PATCH/DELETE /companies/{id}``,
  ``PUT /companies/{id}/archive`` and ``/unarchive``; ``GET/POST /comments``,
  ``POST /comments/bulk``, ``GET/PUT/PATCH/DELETE /comments/{id}``; ``GET /todos``,
  ``GET /todos/{id}`` (read-only, as in MOCO); ``GET /session``;
  ``GET/PATCH/PUT/DELETE /taggings/{entity}/{id}`` (entity one of Company, Contact, Project,
  Deal, Purchase, Invoice, Offer, User, else 400; GET answers the plain array of names, no
  paging headers; PATCH adds, PUT replaces (``[]`` clears), DELETE with a JSON body removes the
  listed names and ignores absent ones; ``tags`` is a list or a comma-separated string; every
  write answers 200 with the full resulting list, sorted); ``GET/POST /account/web_hooks``,
  ``GET/PUT/PATCH/DELETE /account/web_hooks/{id}`` (only ``hook`` changes; DELETE answers 200
  with the hook), ``PUT /account/web_hooks/{id}/disable`` and ``/enable`` (idempotent).
- Contacts: ``lastname`` and ``gender`` (``F``/``M``/``U``) are required on create (MD), else
  422 ``{"errors": {"gender": ["can't be blank"]}}``; ``custom_properties`` are merged and at
  most 12 kB (422 above); ``term`` searches lastname, firstname, work_email and the company name
  (not home_email); ``phone`` searches work_phone and mobile_phone.
- Webhooks (reference/moco-api.md §7, :mod:`sandbox.moco_webhooks`): every create, update and
  delete of a contact (target ``Contact``), company (``Company``) or comment (``Comment``),
  through the API or the ``/_sandbox/`` writes below, is POSTed from a background thread to each
  enabled hook of that target and event, signed, with MOCO's ``X-Moco-*`` headers. API writes
  act as the API key's user (933662266, origin ``api``); ``/_sandbox/`` writes as the web UI user
  933662267 (origin empty). Hooks must point at this machine: other URLs are refused in the log.
  Seeding, ``/_sandbox/todos`` and the company name a contact embeds send none (MOCO has no
  to-do target; the embedded name changes no contact's ``updated_at``).
- Lists are bare JSON arrays, paged with ``page`` (1-based) and ``per_page`` (default 100, at most
  100), with ``X-Page``, ``X-Per-Page``, ``X-Total`` (digit strings) and, only when a next page
  exists, ``Link: <...page=N+1...>; rel="next"`` that keeps the other query parameters.
- Default order: contacts by lastname, companies by name (both compared case-, accent- and
  punctuation-insensitively like the database collation behind the recordings, then by id),
  comments newest first (``created_at`` then id, descending), to-dos by id.
- Filters: ``ids`` and ``updated_after`` on contacts, companies and comments; contacts also
  ``tags``, ``term``, ``phone``, ``custom_properties[Name]``; companies ``include_archived``
  (archived ones are hidden without it), ``type``, ``tags``, ``identifier``, ``term``; comments
  ``commentable_type`` (``Customer`` = ``Company``), ``commentable_id``, ``user_id``, ``manual``;
  to-dos ``completed``, ``term``, ``assigned_to_user_id``, ``created_by_user_id``,
  ``responsible_user_id``. Unknown parameters are ignored, as MOCO does (so ``/todos`` ignores
  ``updated_after`` and ``ids``: it has neither).
- Creates answer 200 (not 201) with the full record; validation errors answer 422
  ``{"errors": {"field": ["message"]}}``. Every change bumps ``updated_at`` (UTC, whole seconds,
  never earlier than any timestamp issued or seeded before); a write that changes nothing does not.
- Rate limit: ``rate_limit`` requests per ``rate_window`` seconds per API key (MOCO: 120 per 2 min),
  over it 429 ``{"message": "Too many requests"}`` with no extra headers.

Choices where MOCO's behaviour is UNCONFIRMED (reference/moco-api.md §10), made the safe way:
``per_page`` above 100 is clamped; ``updated_after`` is strict (``>``) and an unparsable one answers
400; tag and custom-property changes bump ``updated_at``; archiving bumps ``updated_at``;
``DELETE /contacts/people/{id}`` answers 200 with the deleted contact (OA); deleting a contact or
company also deletes its comments and to-dos; deleting a system comment (``manual: false``) answers
403; renaming a company changes the ``company`` embedded in its contacts without bumping their
``updated_at``; the ``.json`` path suffix is not served; ``tags`` in a contact or company
PUT replaces the set; tag names are case-sensitive as stored; a tagging change bumps the record's
``updated_at`` and sends its ``update`` webhook; archiving sends a Company ``update`` webhook;
comments deleted with their contact or company send their own ``delete`` webhooks; web hooks
are listed by id; ``term`` needs every word of the term in one of its fields (substring, any
case); ``phone`` needs the query's digits inside the stored number's digits.

Sandbox-only routes (besides the common ones in :mod:`sandbox.server`):

- ``POST /_sandbox/seed``: ``{"companies": [...], "contacts": [...], "todos": [...],
  "comments": [...]}`` in MOCO's response shapes (missing fields get MOCO's defaults; ids and
  timestamps are kept when given; a contact may give ``company_id`` instead of ``company``), and/or
  ``{"generate": {"contacts": N, "seed": S}}`` (:func:`sandbox.moco_data.generate`). Records with an
  existing id replace it. Answers the number of records loaded per type.
- ``GET /_sandbox/state``: every stored record, the same four keys, each list sorted by id.
- ``POST /_sandbox/reset``: forget all records (ids and the clock keep counting up).
- ``POST /_sandbox/config``: ``latency``, ``rate_limit``, ``rate_window``, ``api_key`` and the
  webhook settings ``webhook_secret``, ``webhook_jitter``, ``webhook_backoff``,
  ``webhook_backoff_max``, ``webhook_max_attempts``, ``webhook_timeout``,
  ``webhook_disable_after``, ``webhook_workers``, ``webhook_account_url``.
- ``POST /_sandbox/people``, ``PUT``/``PATCH``/``DELETE /_sandbox/people/{id}`` (and the same
  under ``/_sandbox/companies`` and ``/_sandbox/comments``): the API's writes with the same bodies
  and answers, standing for a person working in MOCO's web UI (no key, no rate limit, no faults,
  not in the request log; the web UI user authors and sends the webhooks).
- ``GET /_sandbox/webhook_deliveries[?since=N]``: one entry per delivery attempt (see
  :mod:`sandbox.webhooks`), header ``X-Pending-Deliveries`` = deliveries queued or in flight;
  ``DELETE`` clears the log. ``POST /_sandbox/reset`` also forgets hooks, queue and log.
- ``POST /_sandbox/todos`` creates a to-do and ``PUT /_sandbox/todos/{id}`` changes one (partial
  body, bumps ``updated_at``; ``completed: true`` sets ``completed_at``), ``DELETE
  /_sandbox/todos/{id}`` removes one: MOCO's API has no to-do writes, tests need them.
"""

from __future__ import annotations

import hmac
import json
import re
import time
import unicodedata
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from typing_extensions import override

from sandbox import moco_data, moco_webhooks
from sandbox.moco_data import (
    COMMENT_DEFAULTS,
    COMMENT_OPTIONAL_FIELDS,
    COMMENTABLE_TYPES,
    COMPANY_DEFAULTS,
    COMPANY_OPTIONAL_FIELDS,
    COMPANY_TYPES,
    CONTACT_DEFAULTS,
    CUSTOMER_DEFAULTS,
    GENDERS,
    ID_BASES,
    SESSION_USER,
    SUPPLIER_DEFAULTS,
    TODO_DEFAULTS,
    TODOABLE_TYPES,
    USERS,
    VAT_DEFAULTS,
    format_ts,
    fresh,
    user_ref,
)
from sandbox.moco_webhooks import (
    API_ACTOR,
    HOOK_KEYS,
    WEB_UI_ACTOR,
    Actor,
    MocoWebhooks,
    WebhookOptions,
    hook_errors,
)
from sandbox.server import HTTPError, Request, Response, SandboxApp, SlidingWindow

if TYPE_CHECKING:
    import argparse

API = "/api/v1"
Record = dict[str, Any]
Predicate = Callable[[Record], bool]

DEFAULT_PER_PAGE = 100
# OA declares max 100; whether MOCO clamps or rejects a larger per_page is UNCONFIRMED: we clamp.
MAX_PER_PAGE = 100
MAX_BULK_COMMENTS = 100  # POST /comments/bulk takes up to 100 records (OA)
MAX_CUSTOM_PROPERTIES_BYTES = 12 * 1024  # OA: larger custom fields answer 422
LIST_CACHE_QUERIES = 32  # filtered lists kept between pages: only the few being paged matter

_TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_DATE_RE = re.compile(r"\d{4}-\d\d-\d\d")
_ALLOWED_HTML = frozenset({"div", "strong", "em", "u", "pre", "ul", "ol", "li", "br"})
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)\b[^>]*?(/?)>")
_DROP_WITH_CONTENT_RE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_COLLATE_FOLD = str.maketrans(
    {
        "ß": "ss",
        "ł": "l",
        "Ł": "l",
        "ø": "o",
        "Ø": "o",
        "æ": "ae",
        "Æ": "ae",
        "œ": "oe",
        "Œ": "oe",
        "đ": "d",
        "Đ": "d",
        "ı": "i",  # noqa: RUF001 - the Turkish dotless i, folded on purpose
        "þ": "th",
    }
)
_NON_ALNUM_RE = re.compile(r"[^0-9a-z]+")
_USERS_BY_ID = {u["id"]: u for u in USERS}
# reference/moco-api.md §6.7: the entities ``/taggings/{entity}/{id}`` takes.
TAGGABLE_ENTITIES = (
    "Company",
    "Contact",
    "Project",
    "Deal",
    "Purchase",
    "Invoice",
    "Offer",
    "User",
)

CONTACT_STRING_FIELDS = (
    "firstname",
    "lastname",
    "title",
    "job_position",
    "mobile_phone",
    "work_fax",
    "work_phone",
    "work_email",
    "work_address",
    "home_email",
    "home_address",
    "salutation",
    "info",
)
COMPANY_STRING_FIELDS = (
    "name",
    "website",
    "email",
    "billing_email_cc",
    "phone",
    "fax",
    "address",
    "country_code",
    "vat_identifier",
    "info",
    "footer",
)
CUSTOMER_STRING_FIELDS = ("identifier", "currency", "billing_notes")
SUPPLIER_STRING_FIELDS = ("iban", "bank_bic", "bank_owner")
_TYPE_STRING_FIELDS = {"customer": CUSTOMER_STRING_FIELDS, "supplier": SUPPLIER_STRING_FIELDS}
# Older names a contact write may use (alias, field); the field itself wins when both are sent.
_CONTACT_ALIASES = (
    ("name", "lastname"),
    ("bday", "birthday"),
    ("customer_id", "company_id"),
    ("organization_id", "company_id"),
)
# The newer and the older name of one company setting (reference/moco-api.md §6.2).
CORRESPONDENCE_FLAGS = ("alternative_correspondence_language", "english_correspondence_language")
TODO_SANDBOX_FIELDS = frozenset(TODO_DEFAULTS) - {"id"}
_SEED_CONTACT_FIELDS = frozenset({*CONTACT_DEFAULTS, "company_id"})
_SEED_COMPANY_FIELDS = frozenset(
    {*COMPANY_DEFAULTS, *CUSTOMER_DEFAULTS, *SUPPLIER_DEFAULTS, *COMPANY_OPTIONAL_FIELDS}
)
_SEED_TODO_FIELDS = frozenset(TODO_DEFAULTS)
_SEED_COMMENT_FIELDS = frozenset({*COMMENT_DEFAULTS, *COMMENT_OPTIONAL_FIELDS})


def collation_key(text: str) -> str:
    """Sort key like the recordings' order: case, accents, spaces and punctuation ignored."""
    if text.isascii():
        return _NON_ALNUM_RE.sub("", text.lower())
    folded = unicodedata.normalize("NFKD", text.translate(_COLLATE_FOLD))
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def parse_timestamp(value: object) -> str | None:
    """Any ISO-8601 date or date-time -> ``YYYY-MM-DDTHH:MM:SSZ`` in UTC; None when unparsable.

    Fractions are truncated (stored timestamps have whole seconds); a time without an offset is
    taken as UTC; MOCO's older ``2018-10-17 09:33:46 UTC`` form is accepted too.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _TS_RE.fullmatch(text):
        return text
    if _DATE_RE.fullmatch(text):
        return f"{text}T00:00:00Z"
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sanitize_html(text: str) -> str:
    """Keep only the tags MOCO allows in comments (attributes dropped); others are stripped."""
    text = _DROP_WITH_CONTENT_RE.sub("", text)

    def keep(match: re.Match[str]) -> str:
        closing, name = match.group(1), match.group(2).lower()
        if name not in _ALLOWED_HTML:
            return ""
        return "<br>" if name == "br" else f"<{closing}{name}>"

    return _TAG_RE.sub(keep, text)


class _Store:
    """Records of one type by id, plus their default order kept sorted incrementally.

    Stored dicts are never mutated: a write stores a new dict. Responses can therefore hand out
    the stored objects and serialise them after the app lock is released.
    """

    def __init__(
        self, sort_key: Callable[[Record], tuple[Any, ...]], *, descending: bool = False
    ) -> None:
        self.records: dict[int, Record] = {}
        self.version = 0
        self._sort_key = sort_key
        self._descending = descending
        self._keys: dict[int, tuple[Any, ...]] = {}
        self._index: list[tuple[Any, ...]] = []
        self._ordered: list[int] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def get(self, record_id: int) -> Record | None:
        return self.records.get(record_id)

    def put(self, record: Record) -> None:
        rid = record["id"]
        key = (*self._sort_key(record), rid)
        old = self._keys.get(rid)
        if old != key:
            if old is not None:
                del self._index[bisect_left(self._index, old)]
            insort(self._index, key)
            self._keys[rid] = key
        self.records[rid] = record
        self._changed()

    def put_many(self, records: Iterable[Record]) -> int:
        """Bulk load: one sort at the end instead of an insertion per record."""
        records = list(records)
        if len(records) * 20 < len(self.records):  # a few into many: insertions are cheaper
            for record in records:
                self.put(record)
            return len(records)
        count = 0
        for record in records:
            rid = record["id"]
            self.records[rid] = record
            self._keys[rid] = (*self._sort_key(record), rid)
            count += 1
        self._index = sorted(self._keys.values())
        self._changed()
        return count

    def delete(self, record_id: int) -> Record | None:
        record = self.records.pop(record_id, None)
        if record is not None:
            del self._index[bisect_left(self._index, self._keys.pop(record_id))]
            self._changed()
        return record

    def clear(self) -> None:
        self.records.clear()
        self._keys.clear()
        self._index = []
        self._changed()

    def ordered_ids(self) -> list[int]:
        """All ids in the default order (cached until the next write; do not mutate)."""
        if self._ordered is None:
            ids = [key[-1] for key in self._index]
            if self._descending:
                ids.reverse()
            self._ordered = ids
        return self._ordered

    def sort_ids(self, ids: Iterable[int]) -> list[int]:
        """Existing ids among ``ids`` in the default order."""
        present = {i for i in ids if i in self.records}
        return sorted(present, key=self._keys.__getitem__, reverse=self._descending)

    def _changed(self) -> None:
        self.version += 1
        self._ordered = None


def _int(value: object) -> int | None:
    """An integer given as a number or a string of digits; ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _bool_arg(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return None


def _tags(value: object, errors: dict[str, list[str]], field: str = "tags") -> list[str] | None:
    """MOCO takes a list of names (or a comma-separated string); stored sorted, unique."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        errors.setdefault(field, []).append("is invalid")
        return None
    return sorted({t.strip() for t in value if t.strip()})


def _merge_custom_properties(
    current: dict[str, Any], value: object, errors: dict[str, list[str]]
) -> dict[str, Any] | None:
    """MOCO merges custom properties: keys sent change, others stay (reference §6.8)."""
    if not isinstance(value, dict):
        errors.setdefault("custom_properties", []).append("is invalid")
        return None
    merged = dict(current)
    for key, item in value.items():
        if isinstance(item, bool):  # MOCO encodes booleans as "1"/"0"
            merged[str(key)] = "1" if item else "0"
        elif isinstance(item, (int, float)):
            merged[str(key)] = str(item)
        else:
            merged[str(key)] = item
    if len(json.dumps(merged, ensure_ascii=False).encode("utf-8")) > MAX_CUSTOM_PROPERTIES_BYTES:
        errors.setdefault("custom_properties", []).append("is too large (12 kB at most)")
        return None
    return merged


def _user(value: object, errors: dict[str, list[str]]) -> Record | None:
    user = _USERS_BY_ID.get(_int(value)) if _int(value) is not None else None
    if user is None:
        errors.setdefault("user", []).append("must be an active user")
        return None
    return user_ref(user)


def _body_object(request: Request) -> dict[str, Any]:
    body = request.json()
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise HTTPError(422, {"message": "Invalid payload"})
    return body


def _unprocessable(errors: dict[str, list[str]]) -> HTTPError:
    return HTTPError(422, {"errors": errors})


def _apply_strings(
    record: Record, body: dict[str, Any], fields: Iterable[str], errors: dict[str, list[str]]
) -> None:
    """The string fields of a write: a string or null is taken, anything else is invalid."""
    for field in fields:
        if field in body:
            value = body[field]
            if value is None or isinstance(value, str):
                record[field] = value
            else:
                errors.setdefault(field, []).append("is invalid")


def _require(record: Record, field: str, errors: dict[str, list[str]]) -> None:
    """A name field that must not be blank."""
    value = record.get(field)
    if not isinstance(value, str) or not value.strip():
        errors.setdefault(field, []).append("can't be blank")


def _apply_birthday(record: Record, value: object, errors: dict[str, list[str]]) -> None:
    """``YYYY-MM-DD``, or null/empty to clear it."""
    if value in (None, ""):
        record["birthday"] = None
    elif isinstance(value, str) and _DATE_RE.fullmatch(value):
        record["birthday"] = value
    else:
        errors.setdefault("birthday", []).append("is invalid")


def _apply_owner_and_properties(
    new: Record, current: Record, body: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    """``user_id`` (the responsible user) and ``custom_properties`` (merged) of a write."""
    if "user_id" in body:
        new["user"] = _user(body["user_id"], errors)
    if "custom_properties" in body:
        new["custom_properties"] = _merge_custom_properties(
            current["custom_properties"], body["custom_properties"], errors
        )


def _check_todo(todo: Record, errors: dict[str, list[str]]) -> None:
    """The fields every to-do needs, valid."""
    if not isinstance(todo["title"], str):
        errors.setdefault("title", []).append("is invalid")
    if todo["todoable_type"] not in TODOABLE_TYPES:
        errors.setdefault("todoable_type", []).append("is not included in the list")
    if _int(todo["todoable_id"]) is None:
        errors.setdefault("todoable_id", []).append("can't be blank")
    if not isinstance(todo["completed"], bool) or not isinstance(todo["personal"], bool):
        errors.setdefault("completed", []).append("must be true or false")


def _add_tags(current: list[str], given: list[str]) -> list[str]:
    return sorted({*current, *given})


def _replace_tags(_current: list[str], given: list[str]) -> list[str]:
    return sorted(set(given))


def _remove_tags(current: list[str], given: list[str]) -> list[str]:
    return sorted(set(current) - set(given))


def _company_ref(company: Record) -> Record:
    """The ``{id, type, name}`` object a contact embeds for its company."""
    return {"id": company["id"], "type": company["type"], "name": company["name"]}


class MocoSandbox(SandboxApp):
    """The MOCO emulator; see the module docstring for routes and behaviour."""

    name = "moco"

    def __init__(
        self,
        *,
        api_key: str = "sandbox-key",
        rate_limit: int = 120,
        rate_window: float = 120.0,
        latency: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        webhooks: WebhookOptions | None = None,
    ) -> None:
        super().__init__(latency=latency)
        self.api_key = api_key
        self.window = SlidingWindow(rate_limit, rate_window, clock)
        self.web_hooks = _Store(lambda _: ())
        self.webhooks = MocoWebhooks(
            webhooks or WebhookOptions(),
            is_active=self._hook_active,
            disable=self._auto_disable_hook,
            clock=clock,
        )
        # Tags of taggable records the sandbox does not store (projects, deals, ...): by trust.
        self._other_taggings: dict[tuple[str, int], list[str]] = {}
        self.companies = _Store(lambda r: (collation_key(r["name"]),))
        self.contacts = _Store(lambda r: (collation_key(r["lastname"]),))
        self.comments = _Store(lambda r: (r["created_at"],), descending=True)
        self.todos = _Store(lambda _: ())
        self._stores = {
            "companies": self.companies,
            "contacts": self.contacts,
            "todos": self.todos,
            "comments": self.comments,
        }
        self._listable = {**self._stores, "web_hooks": self.web_hooks}
        self._max_id = dict(ID_BASES)
        self._clock = ""
        self._list_cache: dict[tuple[Any, ...], list[int]] = {}
        self._customer_numbers = 0
        self._pending: dict[str, dict[int, Record]] = {}  # records of a seed being normalised
        self._add_api_routes()
        self._add_sandbox_routes()

    def _add_api_routes(self) -> None:
        self._api("GET", "/session", self._get_session)
        self._api("GET", "/contacts/people", self._list_contacts)
        self._api("POST", "/contacts/people", self._create_contact)
        self._api("GET", "/contacts/people/{id}", self._get_contact)
        self._api("PUT", "/contacts/people/{id}", self._update_contact)
        self._api("PATCH", "/contacts/people/{id}", self._update_contact)
        self._api("DELETE", "/contacts/people/{id}", self._delete_contact)
        self._api("GET", "/companies", self._list_companies)
        self._api("POST", "/companies", self._create_company)
        self._api("GET", "/companies/{id}", self._get_company)
        self._api("PUT", "/companies/{id}", self._update_company)
        self._api("PATCH", "/companies/{id}", self._update_company)
        self._api("DELETE", "/companies/{id}", self._delete_company)
        self._api("PUT", "/companies/{id}/archive", partial(self._set_archived, archived=True))
        self._api("PUT", "/companies/{id}/unarchive", partial(self._set_archived, archived=False))
        self._api("GET", "/comments", self._list_comments)
        self._api("POST", "/comments", self._create_comment)
        self._api("POST", "/comments/bulk", self._create_comments_bulk)
        self._api("GET", "/comments/{id}", self._get_comment)
        self._api("PUT", "/comments/{id}", self._update_comment)
        self._api("PATCH", "/comments/{id}", self._update_comment)
        self._api("DELETE", "/comments/{id}", self._delete_comment)
        self._api("GET", "/todos", self._list_todos)
        self._api("GET", "/todos/{id}", self._get_todo)
        tagging = "/taggings/{entity}/{id}"
        self._api("GET", tagging, self._get_taggings)
        self._api("PATCH", tagging, partial(self._write_taggings, change=_add_tags))
        self._api("PUT", tagging, partial(self._write_taggings, change=_replace_tags))
        self._api("DELETE", tagging, partial(self._write_taggings, change=_remove_tags))
        self._api("GET", "/account/web_hooks", self._list_hooks)
        self._api("POST", "/account/web_hooks", self._create_hook)
        self._api("GET", "/account/web_hooks/{id}", self._get_hook)
        self._api("PUT", "/account/web_hooks/{id}", self._update_hook)
        self._api("PATCH", "/account/web_hooks/{id}", self._update_hook)
        self._api("DELETE", "/account/web_hooks/{id}", self._delete_hook)
        self._api("PUT", "/account/web_hooks/{id}/disable", partial(self._set_hook, disabled=True))
        self._api("PUT", "/account/web_hooks/{id}/enable", partial(self._set_hook, disabled=False))

    def _add_sandbox_routes(self) -> None:
        # Control routes run outside the app lock in server.py, so these take it themselves.
        self.add_route("POST", "/_sandbox/todos", self._locked(self._sandbox_create_todo))
        self.add_route("PUT", "/_sandbox/todos/{id}", self._locked(self._sandbox_update_todo))
        self.add_route("DELETE", "/_sandbox/todos/{id}", self._locked(self._sandbox_delete_todo))
        # A person editing in MOCO's web UI: the API's writes, by another user, origin not "api".
        for path, create, update, delete in (
            ("people", self._create_contact, self._update_contact, self._delete_contact),
            ("companies", self._create_company, self._update_company, self._delete_company),
            ("comments", self._create_comment, self._update_comment, self._delete_comment),
        ):
            self.add_route("POST", f"/_sandbox/{path}", self._locked(create))
            self.add_route("PUT", f"/_sandbox/{path}/{{id}}", self._locked(update))
            self.add_route("PATCH", f"/_sandbox/{path}/{{id}}", self._locked(update))
            self.add_route("DELETE", f"/_sandbox/{path}/{{id}}", self._locked(delete))
        self.add_route("GET", "/_sandbox/webhook_deliveries", self._get_deliveries)
        self.add_route("DELETE", "/_sandbox/webhook_deliveries", self._clear_deliveries)

    # --- plumbing ------------------------------------------------------------------------------
    def _api(self, method: str, path: str, handler: Callable[[Request], Response]) -> None:
        def authenticated(request: Request) -> Response:
            if not self._authorized(request):
                raise HTTPError(401, {"message": "Unauthorized"})
            return handler(request)

        self.add_route(method, API + path, authenticated)

    def _locked(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def run(request: Request) -> Response:
            with self.lock:
                return handler(request)

        return run

    @staticmethod
    def _presented_key(request: Request) -> str | None:
        header = request.headers.get("authorization", "").strip()
        scheme, _, rest = header.partition(" ")
        rest = rest.strip()
        if scheme.lower() == "bearer" and rest:
            return rest
        if scheme.lower() == "token" and rest.lower().startswith("token="):
            return rest[len("token=") :].strip().strip('"') or None
        return None

    def _authorized(self, request: Request) -> bool:
        key = self._presented_key(request)
        return key is not None and hmac.compare_digest(key.encode(), self.api_key.encode())

    @override
    def check_rate_limit(self, request: Request) -> Response | None:
        """Sliding window per presented key; MOCO documents no headers on 429 (UNCONFIRMED)."""
        allowed, _, _ = self.window.hit(self._presented_key(request) or "<anonymous>")
        if allowed:
            return None
        return Response(429, {"message": "Too many requests"})

    def _now(self) -> str:
        """UTC now in whole seconds, never before a timestamp issued or seeded earlier."""
        real = format_ts(int(time.time()))
        self._clock = max(self._clock, real)
        return self._clock

    def _observe_time(self, *stamps: str | None) -> None:
        for stamp in stamps:
            if stamp and stamp > self._clock:
                self._clock = stamp

    def _new_id(self, kind: str) -> int:
        self._max_id[kind] += 1
        return self._max_id[kind]

    def _observe_id(self, kind: str, record_id: int) -> None:
        self._max_id[kind] = max(self._max_id[kind], record_id)

    @staticmethod
    def _path_id(request: Request) -> int:
        value = request.path_params.get("id", "")
        if not value.isdigit():
            raise HTTPError(404, {"message": "Not found"})
        return int(value)

    def _find(self, store: _Store, request: Request) -> Record:
        record = store.get(self._path_id(request))
        if record is None:
            raise HTTPError(404, {"message": "Not found"})
        return record

    # --- who acts, and the webhooks their changes send -----------------------------------------
    @staticmethod
    def _actor(request: Request) -> Actor:
        """API writes act as the API key's user; ``/_sandbox/`` writes as a web UI user."""
        return WEB_UI_ACTOR if request.path.startswith("/_sandbox/") else API_ACTOR

    def _emit(self, request: Request, target: str, event: str, record: Record) -> None:
        """Queue the webhooks of one change (called under the app lock, after it is stored).

        Create and update send the record as GET answers it; delete sends ``{"id": ...}`` plus
        ``custom_properties`` where the record has them (OA).
        """
        if event == "delete":
            payload = {"id": record["id"]}
            if "custom_properties" in record:
                payload["custom_properties"] = record["custom_properties"]
        elif target == "Comment":
            payload = self._comment_view(record)
        else:
            payload = record
        self.webhooks.notify(
            self.web_hooks.records.values(),
            target,
            event,
            payload,
            self._actor(request),
            request.base_url,
        )

    def _hook_active(self, hook_id: object) -> bool:
        with self.lock:
            hook = self.web_hooks.get(hook_id) if isinstance(hook_id, int) else None
            return hook is not None and not hook["disabled"]

    def _auto_disable_hook(self, hook_id: object) -> None:
        """MOCO disables a hook after a streak of failed deliveries (500 by default)."""
        with self.lock:
            hook = self.web_hooks.get(hook_id) if isinstance(hook_id, int) else None
            if hook is not None and not hook["disabled"]:
                now = self._now()
                disabled = {**hook, "disabled": True, "disabled_at": now, "updated_at": now}
                self.web_hooks.put(disabled)

    def _get_deliveries(self, request: Request) -> Response:
        since = _int(request.arg("since")) or 0
        engine = self.webhooks.engine
        return Response(200, engine.log(since), {"X-Pending-Deliveries": str(engine.pending())})

    def _clear_deliveries(self, _request: Request) -> Response:
        self.webhooks.engine.clear_log()
        return Response(200, {"cleared": True})

    # --- paging and filtering -----------------------------------------------------------------
    def _page_args(self, request: Request) -> tuple[int, int]:
        page = _int(request.arg("page"))
        per_page = _int(request.arg("per_page"))
        page = page if page and page > 0 else 1  # invalid page: first page (UNCONFIRMED)
        if not per_page or per_page < 1:
            per_page = DEFAULT_PER_PAGE
        return page, min(per_page, MAX_PER_PAGE)

    @staticmethod
    def _updated_after(request: Request) -> Predicate | None:
        value = request.arg("updated_after")
        if value is None or value == "":
            return None
        bound = parse_timestamp(value)
        if bound is None:
            raise HTTPError(400, {"message": "Invalid updated_after"})
        # Strictly after: whether MOCO's bound is strict or inclusive is UNCONFIRMED (the tap
        # re-reads an overlap window either way). Canonical timestamps compare as strings.
        return lambda r: r["updated_at"] > bound

    @staticmethod
    def _ids_arg(request: Request) -> list[int] | None:
        value = request.arg("ids")
        if value is None:
            return None
        return [int(part) for part in value.split(",") if part.strip().isdigit()]

    @staticmethod
    def _tags_filter(request: Request) -> Predicate | None:
        value = request.arg("tags")
        wanted = {t.strip().casefold() for t in (value or "").split(",") if t.strip()}
        if not wanted:
            return None
        # Records must carry every listed tag (UNCONFIRMED: MOCO may match any of them).
        return lambda r: wanted <= {t.casefold() for t in r["tags"]}

    @staticmethod
    def _custom_properties_filter(request: Request) -> Predicate | None:
        wanted: dict[str, list[str]] = {}
        for key, values in request.query.items():
            match = re.fullmatch(r"custom_properties\[([^\]]+)\](\[\])?", key)
            if match:
                wanted.setdefault(match.group(1), []).extend(values)
        if not wanted:
            return None

        def matches(record: Record) -> bool:
            props = record["custom_properties"]
            for name, values in wanted.items():
                if name not in props:  # MOCO: an unknown field name gives an empty result
                    return False
                have = props[name]
                if isinstance(have, list):
                    if not set(values) <= set(have):
                        return False
                elif len(values) != 1 or str(have) != values[0]:
                    return False
            return True

        return matches

    def _list(
        self,
        request: Request,
        kind: str,
        predicates: list[Predicate | None],
        ids: list[int] | None = None,
        render: Callable[[Record], Any] | None = None,
    ) -> Response:
        store = self._listable[kind]
        page, per_page = self._page_args(request)
        cache_key = (
            kind,
            tuple(s.version for s in self._listable.values()),
            tuple(
                sorted(
                    (k, tuple(v)) for k, v in request.query.items() if k not in ("page", "per_page")
                )
            ),
        )
        matching = self._list_cache.get(cache_key)
        if matching is None:
            candidates = store.ordered_ids() if ids is None else store.sort_ids(ids)
            active = [p for p in predicates if p is not None]
            if active:
                records = store.records
                matching = [i for i in candidates if all(p(records[i]) for p in active)]
            else:
                matching = candidates
            if len(self._list_cache) >= LIST_CACHE_QUERIES:
                self._list_cache.clear()
            self._list_cache[cache_key] = matching
        start = (page - 1) * per_page
        records = store.records
        body = [
            records[i] if render is None else render(records[i])
            for i in matching[start : start + per_page]
        ]
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(matching))}
        if start + per_page < len(matching):
            headers["Link"] = f'<{self._page_url(request, page + 1)}>; rel="next"'
        return Response(200, body, headers)

    @staticmethod
    def _page_url(request: Request, page: int) -> str:
        params: list[tuple[str, str]] = []
        placed = False
        for key, values in request.query.items():
            if key == "page":
                if not placed:
                    params.append(("page", str(page)))
                    placed = True
                continue
            params.extend((key, value) for value in values)
        if not placed:
            params.append(("page", str(page)))
        return f"{request.base_url}{request.path}?{urlencode(params, safe=',:[]')}"

    # --- session ---------------------------------------------------------------------------------
    def _get_session(self, _request: Request) -> Response:
        return Response(200, {"id": SESSION_USER["id"], "uuid": moco_data.SESSION_UUID})

    # --- contacts --------------------------------------------------------------------------------
    def _company_for_write(self, company_id: object, errors: dict[str, list[str]]) -> Record | None:
        if company_id is None:
            return None
        company = self.companies.get(_int(company_id)) if _int(company_id) is not None else None
        if company is None:
            errors.setdefault("company", []).append("not found")
            return None
        return _company_ref(company)

    def _apply_contact(self, current: Record, body: dict[str, Any], *, creating: bool) -> Record:
        """``current`` changed by a POST/PUT body; unknown fields are ignored as Rails does."""
        errors: dict[str, list[str]] = {}
        # an alias counts when its field is not sent; of two aliases, the first listed wins
        aliased = {
            field: body[alias] for alias, field in reversed(_CONTACT_ALIASES) if alias in body
        }
        body = {**aliased, **body}
        new = dict(current)
        _apply_strings(new, body, CONTACT_STRING_FIELDS, errors)
        if new["firstname"] is None:
            new["firstname"] = ""
        if creating or "lastname" in body:
            _require(new, "lastname", errors)
        if creating and body.get("gender") in (None, ""):
            # MD marks gender mandatory; OA's example omits it (UNCONFIRMED): required here.
            errors.setdefault("gender", []).append("can't be blank")
        elif "gender" in body:
            if body["gender"] in GENDERS:
                new["gender"] = body["gender"]
            else:
                errors.setdefault("gender", []).append("is not included in the list")
        if "birthday" in body:
            _apply_birthday(new, body["birthday"], errors)
        if "company_id" in body:
            new["company"] = self._company_for_write(body["company_id"], errors)
        if "tags" in body:
            # PUT/PATCH ``tags`` replaces the whole set here, as a Rails attribute write does;
            # whether MOCO merges instead is UNCONFIRMED (the target writes tags via taggings).
            new["tags"] = _tags(body["tags"], errors)
        _apply_owner_and_properties(new, current, body, errors)
        if errors:
            raise _unprocessable(errors)
        return new

    def _create_contact(self, request: Request) -> Response:
        body = _body_object(request)
        template = {k: fresh(v) for k, v in CONTACT_DEFAULTS.items()}
        template["user"] = self._actor(request).ref()
        record = self._apply_contact(template, body, creating=True)
        now = self._now()
        record.update(id=self._new_id("contacts"), created_at=now, updated_at=now)
        self.contacts.put(record)
        self._emit(request, "Contact", "create", record)
        return Response(200, record)

    def _get_contact(self, request: Request) -> Response:
        return Response(200, self._find(self.contacts, request))

    def _update_contact(self, request: Request) -> Response:
        current = self._find(self.contacts, request)
        record = self._apply_contact(current, _body_object(request), creating=False)
        if record != current:
            record["updated_at"] = self._now()
            self.contacts.put(record)
            self._emit(request, "Contact", "update", record)
            return Response(200, record)
        return Response(200, current)

    def _delete_contact(self, request: Request) -> Response:
        record = self._find(self.contacts, request)
        self.contacts.delete(record["id"])
        self._emit(request, "Contact", "delete", record)
        self._delete_attached(request, "Contact", record["id"])
        # OA: 200 with the deleted contact; the real answer is UNCONFIRMED (not recorded).
        return Response(200, record)

    def _delete_attached(self, request: Request, kind: str, record_id: int) -> None:
        """Comments and to-dos go with their record (Rails' dependent destroy; UNCONFIRMED).

        Each comment removed so sends its own Comment ``delete`` webhook, as destroy callbacks
        would (UNCONFIRMED; a receiver that drops a person's notes itself loses nothing).
        """
        for comment in [
            c
            for c in self.comments.records.values()
            if c["commentable_type"] == kind and c["commentable_id"] == record_id
        ]:
            self.comments.delete(comment["id"])
            self._emit(request, "Comment", "delete", comment)
        for todo in [
            t
            for t in self.todos.records.values()
            if t["todoable_type"] == kind and t["todoable_id"] == record_id
        ]:
            self.todos.delete(todo["id"])

    @staticmethod
    def _contact_term(request: Request) -> Predicate | None:
        """MD: "full text search name, firstname, work_email, company" (not home_email).

        The matching rule is UNCONFIRMED; here every word of the term must occur, ignoring case,
        as a substring of the lastname, firstname, work_email or company name (an e-mail
        address is one word). That finds at least what a whole-term substring search finds, so
        a client comparing candidates exactly (as it must) works with either rule.
        """
        words = (request.arg("term") or "").casefold().split()
        if not words:
            return None

        def matches(r: Record) -> bool:
            company = r["company"]["name"] if r["company"] else ""
            fields = [
                (r["lastname"] or "").casefold(),
                (r["firstname"] or "").casefold(),
                (r["work_email"] or "").casefold(),
                company.casefold(),
            ]
            return all(any(word in text for text in fields) for word in words)

        return matches

    @staticmethod
    def _phone_filter(request: Request) -> Predicate | None:
        digits = re.sub(r"\D", "", request.arg("phone") or "")
        if not digits:
            return None
        # Reverse lookup on work_phone and mobile_phone (MD), compared on digits only: the
        # query's digits must occur in the stored number's (MOCO's normalisation UNCONFIRMED).
        return lambda r: any(
            digits in re.sub(r"\D", "", r[f] or "") for f in ("work_phone", "mobile_phone")
        )

    def _list_contacts(self, request: Request) -> Response:
        return self._list(
            request,
            "contacts",
            [
                self._updated_after(request),
                self._tags_filter(request),
                self._contact_term(request),
                self._phone_filter(request),
                self._custom_properties_filter(request),
            ],
            ids=self._ids_arg(request),
        )

    # --- companies -------------------------------------------------------------------------------
    def _apply_company(self, current: Record, body: dict[str, Any], *, creating: bool) -> Record:
        """``current`` changed by a POST/PUT body; ``type`` decides which fields it takes."""
        errors: dict[str, list[str]] = {}
        new = dict(current)
        fields = COMPANY_STRING_FIELDS + _TYPE_STRING_FIELDS.get(new["type"], ())
        _apply_strings(new, body, fields, errors)
        if creating or "name" in body:
            _require(new, "name", errors)
        for flag in CORRESPONDENCE_FLAGS:
            if flag not in body:
                continue
            if isinstance(body[flag], bool):  # two names of one setting (§6.2): both follow
                new.update(dict.fromkeys(CORRESPONDENCE_FLAGS, body[flag]))
            else:
                errors.setdefault(flag, []).append("is invalid")
        due = body.get("default_invoice_due_days", body.get("invoice_due_days"))
        if new["type"] == "customer" and due is not None:
            if _int(due) is None:
                errors.setdefault("default_invoice_due_days", []).append("is invalid")
            else:
                new["default_invoice_due_days"] = _int(due)
        tags_value = body.get("tags", body.get("labels"))
        if tags_value is not None:
            tags = _tags(tags_value, errors)
            new["tags"], new["labels"] = tags, list(tags or [])
        _apply_owner_and_properties(new, current, body, errors)
        if errors:
            raise _unprocessable(errors)
        return new

    def _company_template(self, ctype: str) -> Record:
        record = {k: fresh(v) for k, v in COMPANY_DEFAULTS.items()}
        record["type"] = ctype
        record["user"] = user_ref(SESSION_USER)
        if ctype == "customer":
            record.update(fresh(CUSTOMER_DEFAULTS))
        elif ctype == "supplier":
            record.update(fresh(SUPPLIER_DEFAULTS))
        return record

    def _next_customer_identifier(self) -> str:
        self._customer_numbers += 1
        return f"K{self._customer_numbers:04d}"

    def _create_company(self, request: Request) -> Response:
        body = _body_object(request)
        ctype = body.get("type")
        if ctype not in COMPANY_TYPES:
            errors = {"type": ["is not included in the list"]}
            if not isinstance(body.get("name"), str) or not body["name"].strip():
                errors["name"] = ["can't be blank"]
            raise _unprocessable(errors)
        template = self._company_template(ctype)
        template["user"] = self._actor(request).ref()
        record = self._apply_company(template, body, creating=True)
        if ctype == "customer" and not record.get("identifier"):
            record["identifier"] = self._next_customer_identifier()
        now = self._now()
        record.update(id=self._new_id("companies"), created_at=now, updated_at=now)
        self.companies.put(record)
        self._emit(request, "Company", "create", record)
        return Response(200, record)

    def _get_company(self, request: Request) -> Response:
        return Response(200, self._find(self.companies, request))

    def _update_company(self, request: Request) -> Response:
        current = self._find(self.companies, request)
        # ``type`` is fixed after creation here (it decides the shape); UNCONFIRMED for MOCO.
        record = self._apply_company(current, _body_object(request), creating=False)
        if record == current:
            return Response(200, current)
        record["updated_at"] = self._now()
        self._store_company(record)
        self._emit(request, "Company", "update", record)
        return Response(200, record)

    def _store_company(self, record: Record) -> None:
        old = self.companies.get(record["id"])
        self.companies.put(record)
        if old is not None and _company_ref(old) != _company_ref(record):
            self._refresh_contact_companies({record["id"]: _company_ref(record)})

    def _refresh_contact_companies(self, refs: dict[int, Record | None]) -> None:
        """Contacts embed ``{id, type, name}``; MOCO renders it live and their updated_at stays."""
        if not refs:
            return
        changed = [
            {**c, "company": refs[c["company"]["id"]]}
            for c in self.contacts.records.values()
            if c["company"] is not None
            and c["company"]["id"] in refs
            and c["company"] != refs[c["company"]["id"]]
        ]
        for contact in changed:
            self.contacts.put(contact)

    def _delete_company(self, request: Request) -> Response:
        record = self._find(self.companies, request)
        self.companies.delete(record["id"])
        self._emit(request, "Company", "delete", record)
        self._refresh_contact_companies({record["id"]: None})
        self._delete_attached(request, "Company", record["id"])
        # REC 2023: 200 with an empty body and a JSON content type.
        return Response(200, b"", {"Content-Type": "application/json; charset=utf-8"})

    def _set_archived(self, request: Request, *, archived: bool) -> Response:
        current = self._find(self.companies, request)
        if current["active"] == (not archived):
            return Response(200, current)
        now = self._now()
        # Archiving bumps updated_at here; MOCO very likely does too (UNCONFIRMED).
        record = {
            **current,
            "active": not archived,
            "archived_on": now if archived else None,
            "updated_at": now,
        }
        self.companies.put(record)
        # No "archive" event can be registered (§7): MOCO's closest is an update (UNCONFIRMED).
        self._emit(request, "Company", "update", record)
        return Response(200, record)

    def _list_companies(self, request: Request) -> Response:
        include_archived = _bool_arg(request.arg("include_archived")) is True
        ctype = request.arg("type")
        identifier = request.arg("identifier")
        term = (request.arg("term") or "").strip().casefold()
        custom = self._custom_properties_filter(request) if ctype else None  # needs ``type``
        return self._list(
            request,
            "companies",
            [
                None if include_archived else (lambda r: r["active"]),
                (lambda r: r["type"] == ctype) if ctype else None,
                (lambda r: r.get("identifier") == identifier) if identifier else None,
                (lambda r: term in f"{r['name']}\n{r.get('identifier') or ''}".casefold())
                if term
                else None,
                self._updated_after(request),
                self._tags_filter(request),
                custom,
            ],
            ids=self._ids_arg(request),
        )

    # --- comments --------------------------------------------------------------------------------
    def _commentable(
        self, ctype: object, cid: object, errors: dict[str, list[str]]
    ) -> tuple[str, int]:
        if ctype == "Customer":  # deprecated alias (OA)
            ctype = "Company"
        if ctype not in COMMENTABLE_TYPES:
            errors.setdefault("commentable_type", []).append("is not included in the list")
        stores = {"Contact": self.contacts, "Company": self.companies}
        if _int(cid) is None:
            errors.setdefault("commentable_id", []).append("can't be blank")
        elif ctype in stores and stores[ctype].get(_int(cid)) is None:
            # Only contacts and companies live here; other commentables are taken on trust.
            errors.setdefault("commentable", []).append("not found")
        return str(ctype), _int(cid) or 0

    @staticmethod
    def _comment_text(
        body: dict[str, Any], errors: dict[str, list[str]], *, required: bool
    ) -> str | None:
        if "text" not in body and not required:
            return None
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            errors.setdefault("text", []).append("can't be blank")
            return None
        return sanitize_html(text)

    def _new_comment(
        self,
        ctype: str,
        cid: int,
        text: str,
        created_at: str | None,
        body: dict[str, Any],
        author: Record,
    ) -> Record:
        now = self._now()
        record = {k: fresh(v) for k, v in COMMENT_DEFAULTS.items()}
        record.update(
            id=self._new_id("comments"),
            commentable_id=cid,
            commentable_type=ctype,
            text=text,
            manual=True,
            created_at=created_at or now,
            updated_at=now,
            user=author,
        )
        for field in ("attachment_filename", "attachment_content"):
            if isinstance(body.get(field), str):
                record[field] = body[field]
        return record

    def _create_comment(self, request: Request) -> Response:
        body = _body_object(request)
        errors: dict[str, list[str]] = {}
        ctype, cid = self._commentable(
            body.get("commentable_type"), body.get("commentable_id"), errors
        )
        text = self._comment_text(body, errors, required=True)
        created_at = None
        if body.get("created_at") is not None:  # for data migration (MD)
            created_at = parse_timestamp(body["created_at"])
            if created_at is None:
                errors.setdefault("created_at", []).append("is invalid")
        if errors or text is None:
            raise _unprocessable(errors)
        record = self._new_comment(ctype, cid, text, created_at, body, self._actor(request).ref())
        self.comments.put(record)
        self._emit(request, "Comment", "create", record)
        return Response(200, self._list_shape(record))

    def _create_comments_bulk(self, request: Request) -> Response:
        body = _body_object(request)
        errors: dict[str, list[str]] = {}
        ids = body.get("commentable_ids")
        if not isinstance(ids, list) or not ids or len(ids) > MAX_BULK_COMMENTS:
            raise _unprocessable({"commentable_ids": ["must be a list of 1 to 100 ids"]})
        targets = [self._commentable(body.get("commentable_type"), i, errors) for i in ids]
        text = self._comment_text(body, errors, required=True)
        if errors or text is None:
            raise _unprocessable(errors)
        author = self._actor(request).ref()
        records = [self._new_comment(ctype, cid, text, None, {}, author) for ctype, cid in targets]
        for record in records:
            self.comments.put(record)
            self._emit(request, "Comment", "create", record)
        return Response(200, records)

    @staticmethod
    def _list_shape(record: Record) -> Record:
        """Attachments are shown only by ``GET /comments/{id}`` (OA)."""
        if "attachment_content" in record or "attachment_filename" in record:
            return {
                k: v
                for k, v in record.items()
                if k not in ("attachment_filename", "attachment_content")
            }
        return record

    @staticmethod
    def _comment_view(record: Record) -> Record:
        """A comment as ``GET /comments/{id}`` shows it: with its attachment (OA)."""
        return {
            **record,
            "attachment_filename": record.get("attachment_filename"),
            "attachment_content": record.get("attachment_content"),
        }

    def _get_comment(self, request: Request) -> Response:
        return Response(200, self._comment_view(self._find(self.comments, request)))

    def _update_comment(self, request: Request) -> Response:
        current = self._find(self.comments, request)
        body = _body_object(request)
        errors: dict[str, list[str]] = {}
        text = self._comment_text(body, errors, required=False)
        if errors:
            raise _unprocessable(errors)
        record = dict(current)
        if text is not None:
            record["text"] = text
        for field in ("attachment_filename", "attachment_content"):
            if field in body:
                record[field] = body[field]
        if record != current:
            record["updated_at"] = self._now()
            self.comments.put(record)
            self._emit(request, "Comment", "update", record)
        return Response(200, self._list_shape(record))

    def _delete_comment(self, request: Request) -> Response:
        record = self._find(self.comments, request)
        if not record["manual"]:
            # Only manual comments can be deleted (MD); the status for system ones is UNCONFIRMED.
            raise HTTPError(403, {"errors": ["Access denied"]})
        self.comments.delete(record["id"])
        self._emit(request, "Comment", "delete", record)
        return Response(204, None)

    def _list_comments(self, request: Request) -> Response:
        ctype = request.arg("commentable_type")
        if ctype == "Customer":
            ctype = "Company"
        cid = _int(request.arg("commentable_id"))
        user_id = _int(request.arg("user_id"))
        manual = _bool_arg(request.arg("manual"))
        return self._list(
            request,
            "comments",
            [
                (lambda r: r["commentable_type"] == ctype) if ctype else None,
                (lambda r: r["commentable_id"] == cid) if cid is not None else None,
                (lambda r: (r["user"] or {}).get("id") == user_id) if user_id is not None else None,
                (lambda r: r["manual"] is manual) if manual is not None else None,
                self._updated_after(request),
            ],
            ids=self._ids_arg(request),
            render=self._list_shape,
        )

    # --- taggings --------------------------------------------------------------------------------
    def _tagging_target(self, request: Request) -> tuple[str, int, _Store | None]:
        """The entity and id of a taggings route; 400 for an entity MOCO does not tag (OA)."""
        entity = request.path_params["entity"]
        if entity not in TAGGABLE_ENTITIES:
            known = ", ".join(TAGGABLE_ENTITIES)
            raise HTTPError(400, {"message": f"Invalid entity {entity!r}: one of {known}"})
        record_id = self._path_id(request)
        store = {"Contact": self.contacts, "Company": self.companies}.get(entity)
        if store is not None and store.get(record_id) is None:
            raise HTTPError(404, {"message": "Not found"})
        # Other entities are not stored here: their tags are kept on trust, like comments on them.
        return entity, record_id, store

    def _get_taggings(self, request: Request) -> Response:
        """A plain array of names, no paging headers."""
        entity, record_id, store = self._tagging_target(request)
        if store is None:
            return Response(200, list(self._other_taggings.get((entity, record_id), [])))
        return Response(200, list(store.records[record_id]["tags"]))

    def _write_taggings(
        self, request: Request, *, change: Callable[[list[str], list[str]], list[str]]
    ) -> Response:
        """PATCH adds, PUT replaces, DELETE removes; answers the full resulting list, sorted.

        Names are case-sensitive as stored (UNCONFIRMED in MOCO): ``vip`` next to ``VIP`` is a
        second tag, so a client that changes the case of names sees the duplicate. A change
        bumps the record's ``updated_at`` and sends its ``update`` webhook (both UNCONFIRMED,
        chosen so that incremental reads and real-time receivers see tag changes).
        """
        entity, record_id, store = self._tagging_target(request)
        body = _body_object(request)
        errors: dict[str, list[str]] = {}
        given = _tags(body["tags"], errors) if "tags" in body else None
        if given is None:
            raise HTTPError(
                400, {"message": "tags must be a list of names or a comma-separated string"}
            )
        if store is None:
            key = (entity, record_id)
            self._other_taggings[key] = change(self._other_taggings.get(key, []), given)
            return Response(200, list(self._other_taggings[key]))
        record = store.records[record_id]
        tags = change(record["tags"], given)
        if tags != record["tags"]:
            updated = {**record, "tags": tags, "updated_at": self._now()}
            if entity == "Company":
                updated["labels"] = list(tags)
                self._store_company(updated)
            else:
                self.contacts.put(updated)
            self._emit(request, entity, "update", updated)
        return Response(200, list(tags))

    # --- web hooks -------------------------------------------------------------------------------
    def _list_hooks(self, request: Request) -> Response:
        """Paged like every list, with the global filters ``ids`` and ``updated_after``."""
        return self._list(
            request, "web_hooks", [self._updated_after(request)], ids=self._ids_arg(request)
        )

    def _get_hook(self, request: Request) -> Response:
        return Response(200, self._find(self.web_hooks, request))

    def _create_hook(self, request: Request) -> Response:
        body = _body_object(request)
        errors = hook_errors(body, creating=True)
        if errors:
            raise _unprocessable(errors)
        now = self._now()
        values = {
            "id": self._new_id("web_hooks"),
            "target": body["target"],
            "event": body["event"],
            "hook": body["hook"].strip(),
            "disabled": False,
            "disabled_at": None,
            "created_at": now,
            "updated_at": now,
        }
        record = {key: values[key] for key in HOOK_KEYS}
        self.web_hooks.put(record)
        return Response(200, record)

    def _update_hook(self, request: Request) -> Response:
        """Only ``hook`` can change; other fields sent are ignored."""
        current = self._find(self.web_hooks, request)
        body = _body_object(request)
        errors = hook_errors(body, creating=False)
        if errors:
            raise _unprocessable(errors)
        if "hook" not in body or body["hook"].strip() == current["hook"]:
            return Response(200, current)
        record = {**current, "hook": body["hook"].strip(), "updated_at": self._now()}
        self.web_hooks.put(record)
        return Response(200, record)

    def _set_hook(self, request: Request, *, disabled: bool) -> Response:
        """``disable`` and ``enable``, idempotent: a hook already so is answered unchanged."""
        current = self._find(self.web_hooks, request)
        if current["disabled"] is disabled:
            return Response(200, current)
        now = self._now()
        record = {
            **current,
            "disabled": disabled,
            "disabled_at": now if disabled else None,
            "updated_at": now,
        }
        self.web_hooks.put(record)
        if not disabled:
            self.webhooks.engine.reset_streak(record["id"])  # a fresh start after enabling
        return Response(200, record)

    def _delete_hook(self, request: Request) -> Response:
        """OA: 200 with the deleted hook; deliveries still queued for it are dropped."""
        record = self._find(self.web_hooks, request)
        self.web_hooks.delete(record["id"])
        return Response(200, record)

    # --- to-dos (read-only API) ------------------------------------------------------------------
    def _list_todos(self, request: Request) -> Response:
        completed = _bool_arg(request.arg("completed"))
        term = (request.arg("term") or "").strip().casefold()

        def user_filter(param: str, field: str) -> Predicate | None:
            uid = _int(request.arg(param))
            if uid is None:
                return None
            return lambda r: (r[field] or {}).get("id") == uid

        # No updated_after and no ids on /todos (OA): like MOCO, unknown parameters are ignored.
        return self._list(
            request,
            "todos",
            [
                (lambda r: r["completed"] is completed) if completed is not None else None,
                (lambda r: term in r["title"].casefold()) if term else None,
                user_filter("assigned_to_user_id", "assigned_to"),
                user_filter("created_by_user_id", "created_by"),
                # How "responsible" differs from "assigned to" is UNCONFIRMED; treated the same.
                user_filter("responsible_user_id", "assigned_to"),
            ],
        )

    def _get_todo(self, request: Request) -> Response:
        return Response(200, self._find(self.todos, request))

    def _todoable_description(self, ttype: str, tid: int) -> str:
        if ttype == "Contact" and (contact := self._lookup("contacts", tid)) is not None:
            return " ".join(p for p in (contact["firstname"], contact["lastname"]) if p)
        if ttype == "Company" and (company := self._lookup("companies", tid)) is not None:
            return company["name"]
        return ""

    def _apply_todo(self, current: Record, body: dict[str, Any]) -> Record:
        """``current`` changed by a sandbox to-do write; 422 for unknown or invalid fields."""
        unknown = set(body) - TODO_SANDBOX_FIELDS
        if unknown:
            raise HTTPError(422, {"message": f"unknown to-do fields: {sorted(unknown)}"})
        errors: dict[str, list[str]] = {}
        new = {**current, **{k: v for k, v in body.items() if k != "completed_at"}}
        _check_todo(new, errors)
        for field in ("due_date", "created_at", "updated_at"):
            if body.get(field) is not None:
                new[field] = parse_timestamp(body[field])
                if new[field] is None:
                    errors.setdefault(field, []).append("is invalid")
        for field in ("created_by", "assigned_to"):
            value = body.get(field)
            if isinstance(value, int):
                new[field] = _user(value, errors)
            elif value is not None and not isinstance(value, dict):
                errors.setdefault(field, []).append("is invalid")
        if errors:
            raise _unprocessable(errors)
        new["completed_at"] = self._completed_at(current, new, body)
        target = (new["todoable_type"], new["todoable_id"])
        if "todoable_description" not in body and target != (
            current["todoable_type"],
            current["todoable_id"],
        ):
            new["todoable_description"] = self._todoable_description(*target)
        return new

    def _completed_at(self, current: Record, new: Record, body: dict[str, Any]) -> str | None:
        """Set when a to-do gets completed (now, unless the body says when), gone when reopened."""
        if not new["completed"]:
            return None
        if not current["completed"]:
            return parse_timestamp(body.get("completed_at")) or self._now()
        if "completed_at" in body:
            return parse_timestamp(body["completed_at"])
        unchanged: str | None = current["completed_at"]
        return unchanged

    def _sandbox_create_todo(self, request: Request) -> Response:
        body = _body_object(request)
        template = {k: fresh(v) for k, v in TODO_DEFAULTS.items()}
        template["created_by"] = user_ref(SESSION_USER)
        template["assigned_to"] = user_ref(SESSION_USER)
        record = self._apply_todo(template, body)
        now = self._now()
        record["id"] = self._new_id("todos")
        record["created_at"] = record["created_at"] or now
        record["updated_at"] = record["updated_at"] or now
        self._observe_time(record["created_at"], record["updated_at"])
        self.todos.put(record)
        return Response(200, record)

    def _sandbox_update_todo(self, request: Request) -> Response:
        current = self._find(self.todos, request)
        body = _body_object(request)
        record = self._apply_todo(current, body)
        if record != current:
            if "updated_at" not in body:
                record["updated_at"] = self._now()
            self._observe_time(record["updated_at"])
            self.todos.put(record)
        return Response(200, record)

    def _sandbox_delete_todo(self, request: Request) -> Response:
        record = self._find(self.todos, request)
        self.todos.delete(record["id"])
        return Response(204, None)

    # --- seed, state, reset, configure -----------------------------------------------------------
    @override
    def seed(self, data: dict[str, Any]) -> dict[str, int]:
        """Load a seed document (see the module docstring); answers counts loaded per type."""
        if not isinstance(data, dict):
            raise HTTPError(422, {"message": "seed must be an object"})
        unknown = set(data) - {"companies", "contacts", "todos", "comments", "generate"}
        if unknown:
            raise HTTPError(422, {"message": f"unknown seed keys: {sorted(unknown)}"})
        counts = {"companies": 0, "contacts": 0, "todos": 0, "comments": 0}
        generated = None
        if "generate" in data:
            options = data["generate"] or {}
            n_contacts = _int(options.get("contacts")) if isinstance(options, dict) else None
            seed = _int(options.get("seed", 1)) if isinstance(options, dict) else None
            if (
                n_contacts is None
                or n_contacts < 0
                or seed is None
                or set(options) - {"contacts", "seed"}
            ):
                raise HTTPError(422, {"message": 'generate takes {"contacts": N, "seed": S}'})
            generated = moco_data.generate(n_contacts, seed)  # slow for big N: outside the lock
        with self.lock:
            if generated is not None:
                for kind, n in self._load_generated(generated).items():
                    counts[kind] += n
            for kind, n in self._load({k: data[k] for k in counts if k in data}).items():
                counts[kind] += n
            return counts

    def _load(self, data: dict[str, Any]) -> dict[str, int]:
        """Normalise every record first, then store: a 422 leaves the data as it was."""
        normalizers = {
            "companies": self._seed_company,
            "contacts": self._seed_contact,
            "todos": self._seed_todo,
            "comments": self._seed_comment,
        }
        loaded: dict[str, list[Record]] = {}
        try:
            for kind in ("companies", "contacts", "todos", "comments"):  # referenced ones first
                items = data.get(kind)
                if items is None:
                    continue
                if not isinstance(items, list):
                    raise HTTPError(422, {"message": f"{kind} must be a list"})
                loaded[kind] = [normalizers[kind](item, n) for n, item in enumerate(items)]
                self._pending[kind] = {r["id"]: r for r in loaded[kind]}
        finally:
            self._pending = {}
        counts = {}
        for kind, records in loaded.items():
            counts[kind] = self._stores[kind].put_many(records)
            if kind == "companies":
                # Also replaces what contacts seeded earlier embedded for a then-unknown company.
                self._refresh_contact_companies({r["id"]: _company_ref(r) for r in records})
        return counts

    def _lookup(self, kind: str, record_id: object) -> Record | None:
        """A stored record, or one of the seed being loaded (it may reference its own records)."""
        rid = _int(record_id)
        if rid is None:
            return None
        pending = self._pending.get(kind)
        if pending and rid in pending:
            return pending[rid]
        return self._stores[kind].get(rid)

    def _load_generated(self, data: dict[str, list[Record]]) -> dict[str, int]:
        """Generated records are complete and canonical already: stored without normalising."""
        counts = {}
        for kind in ("companies", "contacts", "todos", "comments"):
            records = data[kind]
            counts[kind] = self._stores[kind].put_many(records)
            if records:
                self._observe_id(kind, max(r["id"] for r in records))
                self._observe_time(max(r["updated_at"] for r in records))
        self._refresh_contact_companies({r["id"]: _company_ref(r) for r in data["companies"]})
        self._customer_numbers = max(
            self._customer_numbers, sum(1 for r in data["companies"] if r["type"] == "customer")
        )
        return counts

    @staticmethod
    def _seed_base(kind: str, raw: object, n: int, allowed: frozenset[str]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise HTTPError(422, {"message": f"{kind}[{n}] must be an object"})
        unknown = raw.keys() - allowed
        if unknown:
            raise HTTPError(422, {"message": f"{kind}[{n}]: unknown fields {sorted(unknown)}"})
        return raw

    def _seed_ids_and_times(self, kind: str, record: Record, n: int) -> None:
        rid = record["id"]
        if rid is None:
            record["id"] = self._new_id(kind)
        elif _int(rid) is None or _int(rid) <= 0:
            raise HTTPError(422, {"message": f"{kind}[{n}]: id must be a positive integer"})
        else:
            record["id"] = _int(rid)
            self._observe_id(kind, record["id"])
        for field in ("created_at", "updated_at"):
            if record[field] is not None:
                stamp = parse_timestamp(record[field])
                if stamp is None:
                    raise HTTPError(422, {"message": f"{kind}[{n}]: invalid {field}"})
                record[field] = stamp
        now = None if record["created_at"] or record["updated_at"] else self._now()
        record["created_at"] = record["created_at"] or record["updated_at"] or now
        record["updated_at"] = record["updated_at"] or record["created_at"]
        self._observe_time(record["updated_at"], record["created_at"])

    def _seed_contact(self, raw: object, n: int) -> Record:
        raw = self._seed_base("contacts", raw, n, _SEED_CONTACT_FIELDS)
        record = {k: raw[k] if k in raw else fresh(v) for k, v in CONTACT_DEFAULTS.items()}
        if not isinstance(record["lastname"], str) or not record["lastname"].strip():
            raise HTTPError(422, {"message": f"contacts[{n}]: lastname can't be blank"})
        if record["gender"] not in GENDERS:
            raise HTTPError(422, {"message": f"contacts[{n}]: gender must be one of {GENDERS}"})
        given = raw.get("company")
        company_id = raw.get("company_id", given.get("id") if isinstance(given, dict) else None)
        if given is not None and not isinstance(given, dict):
            raise HTTPError(422, {"message": f"contacts[{n}]: company must be an object or null"})
        if company_id is not None:
            company = self._lookup("companies", company_id)
            if company is not None:
                record["company"] = _company_ref(company)
            elif isinstance(given, dict):  # a company not in the sandbox: kept as given
                record["company"] = {
                    "id": given.get("id"),
                    "type": given.get("type"),
                    "name": given.get("name"),
                }
            else:
                raise HTTPError(422, {"message": f"contacts[{n}]: company {company_id} not found"})
        if record["user"] is None:
            record["user"] = user_ref(SESSION_USER)
        if isinstance(record["tags"], list):
            record["tags"] = sorted(record["tags"])
        self._seed_ids_and_times("contacts", record, n)
        return record

    def _seed_company(self, raw: object, n: int) -> Record:
        raw = self._seed_base("companies", raw, n, _SEED_COMPANY_FIELDS)
        ctype = raw.get("type", "customer")
        if ctype not in COMPANY_TYPES:
            raise HTTPError(
                422, {"message": f"companies[{n}]: type must be one of {COMPANY_TYPES}"}
            )
        if not isinstance(raw.get("name"), str) or not raw["name"].strip():
            raise HTTPError(422, {"message": f"companies[{n}]: name can't be blank"})
        template = self._company_template(ctype)
        record: Record = {k: raw.get(k, v) for k, v in template.items()}
        record.update({k: raw[k] for k in raw if k in COMPANY_OPTIONAL_FIELDS})
        for key, default in VAT_DEFAULTS.items():
            if isinstance(record.get(key), dict):  # e.g. REC 2023's four-field customer_vat
                record[key] = {**fresh(default), **record[key]}
        given = [flag for flag in CORRESPONDENCE_FLAGS if flag in raw]
        if len(given) == 1:  # one name given: the other answers the same value
            record.update(dict.fromkeys(CORRESPONDENCE_FLAGS, raw[given[0]]))
        if "labels" not in raw:
            record["labels"] = list(record["tags"])
        if ctype == "customer" and not record.get("identifier"):
            record["identifier"] = self._next_customer_identifier()
        self._seed_ids_and_times("companies", record, n)
        return record

    def _seed_todo(self, raw: object, n: int) -> Record:
        raw = self._seed_base("todos", raw, n, _SEED_TODO_FIELDS)
        record = {k: raw[k] if k in raw else fresh(v) for k, v in TODO_DEFAULTS.items()}
        if record["todoable_type"] not in TODOABLE_TYPES or _int(record["todoable_id"]) is None:
            raise HTTPError(
                422, {"message": f"todos[{n}]: todoable_type and todoable_id are required"}
            )
        if "todoable_description" not in raw:
            record["todoable_description"] = self._todoable_description(
                record["todoable_type"], record["todoable_id"]
            )
        self._seed_ids_and_times("todos", record, n)
        return record

    def _seed_comment(self, raw: object, n: int) -> Record:
        raw = self._seed_base("comments", raw, n, _SEED_COMMENT_FIELDS)
        record = {k: raw[k] if k in raw else fresh(v) for k, v in COMMENT_DEFAULTS.items()}
        record.update({k: raw[k] for k in raw if k in COMMENT_OPTIONAL_FIELDS})
        if record["commentable_type"] == "Customer":
            record["commentable_type"] = "Company"
        if (
            record["commentable_type"] not in COMMENTABLE_TYPES
            or _int(record["commentable_id"]) is None
        ):
            raise HTTPError(
                422, {"message": f"comments[{n}]: commentable_type and commentable_id are required"}
            )
        if record["user"] is None:
            record["user"] = user_ref(SESSION_USER)
        self._seed_ids_and_times("comments", record, n)
        return record

    @override
    def state(self) -> dict[str, list[Record]]:
        """Every stored record: ``{"companies", "contacts", "todos", "comments"}``, sorted by id."""
        with self.lock:
            return {
                kind: [store.records[i] for i in sorted(store.records)]
                for kind, store in self._stores.items()
            }

    @override
    def reset(self) -> None:
        """Forget all records; ids and the clock keep counting up, the rate limit starts over."""
        for store in self._listable.values():
            store.clear()
        self._other_taggings.clear()
        self._list_cache.clear()
        self.window.reset()
        self.webhooks.engine.reset()

    @override
    def close(self) -> None:
        """Stop the webhook workers; deliveries still queued are dropped."""
        self.webhooks.engine.close()

    @override
    def configure(self, settings: dict[str, Any]) -> None:
        """``rate_limit``, ``rate_window``, ``api_key`` and the ``webhook_*`` settings.

        The ``webhook_*`` keys are those of :mod:`sandbox.moco_webhooks`; any other key answers
        422 and changes nothing.
        """
        rest = dict(settings)
        known = {k: rest.pop(k) for k in ("rate_limit", "rate_window", "api_key") if k in rest}
        hooks = {k: rest.pop(k) for k in moco_webhooks.CONFIG_KEYS if k in rest}
        super().configure(rest)
        limit, window, key = (
            known.get("rate_limit", self.window.limit),
            known.get("rate_window", self.window.window),
            known.get("api_key", self.api_key),
        )
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise HTTPError(422, {"message": "rate_limit must be an integer (0: no limit)"})
        if isinstance(window, bool) or not isinstance(window, (int, float)) or window <= 0:
            raise HTTPError(422, {"message": "rate_window must be a positive number of seconds"})
        if not isinstance(key, str) or not key:
            raise HTTPError(422, {"message": "api_key must be a non-empty string"})
        self.webhooks.configure(hooks)
        self.window.limit, self.window.window, self.api_key = limit, float(window), key


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The MOCO-specific options of ``python -m sandbox moco``."""
    parser.add_argument("--api-key", default="sandbox-key", help="accepted API key")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=120,
        help="requests per window and key (MOCO: 120; unlimited plan: 1200; 0: no limit)",
    )
    parser.add_argument("--rate-window", type=float, default=120.0, help="window in seconds")
    parser.add_argument(
        "--generate",
        type=int,
        default=0,
        metavar="N",
        help="start with N generated contacts (plus companies, to-dos, comments)",
    )
    parser.add_argument("--generate-seed", type=int, default=1, help="seed for --generate")
    moco_webhooks.add_arguments(parser)


def create_app(args: argparse.Namespace) -> MocoSandbox:
    """A :class:`MocoSandbox` from parsed command-line options."""
    app = MocoSandbox(
        api_key=args.api_key,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        latency=getattr(args, "latency", 0.0),
        webhooks=moco_webhooks.options_from_args(args),
    )
    if args.generate:
        app.seed({"generate": {"contacts": args.generate, "seed": args.generate_seed}})
    return app
