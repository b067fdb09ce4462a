"""Client-side rate limiting for the Contacts API: keep the limits by design, not by retrying.

The API allows 100 requests per 10 seconds and 200,000 a day per app and location, and reports
its counts in ``X-RateLimit-*`` headers (reference/contacts-api.md §4). :class:`ContactsRateLimiter`
combines a sliding window of our own requests, each held from its acquisition until a window
after its answer (in this process, or across processes in the ledger's shared budget), with
those headers (everyone's requests against the same location, e.g. a second run), so a healthy
run sees no 429.

The window is not pyrate-limiter's (MOCO's limiter uses it): a bucket of acquisition moments
cannot hold a slot until its answer, and with the answer's hold a window of acquisitions is
never the one that waits; it cost a writing target ~30 us of CPU per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypedDict

from contacts_api.errors import DailyQuotaExhausted

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy import Engine
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)

#: What :meth:`ContactsRateLimiter.acquire` returns without a shared budget: a slot of its own.
_OWN_SLOT = object()
#: How long a wait for an answer lasts before the limiter looks again.
_ANSWER_WAIT_SECONDS = 1.0


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    """An integer header (case-insensitive lookup on a plain dict too), None when absent or bad."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


class SharedBudget(Protocol):
    """A request budget several processes share (:class:`sync_ledger.budget.RateBudget`)."""

    def take(self) -> Any:  # noqa: ANN401  the budget's own slot type, handed back as it is
        """Block until a slot is free, then take it; returns the slot."""
        ...

    def answered(self, slot: Any) -> None:  # noqa: ANN401  a slot take() returned
        """Hold ``slot`` for a whole window from now (its request's answer arrived now)."""
        ...

    def in_use(self) -> int:
        """How many slots are taken in the current window, by every process."""
        ...


class LimiterSettings(TypedDict, total=False):
    """The constructor options of :class:`ContactsRateLimiter`, as keywords of ``shared``."""

    max_requests: int
    window_seconds: float
    daily_reserve: int
    safety_margin_seconds: float | None
    budget: SharedBudget | None


