"""Contacts API (HighLevel / LeadConnector v2) emulator: contacts, tasks, notes, tags, OAuth.

Faithful to ``shared/reference/contacts-api.md``, ``reverse-and-realtime.md`` §1-3 and the official
OpenAPI files, which validate every request body (unknown property: 422). What a caller may rely on:

- Routes of contacts-api.md §5.1 with their status codes and body wrappers (201 on creates,
  ``succeded`` spelled as the API spells it), 20-character ids, ``GET /contacts/`` cursor paging
  with ``meta``, ``GET /contacts/search/duplicate``, ``GET /contacts/{id}/appointments``
  (``{events}``).
- ``POST /contacts/search`` (:mod:`sandbox.contacts_search`): filters, sort, ``page`` and
  ``searchAfter`` paging over an index that shows writes ``search_lag`` seconds late
  (:mod:`sandbox.contacts_index`); direct reads are immediate. Every contact write (create, PUT,
  upsert, tags) sets ``dateUpdated``; task, note and appointment writes do so only with
  ``child_writes_bump_contact`` (UNCONFIRMED in reality, off by default).
- ``POST /locations/{locationId}/tasks/search``: 201 ``{tasks}`` of ``_id`` rows; needs the scope
  ``locations/tasks.readonly`` (the private integration token has it unless ``token_scopes`` says
  otherwise).
- Auth: ``Authorization: Bearer`` with the location's private integration token (``token``; for
  each of ``extra_locations`` it is ``f"{token}-{location}"``) or an OAuth access token
  (:mod:`sandbox.contacts_oauth`), plus ``Version: 2021-07-28``. Every resource belongs to a
  location; another location's token gets 403.
- Duplicate-contact rules per location, upsert matching, per-location rate limits with the five
  ``X-RateLimit-*`` headers.
- Control routes (see :mod:`sandbox.server`): ``POST /_sandbox/seed`` (``{"contacts", "tasks",
  "notes", "appointments"}`` in the API's shapes, and ``{"generate": {"contacts": N, "seed": S}}``
  for :func:`sandbox.contacts_data.generate`), ``GET /_sandbox/state``, ``POST /_sandbox/config``
  with the keys of :meth:`ContactsSandbox.configure`, and sandbox-only appointment writes
  ``POST /_sandbox/appointments``, ``PUT`` and ``DELETE /_sandbox/appointments/{id}`` (the v2
  Contacts API has no route that writes appointments; they stand for a person's edit in the CRM).
- Webhooks (:mod:`sandbox.contacts_webhooks`), off until a URL is set (``--webhook-url``,
  ``webhook_url``): every API write and every ``/_sandbox/appointments`` write sends HighLevel's
  event (``ContactCreate`` ... ``AppointmentDelete``), signed with the sandbox's Ed25519 and RSA
  keys, whose public halves ``GET /_sandbox/webhook_keys`` serves; ``GET`` and ``DELETE
  /_sandbox/webhook_deliveries`` show and clear the delivery log (header
  ``X-Pending-Deliveries``). Seeding sends nothing. ``POST /_sandbox/reset`` drops queued
  deliveries and the log; the webhook settings stay.

Time (``dateAdded``, ``dateUpdated``, token lifetimes, the indexing lag) is the ``clock`` option's,
:func:`time.time` by default, so tests move time instead of sleeping. The records live in
:class:`sandbox.contacts_store.ContactStore`; this module holds the routes, auth, rate limits and
control. Choices where the reference is UNCONFIRMED are marked "assumption" or UNCONFIRMED in a
comment where they are made.

Options (constructor keywords; ``python -m sandbox contacts`` flags in brackets):
``search_lag`` [``--search-lag SECONDS``], ``token_scopes`` [``--token-scopes``],
``child_writes_bump_contact`` [``--option child_writes_bump_contact=true``], ``clock``,
``webhooks`` [the ``--webhook-*`` flags, :class:`sandbox.contacts_webhooks.WebhookOptions`]; every
``POST /_sandbox/config`` key also as ``--option KEY=VALUE``; ``--generate N`` and
``--generate-seed S`` load generated data at start.
"""

from __future__ import annotations

import bisect
import gc
import json
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from functools import cache, partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from typing_extensions import override

