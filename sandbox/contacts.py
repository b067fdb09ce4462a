"""Contacts API (HighLevel / LeadConnector v2) emulator: contacts, tasks, notes, tags, OAuth.

Faithful to ``shared/reference/contacts-api.md`` and the official OpenAPI files, which validate
every request body (unknown property: 422). What a caller may rely on:

- Routes of contacts-api.md §5.1 with their status codes and body wrappers (201 on creates,
  ``succeded`` spelled as the API spells it), 20-character ids, ``GET /contacts/`` cursor paging
  with ``meta``, ``POST /contacts/search``, ``GET /contacts/search/duplicate``.
- Auth: ``Authorization: Bearer`` with the location's private integration token (``token``; for
  each of ``extra_locations`` it is ``f"{token}-{location}"``) or an OAuth access token
  (:mod:`sandbox.contacts_oauth`), plus ``Version: 2021-07-28``. Every resource belongs to a
  location; another location's token gets 403.
- Duplicate-contact rules per location, upsert matching, per-location rate limits with the five
  ``X-RateLimit-*`` headers.
- Control routes (see :mod:`sandbox.server`): ``POST /_sandbox/seed`` and ``GET /_sandbox/state``
  with ``{"contacts", "tasks", "notes", "appointments"}`` in the API's shapes, ``POST
  /_sandbox/config`` with the keys of :meth:`ContactsSandbox.configure`.

Choices where the reference is UNCONFIRMED are marked "assumption" in a comment where they are made.
"""

from __future__ import annotations

import bisect
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from functools import cache, lru_cache, partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import phonenumbers
from typing_extensions import override

from sandbox import openapi
from sandbox.contacts_oauth import (
    DEFAULT_SCOPE,
    Agency,
    OAuthApp,
    OAuthServer,
    TokenInfo,
    TokenRegistry,
    bearer,
    check_version,
    error,
    firebase_id,
)
from sandbox.server import (
    UNLIMITED,
    HTTPError,
    Request,
    Response,
    SandboxApp,
    SlidingWindow,
)
from sandbox.server import copy_json as clone

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable

READ = "contacts.readonly"
WRITE = "contacts.write"
ALL_SCOPES = frozenset(DEFAULT_SCOPE.split())
DUPLICATE_FIELDS = ("email", "phone")
LIST_LIMIT_MAX = 100
# assumption: sources say 500 or 100 per search page; the lower bound keeps clients safe on both
SEARCH_PAGE_LIMIT_MAX = 100
SEARCH_WINDOW_MAX = 10_000  # page-number paging reaches at most this many records (§5.4)
DATE_OF_BIRTH_FORMATS = (
    "YYYY/MM/DD, MM/DD/YYYY, YYYY-MM-DD, MM-DD-YYYY, YYYY.MM.DD, MM.DD.YYYY, YYYY_MM_DD, MM_DD_YYYY"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOB_YMD = re.compile(r"^(\d{4})([/\-._])(\d{1,2})\2(\d{1,2})$")
_DOB_MDY = re.compile(r"^(\d{1,2})([/\-._])(\d{1,2})\2(\d{4})$")

# Search body: the v2 spec's SearchBodyV2DTO is empty; these fields are the docs mirror's (§5.4)
SEARCH_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "locationId": {"type": "string"},
        "pageLimit": {"type": "number", "minimum": 1, "maximum": SEARCH_PAGE_LIMIT_MAX},
        "page": {"type": "number", "minimum": 1},
        "searchAfter": {"type": "array"},
        "filters": {"type": "array", "items": {"type": "object"}},
        "sort": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "direction": {"type": "string", "enum": ["asc", "desc"]},
                },
                "required": ["field"],
            },
        },
        "query": {"type": "string", "maxLength": 75},
    },
    "required": ["locationId", "pageLimit"],
}
# What POST /contacts/ answers besides the Contact fields (CreateContactSchema, §5.6)
CREATED_CONTACT_EXTRAS: dict[str, Any] = {
    "deleted": False,
    "bounceEmail": False,
    "unsubscribeEmail": False,
    "offers": [],
    "products": [],
}
# kind -> (path parameter of its id, body wrapper of one item, name in a not-found message)
CHILD_ROUTES = {"tasks": ("taskId", "task", "Task"), "notes": ("id", "note", "Note")}
SEARCH_OPERATORS = ("eq", "not_eq", "contains", "not_contains", "exists", "not_exists", "range")