class ContactsRateLimiter:
    """A thread-safe limiter for one (API base URL, location).

    Call :meth:`acquire` before each request and :meth:`observe` with each response's headers.

    What a caller may rely on:

    - No more than ``max_requests`` acquisitions in any sliding window of ``window_seconds`` plus a
      safety margin (default ``max(0.1 s, 2 %)`` of the window). Every attempt counts, also one
      answered 429.
    - When the server reports ``X-RateLimit-Remaining: 0`` and our own recent requests do not
      explain it (someone else uses the same location, or the server's limit is stricter),
      acquisitions pause for the server's whole window (``X-RateLimit-Interval-Milliseconds``).
    - :meth:`acquire` raises :class:`DailyQuotaExhausted` without waiting once the daily remaining
      count (``X-RateLimit-Daily-Remaining``, decremented locally between answers) is at or below
      ``daily_reserve``; the reserve keeps requests for an operator's own checks.
    - A request's slot is held until a window (plus the margin) after its answer: :meth:`acquire`
      waits while ``max_requests`` requests are in flight or were answered within that hold.
      The API counts a request at some moment between sending and answering, so delays
      on the way (a busy machine, a slow network) cannot crowd more than ``max_requests`` of
      its counts into one window, whatever the margin. Every :meth:`acquire` must be followed by
      :meth:`answered` with what it returned, also when the request failed or was never sent.
    - With a ``budget`` (a :class:`SharedBudget`, e.g. the ledger's
      :class:`~sync_ledger.budget.RateBudget`), every acquisition takes a slot of that
      budget instead, so that processes sharing it (tap-contacts and target-contacts on one
      location) stay within the limit together; their requests then count as our own when the
      headers report the window used up. The budget holds each slot until a window after its
      answer (:meth:`answered`), for every process at once.
    """

    _shared: ClassVar[dict[tuple[str, str], ContactsRateLimiter]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        max_requests: int = 100,
        window_seconds: float = 10.0,
        daily_reserve: int = 100,
        *,
        safety_margin_seconds: float | None = None,
        budget: SharedBudget | None = None,
    ) -> None:
        if max_requests < 1 or window_seconds <= 0:
            raise ValueError("max_requests must be >= 1 and window_seconds > 0")
        self.max_requests = max_requests
        self.window_seconds = float(window_seconds)
        self.daily_reserve = daily_reserve
        self.safety_margin_seconds = (
            max(0.1, 0.02 * window_seconds)
            if safety_margin_seconds is None
            else safety_margin_seconds
        )
        self._lock = threading.Lock()
        # Our own acquisitions, kept longer than the window to compare with the server's count.
        self._sent: deque[float] = deque(maxlen=max(1000, 20 * max_requests))
        self._paused_until = 0.0
        self._daily_remaining: int | None = None
        self._daily_limit: int | None = None
        self._warned_stricter = False
        self.budget = budget
        # Without a budget: requests in flight, and the moments of the answers within the hold.
        self._in_flight = 0
        self._answers: deque[float] = deque()
        self._answer_in = threading.Condition(self._lock)

    @classmethod
    def shared(
        cls, base_url: str, location_id: str, **settings: Unpack[LimiterSettings]
    ) -> ContactsRateLimiter:
        """The one limiter of this process for (``base_url``, ``location_id``).

        ``settings`` (the constructor's) apply only when this call creates it: clients of the
        same location in one process must share one budget, so the first configuration wins.
        The one exception is ``budget``: given to a limiter that has none yet, it is attached.
        """
        key = (base_url.rstrip("/"), location_id)
        with cls._shared_lock:
            limiter = cls._shared.get(key)
            if limiter is None:
                limiter = cls(**settings)
                cls._shared[key] = limiter
            elif limiter.budget is None and settings.get("budget") is not None:
                limiter.budget = settings.get("budget")
            return limiter

    @property
    def daily_remaining(self) -> int | None:
        """The daily remaining count last reported, minus our requests since; None before any."""
        with self._lock:
            return self._daily_remaining

    def acquire(self) -> object:
        """Block until one request may be sent now; returns its slot (the shared budget's, if any).

        Hand the slot to :meth:`answered` when the request's answer (or failure) is in, or when
        it is not sent after all. Raises
        :class:`DailyQuotaExhausted` instead of waiting when the daily quota is at or below the
        reserve (nothing is sent then).
        """
        self._check_daily()
        while True:
            with self._lock:
                wait = self._paused_until - time.monotonic()
            if wait <= 0:
                break
            time.sleep(wait)
        budget = self.budget
        if budget is not None:  # the window shared with the other processes on this location
            slot = budget.take()
        else:
            self._hold()
            slot = _OWN_SLOT
        with self._lock:
            self._sent.append(time.monotonic())
            if self._daily_remaining is not None:
                self._daily_remaining -= 1
        return slot

    def answered(self, slot: object) -> None:
        """The request of ``slot`` (from :meth:`acquire`) has its answer, or has failed."""
        if slot is _OWN_SLOT:
            with self._answer_in:
                self._in_flight = max(0, self._in_flight - 1)
                self._answers.append(time.monotonic())
                self._answer_in.notify()
        elif slot is not None and self.budget is not None:
            self.budget.answered(slot)

    def _hold(self) -> None:
        """Wait until fewer than ``max_requests`` are in flight or answered within the hold."""
        hold = self.window_seconds + self.safety_margin_seconds
        while True:
            with self._answer_in:
                now = time.monotonic()
                while self._answers and self._answers[0] <= now - hold:
                    self._answers.popleft()
                if self._in_flight + len(self._answers) < self.max_requests:
                    self._in_flight += 1
                    return
                if not self._answers:  # every slot is in flight: the next answer frees one
                    self._answer_in.wait(_ANSWER_WAIT_SECONDS)
                    continue
                wait = self._answers[0] + hold - now
            time.sleep(max(wait, 0.001))

    def _check_daily(self) -> None:
        with self._lock:
            remaining = self._daily_remaining
        if remaining is not None and remaining <= self.daily_reserve:
            raise DailyQuotaExhausted(
                f"The Contacts API daily quota for this location is used up: {max(remaining, 0)} "
                f"requests left, at or below the reserve of {self.daily_reserve}. Nothing was "
                "sent; run again after the daily quota resets (200,000 requests a day per app "
                "and location).",
                daily_remaining=remaining,
            )

    def observe(self, headers: Mapping[str, str]) -> None:
        """Follow the ``X-RateLimit-*`` headers of one response (any status)."""
        daily = _int_header(headers, "X-RateLimit-Daily-Remaining")
        daily_limit = _int_header(headers, "X-RateLimit-Limit-Daily")
        remaining = _int_header(headers, "X-RateLimit-Remaining")
        server_max = _int_header(headers, "X-RateLimit-Max")
        interval_ms = _int_header(headers, "X-RateLimit-Interval-Milliseconds")
        now = time.monotonic()
        with self._lock:
            if daily is not None:
                self._daily_remaining = daily
            if daily_limit is not None:
                self._daily_limit = daily_limit
            if remaining is None or remaining > 0:
                return
            interval = interval_ms / 1000 if interval_ms else self.window_seconds
            limit = server_max or self.max_requests
            stricter = limit < self.max_requests or interval > self.window_seconds
            if stricter and not self._warned_stricter:
                self._warned_stricter = True
                logger.warning(
                    "The Contacts API allows %s requests per %.1f s, fewer than the limiter's %s "
                    "per %.1f s: lower the limiter's max_requests to match.",
                    limit,
                    interval,
                    self.max_requests,
                    self.window_seconds,
                )
            # Generous look-back: a request counts server-side a little after we acquired it.
            cutoff = now - interval - max(2.0, 0.2 * interval)
            own = sum(1 for t in self._sent if t > cutoff)
        if own < limit and not stricter and self.budget is not None:
            # The processes sharing our budget are "us" too; their count is in the database.
            own = max(own, self.budget.in_use())
        if own >= limit and not stricter:
            return  # our own traffic used the window up; our own window already holds back
        with self._lock:
            until = now + interval
            if until > self._paused_until:
                self._paused_until = until
                logger.info(
                    "The Contacts API reports its rate window used up by other traffic; "
                    "pausing requests for %.1f s.",
                    interval,
                )

    def close(self) -> None:
        """Nothing to stop (no background thread): callers close any limiter they made."""

    def __repr__(self) -> str:
        return (
            f"ContactsRateLimiter(max_requests={self.max_requests}, "
            f"window_seconds={self.window_seconds}, daily_reserve={self.daily_reserve})"
        )


