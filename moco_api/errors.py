"""Typed errors of the MOCO client (:mod:`moco_api.client`).

Every error carries the request that failed (``method``, ``path``), the HTTP ``status`` when an
answer came, MOCO's own ``messages`` and whether the answer blames the one record the request was
about (``record_fault``: a 4xx with MOCO's JSON error body, never a proxy's page). No message or
attribute ever holds the API key.
"""

from __future__ import annotations

from sync_ledger.http import APIError


class MocoAPIError(APIError):
    """A MOCO API call failed; the base of every error the client raises."""


class AuthError(MocoAPIError):
    """MOCO refused the API key (401) or its user may not do this (403)."""


class NotFoundError(MocoAPIError):
    """The person, comment or web hook does not exist (404)."""


class ValidationError(MocoAPIError):
    """MOCO refused the body (422); ``messages`` lists what it said."""


class RateLimitError(MocoAPIError):
    """Still 429 after the retries."""


class TransientError(MocoAPIError):
    """5xx, timeout or connection error that outlasted the retries (or was not retried).

    ``ambiguous``: a create may have been committed although no success answer came; look for the
    record before creating it again. ``pending``: no answer at all (the wait ran out), so MOCO may
    still commit it after a look found nothing.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        ambiguous: bool = False,
        pending: bool = False,
    ) -> None:
        super().__init__(message, status=status, method=method, path=path)
        self.ambiguous = ambiguous
        self.pending = pending


class UnexpectedAnswerError(MocoAPIError):
    """A 2xx that is not the JSON MOCO documents (a proxy's page, a changed API).

    Never a record's fault: the run stops.
    """


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it and its environment variable."""
