"""The MOCO REST base stream: URL, auth, paging, rate limit, retries and incremental reads.

Every tap-moco stream derives from :class:`MocoStream`. What a caller may rely on:

- Requests go to ``{base_url}/api/v1`` (sandbox, tests) or
  ``https://{subdomain}.mocoapp.com/api/v1`` with ``Authorization: Token token=<api_key>`` and
  ask for ``per_page=page_size``; pages are followed through MOCO's ``Link: <...>; rel="next"``
  header until there is none.
- Every HTTP attempt, retries included, first takes a slot from the tap's one
  :class:`RequestRateLimiter`, so all streams of a tap process together stay within
  ``rate_limit_requests`` per ``rate_limit_window_seconds``.
- 429 and 5xx answers and connection errors are retried: after ``Retry-After`` when the answer
  carries one, otherwise after an exponential wait. 401 and 403 stop the run at once with
  :class:`MocoAuthError`. No error message or log line contains the API key or request headers.
- Incremental reads (see :meth:`MocoStream.get_records`) re-read an overlap window before the
  bookmark and emit a record only when this exact version (``id`` + ``updated_at``) was not
  emitted before; the bookmark itself advances only when a stream was read to its end, and
  not at all when the list changed while it was paged (its ``X-Total`` moved, or a record read
  was changed after the read began).
- Deletes (streams with :attr:`MocoStream.tracks_deletes`): the ids read are kept in the stream's
  state (:mod:`tap_moco.known_ids`). After a *complete* read of the whole list (no
  ``updated_after``: every run for to-dos, a reconciliation pass every ``reconcile_every_hours``
  or when ``reconcile_now`` is set for the others; never a read that failed or whose list moved
  while it was paged) every id known before and missing now is emitted once as a tombstone: a
  record with ``_sdc_deleted_at`` and every other property null except ``id`` and
  ``updated_at`` (both times the moment it was found gone). A tombstone does not move the
  bookmark. With no known ids yet (the first run) nothing is emitted.
"""

from __future__ import annotations

import email.utils
import functools
import heapq
import logging
import random
import typing as t
from array import array
from datetime import datetime, timedelta, timezone
from functools import cached_property
from http import HTTPStatus
from importlib import metadata
from itertools import chain
from urllib.parse import ParseResult, parse_qsl, urlsplit

from requests import exceptions as requests_exceptions
from singer_sdk import RESTStream
from singer_sdk.authenticators import APIKeyAuthenticator
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.pagination import BaseAPIPaginator, HeaderLinkPaginator
from typing_extensions import override

from moco_api.account import api_root, authorization, redact_api_key
from moco_api.timestamps import format_moco_timestamp, parse_moco_timestamp
from tap_moco.known_ids import decode_ids, encode_ids, missing_from, sorted_ids

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator, Mapping

    import requests
    from backoff.types import Details
    from singer_sdk.helpers.types import Context
    from singer_sdk.streams.rest import HTTPRequest, PageContext
    from singer_sdk.tap_base import Tap

    from moco_api.ratelimit import RequestRateLimiter

__all__ = [
    "DELETED_AT",
    "KNOWN_IDS_STATE_KEY",
    "RECONCILED_STATE_KEY",
    "SETTING_DEFAULTS",
    "MocoAuthError",
    "MocoStream",
    "setting",
]

#: State key (inside a stream's bookmark) holding the record versions emitted in the overlap
#: window: ``{"<id>": "<updated_at>"}``.
EMITTED_STATE_KEY = "emitted_in_overlap"
#: State key (inside a stream's bookmark) of the ids read so far (:mod:`tap_moco.known_ids`).
KNOWN_IDS_STATE_KEY = "known_ids"
#: State key (inside a stream's bookmark) of when the last complete read of the list began.
RECONCILED_STATE_KEY = "reconciled_at"
#: Singer's soft-delete marker: a record carrying it says "this MOCO record is gone".
DELETED_AT = "_sdc_deleted_at"
#: Warn when a complete read finds at least this many known ids gone and more than half of them.
_MASS_DELETE_WARNING = 10

_ERROR_DETAIL_LIMIT = 300

#: How far MOCO's clock may lag behind ours when telling whether a record changed during a read
#: (MOCO's timestamps are whole seconds; a larger margin keeps bookmarks back more often).
CLOCK_MARGIN_SECONDS = 10

