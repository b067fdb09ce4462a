"""The Contacts API client (HighLevel / LeadConnector API v2, ``Version: 2021-07-28``).

Every contacts, tasks, notes, tags and appointments endpoint the target uses, with one retry
policy, client-side rate limiting and typed errors (:mod:`contacts_api.errors`).

What a caller may rely on:

- Methods return the unwrapped objects (``get_contact`` returns the contact, not
  ``{"contact": ...}``). Paths ids are URL-quoted; an empty id raises ``ValueError`` before sending.
- Thread-safe: one :class:`~sync_ledger.http.HostSession` with a pool of 32 connections; every
  request first takes a slot from the :class:`~contacts_api.ratelimit.ContactsRateLimiter`
  shared by all clients of the same (base URL, location) in the process.
- Retries (the ``backoff`` package, ``max_tries`` attempts, exponential with jitter, honouring
  ``Retry-After``): safe calls (GET, PUT, DELETE, ``POST .../tags``, search, and upserts matched by
  email or phone) on 429, 5xx, timeouts and connection errors. Creates (``POST /contacts/``, tasks,
  notes) only on 429 and on connection errors that happened before the request was sent; any other
  failure after sending raises :class:`TransientError` with ``ambiguous=True`` at once, so the
  caller looks for the object before creating it again.
- A 401 makes the auth provider refresh once, and the request is repeated once.
- ``calls`` counts the requests sent (every attempt) per ``"METHOD route-template"``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import backoff
import requests

from contacts_api.auth import API_VERSION, AuthProvider, StaticTokenAuth
from contacts_api.errors import (
    LOGIN_HINT,
    AuthError,
    ContactsAPIError,
    DailyQuotaExhausted,
    DuplicateContactError,
    NotFoundError,
    RateLimitError,
    TransientError,
    UnexpectedAnswerError,
    ValidationError,
    is_record_fault,
    response_messages,
)
from contacts_api.ratelimit import ContactsRateLimiter
from sync_ledger.http import HostSession, pooled_session, sent_nothing

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator, Mapping

    from typing_extensions import Self

    from contacts_api.errors import ErrorDetails

logger = logging.getLogger(__name__)

POOL_SIZE = 32
MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After (a daily limit) is not waited out in-run
MAX_BACKOFF = 30.0
MAX_PAGE_SIZE = 100  # contacts per page of GET /contacts/
# The advice for an answer that says the object is gone.
_GONE = "the object does not exist (deleted in the CRM?)"


def _version() -> str:
    try:
        return importlib_metadata.version("moco-contacts-sync")
    except importlib_metadata.PackageNotFoundError:
        return "0"


DEFAULT_USER_AGENT = f"target-contacts/{_version()} (moco-contacts-sync)"


@dataclass(frozen=True)
class Route:
    """One endpoint: its method, path template and whether repeating it is harmless.

    ``refresh_on_401`` is False for a route whose 401 may mean only a missing optional scope
    (refreshing would spend a rotating refresh token for nothing).
    """

    method: str
    template: str
    safe: bool = field(kw_only=True)
    refresh_on_401: bool = field(default=True, kw_only=True)

    @property
    def key(self) -> str:
        """The name ``calls`` counts it under, e.g. ``"POST /contacts/{id}/notes"``."""
        return f"{self.method} {self.template}"

    def path(self, **ids: str) -> str:
        """The template with ``ids`` URL-quoted in; ValueError unless each id is a non-empty str."""
        for name, value in ids.items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"{self.key}: {name} must be a non-empty string, got {value!r}")
        return self.template.format(**{k: quote(v, safe="") for k, v in ids.items()})


GET_CONTACT = Route("GET", "/contacts/{id}", safe=True)
LIST_CONTACTS = Route("GET", "/contacts/", safe=True)
CONTACTS_BY_BUSINESS = Route("GET", "/contacts/business/{businessId}", safe=True)
SEARCH_CONTACTS = Route("POST", "/contacts/search", safe=True)
SEARCH_DUPLICATE = Route("GET", "/contacts/search/duplicate", safe=True)
CREATE_CONTACT = Route("POST", "/contacts/", safe=False)
UPDATE_CONTACT = Route("PUT", "/contacts/{id}", safe=True)
DELETE_CONTACT = Route("DELETE", "/contacts/{id}", safe=True)
UPSERT_CONTACT = Route("POST", "/contacts/upsert", safe=True)
LIST_TASKS = Route("GET", "/contacts/{id}/tasks", safe=True)
GET_TASK = Route("GET", "/contacts/{id}/tasks/{taskId}", safe=True)
CREATE_TASK = Route("POST", "/contacts/{id}/tasks", safe=False)
UPDATE_TASK = Route("PUT", "/contacts/{id}/tasks/{taskId}", safe=True)
COMPLETE_TASK = Route("PUT", "/contacts/{id}/tasks/{taskId}/completed", safe=True)
DELETE_TASK = Route("DELETE", "/contacts/{id}/tasks/{taskId}", safe=True)
LIST_NOTES = Route("GET", "/contacts/{id}/notes", safe=True)
GET_NOTE = Route("GET", "/contacts/{id}/notes/{noteId}", safe=True)
CREATE_NOTE = Route("POST", "/contacts/{id}/notes", safe=False)
UPDATE_NOTE = Route("PUT", "/contacts/{id}/notes/{noteId}", safe=True)
DELETE_NOTE = Route("DELETE", "/contacts/{id}/notes/{noteId}", safe=True)
ADD_TAGS = Route("POST", "/contacts/{id}/tags", safe=True)  # adding a tag twice changes nothing
REMOVE_TAGS = Route("DELETE", "/contacts/{id}/tags", safe=True)
LIST_APPOINTMENTS = Route("GET", "/contacts/{id}/appointments", safe=True)
# Location-wide task search (scope locations/tasks.readonly, answers 201): reference
# reverse-and-realtime.md §3.1. Without that scope it answers 401, which a refresh cannot mend.
SEARCH_LOCATION_TASKS = Route(
    "POST", "/locations/{locationId}/tasks/search", safe=True, refresh_on_401=False
)
#: The scope the location-wide task search needs.
TASKS_SCOPE = "locations/tasks.readonly"


class _RetriableError(Exception):
    """Internal: this attempt failed in a way worth retrying; ``error`` is raised on giving up."""

    def __init__(self, error: ContactsAPIError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (delta or HTTP date), None when absent or unreadable."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


#: Error answers that need nothing but their error type and a word of advice.
_PLAIN_FAILURES: dict[int, tuple[type[ContactsAPIError], str]] = {
    HTTPStatus.NOT_FOUND: (NotFoundError, f"; {_GONE}"),
    HTTPStatus.UNPROCESSABLE_ENTITY: (ValidationError, "; fix the named fields"),
}


def _bad_request(
    where: str, text: str, body: Mapping[str, Any], common: ErrorDetails
) -> ContactsAPIError:
    """A 400: a refused duplicate (naming the existing contact), a "not found", or bad data."""
    meta = body.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    if meta.get("contactId"):
        return DuplicateContactError(
            f"{where} (existing contact {meta['contactId']}, matched on "
            f"{meta.get('matchingField') or 'an identifier'}); update that contact "
            "instead.",
            contact_id=str(meta["contactId"]),
            matching_field=meta.get("matchingField"),
            **common,
        )
    if "not found" in (text + " " + str(body.get("error") or "")).lower():
        return NotFoundError(f"{where}; {_GONE}.", **common)
    return ContactsAPIError(f"{where}; fix the request data.", **common)


def _server_failure(
    where: str, response: requests.Response, common: ErrorDetails, *, safe: bool
) -> Exception:
    """A 5xx: retried when repeating the request is harmless, else an ambiguous failure."""
    if not safe:
        return TransientError(
            f"{where}; the create may have been committed: look for the object before "
            "creating it again.",
            ambiguous=True,
            pending=response.status_code == HTTPStatus.GATEWAY_TIMEOUT,
            **common,
        )
    retry_after = _retry_after(response.headers)
    if retry_after is not None and retry_after > MAX_RETRY_AFTER:
        retry_after = None
    return _RetriableError(
        TransientError(f"{where}; the API is failing: run again later.", **common),
        retry_after,
    )


class ContactsClient:
    """A Contacts API client for one location; see the module docstring for its guarantees.

    ``limiter`` defaults to :meth:`ContactsRateLimiter.shared` for (``base_url``, ``location_id``).
    ``session``, when given, is used as it is (its pool is not resized). ``retry_base_seconds`` is
    the first backoff step (doubling up to 30 s); tests lower it.
    """

    def __init__(  # noqa: PLR0913  keyword options; tests/ pass them by name
        self,
        base_url: str,
        location_id: str,
        auth: AuthProvider,
        *,
        limiter: ContactsRateLimiter | None = None,
        timeout: float = 30,
        max_tries: int = 5,
        user_agent: str = DEFAULT_USER_AGENT,
        session: HostSession | None = None,
        retry_base_seconds: float = 1.0,
    ) -> None:
        if not location_id:
            raise ValueError("location_id must be set")
        if max_tries < 1:
            raise ValueError("max_tries must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.location_id = location_id
        self.auth = auth
        self.limiter = limiter or ContactsRateLimiter.shared(self.base_url, location_id)
        self.timeout = timeout
        self.max_tries = max_tries
        self.retry_base_seconds = retry_base_seconds
        self._headers = {
            "Version": API_VERSION,
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        if session is None:
            session = pooled_session(self.base_url, pool_connections=4, pool_maxsize=POOL_SIZE)
        self.session = session
        self._calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self._cancelled = threading.Event()
        self._send = backoff.on_exception(
            self._waits,  # type: ignore[arg-type]  # backoff sends the exception into it
            _RetriableError,
            max_tries=lambda: self.max_tries,
            jitter=None,
            on_backoff=self._log_retry,
            logger=None,
        )(self._attempt)

    # --- bookkeeping ---------------------------------------------------------------------------
    @property
    def calls(self) -> Counter[str]:
        """A snapshot of the requests sent so far (every attempt) per "METHOD route-template"."""
        with self._calls_lock:
            return Counter(self._calls)

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    def cancel(self) -> None:
        """Send nothing more: every request not yet sent (retries too) fails at once.

        For a reader that stops early (its run failed or ended) while reads are in flight.
        """
        self._cancelled.set()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ContactsClient({self.base_url!r}, location_id={self.location_id!r})"

    # --- contacts ------------------------------------------------------------------------------
    def get_contact(self, contact_id: str) -> dict[str, Any]:
        """The contact; :class:`NotFoundError` when it does not exist."""
        data = self._call(GET_CONTACT, ids={"id": contact_id})
        return self._unwrap(data, "contact", GET_CONTACT)

    def list_contacts(
        self, *, limit: int = 100, query: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every contact of the location (``GET /contacts/``), page by page, lazily.

        Follows ``meta.startAfter``/``startAfterId``; stops on an empty or short page or when no
        cursor is given. ``limit`` is the page size (1 to 100).
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        base: dict[str, Any] = {"locationId": self.location_id, "limit": limit}
        if query:
            base["query"] = query
        params = dict(base)
        seen: set[tuple[Any, Any]] = set()
        while True:
            data = self._call(LIST_CONTACTS, params=params)
            contacts = data.get("contacts") or []
            yield from contacts
            meta = data.get("meta") or {}
            after_id, after = meta.get("startAfterId"), meta.get("startAfter")
            if not contacts or len(contacts) < limit or not after_id:
                return
            if (after, after_id) in seen:
                raise ContactsAPIError(
                    f"GET /contacts/ repeated the paging cursor {after_id!r}; stopping instead of "
                    "looping. Report this to the API provider.",
                    method="GET",
                    path="/contacts/",
                )
            seen.add((after, after_id))
            params = {**base, "startAfterId": after_id}
            if after is not None:
                params["startAfter"] = after

    def contacts_by_business(
        self, business_id: str, *, limit: int = 25, skip: int = 0
    ) -> list[dict[str, Any]]:
        """One page of the contacts of a business."""
        params = {"locationId": self.location_id, "limit": str(limit), "skip": str(skip)}
        data = self._call(CONTACTS_BY_BUSINESS, ids={"businessId": business_id}, params=params)
        return list(data.get("contacts") or [])

    def search_contacts(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The whole ``POST /contacts/search`` answer (``contacts``, ``total``).

        ``locationId`` is added to ``body`` when missing. The search index may lag writes by
        seconds.
        """
        payload = {"locationId": self.location_id, **body}
        return self._call(SEARCH_CONTACTS, body=payload)

    def search_contacts_page(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One page of ``POST /contacts/search``: its ``contacts``, each an object with an id.

        Raises :class:`UnexpectedAnswerError` when the answer has no ``contacts`` list of such
        objects (a reader must not take a wrong answer for an empty page).
        """
        payload = {"locationId": self.location_id, **body}
        data = self._call(SEARCH_CONTACTS, body=payload)
        return self._items(data, "contacts", SEARCH_CONTACTS)

    def search_location_tasks(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One page of ``POST /locations/{locationId}/tasks/search``: its ``tasks`` rows.

        Rows carry ``_id`` (not ``id``), ``contactId``, ``dateUpdated`` and ``searchAfter``.
        Needs the scope ``locations/tasks.readonly``; without it the API answers 401 (raised as
        :class:`AuthError`, no token refresh is attempted). :class:`UnexpectedAnswerError` when
        the answer has no ``tasks`` list of objects.
        """
        data = self._call(SEARCH_LOCATION_TASKS, ids={"locationId": self.location_id}, body=body)
        return self._items(data, "tasks", SEARCH_LOCATION_TASKS, id_key="_id")

    def search_duplicate(
        self, *, email: str | None = None, phone: str | None = None
    ) -> dict[str, Any] | None:
        """The contact the location's duplicate rules match for ``email``/``phone``, or None."""
        if not email and not phone:
            raise ValueError("search_duplicate needs an email or a phone")
        params = {"locationId": self.location_id}
        if email:
            params["email"] = email
        if phone:
            params["number"] = phone
        data = self._call(SEARCH_DUPLICATE, params=params)
        contact = data.get("contact")
        return contact if isinstance(contact, dict) and contact else None

    def create_contact(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a contact (``locationId`` added when missing) and return it.

        :class:`DuplicateContactError` (with the existing ``contact_id``) when the location does
        not allow duplicates; :class:`TransientError` with ``ambiguous=True`` when it may have
        been created without an answer.
        """
        body = {"locationId": self.location_id, **payload}
        return self._unwrap(self._call(CREATE_CONTACT, body=body), "contact", CREATE_CONTACT)

    def update_contact(self, contact_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Update a contact and return it.

        ``locationId`` is left out (the API refuses it here); note that ``tags`` in the payload
        replaces all of the contact's tags.
        """
        body = {k: v for k, v in payload.items() if k != "locationId"}
        data = self._call(UPDATE_CONTACT, ids={"id": contact_id}, body=body)
        return self._unwrap(data, "contact", UPDATE_CONTACT)

    def delete_contact(self, contact_id: str) -> None:
        """Delete a contact.

        :class:`NotFoundError` when it does not exist, except when a retry finds it gone after an
        earlier try lost its answer (then it returns normally).
        """
        self._call(DELETE_CONTACT, ids={"id": contact_id})

    def upsert_contact(self, payload: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Create or update by the location's duplicate rules; returns (created, contact).

        Retried like a safe call only when it carries an email or a phone to match on and does
        not ask for ``createNewIfDuplicateAllowed``; otherwise it is treated as a create. After a
        retry whose first try was committed unseen, ``created`` is False for a contact that try
        created.
        """
        body = {"locationId": self.location_id, **payload}
        matchable = bool(body.get("email") or body.get("phone"))
        safe = matchable and not body.get("createNewIfDuplicateAllowed")
        data = self._call(UPSERT_CONTACT, body=body, safe=safe)
        return bool(data.get("new")), self._unwrap(data, "contact", UPSERT_CONTACT)

    # --- tasks ---------------------------------------------------------------------------------
    def list_tasks(self, contact_id: str) -> list[dict[str, Any]]:
        """The contact's tasks (:class:`UnexpectedAnswerError` without a ``tasks`` list)."""
        return self._items(self._call(LIST_TASKS, ids={"id": contact_id}), "tasks", LIST_TASKS)

    def get_task(self, contact_id: str, task_id: str) -> dict[str, Any]:
        """One task; :class:`NotFoundError` when it does not exist."""
        data = self._call(GET_TASK, ids={"id": contact_id, "taskId": task_id})
        return self._unwrap(data, "task", GET_TASK, bare_ok=True)

    def create_task(self, contact_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a task (``title``, ``dueDate``, ``completed`` required); a create, see above."""
        data = self._call(CREATE_TASK, ids={"id": contact_id}, body=dict(payload))
        return self._unwrap(data, "task", CREATE_TASK)

    def update_task(
        self, contact_id: str, task_id: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Update a task and return it."""
        data = self._call(
            UPDATE_TASK, ids={"id": contact_id, "taskId": task_id}, body=dict(payload)
        )
        return self._unwrap(data, "task", UPDATE_TASK)

    def set_task_completed(
        self,
        contact_id: str,
        task_id: str,
        completed: bool = True,  # noqa: FBT001, FBT002  tests/ pass it by position
    ) -> dict[str, Any]:
        """Mark a task completed (or open again) and return it."""
        data = self._call(
            COMPLETE_TASK,
            ids={"id": contact_id, "taskId": task_id},
            body={"completed": bool(completed)},
        )
        return self._unwrap(data, "task", COMPLETE_TASK)

    def delete_task(self, contact_id: str, task_id: str) -> None:
        """Delete a task (a retry that finds it gone counts as done, as for contacts)."""
        self._call(DELETE_TASK, ids={"id": contact_id, "taskId": task_id})

    # --- notes ---------------------------------------------------------------------------------
    def list_notes(self, contact_id: str) -> list[dict[str, Any]]:
        """The contact's notes (:class:`UnexpectedAnswerError` without a ``notes`` list)."""
        return self._items(self._call(LIST_NOTES, ids={"id": contact_id}), "notes", LIST_NOTES)

    def get_note(self, contact_id: str, note_id: str) -> dict[str, Any]:
        """One note; :class:`NotFoundError` when it does not exist."""
        data = self._call(GET_NOTE, ids={"id": contact_id, "noteId": note_id})
        return self._unwrap(data, "note", GET_NOTE, bare_ok=True)

    def create_note(self, contact_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a note (``body`` required); a create (see the module docstring)."""
        data = self._call(CREATE_NOTE, ids={"id": contact_id}, body=dict(payload))
        return self._unwrap(data, "note", CREATE_NOTE)

    def update_note(
        self, contact_id: str, note_id: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Update a note and return it."""
        data = self._call(
            UPDATE_NOTE, ids={"id": contact_id, "noteId": note_id}, body=dict(payload)
        )
        return self._unwrap(data, "note", UPDATE_NOTE)

    def delete_note(self, contact_id: str, note_id: str) -> None:
        """Delete a note (a retry that finds it gone counts as done, as for contacts)."""
        self._call(DELETE_NOTE, ids={"id": contact_id, "noteId": note_id})

    # --- tags and appointments -------------------------------------------------------------------
    def add_tags(self, contact_id: str, tags: list[str]) -> list[str]:
        """Add tags (the others stay); returns the ``tags`` the API answers."""
        data = self._call(ADD_TAGS, ids={"id": contact_id}, body={"tags": list(tags)})
        return list(data.get("tags") or [])

    def remove_tags(self, contact_id: str, tags: list[str]) -> list[str]:
        """Remove tags; returns the ``tags`` the API answers."""
        data = self._call(REMOVE_TAGS, ids={"id": contact_id}, body={"tags": list(tags)})
        return list(data.get("tags") or [])

    def list_appointments(self, contact_id: str) -> list[dict[str, Any]]:
        """The contact's appointments: the answer's ``events`` list (else UnexpectedAnswerError)."""
        data = self._call(LIST_APPOINTMENTS, ids={"id": contact_id})
        return self._items(data, "events", LIST_APPOINTMENTS)

    # --- the request machinery -----------------------------------------------------------------
    def _call(
        self,
        route: Route,
        *,
        ids: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        safe: bool | None = None,
    ) -> dict[str, Any]:
        path = route.path(**(ids or {}))
        tries = [0]  # counted by _attempt: a repeated DELETE may find its own earlier success
        try:
            return self._send(
                route, path, params, body, safe=route.safe if safe is None else safe, tries=tries
            )
        except NotFoundError:
            if route.method == "DELETE" and route is not REMOVE_TAGS and tries[0] > 1:
                return {}  # an earlier try deleted it and its answer was lost
            raise
        except _RetriableError as exc:
            error = exc.error
            if self.max_tries > 1:
                error.args = (f"{error} (gave up after {self.max_tries} tries)",)
            raise error from None

    def _attempt(
        self,
        route: Route,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        *,
        safe: bool,
        tries: list[int],
    ) -> dict[str, Any]:
        """One try, plus one repeat after a 401 that the auth provider could refresh."""
        url = self.base_url + path
        refreshed = False
        tries[0] += 1
        while True:
            self._refuse_if_cancelled(route, path)
            slot = self.limiter.acquire()
            try:
                self._refuse_if_cancelled(route, path)
                token = self.auth.token()
            except BaseException:
                self.limiter.answered(slot)  # not sent: the slot is handed back all the same
                raise
            with self._calls_lock:
                self._calls[route.key] += 1
            started = time.monotonic()
            try:
                response = self.session.request(
                    route.method,
                    url,
                    params=params,
                    json=body,
                    timeout=self.timeout,
                    headers={**self._headers, "Authorization": f"Bearer {token}"},
                )
            except requests.RequestException as exc:
                raise self._network_failure(route, path, exc, safe=safe) from None
            finally:
                self.limiter.answered(slot)  # the API counted it by now at the latest
            self.limiter.observe(response.headers)
            logger.debug(
                "%s %s -> %s in %.0f ms",
                route.method,
                path,
                response.status_code,
                (time.monotonic() - started) * 1000,
            )
            if (
                response.status_code == HTTPStatus.UNAUTHORIZED
                and not refreshed
                and route.refresh_on_401
            ):
                refreshed = True
                if self.auth.refresh_after_401(token) is not None:
                    continue
            if HTTPStatus.OK <= response.status_code < HTTPStatus.MULTIPLE_CHOICES:
                return self._json(route, path, response)
            raise self._failure(route, path, response, safe=safe, token=token)

    def _refuse_if_cancelled(self, route: Route, path: str) -> None:
        if self._cancelled.is_set():
            raise ContactsAPIError(
                f"{route.method} {path}: not sent, the client was cancelled (the run is stopping).",
                method=route.method,
                path=path,
            )

    def _waits(self) -> Generator[float, _RetriableError, None]:
        """Backoff's wait generator: ``Retry-After`` when given, else exponential with jitter."""
        attempt = 0
        retry = yield 0.0
        while True:
            if retry.retry_after is not None:
                delay = retry.retry_after
            else:
                step = min(MAX_BACKOFF, self.retry_base_seconds * 2**attempt)
                delay = step / 2 + random.uniform(0, step / 2)  # noqa: S311  jitter, not a secret
            attempt += 1
            retry = yield delay

    def _log_retry(self, details: Mapping[str, Any]) -> None:
        route, path = details["args"][0], details["args"][1]
        logger.warning(
            "%s %s: %s; retrying in %.1f s (try %d of %d).",
            route.method,
            path,
            details["exception"],
            details["wait"],
            details["tries"] + 1,
            self.max_tries,
        )

    def _network_failure(
        self, route: Route, path: str, exc: requests.RequestException, *, safe: bool
    ) -> Exception:
        kind = type(exc).__name__
        if isinstance(exc, requests.exceptions.SSLError):
            return ContactsAPIError(
                f"{route.method} {path}: TLS verification failed ({kind}); check base_url and the "
                "system's CA certificates (verification stays on).",
                method=route.method,
                path=path,
            )
        if isinstance(
            exc,
            (
                requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema,
            ),
        ):
            return ContactsAPIError(
                f"{route.method} {path}: base_url {self.base_url!r} is not a "
                "valid http(s) URL; fix base_url.",
                method=route.method,
                path=path,
            )
        if sent_nothing(exc):
            return _RetriableError(
                TransientError(
                    f"{route.method} {path}: could not connect to {self.base_url} ({kind}); check "
                    "the network and base_url, then run again.",
                    method=route.method,
                    path=path,
                )
            )
        if safe:
            return _RetriableError(
                TransientError(
                    f"{route.method} {path}: no answer ({kind}); run again later.",
                    method=route.method,
                    path=path,
                )
            )
        return TransientError(
            f"{route.method} {path}: the request was sent but no answer came ({kind}); it may have "
            "been committed: look for the object before creating it again.",
            ambiguous=True,
            method=route.method,
            path=path,
            pending=isinstance(exc, requests.exceptions.ReadTimeout),
        )

    def _failure(
        self, route: Route, path: str, response: requests.Response, *, safe: bool, token: str
    ) -> Exception:
        """The error for an answer outside 2xx: a typed error, or one wrapped to be retried."""
        status = response.status_code
        messages = [m.replace(token, "<redacted>") for m in response_messages(response)]
        text = "; ".join(messages) or response.reason or "no message"
        where = f"{route.method} {path} answered {status}: {text}"
        body, json_body = self._error_body(response)
        common: ErrorDetails = {
            "status": status,
            "method": route.method,
            "path": path,
            "messages": messages,
            "record_fault": is_record_fault(
                status, json_body=json_body, names_object="{" in route.template
            ),
        }
        if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
            return AuthError(f"{where}; {self._auth_hint(status, route)}", **common)
        if status == HTTPStatus.BAD_REQUEST:
            return _bad_request(where, text, body, common)
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            return self._rate_limited(where, response, common)
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            return _server_failure(where, response, common, safe=safe)
        error_type, advice = _PLAIN_FAILURES.get(status, (ContactsAPIError, ""))
        return error_type(f"{where}{advice}.", **common)

    def _rate_limited(
        self, where: str, response: requests.Response, common: ErrorDetails
    ) -> Exception:
        """A 429: final when the daily quota is used up, else retried (within MAX_RETRY_AFTER)."""
        daily = self.limiter.daily_remaining
        if daily is not None and daily <= 0:
            return DailyQuotaExhausted(
                f"{where}; the location's daily quota is used up: run again after it resets.",
                daily_remaining=daily,
                **common,
            )
        retry_after = _retry_after(response.headers)
        error = RateLimitError(
            f"{where}; the location's rate limit is used up (by another client?): run again later.",
            retry_after=retry_after,
            **common,
        )
        if retry_after is not None and retry_after > MAX_RETRY_AFTER:
            return error
        return _RetriableError(error, retry_after)

    def _auth_hint(self, status: int, route: Route) -> str:
        if route is SEARCH_LOCATION_TASKS:
            return (
                f"the token may not search the tasks of location {self.location_id}: grant the "
                f"app or private integration the scope {TASKS_SCOPE}, or read tasks per contact"
            )
        if status == HTTPStatus.FORBIDDEN:
            return (
                f"the token has no access to location {self.location_id}: check location_id, "
                f"or {LOGIN_HINT} and choose that sub-account."
            )
        if isinstance(self.auth, StaticTokenAuth):
            return (
                "the private integration token was refused: check it and its scopes "
                "(contacts.readonly, contacts.write) in the sub-account's Settings > Private "
                "Integrations."
            )
        return (
            f"the access token was refused even after a refresh: check that the app has the "
            f"scopes contacts.readonly and contacts.write and is installed on location "
            f"{self.location_id}, then {LOGIN_HINT}."
        )

    @staticmethod
    def _error_body(response: requests.Response) -> tuple[dict[str, Any], bool]:
        """The error answer's JSON object (``{}`` when there is none) and whether it was one."""
        try:
            body = response.json()
        except ValueError:
            return {}, False
        return (body, True) if isinstance(body, dict) else ({}, False)

    @staticmethod
    def _json(route: Route, path: str, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            kind = response.headers.get("Content-Type") or "no content type"
            raise UnexpectedAnswerError(
                f"{route.method} {path} answered {response.status_code} without a JSON object "
                f"({kind}); check that base_url points at the Contacts API and that no proxy "
                "answers in its place.",
                status=response.status_code,
                method=route.method,
                path=path,
            )
        return body

    @staticmethod
    def _items(
        data: Mapping[str, Any], key: str, route: Route, *, id_key: str = "id"
    ) -> list[dict[str, Any]]:
        """The answer's ``key`` list; every item an object with a non-empty string ``id_key``."""
        items = data.get(key)
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and isinstance(item.get(id_key), str) and item[id_key]
            for item in items
        ):
            raise UnexpectedAnswerError(
                f"{route.key} answered without a {key!r} list of objects with an {id_key!r}; "
                "check that base_url points at the Contacts API and that no proxy answers in its "
                "place, or report the changed answer.",
                method=route.method,
                path=route.template,
            )
        return items

    @staticmethod
    def _unwrap(
        data: Mapping[str, Any], key: str, route: Route, *, bare_ok: bool = False
    ) -> dict[str, Any]:
        value = data.get(key)
        if bare_ok and not isinstance(value, dict) and "id" in data:
            value = dict(data)  # some reports show GET task/note answering the bare object
        if isinstance(value, dict):
            if not isinstance(value.get("id"), str) or not value["id"]:
                raise UnexpectedAnswerError(
                    f"{route.key} answered a {key} without an id; the API's answer changed: "
                    "report this.",
                    method=route.method,
                    path=route.template,
                )
            return value
        raise UnexpectedAnswerError(
            f"{route.key} answered without {key!r}; the API's answer changed: report this.",
            method=route.method,
            path=route.template,
        )
