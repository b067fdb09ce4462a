"""Typed errors of the Contacts API client and its auth.

Every error carries the request that failed (``method``, ``path``), the HTTP ``status`` when there
was an answer, and the API's own ``messages``. No error message, ``repr`` or attribute ever holds a
token, a client secret or an authorization code: callers may log these errors as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from sync_ledger.http import APIError

if TYPE_CHECKING:
    import requests
    from typing_extensions import Unpack

LOGIN_HINT = "run `contacts-admin login` to authorise the app again"

#: Answers that blame the request's data, i.e. one record (with the API's JSON error body).
RECORD_FAULT_STATUSES = frozenset({400, 409, 422})
HTTP_NOT_FOUND = 404


def is_record_fault(status: int, *, json_body: bool, names_object: bool) -> bool:
    """Whether an error answer blames the one record the request was about.

    Only the API's own JSON answers count: 400, 409 or 422, or a 404 for an object the request
    named by id. Anything else (a 2xx of the wrong shape, a proxy's HTML page, 3xx, 401/403, 404 on
    a collection route, 405, 429, 5xx, no answer) says nothing about the record: the run stops.
    """
    if not json_body:
        return False
    return status in RECORD_FAULT_STATUSES or (status == HTTP_NOT_FOUND and names_object)


class ErrorDetails(TypedDict, total=False):
    """The keyword arguments every :class:`ContactsAPIError` takes besides its message."""

    status: int | None
    method: str | None
    path: str | None
    messages: list[str] | None
    record_fault: bool


class ContactsAPIError(APIError):
    """A Contacts API call failed; the base of every error this package raises for the API.

    ``status`` is the HTTP status (None when no answer arrived), ``method`` and ``path`` name the
    request (the concrete path, without query string), ``messages`` the API's messages (a 422
    lists every violated constraint).
    """


class NotFoundError(ContactsAPIError):
    """The contact, task or note does not exist (404, or the API's 400 "... not found")."""


class DuplicateContactError(ContactsAPIError):
    """``POST /contacts/`` refused a duplicate; ``contact_id`` is the existing contact's id.

    ``matching_field`` is ``"email"`` or ``"phone"`` as the API reports it (None if absent).
    The usual recovery is to update ``contact_id`` instead of creating.
    """

    def __init__(
        self,
        message: str,
        *,
        contact_id: str,
        matching_field: str | None = None,
        **kwargs: Unpack[ErrorDetails],
    ) -> None:
        super().__init__(message, **kwargs)
        self.contact_id = contact_id
        self.matching_field = matching_field


class UnexpectedAnswerError(ContactsAPIError):
    """A 2xx answer that is not the JSON the endpoint documents (a proxy's page, a changed API).

    Never a record's fault: the run stops, and no state is passed on.
    """


class ValidationError(ContactsAPIError):
    """The API refused the body (422); ``messages`` lists every violated constraint."""


class AuthError(ContactsAPIError):
    """The token was refused (401/403) or none is usable; the message says what to do."""


class TokenLostError(AuthError):
    """The stored refresh token is no longer valid (used, expired or revoked); log in again."""


class RateLimitError(ContactsAPIError):
    """Still 429 after the retries; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, **kwargs: Unpack[ErrorDetails]
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class DailyQuotaExhausted(ContactsAPIError):  # noqa: N818  public name, imported by callers
    """Raised BEFORE sending: the location's daily quota is at or below the configured reserve.

    Nothing was sent. Stop the run and resume tomorrow (the quota is 200,000 requests a day per
    app and location); ``daily_remaining`` is the last count the API reported.
    """

    def __init__(
        self, message: str, *, daily_remaining: int | None = None, **kwargs: Unpack[ErrorDetails]
    ) -> None:
        super().__init__(message, **kwargs)
        self.daily_remaining = daily_remaining


class TransientError(ContactsAPIError):
    """5xx, timeout or connection error that outlasted the retries (or was not retried).

    ``ambiguous`` is True when a non-idempotent write (a create) may have been committed although
    no success answer arrived: look for the object before creating it again. ``pending`` is True
    when no answer came at all because the wait ran out (a read timeout, a 504): the API may still
    be working on the request and commit it after a look found nothing.
    """

    def __init__(
        self,
        message: str,
        *,
        ambiguous: bool = False,
        pending: bool = False,
        **kwargs: Unpack[ErrorDetails],
    ) -> None:
        super().__init__(message, **kwargs)
        self.ambiguous = ambiguous
        self.pending = pending


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it and its environment variable."""


def response_messages(response: requests.Response) -> list[str]:
    """The API's messages from an error answer (``message`` as a string or a list; ``error``).

    Falls back to the start of the body text when it is not JSON.
    """
    try:
        body = response.json()
    except ValueError:
        text = (getattr(response, "text", "") or "").strip()
        return [text[:300]] if text else []
    if not isinstance(body, dict):
        return [str(body)[:300]] if body else []
    message = body.get("message")
    if isinstance(message, list):
        messages = [str(m) for m in message]
    elif message:
        messages = [str(message)]
    else:
        messages = []
    if not messages and body.get("error"):
        messages = [str(body["error"])]
    return messages