from sandbox import contacts_data, contacts_webhooks, openapi
from sandbox.contacts_data import iso
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
)
from sandbox.contacts_search import (
    SEARCH_BODY_SCHEMA,
    TASK_SEARCH_SCHEMA,
    ContactSearch,
    TaskSearch,
    parse_iso_ms,
    unprocessable,
)
from sandbox.contacts_store import (
    ContactStore,
    normalize_phone,
    normalize_tags,
    parse_date_of_birth,
)
from sandbox.contacts_webhooks import ContactsWebhooks, WebhookOptions
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
TASKS_READ = "locations/tasks.readonly"  # POST /locations/{id}/tasks/search (§3)
# what the private integration token is granted unless token_scopes says otherwise
PIT_SCOPES = frozenset({*DEFAULT_SCOPE.split(), TASKS_READ})
DUPLICATE_FIELDS = ("email", "phone")
LIST_LIMIT_MAX = 100
DATE_OF_BIRTH_FORMATS = (
    "YYYY/MM/DD, MM/DD/YYYY, YYYY-MM-DD, MM-DD-YYYY, YYYY.MM.DD, MM.DD.YYYY, YYYY_MM_DD, MM_DD_YYYY"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

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
# Stored with each task for the location task search; the per-contact routes leave them out
TASK_STORED_ONLY = ("dateAdded", "dateUpdated")
# GetEventSchema (contacts-api.md §5.5): what a seeded or sandbox-written appointment may carry
APPOINTMENT_FIELDS = (
    "id",
    "calendarId",
    "status",
    "title",
    "assignedUserId",
    "notes",
    "startTime",
    "endTime",
    "address",
    "locationId",
    "contactId",
    "groupId",
    "appointmentStatus",
    "users",
    "dateAdded",
    "dateUpdated",
    "assignedResources",
)
TASK_FIELDS = frozenset(
    {"id", "title", "body", "assignedTo", "dueDate", "completed", "contactId", *TASK_STORED_ONLY}
)
NOTE_FIELDS = frozenset(
    {"id", "body", "userId", "dateAdded", "contactId", "title", "color", "pinned"}
)


# --- small helpers --------------------------------------------------------------------------
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
        search_lag: float = 0.0,
        child_writes_bump_contact: bool = False,
        token_scopes: Iterable[str] = PIT_SCOPES,
        webhooks: WebhookOptions | None = None,
    ) -> None:
        super().__init__(latency=latency)
        self.location_id = location_id
        self.company_id = company_id
        self.locations: tuple[str, ...] = tuple(dict.fromkeys((location_id, *extra_locations)))
        # one clock for timestamps, token lifetimes, the index lag and (when a test passes one)
        # the rate window
        self._clock = clock or time.time
        self.registry = TokenRegistry(clock=self._clock)
        for loc in self.locations:
            pit = token if loc == location_id else f"{token}-{loc}"
            self.registry.static[pit] = TokenInfo("pit", loc, company_id, frozenset(token_scopes))
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
        # set by the command line, where the sandbox owns its process (gc.freeze is process-wide)
        self.freeze_heap_after_generate = False
        self.store = ContactStore(self.locations, self._clock, search_lag)
        # whether a task/note/appointment write sets its contact's dateUpdated: UNCONFIRMED in
        # reality (reverse-and-realtime.md §1.2), so off by default: a tap must not rely on it
        self.store.child_writes_bump_contact = child_writes_bump_contact
        self.contact_search = ContactSearch(self.store.search_index, normalize_phone)
        self.task_search = TaskSearch(self.store.task_index)
        # HighLevel's webhooks (sandbox.contacts_webhooks): a test's clock also runs the retries
        self.webhooks = ContactsWebhooks(
            webhooks or WebhookOptions(), now_ms=self.store.now_ms, clock=clock or time.monotonic
        )
        self.webhooks.register(self)
        self._register_routes()

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

    def _duplicate_of(
        self, location: str, body: dict[str, Any], exclude: str | None = None
    ) -> tuple[str, str] | None:
        """(contact id, matching field) of an existing contact the body would duplicate."""
        if self.allow_duplicates:
            return None
        for field in self.duplicate_match:
            for cid in self.store.matches(location, field, body.get(field)):
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
    def _authenticate(self, request: Request, scope: str, *, versioned: bool = True) -> TokenInfo:
        if versioned:
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
            # 401 with this text is what clients report [3P]; 401 versus 403 is UNCONFIRMED, so
            # a client should treat both as "scope missing"
            raise HTTPError(401, error(401, "The token is not authorized for this scope."))
        return info

    @staticmethod
    def _own_location(auth: TokenInfo, location_id: object) -> None:
        if location_id != auth.location_id:
            raise HTTPError(403, error(403, "The token does not have access to this location"))

    def _contact(self, auth: TokenInfo, cid: str) -> dict[str, Any]:
        contact = self.store.contacts.get(cid)
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
        *,
        versioned: bool = True,
    ) -> None:
        def run(request: Request) -> Response:
            return handler(request, self._authenticate(request, scope, versioned=versioned))

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
        # the Version header "is irrelevant here" (§3.1): not checked
        self._api(
            "POST",
            "/locations/{locationId}/tasks/search",
            TASKS_READ,
            self.search_tasks,
            versioned=False,
        )
        self.add_route("POST", "/_sandbox/appointments", self._sandbox_create_appointment)
        self.add_route("PUT", "/_sandbox/appointments/{id}", self._sandbox_update_appointment)
        self.add_route("DELETE", "/_sandbox/appointments/{id}", self._sandbox_delete_appointment)

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
        stored = self.store.new_contact(body["locationId"], body)
        self.webhooks.contact_written(None, stored)
        contact = {**clone(stored), **clone(CREATED_CONTACT_EXTRAS)}
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
        updated = self.store.update_contact(contact, body)
        self.webhooks.contact_written(contact, updated)
        return Response(200, {"succeded": True, "contact": clone(updated)})

    def delete_contact(self, request: Request, auth: TokenInfo) -> Response:
        """``DELETE /contacts/{contactId}``: ``{succeded}``; its tasks, notes and events go too."""
        contact = self._contact(auth, request.path_params["contactId"])
        self.store.drop_contact(contact["id"])
        self.webhooks.contact_deleted(contact)
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
                    if (ids := self.store.matches(location, field, body.get(field)))
                ),
                None,
            )
        if match is None:
            contact = self.store.new_contact(location, body)
            self.webhooks.contact_written(None, contact)
            return Response(
                200, {"new": True, "contact": clone(contact), "traceId": str(uuid.uuid4())}
            )
        contact = self.store.contacts[match[0]]
        # gender is ignored when upsert updates (issue #313)
        updates = {k: v for k, v in body.items() if k != "gender"}
        for field in self.duplicate_match:
            others = self.store.matches(location, field, body.get(field))
            if field != match[1] and others and contact["id"] not in others:
                # the conflicting second identifier is silently not applied (issue #37)
                updates.pop(field, None)
        updated = self.store.update_contact(contact, updates)
        self.webhooks.contact_written(contact, updated)
        return Response(
            200, {"new": False, "contact": clone(updated), "traceId": str(uuid.uuid4())}
        )

    def list_contacts(self, request: Request, auth: TokenInfo) -> Response:
        """``GET /contacts/``: cursor paging in (dateAdded, id) order, ``{contacts, meta}``."""
        location = self._query_location(request, auth)
        limit = _int_param(request, "limit", 20, 1, LIST_LIMIT_MAX)
        query = (request.arg("query") or "").strip().lower()
        keys = self.store.order.get(location, [])
        if query:
            keys = [k for k in keys if _matches_query(self.store.contacts[k[1]], query)]
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
                "contacts": [clone(self.store.contacts[k[1]]) for k in page],
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
        if after_id and after is None and after_id in self.store.added:
            after = self.store.added[after_id]
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
            self.store.contacts[cid]
            for _, cid in self.store.order.get(location, [])
            if self.store.contacts[cid].get("businessId") == business
            and (not query or _matches_query(self.store.contacts[cid], query))
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
            ids = self.store.matches(location, field, probe[field])
            if ids:
                return Response(200, {"contact": clone(self.store.contacts[ids[0]])})
        return Response(200, {"contact": None})

    def search_contacts(self, request: Request, auth: TokenInfo) -> Response:
        """``POST /contacts/search``: ``{contacts: [... with searchAfter], total, traceId}``.

        See :mod:`sandbox.contacts_search`; the index shows writes ``search_lag`` seconds late.
        """
        body = self._body(request, auth, schema=SEARCH_BODY_SCHEMA)
        return Response(200, self.contact_search.run(body, _matches_query))

    def search_tasks(self, request: Request, auth: TokenInfo) -> Response:
        """``POST /locations/{locationId}/tasks/search``: 201 ``{tasks}`` (§3.1), no ``total``."""
        location = request.path_params["locationId"]
        self._own_location(auth, location)
        body = self._body(request, auth, schema=TASK_SEARCH_SCHEMA)
        # 201 as observed live; the spec says 200 (§3.1: "accept both")
        return Response(201, self.task_search.run(location, body, self.store.contacts))

    # --- tags ---------------------------------------------------------------------------------
    def _set_tags(self, contact: dict[str, Any], tags: list[str]) -> list[str]:
        updated = {**contact, "tags": tags, "dateUpdated": iso(self.store.now_ms())}
        self.store.replace_contact(updated)
        self.webhooks.tags_written(updated)
        return list(tags)

    def add_tags(self, request: Request, auth: TokenInfo) -> Response:
        """``POST /contacts/{contactId}/tags``: 201 with the contact's tags."""
        body = self._body(request, auth, "/contacts/{contactId}/tags")
        contact = self._contact(auth, request.path_params["contactId"])
        tags = normalize_tags([*contact["tags"], *body["tags"]])
        # assumption: the answer lists the contact's full resulting tags, not only the added ones
        return Response(201, {"tags": self._set_tags(contact, tags)})

    def remove_tags(self, request: Request, auth: TokenInfo) -> Response:
        """``DELETE /contacts/{contactId}/tags``: the contact's remaining tags."""
        body = self._body(request, auth, "/contacts/{contactId}/tags")
        contact = self._contact(auth, request.path_params["contactId"])
        gone = set(normalize_tags(body["tags"]))
        tags = [t for t in contact["tags"] if t not in gone]
        return Response(200, {"tags": self._set_tags(contact, tags)})

    # --- tasks, notes, appointments: what they share ---------------------------------------
    def _item(self, kind: str, request: Request, auth: TokenInfo) -> dict[str, Any]:
        """The task or note named by the path, under a contact the token may see."""
        contact = self._contact(auth, request.path_params["contactId"])
        id_param, _, label = CHILD_ROUTES[kind]
        item_id = request.path_params[id_param]
        item = self.store.stores[kind].get(item_id)
        if item is None or item["contactId"] != contact["id"]:
            # assumption: an unknown task/note under a known contact is a 404
            raise HTTPError(404, error(404, f"{label} with id {item_id} not found"))
        return item

    @staticmethod
    def _answer(kind: str, item: dict[str, Any]) -> dict[str, Any]:
        """An item as the per-contact routes answer it: a task without its stored dates."""
        if kind != "tasks":
            return {k: clone(v) for k, v in item.items()}
        return {k: clone(v) for k, v in item.items() if k not in TASK_STORED_ONLY}

    def _change_item(self, kind: str, item: dict[str, Any], changes: dict[str, Any]) -> Response:
        """Store a new version of ``item`` with ``changes``; answers ``{task}`` or ``{note}``."""
        updated = {**item, **clone(changes)}
        if kind == "tasks":
            updated["dateUpdated"] = iso(self.store.now_ms())
        self.store.replace_child(kind, updated)
        self._item_written(kind, item, updated)
        return Response(200, {CHILD_ROUTES[kind][1]: self._answer(kind, updated)})

    # After a task, note or appointment write is stored: its contact's dateUpdated is bumped if
    # set so, and the write's webhook is sent.
    def _item_written(
        self, kind: str, before: dict[str, Any] | None, after: dict[str, Any]
    ) -> None:
        """``after`` was stored (``before`` None: created)."""
        self.webhooks.item_written(kind, self._touch(after), before, after)

    def _item_deleted(self, kind: str, item: dict[str, Any]) -> None:
        self.webhooks.item_deleted(kind, self._touch(item), item)

    def _touch(self, item: dict[str, Any]) -> str:
        """Bump ``item``'s contact if set so; answers the contact's location."""
        self.store.touch_contact(item["contactId"])
        return str(self.store.contacts[item["contactId"]]["locationId"])

    def list_items(self, kind: str, wrapper: str, request: Request, auth: TokenInfo) -> Response:
        """``{tasks}``, ``{notes}`` or ``{events}``: a contact's items, oldest first."""
        contact = self._contact(auth, request.path_params["contactId"])
        items = self.store.children[kind].get(contact["id"], {})
        return Response(
            200, {wrapper: [self._answer(kind, self.store.stores[kind][i]) for i in items]}
        )

    def get_item(self, kind: str, request: Request, auth: TokenInfo) -> Response:
        """One task or note: ``{task}`` or ``{note}``."""
        item = self._item(kind, request, auth)
        return Response(200, {CHILD_ROUTES[kind][1]: self._answer(kind, item)})

    def delete_item(self, kind: str, request: Request, auth: TokenInfo) -> Response:
        """Delete one task or note: ``{succeded}``."""
        item = self._item(kind, request, auth)
        self.store.drop_child(kind, item["id"])
        self._item_deleted(kind, item)
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
        now = iso(self.store.now_ms())
        task = {
            "id": self.store.new_id(self.store.tasks),
            **clone(body),
            "contactId": contact["id"],
            "dateAdded": now,
            "dateUpdated": now,
        }
        self.store.add_child("tasks", task)
        self._item_written("tasks", None, task)
        return Response(201, {"task": self._answer("tasks", task)})

    def update_task(self, request: Request, auth: TokenInfo) -> Response:
        """``PUT .../tasks/{taskId}``: the changed ``{task}``."""
        body = self._task_values(self._body(request, auth, "/contacts/{contactId}/tasks/{taskId}"))
        return self._change_item("tasks", self._item("tasks", request, auth), body)

    def complete_task(self, request: Request, auth: TokenInfo) -> Response:
        """``PUT .../tasks/{taskId}/completed``: the ``{task}`` with its new status."""
        body = self._body(request, auth, "/contacts/{contactId}/tasks/{taskId}/completed")
        task = self._item("tasks", request, auth)
        return self._change_item("tasks", task, {"completed": body["completed"]})

    # --- notes --------------------------------------------------------------------------------
    def create_note(self, request: Request, auth: TokenInfo) -> Response:
        """``POST /contacts/{contactId}/notes``: 201 ``{note}``."""
        body = self._body(request, auth, "/contacts/{contactId}/notes")
        contact = self._contact(auth, request.path_params["contactId"])
        note = {
            "id": self.store.new_id(self.store.notes),
            **clone(body),
            "contactId": contact["id"],
            "dateAdded": iso(self.store.now_ms()),
        }
        self.store.add_child("notes", note)
        self._item_written("notes", None, note)
        return Response(201, {"note": clone(note)})

    def update_note(self, request: Request, auth: TokenInfo) -> Response:
        """``PUT .../notes/{id}``: the changed ``{note}`` (notes have no ``dateUpdated``)."""
        body = self._body(request, auth, "/contacts/{contactId}/notes/{id}")
        return self._change_item("notes", self._item("notes", request, auth), body)

    # --- appointments (sandbox-only writes: the v2 Contacts API has none) -----------------------
    def _appointment_values(self, raw: object, *, partial_update: bool) -> dict[str, Any]:
        """A seeded or written appointment's fields checked and in the stored forms; 422 else."""
        if not isinstance(raw, dict):
            raise unprocessable(["an appointment must be an object"])
        allowed = set(APPOINTMENT_FIELDS) - ({"id", "contactId"} if partial_update else set())
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise unprocessable([f"property {k} should not exist" for k in unknown])
        values = dict(raw)
        status = values.get("appointmentStatus")
        if status is not None and status not in contacts_data.APPOINTMENT_STATUSES:
            allowed_statuses = ", ".join(contacts_data.APPOINTMENT_STATUSES)
            raise unprocessable(
                [f"appointmentStatus must be one of the following values: {allowed_statuses}"]
            )
        for name in ("startTime", "endTime"):
            if name in values:
                ms = parse_iso_ms(values[name])
                if ms is None:
                    raise unprocessable([f"{name} must be a date"])
                # "YYYY-MM-DD HH:MM:SS" on the per-contact route; the zone is UNCONFIRMED (UTC here)
                values[name] = contacts_data.wall_time(ms)
        for name in ("dateAdded", "dateUpdated"):
            if name in values:
                ms = parse_iso_ms(values[name])
                if ms is None:
                    raise unprocessable([f"{name} must be a date"])
                values[name] = iso(ms)
        return {k: clone(v) for k, v in values.items()}

    def _new_appointment(self, raw: dict[str, Any], contact: dict[str, Any]) -> dict[str, Any]:
        """A seeded or sandbox-written appointment of ``contact``, complete (not stored yet)."""
        values = self._appointment_values(raw, partial_update=False)
        now = iso(self.store.now_ms())
        event: dict[str, Any] = {
            "id": values.pop("id", None) or self.store.new_id(self.store.appointments),
            "locationId": contact["locationId"],
            "users": [],
            "assignedResources": [],
            "dateAdded": now,
        }
        event |= values
        event.setdefault("dateUpdated", event["dateAdded"])  # GetEventSchema has both
        return {name: event[name] for name in APPOINTMENT_FIELDS if name in event}

    def _sandbox_create_appointment(self, request: Request) -> Response:
        """``POST /_sandbox/appointments``: 201 ``{appointment}`` (body: an event + contactId)."""
        raw = request.json()
        if not isinstance(raw, dict):
            raise unprocessable(["an appointment must be an object"])
        with self.lock:
            contact = self.store.contacts.get(raw.get("contactId") or "")
            if contact is None:
                raise unprocessable([f"contactId {raw.get('contactId')!r} is not a contact"])
            event = self._new_appointment(raw, contact)
            before = self.store.appointments.get(event["id"])
            if before is not None:  # an id written again: an update
                self.store.drop_child("appointments", event["id"])
            self.store.add_child("appointments", event)
            self._item_written("appointments", before, event)
            return Response(201, {"appointment": clone(event)})

    def _sandbox_appointment(self, request: Request) -> dict[str, Any]:
        event = self.store.appointments.get(request.path_params["id"])
        if event is None:
            raise HTTPError(404, error(404, f"Appointment {request.path_params['id']} not found"))
        return event

    def _sandbox_update_appointment(self, request: Request) -> Response:
        """``PUT /_sandbox/appointments/{id}``: reschedule, cancel, ...; ``dateUpdated`` is now."""
        with self.lock:
            event = self._sandbox_appointment(request)
            changes = self._appointment_values(request.json() or {}, partial_update=True)
            changes.setdefault("dateUpdated", iso(self.store.now_ms()))
            updated = {**event, **changes}
            self.store.replace_child("appointments", updated)
            self._item_written("appointments", event, updated)
            return Response(200, {"appointment": clone(updated)})

    def _sandbox_delete_appointment(self, request: Request) -> Response:
        """``DELETE /_sandbox/appointments/{id}``: ``{succeded}``."""
        with self.lock:
            event = self._sandbox_appointment(request)
            self.store.drop_child("appointments", event["id"])
            self._item_deleted("appointments", event)
            return Response(200, {"succeded": True})

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
        from now on), ``allow_duplicates``, ``duplicate_match`` (e.g. ``["phone", "email"]``),
        ``search_lag`` (seconds until a write shows in the searches, for writes from now on),
        ``child_writes_bump_contact`` (bool), ``token_scopes`` (the private integration tokens'
        scopes: a list or a space/comma-separated string), ``search_page_limit_max`` (the largest
        ``pageLimit`` the contact search takes, default 500), and the webhook settings
        ``webhook_url`` (a URL, a list of URLs, or null: off), ``webhook_events``,
        ``webhook_signatures``, ``webhook_retry_interval``, ``webhook_retry_jitter``,
        ``webhook_max_retries``, ``webhook_timeout``, ``webhook_jitter``, ``webhook_workers``
        (:mod:`sandbox.contacts_webhooks`).
        """
        known = {
            "rate_limit",
            "rate_window",
            "daily_limit",
            "daily_used",
            "access_token_ttl",
            "allow_duplicates",
            "duplicate_match",
            "search_lag",
            "child_writes_bump_contact",
            "token_scopes",
            "search_page_limit_max",
            *contacts_webhooks.CONFIG_KEYS,
        }
        unknown = set(settings) - known
        if unknown:
            raise HTTPError(422, error(422, [f"unknown settings: {sorted(unknown)}"]))
        apply_search_settings = self._search_settings(settings)
        apply_webhook_settings = self.webhooks.prepare(settings)
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
        apply_search_settings()
        apply_webhook_settings()

    def _search_settings(self, settings: dict[str, Any]) -> Callable[[], None]:
        """Check the search and scope keys of ``settings``; returns what applies them."""
        scopes = _scopes(settings["token_scopes"]) if "token_scopes" in settings else None
        lag = _number_setting(settings, "search_lag", low=0)
        page_max = _number_setting(settings, "search_page_limit_max", low=1)

        def apply() -> None:
            if "child_writes_bump_contact" in settings:
                self.store.child_writes_bump_contact = bool(settings["child_writes_bump_contact"])
            if lag is not None:
                self.store.search_index.lag = self.store.task_index.lag = lag
            if page_max is not None:
                self.contact_search.page_limit_max = int(page_max)
            for info in self.registry.static.values():
                if scopes is not None and info.kind == "pit":
                    info.scopes = scopes

        return apply

    @override
    def reset(self) -> None:
        """Forget records, rate counters, queued webhooks and their log; keep OAuth grants.

        The webhook URLs and settings stay: they are the app's settings, like the others.
        """
        with self.lock:
            self.store.clear()
            self.contact_search.clear()
        with self._rate_lock:
            self._window.reset()
            self._daily_used = {}
        self.webhooks.reset()

    @override
    def close(self) -> None:
        """Stop the webhook workers; deliveries still queued are dropped."""
        self.webhooks.close()

    @override
    def seed(self, data: dict[str, Any]) -> dict[str, Any]:
        """Load ``{"contacts", "tasks", "notes", "appointments", "generate"}``; visible at once.

        Contacts: the Contact shape (``id``, ``locationId`` default the main location,
        ``dateAdded``/``dateUpdated`` ISO or epoch ms, ``tags``, ``customFields`` as ``{id,
        value}`` or the input form, any other field as given); a seeded id that exists replaces
        that contact and keeps its tasks, notes and appointments. Tasks (the per-contact shape plus
        ``dateAdded``/``dateUpdated``), notes and appointments (their API fields only) link by
        ``contactId``. ``generate`` takes ``{"contacts": N, "seed": S}`` and optionally
        ``"tasks"``, ``"notes"``, ``"appointments"`` (counts) and ``"locationId"``
        (:func:`sandbox.contacts_data.generate`). No duplicate rules apply, and the search sees
        seeded records without the indexing lag. Everything is checked before anything is stored
        (a 422 leaves the data as it was). Answers the ids stored per kind, in input order, plus
        ``generated``: the counts generated.
        """
        _check_seed_document(data)
        # generating is slow for big N: outside the lock
        generated = self._generate(data["generate"]) if "generate" in data else None
        with self.lock:
            contacts = [self._seed_contact(c) for c in data.get("contacts", [])]
            pending = {c["id"]: c for c in contacts}
            children = {
                kind: [self._seed_child(kind, item, pending) for item in data.get(kind, [])]
                for kind in self.store.stores
            }
            out: dict[str, Any] = {}
            if generated is not None:
                out["generated"] = self.store.load_generated(generated)
                if self.freeze_heap_after_generate:
                    # the generated records live as long as the process: keeping the cyclic
                    # collector off them spares every later request its pauses (up to ~1 s at
                    # 100,000 contacts)
                    gc.freeze()
            for contact in contacts:
                self.store.put_seeded_contact(contact)
            out["contacts"] = [c["id"] for c in contacts]
            for kind, items in children.items():
                for item in items:
                    if item["id"] in self.store.stores[kind]:
                        self.store.drop_child(kind, item["id"], immediate=True)
                    self.store.add_child(kind, item, immediate=True)
                out[kind] = [item["id"] for item in items]
        return out

    def _generate(self, options: object) -> dict[str, list[dict[str, Any]]]:
        sizes = ("contacts", "seed", "tasks", "notes", "appointments")
        usage = (
            'generate takes {"contacts": N, "seed": S} and optionally "tasks", "notes", '
            '"appointments" (counts) and "locationId"'
        )
        if (
            not isinstance(options, dict)
            or "contacts" not in options
            or set(options) - {*sizes, "locationId"}
            or not all(
                isinstance(options[k], int) and not isinstance(options[k], bool)
                for k in sizes
                if k in options
            )
            or options.get("locationId", self.location_id) not in self.locations
        ):
            raise HTTPError(422, error(422, [usage]))
        try:
            return contacts_data.generate(
                options["contacts"],
                options.get("seed", 1),
                location_id=options.get("locationId", self.location_id),
                tasks=options.get("tasks"),
                notes=options.get("notes"),
                appointments=options.get("appointments"),
            )
        except ValueError as exc:
            raise HTTPError(422, error(422, [f"{usage}: {exc}"])) from exc

    def _seed_contact(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A seeded contact, complete as the store keeps one (not stored yet)."""
        location = raw.get("locationId", self.location_id)
        if location not in self.locations:
            raise HTTPError(422, error(422, [f"unknown locationId {location!r}"]))
        added = parse_iso_ms(raw.get("dateAdded"))
        added = self.store.now_ms() if added is None else added
        updated = parse_iso_ms(raw.get("dateUpdated"))
        # an ISO dateOfBirth (the API's output form) is kept as it is by _apply
        return self.store.build_contact(
            location,
            raw,
            cid=raw.get("id") or self.store.new_id(self.store.contacts),
            times=(added, added if updated is None else updated),
        )

    def _seed_child(
        self, kind: str, raw: dict[str, Any], pending: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """A seeded task, note or appointment, checked and completed (not stored yet)."""
        contact = pending.get(raw.get("contactId", "")) or self.store.contacts.get(
            raw.get("contactId", "")
        )
        if contact is None:
            raise HTTPError(
                422,
                error(422, [f"{kind}: contactId {raw.get('contactId')!r} is not a seeded contact"]),
            )
        if kind == "appointments":
            return self._new_appointment(raw, contact)
        allowed = TASK_FIELDS if kind == "tasks" else NOTE_FIELDS
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise unprocessable([f"{kind}: property {k} should not exist" for k in unknown])
        item: dict[str, Any] = clone(raw)
        item["id"] = raw.get("id") or self.store.new_id(self.store.stores[kind])
        for name in ("dueDate", "dateAdded", "dateUpdated"):
            if item.get(name) is not None:
                ms = parse_iso_ms(item[name])
                if ms is None:
                    raise unprocessable([f"{kind}: {name} must be a valid ISO 8601 date string"])
                item[name] = iso(ms)
        item.setdefault("dateAdded", iso(self.store.now_ms()))
        if kind == "tasks":
            item.setdefault("completed", False)
            item.setdefault("dateUpdated", item["dateAdded"])
        return item

    @override
    def state(self) -> dict[str, list[dict[str, Any]]]:
        """Everything stored, in the API's shapes.

        Children carry ``contactId``; tasks also their ``dateAdded``/``dateUpdated``, as the
        location task search shows them.
        """
        with self.lock:
            return {
                "contacts": [clone(c) for c in self.store.contacts.values()],
                "tasks": [clone(t) for t in self.store.tasks.values()],
                "notes": [clone(n) for n in self.store.notes.values()],
                "appointments": [clone(a) for a in self.store.appointments.values()],
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


def _check_seed_document(data: object) -> None:
    """422 unless ``data`` is an object of known keys with lists of objects."""
    if not isinstance(data, dict):
        raise HTTPError(422, error(422, ["seed data must be an object"]))
    unknown = set(data) - {"contacts", "tasks", "notes", "appointments", "generate"}
    if unknown:
        raise HTTPError(422, error(422, [f"unknown seed keys: {sorted(unknown)}"]))
    for kind in ("contacts", "tasks", "notes", "appointments"):
        items = data.get(kind, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise HTTPError(422, error(422, [f"{kind} must be a list of objects"]))


def _scopes(value: object) -> frozenset[str]:
    """Scopes from a list or a space/comma-separated string; 422 for anything else."""
    if isinstance(value, str):
        return frozenset(value.replace(",", " ").split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise HTTPError(422, error(422, ["token_scopes must be a list or a string of scopes"]))


def _number_setting(settings: dict[str, Any], name: str, *, low: float) -> float | None:
    """``settings[name]`` as a number of at least ``low``; ``None`` when absent, else 422."""
    if name not in settings:
        return None
    value = settings[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise HTTPError(422, error(422, [f"{name} must be a number >= {low}"]))
    return float(value)


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
    parser.add_argument(
        "--search-lag",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds until a write shows in the contact and task searches (default 0)",
    )
    parser.add_argument(
        "--token-scopes",
        default=" ".join(sorted(PIT_SCOPES)),
        help="scopes of the private integration tokens, space- or comma-separated "
        "(leave out locations/tasks.readonly to refuse the location task search)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any key of POST /_sandbox/config, e.g. child_writes_bump_contact=true "
        "(VALUE is read as JSON when it parses, else as a string; repeatable)",
    )
    parser.add_argument(
        "--generate",
        type=int,
        default=0,
        metavar="N",
        help="start with N generated contacts (plus tasks, notes, appointments)",
    )
    parser.add_argument("--generate-seed", type=int, default=1, help="seed for --generate")
    contacts_webhooks.add_arguments(parser)


def create_app(args: argparse.Namespace) -> ContactsSandbox:
    """A :class:`ContactsSandbox` from the parsed flags of :func:`add_arguments`."""
    app = ContactsSandbox(
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
        search_lag=args.search_lag,
        token_scopes=_scopes(args.token_scopes),
        webhooks=contacts_webhooks.options_from_args(args),
    )
    app.webhooks.keys.pairs()  # the signing keys are made at start, not at the first event
    app.freeze_heap_after_generate = True
    options = {}
    for item in args.option:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--option takes KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = json.loads(raw)
        except ValueError:
            options[key.strip()] = raw
    try:
        app.configure(options)
    except HTTPError as exc:
        raise SystemExit(f"--option: {exc.response.body['message']}") from exc
    if args.generate:
        app.seed({"generate": {"contacts": args.generate, "seed": args.generate_seed}})
    return app