#: Defaults of the numeric settings: the tap's config schema declares them, and the streams fall
#: back to them when the SDK did not fill them in (it does so only when it validates the config).
SETTING_DEFAULTS: dict[str, float] = {
    "page_size": 100,
    "rate_limit_requests": 120,
    "rate_limit_window_seconds": 120,
    "overlap_seconds": 300,
    "request_timeout": 60,
    "reconcile_every_hours": 24,
}


def setting(config: Mapping[str, t.Any], name: str) -> float:
    """The numeric setting ``name`` from ``config``, else its :data:`SETTING_DEFAULTS` value."""
    value = config.get(name)
    return float(SETTING_DEFAULTS[name] if value is None else value)


def _looks_like_json_list(response: requests.Response) -> bool:
    """Whether a 2xx answer is what every MOCO list endpoint sends: a JSON array."""
    ctype = (response.headers.get("Content-Type") or "").lower()
    if "json" not in ctype:
        return False
    return response.content.lstrip()[:1] == b"["


class MocoAuthError(FatalAPIError):
    """MOCO refused the API key (401) or the key's user may not read a resource (403)."""


def _package_version() -> str:
    try:
        return metadata.version("moco-contacts-sync")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class MocoStream(RESTStream[ParseResult | None]):
    """Base stream for MOCO list endpoints (bare JSON arrays, ``Link`` paging).

    Subclasses set ``name``, ``path``, ``schema`` and, where needed, :attr:`extra_params`,
    :attr:`server_side_updated_after` and :attr:`keep_only`.
    """

    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    replication_key = "updated_at"
    # MOCO lists are ordered by name or id, never by updated_at: the bookmark may only move once
    # a stream has been read to its end (the SDK keeps it in progress markers until then).
    is_sorted = False
    records_jsonpath = "$[*]"

    #: Query parameters sent with every page of this stream.
    extra_params: t.ClassVar[dict[str, str]] = {}
    #: Whether the endpoint supports ``updated_after`` (``/todos`` does not).
    server_side_updated_after: t.ClassVar[bool] = True
    #: Field values a record must have to belong to this stream (empty: every record does).
    keep_only: t.ClassVar[dict[str, str]] = {}
    #: Whether the stream keeps the ids it read and emits tombstones for those gone.
    tracks_deletes: t.ClassVar[bool] = False

    #: Attempts per request (the first try included) before the error is raised.
    backoff_attempts: t.ClassVar[int] = 8
    #: First exponential wait in seconds; it doubles per attempt up to :attr:`backoff_max_seconds`.
    backoff_base_seconds: t.ClassVar[float] = 1.0
    backoff_max_seconds: t.ClassVar[float] = 60.0
    #: The longest ``Retry-After`` honoured; a larger value is cut to this.
    retry_after_max_seconds: t.ClassVar[float] = 600.0
    #: At most this many record versions are remembered for de-duplication (the newest are
    #: kept); versions beyond it may be emitted once more, which is safe, never lost.
    max_remembered_versions: t.ClassVar[int] = 10_000

    def __init__(self, tap: Tap, *, limiter: RequestRateLimiter) -> None:
        """Create the stream for ``tap``; ``limiter`` is the tap's shared request budget."""
        super().__init__(tap=tap)
        self._limiter = limiter
        self._read_window_cache: dict[str, datetime | None] | None = None
        self._complete_read: bool | None = None
        self._page_totals: set[str] = set()
        self._pages_read = 0

    # --- where and how to call -----------------------------------------------------------
    @override
    @property
    def url_base(self) -> str:
        return api_root(self.config)

    @override
    @cached_property
    def authenticator(self) -> APIKeyAuthenticator:
        return APIKeyAuthenticator(
            key="Authorization",
            value=authorization(self.config["api_key"]),
            location="header",
        )

    @override
    @property
    def http_headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    @override
    @cached_property
    def user_agent(self) -> str:
        return str(self.config.get("user_agent") or f"tap-moco/{_package_version()}")

    @override
    @property
    def timeout(self) -> int:
        return int(setting(self.config, "request_timeout"))

    @override
    def get_new_paginator(self) -> BaseAPIPaginator[ParseResult | None]:
        return HeaderLinkPaginator()

    @override
    def get_url_params(
        self,
        context: Context | None,
        next_page_token: ParseResult | None,
    ) -> dict[str, t.Any]:
        params: dict[str, t.Any] = {
            "page": 1,
            "per_page": int(setting(self.config, "page_size")),
            **self.extra_params,
        }
        lower_bound = self.read_window(context)["lower_bound"]
        if (
            self.server_side_updated_after
            and lower_bound is not None
            and not self.reads_whole_list(context)
        ):
            params["updated_after"] = format_moco_timestamp(lower_bound)
        return params

    @override
    def get_http_request(self, *, page: PageContext[ParseResult | None]) -> HTTPRequest:
        request = super().get_http_request(page=page)
        if page.next_page_token is not None:
            # MOCO's next link names the page (and may repeat filters); our own filters stay.
            request.params.update(parse_qsl(page.next_page_token.query))
        return request

    # --- answers, errors and retries -----------------------------------------------------
    @override
    def validate_response(self, response: requests.Response) -> None:
        status = response.status_code
        if status == HTTPStatus.UNAUTHORIZED:
            msg = (
                "MOCO rejected the API key (401 Unauthorized): check the tap-moco api_key "
                "setting (a user key from Profile > Integrations, or an account key from "
                "Settings > Extensions > API & Webhooks)."
            )
            raise MocoAuthError(msg)
        if status == HTTPStatus.FORBIDDEN:
            msg = (
                f"MOCO refused access (403 Forbidden) to {self._request_label(response)} for "
                f"stream '{self.name}': the API key is valid but its user may not read this "
                "resource; give the key's user (or the account key) read access to it."
            )
            raise MocoAuthError(msg)
        if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise RetriableAPIError(self.response_error_message(response), response)
        if status >= HTTPStatus.BAD_REQUEST:
            raise FatalAPIError(self.response_error_message(response))
        if not _looks_like_json_list(response):
            # A proxy's login page or a captive portal answers 200 too; reading it as an empty
            # list would advance the bookmark over records never read.
            ctype = response.headers.get("Content-Type") or "no content type"
            msg = (
                f"MOCO answered {status} to {self._request_label(response)} (stream "
                f"'{self.name}') with {ctype}, not a JSON list: check base_url or subdomain, "
                "and that no proxy answers in MOCO's place."
            )
            raise FatalAPIError(self._redact(msg))

    @override
    def response_error_message(self, response: requests.Response) -> str:
        """Status, reason, request path and MOCO's own error text; never headers or the key."""
        message = (
            f"MOCO answered {response.status_code} {response.reason} to "
            f"{self._request_label(response)} (stream '{self.name}')"
        )
        detail = self._error_detail(response)
        if detail:
            message += f": {detail}"
        return self._redact(message)

    @override
    def request_decorator(
        self,
        func: Callable[..., requests.Response],
    ) -> Callable[..., requests.Response]:
        limiter = self._limiter

        @functools.wraps(func)
        def rate_limited(*args: t.Any, **kwargs: t.Any) -> requests.Response:
            # Inside the retry loop: every attempt, retries included, spends a slot.
            limiter.acquire()
            try:
                return func(*args, **kwargs)
            except requests_exceptions.SSLError as exc:
                # An untrusted certificate does not heal by waiting: fail now, and clearly.
                msg = (
                    f"TLS verification failed for {api_root(self.config)} (stream "
                    f"'{self.name}'): {type(exc).__name__}; check base_url or subdomain and the "
                    "system's CA certificates (verification stays on)."
                )
                raise FatalAPIError(msg) from None

        return t.cast("Callable[..., requests.Response]", super().request_decorator(rate_limited))

    @override
    def backoff_wait_generator(self) -> Generator[float, t.Any, None]:
        """Wait ``Retry-After`` when the answer has one, else 1, 2, 4 … s (up to a cap)."""
        exception = yield  # type: ignore[misc]  # the first send() primes the generator
        attempt = 0
        while True:
            retry_after = self._retry_after_seconds(exception)
            if retry_after is None:
                wait = min(self.backoff_base_seconds * 2**attempt, self.backoff_max_seconds)
            else:
                wait = retry_after
            attempt += 1
            exception = yield wait

    @override
    def backoff_max_tries(self) -> int:
        return self.backoff_attempts

    @override
    def backoff_jitter(self, value: float) -> float:
        # Only ever later than asked (Retry-After is a minimum), by up to a tenth.
        return value * (1.0 + random.random() / 10.0)  # noqa: S311  jitter, not a secret

    @override
    def backoff_handler(self, details: Details) -> None:
        exception = details.get("exception")
        response = getattr(exception, "response", None)
        if isinstance(exception, RetriableAPIError) and response is not None:
            cause = f"{response.status_code} {response.reason}"
            label = self._request_label(response)
        else:
            cause = type(exception).__name__ if exception is not None else "an error"
            label = f"stream '{self.name}'"
        self.log(
            "Retrying %s in %.1f s after %s (attempt %d of %d)",
            label,
            details.get("wait", 0.0),
            cause,
            details.get("tries", 0),
            self.backoff_attempts,
            level=logging.WARNING,
        )

    def _retry_after_seconds(self, exception: BaseException | None) -> float | None:
        response = getattr(exception, "response", None)
        header = response.headers.get("Retry-After") if response is not None else None
        if not header:
            return None
        header = header.strip()
        try:
            seconds = float(header)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            seconds = (when - datetime.now(timezone.utc)).total_seconds()
        return min(max(seconds, 0.0), self.retry_after_max_seconds)

    @staticmethod
    def _request_label(response: requests.Response) -> str:
        request = response.request
        method = request.method if request is not None else "GET"
        url = response.url or (request.url if request is not None else "") or ""
        parts = urlsplit(url)
        return f"{method} {parts.path}" + (f"?{parts.query}" if parts.query else "")

    @staticmethod
    def _error_detail(response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            text = response.text.strip()
            return text[:_ERROR_DETAIL_LIMIT] if text and not text.startswith("<") else ""
        if isinstance(body, dict):
            found = body.get("message") or body.get("errors") or body.get("error")
            return str(found)[:_ERROR_DETAIL_LIMIT] if found else ""
        return ""

    def _redact(self, text: str) -> str:
        return redact_api_key(text, str(self.config.get("api_key") or ""))

    # --- incremental reading -------------------------------------------------------------
    def keep_record(self, record: Mapping[str, t.Any]) -> bool:
        """Whether a record read from the endpoint belongs to this stream (:attr:`keep_only`)."""
        return all(record.get(name) == value for name, value in self.keep_only.items())

    def read_window(self, context: Context | None) -> dict[str, datetime | None]:
        """The bookmark this run starts from and the lower bound it reads from.

        ``bookmark`` is the stream's saved ``updated_at`` bookmark (``None`` on a first run);
        ``lower_bound`` is ``bookmark - overlap_seconds`` (never before ``start_date``), or
        ``start_date``, or ``None`` for a full read. Computed once per run and then fixed.
        """
        if self._read_window_cache is None:
            state = self.get_context_state(context)
            saved = state.get("replication_key_value")
            bookmark = (
                parse_moco_timestamp(str(saved))
                if saved and state.get("replication_key") == self.replication_key
                else None
            )
            start_date = self.config.get("start_date")
            start = parse_moco_timestamp(str(start_date)) if start_date else None
            lower_bound = start
            if bookmark is not None:
                overlap = timedelta(seconds=setting(self.config, "overlap_seconds"))
                lower_bound = bookmark - overlap
                if start is not None and start > lower_bound:
                    lower_bound = start
            self._read_window_cache = {"bookmark": bookmark, "lower_bound": lower_bound}
        return self._read_window_cache

    def reads_whole_list(self, context: Context | None) -> bool:
        """Whether this run reads the stream's whole list (no ``updated_after``).

        Always for an endpoint without ``updated_after`` and for a first run without
        ``start_date``; for a stream that tracks deletes also when a reconciliation pass is due
        (``reconcile_now``, ``reconcile_every_hours`` 0 or passed since the last pass began, or
        no pass yet). Decided once per run.
        """
        if self._complete_read is None:
            whole = not self.server_side_updated_after
            whole = whole or self.read_window(context)["lower_bound"] is None
            if not whole and self.tracks_deletes:
                whole = self._reconciliation_due(self.get_context_state(context))
            self._complete_read = whole
        return self._complete_read

    def _reconciliation_due(self, state: Mapping[str, t.Any]) -> bool:
        if self.config.get("reconcile_now"):
            return True
        hours = setting(self.config, "reconcile_every_hours")
        last = state.get(RECONCILED_STATE_KEY)
        if hours <= 0 or not last:
            return True
        try:
            began = parse_moco_timestamp(str(last))
        except ValueError:
            return True
        return datetime.now(timezone.utc) - began >= timedelta(hours=hours)

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, t.Any]]:
        # X-Total of every page: when it changes, the list changed while it was being paged.
        self._page_totals.add(response.headers.get("X-Total", ""))
        self._pages_read += 1
        return super().parse_response(response)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Yield the records changed since the bookmark, each version once.

        A record is yielded when it belongs to the stream (:meth:`keep_record`), its
        ``updated_at`` is not before the read window's lower bound, and the same ``id`` with the
        same ``updated_at`` was not yielded before, in this run or in an earlier one (those are
        remembered in state for the overlap window). Only after the last page has been read is
        the remembered set in state replaced; an interrupted run leaves state as it found it.
        A first read (no bookmark yet, whether or not ``start_date`` bounds it) does not
        remember every version it yields, to keep memory flat: a record the paging shows twice
        in that read is yielded twice (the target writes the second copy as unchanged).

        MOCO pages by offset in name order, so a record added or removed while the list is paged
        shifts the pages and may hide a record from this run. When the list's ``X-Total``
        changes between pages, or a list of several pages holds a record changed after the read
        began (a removal and an addition leave ``X-Total`` as it was), the run keeps the old
        bookmark, so that the next run reads the same window again.
        """
        window = self.read_window(context)
        lower_bound = window["lower_bound"]
        whole_list = self.reads_whole_list(context)
        state = self.get_context_state(context)
        known: dict[str, str] = dict(state.get(EMITTED_STATE_KEY) or {})
        # Only the newest versions of this run can matter to the next one (the overlap window),
        # so a bounded heap keeps memory flat however large the first sync is.
        recent: list[tuple[datetime, str, str]] = []
        newest: datetime | None = None
        self._page_totals = set()
        self._pages_read = 0
        # A record changed while the list was paged can shift the pages without moving X-Total
        # (one record removed before the read position, one added or moved after it); seeing
        # such a record is how that shows (with a margin for the two clocks).
        read_began = datetime.now(timezone.utc)
        pass_started = read_began - timedelta(seconds=CLOCK_MARGIN_SECONDS)
        changed_during_pass = False
        seen: array[int] = array("q")  # the ids read, for deletes (8 bytes each)
        # From a bookmark: the changes since. A first run (with or without start_date) may read
        # the whole account, so it keeps only the bounded heap of its newest versions.
        incremental = window["bookmark"] is not None
        for record in super().get_records(context):
            if not self.keep_record(record):
                continue
            seen.append(int(record["id"]))
            updated_at = str(record[self.replication_key])
            updated = parse_moco_timestamp(updated_at)
            changed_during_pass = changed_during_pass or updated >= pass_started
            if lower_bound is not None and updated < lower_bound:
                continue
            record_id = str(record["id"])
            if known.get(record_id) == updated_at:
                continue  # this version was emitted already
            version = (updated, record_id, updated_at)
            if len(recent) < self.max_remembered_versions:
                heapq.heappush(recent, version)
            elif version > recent[0]:
                heapq.heapreplace(recent, version)
            if incremental:
                known[record_id] = updated_at  # an incremental read is small: dedupe it whole
            newest = updated if newest is None or updated > newest else newest
            yield record
        # The whole stream has been read.
        next_bookmark = self._next_bookmark(context, window["bookmark"], newest)
        list_moved = self._list_moved(
            state, window["bookmark"], changed_during_pass=changed_during_pass
        )
        if list_moved:
            next_bookmark = window["bookmark"]
        known.update((record_id, updated_at) for _moment, record_id, updated_at in recent)
        state[EMITTED_STATE_KEY] = self._versions_to_remember(known, next_bookmark)
        if self.tracks_deletes:
            # A list that moved while it was paged may have hidden a record: not a proof of
            # anything being gone.
            complete = whole_list and not list_moved
            yield from self._settle_deletes(state, seen, complete=complete, began=read_began)

    def _list_moved(
        self, state: dict[str, t.Any], bookmark: datetime | None, *, changed_during_pass: bool
    ) -> bool:
        """Whether the list changed while it was paged; if so the bookmark stays where it was."""
        if len(self._page_totals) <= 1 and not (changed_during_pass and self._pages_read > 1):
            return False
        self.log(
            "The %s list changed while it was paged (X-Total %s, records changed since the "
            "read began: %s); keeping the bookmark at %s so that the next run reads this "
            "window again",
            self.name,
            " / ".join(sorted(self._page_totals)),
            "yes" if changed_during_pass else "no",
            bookmark,
            level=logging.WARNING,
        )
        # Without progress markers the SDK has nothing to promote: the bookmark stays.
        state.pop("progress_markers", None)
        return True

    def _next_bookmark(
        self,
        context: Context | None,
        bookmark: datetime | None,
        newest: datetime | None,
    ) -> datetime | None:
        """The bookmark the SDK will finalise: the newest emitted value capped at the signpost."""
        if newest is None:
            return bookmark
        signpost = self.get_replication_key_signpost(context)
        if isinstance(signpost, datetime):
            return min(newest, signpost)
        return newest

    def _versions_to_remember(
        self,
        versions: dict[str, str],
        next_bookmark: datetime | None,
    ) -> dict[str, str]:
        if next_bookmark is None:
            return {}
        overlap = timedelta(seconds=setting(self.config, "overlap_seconds"))
        cutoff = next_bookmark - overlap
        kept = sorted(
            (
                (parse_moco_timestamp(updated_at), record_id, updated_at)
                for record_id, updated_at in versions.items()
            ),
            reverse=True,
        )
        return {
            record_id: updated_at
            for moment, record_id, updated_at in kept[: self.max_remembered_versions]
            if moment >= cutoff
        }

    # --- deletes -------------------------------------------------------------------------
    def _settle_deletes(
        self,
        state: dict[str, t.Any],
        seen: array[int],
        *,
        complete: bool,
        began: datetime,
    ) -> Iterator[dict[str, t.Any]]:
        """Tombstones for the known ids a complete read did not see, then the ids into state.

        After an incomplete read the ids seen are added to the known ones; after a complete one
        they replace them. State changes only after the last tombstone was taken, so that a run
        stopped on the way keeps every id it did not report.
        """
        stored = state.get(KNOWN_IDS_STATE_KEY)
        known = decode_ids(stored)
        if stored is not None and known is None:
            self.log(
                "%s: the known ids in state are unreadable; this read starts them anew (no "
                "deletes are reported from it)",
                self.name,
                level=logging.WARNING,
            )
        if not complete:
            if seen and (known is None or missing_from(sorted_ids(seen), known)):
                state[KNOWN_IDS_STATE_KEY] = encode_ids(chain(known or (), seen))
            return
        gone = missing_from(known, sorted_ids(seen)) if known is not None else array("q")
        if gone and not self._tombstones_selected():
            gone = array("q")
        if gone:
            self._warn_if_most_are_gone(len(gone), len(known or ()), len(seen))
            moment = format_moco_timestamp(datetime.now(timezone.utc))
            for record_id in gone:
                yield self.tombstone(record_id, moment)
        state[KNOWN_IDS_STATE_KEY] = encode_ids(seen)
        state[RECONCILED_STATE_KEY] = format_moco_timestamp(began)
        self.log(
            "%s: complete read of the list, %d records; %s",
            self.name,
            len(seen),
            "no ids known before (first read): nothing reported as deleted"
            if known is None
            else f"{len(gone)} of {len(known)} known ids gone, emitted as tombstones",
        )

    def tombstone(self, record_id: int, moment: str) -> dict[str, t.Any]:
        """The record that says MOCO record ``record_id`` is gone (found so at ``moment``)."""
        record: dict[str, t.Any] = dict.fromkeys(self.schema["properties"])
        record.update({"id": record_id, self.replication_key: moment, DELETED_AT: moment})
        return record

    def _tombstones_selected(self) -> bool:
        # Without its marker a tombstone would reach the targets as a record of nulls.
        if self.mask.get(("properties", DELETED_AT), False):
            return True
        self.log(
            "%s: records gone from MOCO are not reported: the catalog does not select %s",
            self.name,
            DELETED_AT,
            level=logging.WARNING,
        )
        return False

    def _warn_if_most_are_gone(self, gone: int, known: int, seen: int) -> None:
        if gone < _MASS_DELETE_WARNING or gone * 2 <= known:
            return
        self.log(
            "%s: %d of %d known records are gone from MOCO's list (it now holds %d)%s; the "
            "targets' max_deletes / max_delete_share stop a run that would delete that many",
            self.name,
            gone,
            known,
            seen,
            ": the list came back EMPTY" if seen == 0 else "",
            level=logging.WARNING,
        )

    @override
    def _increment_stream_state(
        self, latest_record: dict[str, t.Any], *, context: Context | None = None
    ) -> None:
        if latest_record.get(DELETED_AT):
            return  # not a version read from MOCO: it must not move the bookmark
        super()._increment_stream_state(latest_record, context=context)