def _shared_database(engine: Engine | None) -> bool:
    """Whether other processes can open ``engine``'s database (not in-memory SQLite)."""
    if engine is None:
        return False
    url = engine.url
    return not (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))


def limiter_from_config(config: Mapping[str, Any], *, engine: Engine | None) -> ContactsRateLimiter:
    """The process's limiter for a plugin configuration, shared with other processes if it can be.

    Reads ``base_url``, ``location_id``, ``rate_limit_requests``, ``rate_limit_window_seconds``
    and ``daily_quota_reserve`` (the settings tap-contacts and target-contacts have in common).
    With a ledger ``engine`` other processes can open (a SQLite file, PostgreSQL), the limiter
    takes every request's slot from the ledger's :class:`~sync_ledger.budget.RateBudget` named
    after (API base URL, location), so that every plugin writing or reading that location stays
    within its limit together; an in-memory SQLite ledger (or None) keeps the in-process limit
    alone.
    """
    from contacts_api.auth import DEFAULT_BASE_URL  # noqa: PLC0415  auth imports the ledger
    from sync_ledger.budget import RateBudget, budget_name  # noqa: PLC0415  SQLAlchemy only here

    base_url = str(config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    location_id = str(config.get("location_id") or "")
    reserve = config.get("daily_quota_reserve")
    limiter = ContactsRateLimiter.shared(
        base_url,
        location_id,
        max_requests=int(config.get("rate_limit_requests") or 100),
        window_seconds=float(config.get("rate_limit_window_seconds") or 10),
        daily_reserve=int(100 if reserve is None else reserve),
    )
    if limiter.budget is None and engine is not None and _shared_database(engine):
        limiter.budget = RateBudget(
            engine,
            budget_name("contacts-api", base_url, location_id),
            limiter.max_requests,
            # The same margin as the in-process window: a request counts server-side later. An
            # answer within the margin needs no move: the window from the taking covers it.
            limiter.window_seconds + limiter.safety_margin_seconds,
            answer_grace=limiter.safety_margin_seconds,
        )
    return limiter
