"""A MOCO API client for writes: people, taggings, comments and web hooks.

tap-moco reads through singer-sdk's REST stream; target-moco and the operator commands write
through this client. Both take the account's API root and key from :mod:`moco_api.account` and
their request slots from the same kind of limiter (:mod:`moco_api.ratelimit`), shared through
the ledger when a budget is given, so that a tap and a target of one account stay within its
limit together.

What a caller may rely on:

- Methods return MOCO's JSON (a person, a comment, a list of tag names ...). Lists follow the
  ``Link: rel="next"`` header to the end.
- Every attempt first takes a slot from the limiter (and the shared budget, when given).
- Reads, updates and tag changes (repeating them is harmless) are retried on 429, 5xx, timeouts
  and connection errors, after ``Retry-After`` when MOCO sends one, else after an exponential
  wait. Creates (``POST /contacts/people``, ``POST /comments``, ``POST /account/web_hooks``) are
  retried only when the request provably never left; otherwise :class:`TransientError` with
  ``ambiguous=True`` says "look before you create again".
- 401/403 raise :class:`AuthError`, 404 :class:`NotFoundError`, 422 :class:`ValidationError`;
  a 2xx that is not JSON of the expected shape raises :class:`UnexpectedAnswerError`. Only
  MOCO's own JSON answers to the record's data (400, 404 on a named record, 409, 422) set
  ``record_fault``.
- No message, log line or ``repr`` holds the API key.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import parse_qsl, urlsplit

import requests

from moco_api.account import authorization, redact_api_key
from moco_api.errors import (
    AuthError,
    MocoAPIError,
    NotFoundError,
    RateLimitError,
    TransientError,
    UnexpectedAnswerError,
    ValidationError,
)
from sync_ledger.http import pooled_session, sent_nothing

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

logger = logging.getLogger(__name__)

_RECORD_FAULTS = {HTTPStatus.BAD_REQUEST, HTTPStatus.CONFLICT, HTTPStatus.UNPROCESSABLE_ENTITY}
_AUTH_HINT = "check the MOCO api_key and that its user may do this"
_KNOWN_FAILURES: dict[int, tuple[type[MocoAPIError], str]] = {
    HTTPStatus.UNAUTHORIZED: (AuthError, _AUTH_HINT),
    HTTPStatus.FORBIDDEN: (AuthError, _AUTH_HINT),
    HTTPStatus.NOT_FOUND: (NotFoundError, "it does not exist (deleted in MOCO?)"),
    HTTPStatus.UNPROCESSABLE_ENTITY: (ValidationError, "fix the named fields"),
}
_MAX_PAGES = 10_000


class PeopleCount(NamedTuple):
    """The number of people in an account, and MOCO's clock when it answered (None: not said)."""

    total: int
    server_time: datetime | None