# --- small helpers --------------------------------------------------------------------------
def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    """``2021-07-08T02:30:00.000Z`` for epoch milliseconds, the API's timestamp format."""
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso_ms(value: object) -> int | None:
    """Epoch ms of an ISO-8601 string or a number; ``None`` when it is neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


@lru_cache(maxsize=65536)  # a create parses the same number for the duplicate check and the store
def normalize_phone(phone: str) -> str:
    """E.164 when the number parses (``+1 888-888-8888`` -> ``+18888888888``), else trimmed."""
    # assumption: numbers without a country code are read as US numbers, the API's default
    try:
        parsed = phonenumbers.parse(phone, None if phone.strip().startswith("+") else "US")
    except phonenumbers.NumberParseException:
        return phone.strip()
    if not phonenumbers.is_possible_number(parsed):
        return phone.strip()
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_tags(tags: Iterable[str]) -> list[str]:
    """Trimmed, lower-cased, de-duplicated tags in first-seen order."""
    # assumption: normalisation is UNCONFIRMED; real data shows lower-case tags [3P]
    return list(dict.fromkeys(t.strip().lower() for t in tags if t and t.strip()))


def parse_date_of_birth(value: str) -> str | None:
    """``YYYY-MM-DDT00:00:00.000Z`` for one of the documented formats; ``None`` otherwise."""
    m = _DOB_YMD.match(value.strip())
    if m:
        year, month, day = m.group(1), m.group(3), m.group(4)
    else:
        m = _DOB_MDY.match(value.strip())
        if not m:
            return None
        month, day, year = m.group(1), m.group(3), m.group(4)
    try:
        day_of_birth = datetime(int(year), int(month), int(day), tzinfo=timezone.utc)
        return day_of_birth.strftime("%Y-%m-%dT00:00:00.000Z")
    except ValueError:
        return None


# Body keys a write never stores: the id and location are the API's, the rest are instructions.
_NOT_STORED = frozenset(
    {"id", "locationId", "createNewIfDuplicateAllowed", "dateAdded", "dateUpdated"}
)
# The form the API stores a written value in, per field (others: as sent).
_STORED_FORM: dict[str, Callable[[Any], Any]] = {
    "dateOfBirth": lambda value: parse_date_of_birth(value) or value,
    "phone": normalize_phone,
    "email": str.strip,
}
_DERIVED = (
    ("firstNameLowerCase", "firstName"),
    ("lastNameLowerCase", "lastName"),
    ("fullNameLowerCase", "name"),
    ("emailLowerCase", "email"),
)


def _derive_names(contact: dict[str, Any], body: dict[str, Any]) -> None:
    """``name`` from first and last name unless the body sets it; the lower-cased copies."""
    if "name" not in body and ("firstName" in body or "lastName" in body):
        full = " ".join(p for p in (contact.get("firstName"), contact.get("lastName")) if p)
        if full:
            contact["name"] = full
        else:
            contact.pop("name", None)
    for target, source in _DERIVED:
        if contact.get(source):
            contact[target] = contact[source].lower()
        else:
            contact.pop(target, None)


def unprocessable(messages: list[str]) -> HTTPError:
    """A 422 with class-validator ``messages``, as the API answers invalid input."""
    return HTTPError(422, error(422, messages))


class _Window(SlidingWindow):
    """A :class:`SlidingWindow` that can also say what is left without counting a hit."""

    def remaining(self, key: str) -> int:
        """Requests ``key`` may still make in the current window, without counting one."""
        with self._lock:
            return max(0, self.limit - len(self._trim(key, self.clock())))


class ContactsSandbox(SandboxApp):
    """The Contacts API for one main location (plus ``extra_locations``), served by SandboxApp."""

    name = "contacts"

    def __init__(  # noqa: PLR0913 - keyword-only options, the command line's flags
        self,
        *,
        location_id: str = "sandbox-location",
        token: str = "sandbox-token",  # noqa: S107 - the documented sandbox credential
        client_id: str = "sandbox-client-id",
        client_secret: str = "sandbox-client-secret",  # noqa: S107 - documented sandbox credential
        company_id: str = "sandbox-company",
        agency_token: str | None = None,
        extra_locations: Iterable[str] = (),
        rate_limit: int = 100,
        rate_window: float = 10.0,
        daily_limit: int = 200_000,
        access_token_ttl: float = 86399,
        allow_duplicates: bool = False,
        duplicate_match: Iterable[str] = DUPLICATE_FIELDS,
        latency: float = 0.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(latency=latency)
        self.location_id = location_id
        self.company_id = company_id
        self.locations: tuple[str, ...] = tuple(dict.fromkeys((location_id, *extra_locations)))
        # one clock for token lifetimes and the rate window when a test controls time
        self.registry = TokenRegistry(clock=clock or time.time)
        for loc in self.locations:
            pit = token if loc == location_id else f"{token}-{loc}"
            self.registry.static[pit] = TokenInfo("pit", loc, company_id, ALL_SCOPES)
        self.oauth = OAuthServer(
            self.registry,
            OAuthApp(client_id, client_secret),
            Agency(company_id, location_id, lambda: self.locations),
            agency_token=agency_token,
            access_token_ttl=access_token_ttl,
        )
        self.oauth.register(self)
        self.allow_duplicates = allow_duplicates
        self.duplicate_match = self._check_duplicate_match(duplicate_match)
        self.daily_limit = daily_limit
        self._window = _Window(rate_limit, rate_window, clock or time.monotonic)
        self._daily_used: dict[str, int] = {}
        self._daily_day = self._today()
        self._rate_lock = threading.Lock()
        self._ctx = threading.local()  # per request: location, rate headers, whether limited
        self._init_data()
        self._register_routes()

    # --- data -----------------------------------------------------------------------------
    def _init_data(self) -> None:
        self.contacts: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, dict[str, Any]] = {}
        self.appointments: dict[str, dict[str, Any]] = {}
        self._stores = {"tasks": self.tasks, "notes": self.notes, "appointments": self.appointments}
        self._added: dict[str, int] = {}  # contact id -> dateAdded epoch ms
        # per location, (dateAdded ms, id) sorted: the GET /contacts/ cursor order
        self._order: dict[str, list[tuple[int, str]]] = {loc: [] for loc in self.locations}
        self._by_email: dict[tuple[str, str], list[str]] = {}
        self._by_phone: dict[tuple[str, str], list[str]] = {}
        # contact id -> ids of its tasks / notes / appointments (dicts keep order, delete in O(1))
        self._children: dict[str, dict[str, dict[str, None]]] = {
            "tasks": {},
            "notes": {},
            "appointments": {},
        }
        self._field_ids: dict[tuple[str, str], str] = {}  # (location, custom field key) -> id

    def _new_id(self, *stores: dict[str, Any]) -> str:
        while True:
            new = firebase_id()
            if not any(new in store for store in stores):
                return new

    def _index_key(self, contact: dict[str, Any], field: str) -> str | None:
        value = contact.get(field)
        if not value:
            return None
        return value.lower() if field == "email" else value

    def _index(self, contact: dict[str, Any]) -> None:
        loc, cid = contact["locationId"], contact["id"]
        for field, index in (("email", self._by_email), ("phone", self._by_phone)):
            key = self._index_key(contact, field)
            if key:
                index.setdefault((loc, key), []).append(cid)

    def _unindex(self, contact: dict[str, Any]) -> None:
        loc, cid = contact["locationId"], contact["id"]
        for field, index in (("email", self._by_email), ("phone", self._by_phone)):
            key = self._index_key(contact, field)
            ids = index.get((loc, key)) if key else None
            if ids and cid in ids:
                ids.remove(cid)
                if not ids:
                    del index[(loc, key)]

    def _matches(self, location: str, field: str, value: str | None) -> list[str]:
        """Ids of contacts in ``location`` whose ``field`` equals ``value`` (oldest first)."""
        if not value:
            return []
        if field == "email":
            return self._by_email.get((location, value.strip().lower()), [])
        return self._by_phone.get((location, normalize_phone(value)), [])

    def _store_contact(self, contact: dict[str, Any], added_ms: int) -> None:
        cid = contact["id"]
        self.contacts[cid] = contact
        self._added[cid] = added_ms
        bisect.insort(self._order.setdefault(contact["locationId"], []), (added_ms, cid))
        self._index(contact)

    def _drop_contact(self, cid: str) -> None:
        contact = self.contacts.pop(cid)
        self._unindex(contact)
        order = self._order[contact["locationId"]]
        key = (self._added.pop(cid), cid)
        pos = bisect.bisect_left(order, key)
        if pos < len(order) and order[pos] == key:
            del order[pos]
        # assumption: a deleted contact's tasks, notes and appointments go with it
        for kind, store in self._stores.items():
            for child in self._children[kind].pop(cid, {}):
                store.pop(child, None)

    def _add_child(self, kind: str, item: dict[str, Any]) -> None:
        self._stores[kind][item["id"]] = item
        self._children[kind].setdefault(item["contactId"], {})[item["id"]] = None

    def _drop_child(self, kind: str, item_id: str) -> None:
        item = self._stores[kind].pop(item_id)
        self._children[kind].get(item["contactId"], {}).pop(item_id, None)

    # --- contact fields ---------------------------------------------------------------------
    def _check_values(self, body: dict[str, Any]) -> None:
        """422 for values the schema lets through but the API refuses."""
        messages = []
        email = body.get("email")
        # the API checks emails ("email must be an email" [3P]); null clears the field
        if email is not None and not _EMAIL.match(email.strip()):
            messages.append("email must be an email")
        dob = body.get("dateOfBirth")
        if dob is not None and (not isinstance(dob, str) or parse_date_of_birth(dob) is None):
            # exact text UNCONFIRMED; the formats are the documented ones
            messages.append(
                f"dateOfBirth must be a date in one of the formats {DATE_OF_BIRTH_FORMATS}"
            )
        if messages:
            raise unprocessable(messages)

    def _custom_field_id(self, location: str, item: dict[str, Any]) -> str:
        if item.get("id"):
            return item["id"]
        # a key without a definition store: give each (location, key) a stable id
        return self._field_ids.setdefault((location, item["key"]), firebase_id())

    def _merge_custom_fields(self, contact: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Input ``{id|key, field_value|fieldValue}`` merged into output ``[{id, value}]``."""
        # assumption: fields not named keep their values; a null value clears a field
        current = {f["id"]: f["value"] for f in contact.get("customFields", [])}
        for item in items:
            fid = self._custom_field_id(contact["locationId"], item)
            value = item.get("field_value", item.get("fieldValue", item.get("value")))
            if value is None:
                current.pop(fid, None)
            else:
                current[fid] = clone(value)
        contact["customFields"] = [{"id": k, "value": v} for k, v in current.items()]

    def _apply(self, contact: dict[str, Any], body: dict[str, Any]) -> None:
        """Write the fields of a create/update/upsert body (already validated) into ``contact``."""
        for key, value in body.items():
            if key in _NOT_STORED:
                continue
            if key == "tags":
                contact["tags"] = normalize_tags(value or [])
            elif key == "customFields":
                self._merge_custom_fields(contact, value or [])
            elif value is None:
                contact.pop(key, None)
            else:
                contact[key] = _STORED_FORM.get(key, clone)(value)
        _derive_names(contact, body)

    def _new_contact(
        self,
        location: str,
        body: dict[str, Any],
        *,
        added_ms: int | None = None,
        cid: str | None = None,
    ) -> dict[str, Any]:
        added = now_ms() if added_ms is None else added_ms
        contact: dict[str, Any] = {
            "id": cid or self._new_id(self.contacts),
            "locationId": location,
            "type": "lead",
            "dnd": False,
            "tags": [],
            "customFields": [],
            "additionalEmails": [],
            "additionalPhones": [],
            "followers": [],
            "dateAdded": iso(added),
        }
        self._apply(contact, body)
        contact["dateUpdated"] = contact["dateAdded"]
        self._store_contact(contact, added)
        return contact

    def _update_contact(self, contact: dict[str, Any], body: dict[str, Any]) -> None:
        self._unindex(contact)
        self._apply(contact, body)
        contact["dateUpdated"] = iso(now_ms())
        self._index(contact)

    def _duplicate_of(
        self, location: str, body: dict[str, Any], exclude: str | None = None
    ) -> tuple[str, str] | None:
        """(contact id, matching field) of an existing contact the body would duplicate."""
        if self.allow_duplicates:
            return None
        for field in self.duplicate_match:
            for cid in self._matches(location, field, body.get(field)):
                if cid != exclude:
                    return cid, field
        return None

    @staticmethod
    def _duplicate_error(match: tuple[str, str]) -> HTTPError:
        # meta.contactName was reported by one source only (UNCONFIRMED) and is left out
        return HTTPError(
            400,
            error(
                400,
                "This location does not allow duplicated contacts.",
                meta={"contactId": match[0], "matchingField": match[1]},
            ),
        )

    # --- auth and request plumbing ---------------------------------------------------------
    def _authenticate(self, request: Request, scope: str) -> TokenInfo:
        check_version(request)
        info = self.registry.lookup(bearer(request))
        if info is None:
            raise HTTPError(401, error(401, "Invalid token: access token is invalid"))
        if info.location_id is None:
            # an agency/company token on a location route [3P]
            raise HTTPError(
                401,
                error(
                    401,
                    "This authClass type is not allowed to access this "
                    "scope. Please reach out to the Platform team to get "
                    "it added.",
                ),
            )
        if scope not in info.scopes:
            raise HTTPError(401, error(401, "The token is not authorized for this scope."))
        return info

    @staticmethod
    def _own_location(auth: TokenInfo, location_id: object) -> None:
        if location_id != auth.location_id:
            raise HTTPError(403, error(403, "The token does not have access to this location"))

    def _contact(self, auth: TokenInfo, cid: str) -> dict[str, Any]:
        contact = self.contacts.get(cid)
        if contact is None:
            # the API answers 400, not 404, for an unknown contact id [3P]
            raise HTTPError(400, error(400, f"Contact with id {cid} not found"))
        self._own_location(auth, contact["locationId"])
        return contact

    def _body(
        self,
        request: Request,
        auth: TokenInfo,
        template: str | None = None,
        *,
        schema: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The JSON body: location guard first (as NestJS guards run before pipes), then 422."""
        try:
            body = request.json()
        except HTTPError as exc:
            raise HTTPError(400, error(400, exc.response.body["message"])) from exc
        if (
            isinstance(body, dict)
            and isinstance(body.get("locationId"), str)
            and (schema is not None or _takes_location(request.method, template))
        ):
            self._own_location(auth, body["locationId"])
        if schema is not None:
            messages = openapi.validate_instance(schema, {} if body is None else body)
        else:
            messages = openapi.validate_body(request.method, template or request.path, body)
        if messages:
            raise unprocessable(messages)
        return body or {}

    def _query_location(self, request: Request, auth: TokenInfo) -> str:
        location = request.arg("locationId")
        if not location:
            raise unprocessable(["locationId should not be empty", "locationId must be a string"])
        self._own_location(auth, location)
        return location

    def _api(
        self,
        method: str,
        pattern: str,
        scope: str,
        handler: Callable[[Request, TokenInfo], Response],
    ) -> None:
        def run(request: Request) -> Response:
            return handler(request, self._authenticate(request, scope))

        self.add_route(method, pattern, run)

    def _register_routes(self) -> None:
        # literal paths first: /contacts/search must not be taken for a contact id
        self._api("GET", "/contacts/", READ, self.list_contacts)
        self._api("POST", "/contacts/", WRITE, self.create_contact)
        self._api("POST", "/contacts/search", READ, self.search_contacts)
        self._api("GET", "/contacts/search/duplicate", READ, self.search_duplicate)
        self._api("POST", "/contacts/upsert", WRITE, self.upsert_contact)
        self._api("GET", "/contacts/business/{businessId}", READ, self.business_contacts)
        self._api("GET", "/contacts/{contactId}", READ, self.get_contact)
        self._api("PUT", "/contacts/{contactId}", WRITE, self.update_contact)
        self._api("DELETE", "/contacts/{contactId}", WRITE, self.delete_contact)
        self._api(
            "GET", "/contacts/{contactId}/tasks", READ, partial(self.list_items, "tasks", "tasks")
        )
        self._api("POST", "/contacts/{contactId}/tasks", WRITE, self.create_task)
        self._api(
            "GET", "/contacts/{contactId}/tasks/{taskId}", READ, partial(self.get_item, "tasks")
        )
        self._api("PUT", "/contacts/{contactId}/tasks/{taskId}", WRITE, self.update_task)
        self._api(
            "PUT", "/contacts/{contactId}/tasks/{taskId}/completed", WRITE, self.complete_task
        )
        self._api(
            "DELETE",
            "/contacts/{contactId}/tasks/{taskId}",
            WRITE,
            partial(self.delete_item, "tasks"),
        )
        self._api(
            "GET", "/contacts/{contactId}/notes", READ, partial(self.list_items, "notes", "notes")
        )
        self._api("POST", "/contacts/{contactId}/notes", WRITE, self.create_note)
        self._api("GET", "/contacts/{contactId}/notes/{id}", READ, partial(self.get_item, "notes"))
        self._api("PUT", "/contacts/{contactId}/notes/{id}", WRITE, self.update_note)
        self._api(
            "DELETE", "/contacts/{contactId}/notes/{id}", WRITE, partial(self.delete_item, "notes")
        )
        self._api("POST", "/contacts/{contactId}/tags", WRITE, self.add_tags)
        self._api("DELETE", "/contacts/{contactId}/tags", WRITE, self.remove_tags)
        self._api(
            "GET",
            "/contacts/{contactId}/appointments",
            READ,
            partial(self.list_items, "appointments", "events"),
        )

    # --- contacts ---------------------------------------------------------------------------
    def get_contact(self, request: Request, auth: TokenInfo) -> Response:
        """``GET /contacts/{contactId}``: ``{contact}``."""
        contact = self._contact(auth, request.path_params["contactId"])
        return Response(200, {"contact": clone(contact)})

    def create_contact(self, request: Request, auth: TokenInfo) -> Response:
        """``POST /contacts/``: 201 ``{contact}``, or 400 with ``meta`` on a duplicate."""
        body = self._body(request, auth, "/contacts/")
        self._check_values(body)
        match = self._duplicate_of(body["locationId"], body)
        if match:
            raise self._duplicate_error(match)
        # CreatedContact (the spec's CreateContactSchema) carries a few extra fields besides the
        # Contact ones; lastSessionActivityAt is left out: a new contact has had no session
        contact = {
            **clone(self._new_contact(body["locationId"], body)),
            **clone(CREATED_CONTACT_EXTRAS),
        }
        if contact.get("dateOfBirth"):
            contact["birthMonth"] = int(contact["dateOfBirth"][5:7])
            contact["birthDay"] = int(contact["dateOfBirth"][8:10])
        return Response(201, {"contact": contact})

    def update_contact(self, request: Request, auth: TokenInfo) -> Response:
        """``PUT /contacts/{contactId}``: ``{succeded, contact}``."""
        # NestJS validates the body (pipes) before the handler looks the contact up
        body = self._body(request, auth, "/contacts/{contactId}")
        self._check_values(body)
        contact = self._contact(auth, request.path_params["contactId"])
        # assumption: changing email/phone to another contact's is refused as on create
        match = self._duplicate_of(contact["locationId"], body, exclude=contact["id"])
        if match:
            raise self._duplicate_error(match)
        self._update_contact(contact, body)
        return Response(200, {"succeded": True, "contact": clone(contact)})

    def delete_contact(self, request: Request, auth: TokenInfo) -> Response:
        """``DELETE /contacts/{contactId}``: ``{succeded}``; its tasks, notes and events go too."""
        contact = self._contact(auth, request.path_params["contactId"])
        self._drop_contact(contact["id"])
        return Response(200, {"succeded": True})

    def upsert_contact(self, request: Request, auth: TokenInfo) -> Response:
        """``POST /contacts/upsert``: ``{new, contact, traceId}`` by the duplicate rules."""
        body = self._body(request, auth, "/contacts/upsert")
        self._check_values(body)
        location = body["locationId"]
        match: tuple[str, str] | None = None
        if not (body.get("createNewIfDuplicateAllowed") and self.allow_duplicates):
            # the documented matching: first field in priority order that finds a contact wins
            match = next(
                (
                    (ids[0], field)
                    for field in self.duplicate_match
                    if (ids := self._matches(location, field, body.get(field)))
                ),
                None,
            )
        if match is None:
            contact = self._new_contact(location, body)
            return Response(
                200, {"new": True, "contact": clone(contact), "traceId": str(uuid.uuid4())}
            )
        contact = self.contacts[match[0]]
        # gender is ignored when upsert updates (issue #313)
        updates = {k: v for k, v in body.items() if k != "gender"}
        for field in self.duplicate_match:
            others = self._matches(location, field, body.get(field))
            if field != match[1] and others and contact["id"] not in others:
                # the conflicting second identifier is silently not applied (issue #37)
                updates.pop(field, None)
        self._update_contact(contact, updates)
        return Response(
            200, {"new": False, "contact": clone(contact), "traceId": str(uuid.uuid4())}
        )

    def list_contacts(self, request: Request, auth: TokenInfo) -> Response:
        """``GET /contacts/``: cursor paging in (dateAdded, id) order, ``{contacts, meta}``."""
        location = self._query_location(request, auth)
        limit = _int_param(request, "limit", 20, 1, LIST_LIMIT_MAX)
        query = (request.arg("query") or "").strip().lower()
        keys = self._order.get(location, [])
        if query:
            keys = [k for k in keys if _matches_query(self.contacts[k[1]], query)]
        start = self._cursor_position(keys, request)
        page = keys[start : start + limit]
        more = start + limit < len(keys)
        current = start // limit + 1
        last = page[-1] if page else None
        next_url = None
        if more and last:
            params = {"locationId": location, "startAfter": last[0], "startAfterId": last[1]}
            if query:
                params["query"] = request.arg("query") or ""
            next_url = f"{request.base_url}/contacts/?{urlencode(params)}"
        # the spec documents `{contacts, count}`, real answers carry `meta`; whether they carry
        # both is UNCONFIRMED, so both are sent (`count`: all matches, as on the business route)
        meta = {
            "total": len(keys),
            "nextPageUrl": next_url,
            "startAfterId": last[1] if last else None,
            "startAfter": last[0] if last else None,
            "currentPage": current,
            "nextPage": current + 1 if more else None,
            "prevPage": current - 1 if current > 1 else None,
        }
        return Response(
            200,
            {
                "contacts": [clone(self.contacts[k[1]]) for k in page],
                "count": len(keys),
                "meta": meta,
            },
        )

    def _cursor_position(self, keys: list[tuple[int, str]], request: Request) -> int:
        after_id = request.arg("startAfterId")
        after_raw = request.arg("startAfter")
        after: int | None = None
        if after_raw:
            try:
                after = int(float(after_raw))
            except ValueError as exc:
                raise unprocessable(
                    ["startAfter must be a number conforming to the specified constraints"]
                ) from exc
        if after_id and after is None and after_id in self._added:
            after = self._added[after_id]
        if after is None:
            return 0
        # without an id, every record of that millisecond counts as already seen
        return bisect.bisect_right(keys, (after, after_id or "\uffff"))

    def business_contacts(self, request: Request, auth: TokenInfo) -> Response:
        """``GET /contacts/business/{businessId}``: ``{contacts, count}``, paged by skip/limit."""
        location = self._query_location(request, auth)
        limit = _int_param(request, "limit", 25, 1, LIST_LIMIT_MAX)
        skip = _int_param(request, "skip", 0, 0, None)
        query = (request.arg("query") or "").strip().lower()
        business = request.path_params["businessId"]
        found = [
            self.contacts[cid]
            for _, cid in self._order.get(location, [])
            if self.contacts[cid].get("businessId") == business
            and (not query or _matches_query(self.contacts[cid], query))
        ]
        return Response(
            200, {"contacts": [clone(c) for c in found[skip : skip + limit]], "count": len(found)}
        )

    def search_duplicate(self, request: Request, auth: TokenInfo) -> Response:
        """``{contact: Contact | null}`` (assumption: the 200 body is undocumented)."""
        location = self._query_location(request, auth)
        probe = {"email": request.arg("email"), "phone": request.arg("number")}
        # duplicates allowed: email first, then phone; otherwise the location's configured order
        order = DUPLICATE_FIELDS if self.allow_duplicates else self.duplicate_match
        for field in order:
            ids = self._matches(location, field, probe[field])
            if ids:
                return Response(200, {"contact": clone(self.contacts[ids[0]])})
        return Response(200, {"contact": None})

    def search_contacts(self, request: Request, auth: TokenInfo) -> Response:
        """``POST /contacts/search``: ``{contacts: [... with searchAfter], total}``.

        A subset of the documented search: ``query`` free text, ``filters`` (operators
        eq/not_eq/contains/not_contains/exists/not_exists/range, groups AND/OR), one ``sort``
        field (default ``dateAdded`` ascending, an assumption), ``page``/``pageLimit`` or
        ``searchAfter``. The real index is eventually consistent; this one is immediate.
        """
        body = self._body(request, auth, schema=SEARCH_BODY_SCHEMA)
        location, limit = body["locationId"], int(body["pageLimit"])
        if "page" in body and "searchAfter" in body:
            raise unprocessable(["page and searchAfter cannot be used together"])
        filters = body.get("filters") or []
        _check_filters(filters)
        sort = (body.get("sort") or [{"field": "dateAdded"}])[0]
        descending = sort.get("direction") == "desc"
        query = (body.get("query") or "").strip().lower()
        in_location = (self.contacts[cid] for _, cid in self._order.get(location, []))
        found = [
            c
            for c in in_location
            if (not query or _matches_query(c, query))
            and all(_filter_matches(c, f) for f in filters)
        ]
        keyed: list[tuple[tuple[int | str, str], dict[str, Any]]] = (
            sorted(((self._sort_value(c, sort["field"]), c["id"]), c) for c in found)
            if sort["field"] != "dateAdded"
            else [((self._added[c["id"]], c["id"]), c) for c in found]
        )
        if descending:
            keyed.reverse()
        if "searchAfter" in body:
            cursor = tuple(body["searchAfter"])
            try:
                keyed = [kc for kc in keyed if (kc[0] < cursor if descending else kc[0] > cursor)]
            except TypeError as exc:
                raise unprocessable(["searchAfter must be the searchAfter of a result"]) from exc
            page = keyed[:limit]
        else:
            page_no = int(body.get("page", 1))
            if page_no * limit > SEARCH_WINDOW_MAX:
                # assumption: the text is UNCONFIRMED; the 10,000-record reach is documented
                raise HTTPError(
                    400,
                    error(
                        400,
                        f"page * pageLimit must not exceed {SEARCH_WINDOW_MAX}; use searchAfter",
                    ),
                )
            page = keyed[(page_no - 1) * limit : page_no * limit]
        # search items also list the contact's opportunities (§5.4); the sandbox has none
        contacts = [{**clone(c), "opportunities": [], "searchAfter": list(key)} for key, c in page]
        return Response(200, {"contacts": contacts, "total": len(found)})

    def _sort_value(self, contact: dict[str, Any], field: str) -> int | str:
        if field == "dateUpdated":
            return parse_iso_ms(contact.get("dateUpdated")) or 0
        value = contact.get(field)
        return str(value).lower() if value is not None else ""

    # --- tags ---------------------------------------------------------------------------------
    def add_tags(self, request: Request, auth: TokenInfo) -> Response:
        """``POST /contacts/{contactId}/tags``: 201 with the contact's tags."""
        body = self._body(request, auth, "/contacts/{contactId}/tags")
        contact = self._contact(auth, request.path_params["contactId"])
        contact["tags"] = normalize_tags([*contact["tags"], *body["tags"]])
        contact["dateUpdated"] = iso(now_ms())
        # assumption: the answer lists the contact's full resulting tags, not only the added ones
        return Response(201, {"tags": list(contact["tags"])})

    def remove_tags(self, request: Request, auth: TokenInfo) -> Response:
        """``DELETE /contacts/{contactId}/tags``: the contact's remaining tags."""
        body = self._body(request, auth, "/contacts/{contactId}/tags")
        contact = self._contact(auth, request.path_params["contactId"])
        gone = set(normalize_tags(body["tags"]))
        contact["tags"] = [t for t in contact["tags"] if t not in gone]
        contact["dateUpdated"] = iso(now_ms())
        return Response(200, {"tags": list(contact["tags"])})

    # --- tasks, notes, appointments: what they share ---------------------------------------
    def _item(self, kind: str, request: Request, auth: TokenInfo) -> dict[str, Any]:
        """The task or note named by the path, under a contact the token may see."""
        contact = self._contact(auth, request.path_params["contactId"])
        id_param, _, label = CHILD_ROUTES[kind]
        item_id = request.path_params[id_param]
        item = self._stores[kind].get(item_id)
        if item is None or item["contactId"] != contact["id"]:
            # assumption: an unknown task/note under a known contact is a 404
            raise HTTPError(404, error(404, f"{label} with id {item_id} not found"))
        return item

    def list_items(self, kind: str, wrapper: str, request: Request, auth: TokenInfo) -> Response:
        """``{tasks}``, ``{notes}`` or ``{events}``: a contact's items, oldest first."""
        contact = self._contact(auth, request.path_params["contactId"])
        items = self._children[kind].get(contact["id"], {})
        return Response(200, {wrapper: [clone(self._stores[kind][i]) for i in items]})

    def get_item(self, kind: str, request: Request, auth: TokenInfo) -> Response:
        """One task or note: ``{task}`` or ``{note}``."""
        return Response(200, {CHILD_ROUTES[kind][1]: clone(self._item(kind, request, auth))})

    def delete_item(self, kind: str, request: Request, auth: TokenInfo) -> Response:
        """Delete one task or note: ``{succeded}``."""
        self._drop_child(kind, self._item(kind, request, auth)["id"])
        return Response(200, {"succeded": True})

    # --- tasks --------------------------------------------------------------------------------
    @staticmethod
    def _task_values(body: dict[str, Any]) -> dict[str, Any]:
        if "dueDate" not in body:
            return body
        ms = parse_iso_ms(body["dueDate"])
        if ms is None:
            raise unprocessable(["dueDate must be a valid ISO 8601 date string"])
        return {**body, "dueDate": iso(ms)}

    def create_task(self, request: Request, auth: TokenInfo) -> Response:
        """``POST /contacts/{contactId}/tasks``: 201 ``{task}``."""
        body = self._task_values(self._body(request, auth, "/contacts/{contactId}/tasks"))
        contact = self._contact(auth, request.path_params["contactId"])
        task = {"id": self._new_id(self.tasks), **clone(body), "contactId": contact["id"]}
        self._add_child("tasks", task)
        return Response(201, {"task": clone(task)})

    def update_task(self, request: Request, auth: TokenInfo) -> Response:
        """``PUT .../tasks/{taskId}``: the changed ``{task}``."""
        body = self._task_values(self._body(request, auth, "/contacts/{contactId}/tasks/{taskId}"))
        task = self._item("tasks", request, auth)
        task.update(clone(body))
        return Response(200, {"task": clone(task)})

    def complete_task(self, request: Request, auth: TokenInfo) -> Response:
        """``PUT .../tasks/{taskId}/completed``: the ``{task}`` with its new status."""
        body = self._body(request, auth, "/contacts/{contactId}/tasks/{taskId}/completed")
        task = self._item("tasks", request, auth)
        task["completed"] = body["completed"]
        return Response(200, {"task": clone(task)})

    # --- notes --------------------------------------------------------------------------------
    def create_note(self, request: Request, auth: TokenInfo) -> Response:
        """``POST /contacts/{contactId}/notes``: 201 ``{note}``."""
        body = self._body(request, auth, "/contacts/{contactId}/notes")
        contact = self._contact(auth, request.path_params["contactId"])
        note = {
            "id": self._new_id(self.notes),
            **clone(body),
            "contactId": contact["id"],
            "dateAdded": iso(now_ms()),
        }
        self._add_child("notes", note)
        return Response(201, {"note": clone(note)})

    def update_note(self, request: Request, auth: TokenInfo) -> Response:
        """``PUT .../notes/{id}``: the changed ``{note}``."""
        body = self._body(request, auth, "/contacts/{contactId}/notes/{id}")
        note = self._item("notes", request, auth)
        note.update(clone(body))
        return Response(200, {"note": clone(note)})

    # --- rate limits (SandboxApp hooks) -----------------------------------------------------------
    @staticmethod
    def _today() -> str:
        # assumption: the daily window resets at UTC midnight (UNCONFIRMED: could be rolling)
        return datetime.now(timezone.utc).strftime("%Y-%m-%d")

    def _rate_headers(self, location: str, window_remaining: int) -> dict[str, str]:
        used = self._daily_used.get(location, 0)
        return {
            "X-RateLimit-Limit-Daily": str(self.daily_limit),
            "X-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - used)),
            "X-RateLimit-Interval-Milliseconds": str(int(self._window.window * 1000)),
            "X-RateLimit-Max": str(self._window.limit if self._window.limit > 0 else UNLIMITED),
            "X-RateLimit-Remaining": str(window_remaining),
        }

    @override
    def check_rate_limit(self, request: Request) -> Response | None:
        """Count the request against its token's location: 100 / 10 s and 200,000 / day.

        Requests without a valid location token and the OAuth routes are not counted.
        """
        ctx = self._ctx
        info = self.registry.lookup(bearer(request))
        ctx.location = info.location_id if info else None
        ctx.limited = False
        ctx.headers = {}
        if ctx.location is None or OAuthServer.is_oauth_path(request.path):
            return None
        location = ctx.location
        with self._rate_lock:
            today = self._today()
            if today != self._daily_day:
                self._daily_day, self._daily_used = today, {}
            if self._daily_used.get(location, 0) >= self.daily_limit:
                allowed, remaining = False, self._window.remaining(location)
            else:
                allowed, remaining, _ = self._window.hit(location)
                if allowed:
                    self._daily_used[location] = self._daily_used.get(location, 0) + 1
            headers = self._rate_headers(location, remaining)
        if not allowed:
            ctx.limited = True
            # assumption: the 429 body is UNCONFIRMED; this is the service's Nest envelope
            return Response(429, {"statusCode": 429, "message": "Too Many Requests"}, headers)
        ctx.headers = headers
        return None

    @override
    def rate_limit_headers(self, request: Request) -> dict[str, str]:
        """The five ``X-RateLimit-*`` headers counted for this request."""
        return dict(getattr(self._ctx, "headers", {}))

    @override
    def log_entry_extra(self, request: Request) -> dict[str, Any]:
        """The request's location, and whether it was refused by a rate limit."""
        extra: dict[str, Any] = {"location_id": getattr(self._ctx, "location", None)}
        if getattr(self._ctx, "limited", False):
            extra["rate_limited"] = True
        return extra

    @override
    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """The NestJS error envelope the Contacts API answers with."""
        return error(status, message)

    # --- control (SandboxApp hooks) ---------------------------------------------------------------
    @staticmethod
    def _check_duplicate_match(fields: Iterable[str]) -> tuple[str, ...]:
        out = tuple(fields)
        if not out or len(set(out)) != len(out) or any(f not in DUPLICATE_FIELDS for f in out):
            raise ValueError(
                f"duplicate_match must list distinct fields of {list(DUPLICATE_FIELDS)}"
            )
        return out

    @override
    def configure(self, settings: dict[str, Any]) -> None:
        """Apply ``POST /_sandbox/config`` keys; 422 on an unknown key, nothing applied then.

        Keys: ``rate_limit``, ``rate_window`` (seconds), ``daily_limit``, ``daily_used`` (requests
        already spent today by every location), ``access_token_ttl`` (seconds, for tokens issued
        from now on), ``allow_duplicates``, ``duplicate_match`` (e.g. ``["phone", "email"]``).
        """
        known = {
            "rate_limit",
            "rate_window",
            "daily_limit",
            "daily_used",
            "access_token_ttl",
            "allow_duplicates",
            "duplicate_match",
        }
        unknown = set(settings) - known
        if unknown:
            raise HTTPError(422, error(422, [f"unknown settings: {sorted(unknown)}"]))
        match = self.duplicate_match
        if "duplicate_match" in settings:
            try:
                match = self._check_duplicate_match(settings["duplicate_match"])
            except ValueError as exc:
                raise HTTPError(422, error(422, [str(exc)])) from exc
        with self._rate_lock:
            if "rate_limit" in settings:
                self._window.limit = int(settings["rate_limit"])
            if "rate_window" in settings:
                self._window.window = float(settings["rate_window"])
            if "daily_limit" in settings:
                self.daily_limit = int(settings["daily_limit"])
            if "daily_used" in settings:
                self._daily_day = self._today()
                self._daily_used = {loc: int(settings["daily_used"]) for loc in self.locations}
        if "access_token_ttl" in settings:
            ttl = float(settings["access_token_ttl"])
            self.oauth.access_token_ttl = int(ttl) if ttl.is_integer() else ttl
        if "allow_duplicates" in settings:
            self.allow_duplicates = bool(settings["allow_duplicates"])
        self.duplicate_match = match

    @override
    def reset(self) -> None:
        """Forget contacts, tasks, notes, appointments and rate counters; keep OAuth grants."""
        with self.lock:
            self._init_data()
        with self._rate_lock:
            self._window.reset()
            self._daily_used = {}

    @override
    def seed(self, data: dict[str, Any]) -> dict[str, list[str]]:
        """Load ``{"contacts", "tasks", "notes", "appointments"}`` in the API's shapes.

        Contacts: the Contact shape (``id``, ``locationId`` default the main location,
        ``dateAdded`` ISO or epoch ms, ``tags``, ``customFields`` as ``{id, value}`` or the input
        form, any other field as given). Tasks, notes and appointments link by ``contactId``.
        No duplicate rules apply. Returns the ids stored, per kind, in input order.
        """
        if not isinstance(data, dict):
            raise HTTPError(422, error(422, ["seed data must be an object"]))
        unknown = set(data) - {"contacts", "tasks", "notes", "appointments"}
        if unknown:
            raise HTTPError(422, error(422, [f"unknown seed keys: {sorted(unknown)}"]))
        with self.lock:
            out: dict[str, list[str]] = {
                "contacts": [self._seed_contact(c) for c in data.get("contacts", [])]
            }
            for kind in self._stores:
                out[kind] = [self._seed_child(kind, item) for item in data.get(kind, [])]
        return out

    def _seed_contact(self, raw: dict[str, Any]) -> str:
        location = raw.get("locationId", self.location_id)
        if location not in self.locations:
            raise HTTPError(422, error(422, [f"unknown locationId {location!r}"]))
        cid = raw.get("id") or self._new_id(self.contacts)
        if cid in self.contacts:
            self._drop_contact(cid)
        added = parse_iso_ms(raw.get("dateAdded"))
        # an ISO dateOfBirth (the API's output form) is kept as it is by _apply
        contact = self._new_contact(location, raw, added_ms=added, cid=cid)
        if raw.get("dateUpdated"):
            contact["dateUpdated"] = iso(parse_iso_ms(raw["dateUpdated"]) or self._added[cid])
        return cid

    def _seed_child(self, kind: str, raw: dict[str, Any]) -> str:
        contact = self.contacts.get(raw.get("contactId", ""))
        if contact is None:
            raise HTTPError(
                422,
                error(422, [f"{kind}: contactId {raw.get('contactId')!r} is not a seeded contact"]),
            )
        item: dict[str, Any] = clone(raw)
        item["id"] = raw.get("id") or self._new_id(self._stores[kind])
        if kind == "tasks":
            item.setdefault("completed", False)
            if item.get("dueDate"):
                item["dueDate"] = iso(parse_iso_ms(item["dueDate"]) or now_ms())
        elif kind == "notes":
            item["dateAdded"] = iso(parse_iso_ms(item.get("dateAdded")) or now_ms())
        else:
            item.setdefault("locationId", contact["locationId"])
            item.setdefault("dateAdded", iso(now_ms()))
            item.setdefault("dateUpdated", item["dateAdded"])  # GetEventSchema has both
        if item["id"] in self._stores[kind]:
            self._drop_child(kind, item["id"])
        self._add_child(kind, item)
        return item["id"]

    @override
    def state(self) -> dict[str, list[dict[str, Any]]]:
        """Everything stored, in the API's shapes (tasks and notes carry ``contactId``)."""
        with self.lock:
            return {
                "contacts": [clone(c) for c in self.contacts.values()],
                "tasks": [clone(t) for t in self.tasks.values()],
                "notes": [clone(n) for n in self.notes.values()],
                "appointments": [clone(a) for a in self.appointments.values()],
            }


# --- request helpers ----------------------------------------------------------------------------
@cache
def _takes_location(method: str, template: str | None) -> bool:
    """Whether the operation's body declares ``locationId`` (elsewhere it is a 422, not a 403)."""
    op = openapi.find_operation(method, template) if template else None
    if op is None or op.body_schema is None:
        return False
    schema = openapi.prepare_schema(op.body_schema, openapi.load_spec(op.spec))
    return "locationId" in schema.get("properties", {})


def _int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(float(raw))
    except ValueError as exc:
        raise unprocessable(
            [f"{name} must be a number conforming to the specified constraints"]
        ) from exc
    if value < low:
        raise unprocessable([f"{name} must not be less than {low}"])
    if high is not None and value > high:
        raise unprocessable([f"{name} must not be greater than {high}"])
    return value


def _matches_query(contact: dict[str, Any], query: str) -> bool:
    """Free-text match on name, email, phone and company (case-insensitive substring)."""
    for field in ("name", "firstName", "lastName", "email", "companyName"):
        value = contact.get(field)
        if value and query in value.lower():
            return True
    digits = re.sub(r"\D", "", query)
    return bool(digits) and digits in re.sub(r"\D", "", contact.get("phone") or "")


def _check_filters(filters: list[dict[str, Any]]) -> None:
    for item in filters:
        if "group" in item:
            if item["group"] not in ("AND", "OR") or not isinstance(item.get("filters"), list):
                raise unprocessable(["filters: a group needs group AND|OR and a filters array"])
            _check_filters(item["filters"])
        elif not isinstance(item.get("field"), str) or item.get("operator") not in SEARCH_OPERATORS:
            raise unprocessable(
                [f"filters: each filter needs a field and an operator of {list(SEARCH_OPERATORS)}"]
            )


def _filter_matches(contact: dict[str, Any], item: dict[str, Any]) -> bool:
    if "group" in item:
        results = (_filter_matches(contact, f) for f in item["filters"])
        return all(results) if item["group"] == "AND" else any(results)
    field, op, value = item["field"], item["operator"], item.get("value")
    actual = contact.get(field)
    if op in ("exists", "not_exists"):
        return bool(actual not in (None, "", [])) == (op == "exists")
    if op == "range":
        number = parse_iso_ms(actual) if field in ("dateAdded", "dateUpdated") else actual
        bounds = value if isinstance(value, dict) else {}
        checks = {
            "gte": lambda a, b: a >= b,
            "lte": lambda a, b: a <= b,
            "gt": lambda a, b: a > b,
            "lt": lambda a, b: a < b,
        }
        try:
            return number is not None and all(
                checks[k](number, parse_iso_ms(v) if field in ("dateAdded", "dateUpdated") else v)
                for k, v in bounds.items()
                if k in checks
            )
        except TypeError:
            return False
    wanted = [_comparable(field, v) for v in (value if isinstance(value, list) else [value])]
    have = [
        _comparable(field, a)
        for a in (actual if isinstance(actual, list) else [actual])
        if a is not None
    ]
    if op in ("eq", "not_eq"):
        hit = any(w in have for w in wanted)
    else:
        hit = any(
            isinstance(h, str) and isinstance(w, str) and w in h for w in wanted for h in have
        )
    return hit == (op in ("eq", "contains"))


def _comparable(field: str, value: object) -> object:
    if field == "phone" and isinstance(value, str):
        return normalize_phone(value)
    return value.strip().lower() if isinstance(value, str) else value


# --- command line -------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``python -m sandbox contacts`` besides the common ``--port``, ``--latency``."""
    parser.add_argument("--location-id", default="sandbox-location", help="the main location")
    parser.add_argument(
        "--token", default="sandbox-token", help="private integration token of the main location"
    )
    parser.add_argument(
        "--extra-location",
        action="append",
        default=[],
        dest="extra_locations",
        help="another location (repeatable); its token is '<token>-<location>'",
    )
    parser.add_argument("--client-id", default="sandbox-client-id", help="OAuth client id")
    parser.add_argument(
        "--client-secret", default="sandbox-client-secret", help="OAuth client secret"
    )
    parser.add_argument("--company-id", default="sandbox-company", help="agency (company) id")
    parser.add_argument(
        "--agency-token",
        default=None,
        help="agency token accepted by /oauth/locationToken (default: none)",
    )
    parser.add_argument("--rate-limit", type=int, default=100, help="requests per window")
    parser.add_argument("--rate-window", type=float, default=10.0, help="window in seconds")
    parser.add_argument("--daily-limit", type=int, default=200_000, help="requests per day")
    parser.add_argument(
        "--access-token-ttl", type=int, default=86399, help="OAuth access token lifetime in seconds"
    )
    parser.add_argument(
        "--allow-duplicates", action="store_true", help="the locations allow duplicate contacts"
    )
    parser.add_argument(
        "--duplicate-match",
        default="email,phone",
        help="duplicate-contact match order, e.g. 'phone,email' or 'email'",
    )


def create_app(args: argparse.Namespace) -> ContactsSandbox:
    """A :class:`ContactsSandbox` from the parsed flags of :func:`add_arguments`."""
    return ContactsSandbox(
        location_id=args.location_id,
        token=args.token,
        client_id=args.client_id,
        client_secret=args.client_secret,
        company_id=args.company_id,
        agency_token=args.agency_token,
        extra_locations=args.extra_locations,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        daily_limit=args.daily_limit,
        access_token_ttl=args.access_token_ttl,
        allow_duplicates=args.allow_duplicates,
        duplicate_match=[f.strip() for f in args.duplicate_match.split(",") if f.strip()],
        latency=getattr(args, "latency", 0.0),
    )