def server_time(date_header: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware datetime; None when absent or unreadable."""
    if not date_header:
        return None
    try:
        moment = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


_MESSAGE_LIMIT = 300


class Limiter(Protocol):
    """A request-slot giver: :class:`~moco_api.ratelimit.RequestRateLimiter` or a shared one."""

    def acquire(self) -> None:
        """Block until one request may be sent."""
        ...


class _Unlimited:
    def acquire(self) -> None:
        return None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _messages(response: requests.Response) -> tuple[list[str], bool]:
    """MOCO's error messages and whether the answer was MOCO's JSON at all."""
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip()
        return ([text[:_MESSAGE_LIMIT]] if text else []), False
    if isinstance(body, dict):
        errors = body.get("errors", body.get("message"))
        if isinstance(errors, dict):  # {"errors": {"field": ["..."]}}
            return [f"{k} {m}" for k, v in errors.items() for m in (v or [""])], True
        if isinstance(errors, list):
            return [str(e) for e in errors], True
        return ([str(errors)] if errors else []), True
    return [str(body)[:_MESSAGE_LIMIT]], isinstance(body, list)


class MocoClient:
    """A MOCO API client for one account; see the module docstring for its guarantees.

    ``api_root`` is the account's ``.../api/v1`` (:func:`moco_api.account.api_root`).
    """

    def __init__(
        self,
        api_root: str,
        api_key: str,
        *,
        limiter: Limiter | None = None,
        timeout: float = 60,
        max_tries: int = 6,
        retry_base_seconds: float = 1.0,
        user_agent: str = "moco-contacts-sync",
    ) -> None:
        if not api_key:
            msg = "api_key is empty: set the MOCO API key"
            raise ValueError(msg)
        self.api_root = api_root.rstrip("/")
        self._api_key = api_key
        self.limiter: Limiter = limiter or _Unlimited()
        self.timeout = timeout
        self.max_tries = max(1, max_tries)
        self.retry_base_seconds = retry_base_seconds
        self.session = pooled_session(self.api_root, pool_connections=2, pool_maxsize=16)
        self._headers = {
            "Authorization": authorization(api_key),
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self._calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MocoClient({self.api_root!r})"

    @property
    def calls(self) -> Counter[str]:
        """Requests sent so far (every attempt) per ``"METHOD /path-template"``."""
        with self._calls_lock:
            return Counter(self._calls)

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    # --- people --------------------------------------------------------------------------
    def get_person(self, person_id: str) -> dict[str, Any]:
        """One person; :class:`NotFoundError` when it does not exist."""
        return self._object("GET", f"/contacts/people/{person_id}", "/contacts/people/{id}")

    def find_people(self, **filters: str) -> list[dict[str, Any]]:
        """People matching MOCO's list filters (``term``, ``phone``, ``ids``, ``tags`` ...)."""
        return list(self._pages("/contacts/people", dict(filters)))

    def count_people(self) -> PeopleCount:
        """How many people the account holds, and MOCO's time then (one request)."""
        path = "/contacts/people"
        data, response = self._send(
            "GET", path, path, params={"page": "1", "per_page": "1"}, body=None, creates=False
        )
        total = response.headers.get("X-Total") or ""
        count = int(total) if total.isdigit() else len(data) if isinstance(data, list) else 0
        return PeopleCount(count, server_time(response.headers.get("Date")))

    def create_person(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a person (MOCO needs ``lastname`` and ``gender``) and return it."""
        return self._object("POST", "/contacts/people", "/contacts/people", body=body, creates=True)

    def update_person(self, person_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Change the given fields of a person (a partial body) and return the person."""
        return self._object(
            "PUT", f"/contacts/people/{person_id}", "/contacts/people/{id}", body=body
        )

    def delete_person(self, person_id: str) -> None:
        """Delete a person (hard delete in MOCO); a person gone already counts as done."""
        self._delete(f"/contacts/people/{person_id}", "/contacts/people/{id}")

    # --- taggings ------------------------------------------------------------------------
    def add_tags(self, entity: str, record_id: str, tags: list[str]) -> list[str]:
        """Add ``tags`` (existing ones are kept); returns the record's tags afterwards."""
        data = self._request(
            "PATCH",
            f"/taggings/{entity}/{record_id}",
            "/taggings/{entity}/{id}",
            body={"tags": tags},
        )
        if not isinstance(data, list):
            raise self._unexpected("PATCH", "/taggings/{entity}/{id}", "a list of tag names")
        return [str(t) for t in data]

    # --- comments ------------------------------------------------------------------------
    def get_comment(self, comment_id: str) -> dict[str, Any]:
        """One comment; :class:`NotFoundError` when it does not exist."""
        return self._object("GET", f"/comments/{comment_id}", "/comments/{id}")

    def comments_on(self, commentable_type: str, commentable_id: str) -> list[dict[str, Any]]:
        """Every comment on one record (e.g. ``Contact``, a person's id)."""
        params = {"commentable_type": commentable_type, "commentable_id": commentable_id}
        return list(self._pages("/comments", params))

    def create_comment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a comment (``commentable_type``, ``commentable_id``, ``text``) and return it."""
        return self._object("POST", "/comments", "/comments", body=body, creates=True)

    def update_comment(self, comment_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Change a comment's text and return it."""
        return self._object("PUT", f"/comments/{comment_id}", "/comments/{id}", body=body)

    def delete_comment(self, comment_id: str) -> None:
        """Delete a comment (MOCO deletes only manual ones); gone already counts as done."""
        self._delete(f"/comments/{comment_id}", "/comments/{id}")

    # --- web hooks -----------------------------------------------------------------------
    def web_hooks(self) -> list[dict[str, Any]]:
        """The account's web hook subscriptions."""
        return list(self._pages("/account/web_hooks", {}))

    def create_web_hook(self, target: str, event: str, hook: str) -> dict[str, Any]:
        """Subscribe ``hook`` (a URL) to ``event`` of ``target`` (e.g. Contact, update)."""
        body = {"target": target, "event": event, "hook": hook}
        return self._object(
            "POST", "/account/web_hooks", "/account/web_hooks", body=body, creates=True
        )

    def enable_web_hook(self, hook_id: str) -> dict[str, Any]:
        """Enable a (disabled) web hook."""
        return self._object(
            "PUT", f"/account/web_hooks/{hook_id}/enable", "/account/web_hooks/{id}/enable"
        )

    # --- transport -----------------------------------------------------------------------
    def _delete(self, path: str, template: str) -> None:
        try:
            self._request("DELETE", path, template, body=None)
        except NotFoundError:
            return  # deleted already (by a person, or by a try whose answer was lost)

    def _object(
        self,
        method: str,
        path: str,
        template: str,
        *,
        body: Mapping[str, Any] | None = None,
        creates: bool = False,
    ) -> dict[str, Any]:
        data = self._request(method, path, template, body=body, creates=creates)
        if not isinstance(data, dict) or "id" not in data:
            raise self._unexpected(method, template, "a JSON object with an id")
        return data

    def _pages(self, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        query: dict[str, str] = {**params, "page": "1", "per_page": "100"}
        for _page in range(_MAX_PAGES):
            data, response = self._send("GET", path, path, params=query, body=None, creates=False)
            if not isinstance(data, list):
                raise self._unexpected("GET", path, "a JSON list")
            yield from (item for item in data if isinstance(item, dict))
            following = response.links.get("next", {}).get("url")
            if not following:
                return
            query = {**params, **dict(parse_qsl(urlsplit(following).query))}
        msg = f"GET {path} pages on and on; stopping after {_MAX_PAGES} pages"
        raise UnexpectedAnswerError(msg, method="GET", path=path)

    def _request(
        self,
        method: str,
        path: str,
        template: str,
        *,
        body: Mapping[str, Any] | None,
        creates: bool = False,
    ) -> object:
        data, _response = self._send(
            method, path, template, params=None, body=body, creates=creates
        )
        return data

    def _send(
        self,
        method: str,
        path: str,
        template: str,
        *,
        params: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
        creates: bool,
    ) -> tuple[object, requests.Response]:
        url = self.api_root + path
        for attempt in range(1, self.max_tries + 1):
            self.limiter.acquire()
            with self._calls_lock:
                self._calls[f"{method} {template}"] += 1
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=body,
                    headers=self._headers,
                    timeout=self.timeout,
                )
            except requests.exceptions.SSLError:
                msg = (
                    f"{method} {path}: TLS verification failed; check base_url or subdomain and "
                    "the system's CA certificates (verification stays on)."
                )
                raise MocoAPIError(msg, method=method, path=path) from None
            except requests.RequestException as exc:
                error = self._no_answer(method, path, exc, creates=creates)
                if error.ambiguous or attempt == self.max_tries:
                    raise error from None
                self._wait(attempt, None, error)
                continue
            if HTTPStatus.OK <= response.status_code < HTTPStatus.MULTIPLE_CHOICES:
                return self._json(method, path, response), response
            error_or_wait = self._failure(method, path, template, response, creates=creates)
            if isinstance(error_or_wait, MocoAPIError):
                raise error_or_wait
            if attempt == self.max_tries:
                raise self._gave_up(method, path, response)
            self._wait(attempt, error_or_wait, None)
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _json(self, method: str, path: str, response: requests.Response) -> object:
        if response.status_code == HTTPStatus.NO_CONTENT or not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            ctype = response.headers.get("Content-Type") or "no content type"
            msg = (
                f"{method} {path} answered {response.status_code} with {ctype}, not JSON: check "
                "base_url or subdomain, and that no proxy answers in MOCO's place."
            )
            raise UnexpectedAnswerError(
                msg, status=response.status_code, method=method, path=path
            ) from None

    def _failure(
        self,
        method: str,
        path: str,
        template: str,
        response: requests.Response,
        *,
        creates: bool,
    ) -> MocoAPIError | float:
        """The error to raise, or the seconds to wait before the next try."""
        status = response.status_code
        messages, from_moco = _messages(response)
        messages = [redact_api_key(m, self._api_key) for m in messages]
        text = "; ".join(messages) or response.reason or "no message"
        where = f"MOCO answered {status} to {method} {path}: {text}"
        names_record = "{" in template
        fault = from_moco and (
            status in _RECORD_FAULTS or (status == HTTPStatus.NOT_FOUND and names_record)
        )
        details: dict[str, Any] = {
            "status": status,
            "method": method,
            "path": path,
            "messages": messages,
            "record_fault": fault,
        }
        known = _KNOWN_FAILURES.get(status)
        if known is not None:
            error_class, hint = known
            return error_class(f"{where}; {hint}.", **details)
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            return _retry_after(response) or 0.0
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            if creates:
                return TransientError(
                    f"{where}; the create may have been committed: look before creating again.",
                    status=status,
                    method=method,
                    path=path,
                    ambiguous=True,
                    pending=status == HTTPStatus.GATEWAY_TIMEOUT,
                )
            return _retry_after(response) or 0.0
        return MocoAPIError(f"{where}.", **details)

    def _gave_up(self, method: str, path: str, response: requests.Response) -> MocoAPIError:
        where = f"MOCO answered {response.status_code} to {method} {path}"
        if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
            return RateLimitError(
                f"{where} after {self.max_tries} tries: the account's rate limit is used up "
                "(by another client?); lower rate_limit_requests or run again later.",
                status=response.status_code,
                method=method,
                path=path,
            )
        return TransientError(
            f"{where} after {self.max_tries} tries; MOCO is failing: run again later.",
            status=response.status_code,
            method=method,
            path=path,
        )

    def _no_answer(
        self, method: str, path: str, exc: requests.RequestException, *, creates: bool
    ) -> TransientError:
        kind = type(exc).__name__
        if sent_nothing(exc):
            return TransientError(
                f"{method} {path}: could not connect to MOCO ({kind}); check the network and "
                "base_url or subdomain.",
                method=method,
                path=path,
            )
        if creates:
            return TransientError(
                f"{method} {path}: sent, but no answer came ({kind}); it may have been "
                "committed: look before creating again.",
                method=method,
                path=path,
                ambiguous=True,
                pending=isinstance(exc, requests.exceptions.ReadTimeout),
            )
        return TransientError(f"{method} {path}: no answer ({kind}).", method=method, path=path)

    def _wait(self, attempt: int, retry_after: float | None, error: Exception | None) -> None:
        if retry_after:
            delay = retry_after
        else:
            step = min(60.0, self.retry_base_seconds * 2 ** (attempt - 1))
            delay = step / 2 + random.uniform(0, step / 2)  # noqa: S311  jitter, not a secret
        logger.warning(
            "MOCO request failed (%s); retrying in %.1f s (try %d of %d).",
            error or "429 or 5xx",
            delay,
            attempt + 1,
            self.max_tries,
        )
        time.sleep(delay)

    def _unexpected(self, method: str, template: str, wanted: str) -> UnexpectedAnswerError:
        msg = f"{method} {template} answered without {wanted}; MOCO's answer changed: report this."
        return UnexpectedAnswerError(msg, method=method, path=template)
