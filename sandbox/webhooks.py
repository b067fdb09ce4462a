"""Webhook delivery for the sandboxes: a queue, worker threads, retries, jitter and a log.

An emulated API hands each event to :class:`WebhookEngine` as an :class:`Event` (the receiver's
URL, the exact raw body, the API's own headers) and goes on answering its client: delivery runs
on background threads and the API answer never waits for it. What a delivery means is the API's
business, given to the engine as parameters:

- ``signer(body) -> headers``: the signature headers for the exact bytes sent. It runs at every
  attempt, so a secret changed at run time signs the retries too.
- :class:`DeliverySettings`: the :class:`RetryPolicy` (which failures are retried, how often, how
  long to wait), the answer timeout, the jitter before a first attempt (so events can arrive out
  of order, as real webhook senders promise nothing about order), the number of workers, and
  after how many consecutive failures of one subscription it is disabled (``None``: never).
- ``is_active(subscription)``: checked before every attempt; a subscription deleted or disabled
  meanwhile gets nothing more (the attempt is logged as ``dropped``).
- ``on_disable(subscription)``: called once the failure streak reaches ``disable_after``.

Nothing leaves the machine: only ``http``/``https`` URLs whose host is a loopback address
(``127.0.0.0/8``, ``::1``) or ``localhost`` (connected to as 127.0.0.1, never looked up) are
contacted. Any other is refused without a connection and logged as ``refused`` with the reason.

Every attempt is one log entry (:meth:`WebhookEngine.log`)::

    {"delivery": 3, "attempt": 1, "url": "http://127.0.0.1:9000/hook",
     **event.info,                      # what the API adds, e.g. hook, event, target, record_id
     "outcome": "delivered" | "retry" | "failed" | "refused" | "dropped",
     "status": 500 | None,              # the receiver's status; None: no answer
     "error": None | "timed out after 10.0 s" | ...,
     "enqueued_at": 1717000000.12, "started_at": ..., "finished_at": ...,   # epoch seconds
     "duration": 0.004,                 # seconds the attempt took
     "next_attempt_in": 2.0 | None,     # seconds until the retry (outcome "retry" only)
     "headers": {...}}                  # every header sent, signature included

A subscription's failure streak counts failed attempts (not events); a delivered attempt resets
it. Refused and dropped attempts contact nobody and do not count.

The Contacts sandbox's retry rule (HighLevel retries only answers 429, every 10 minutes plus
jitter, at most 6 times, and gives up at once on anything else) is, for example::

    RetryPolicy(max_attempts=7, base_delay=600, factor=1, retry_jitter=60,
                retry_statuses=frozenset({429}), retry_errors=False)
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import ipaddress
import itertools
import random
import sys
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

Signer = Callable[[bytes], dict[str, str]]
Subscription = Hashable

LOOPBACK_NAMES = ("localhost",)
POLL_SECONDS = 0.02  # how often workers look at a clock they cannot wait on (a test's fake clock)
LOG_LIMIT = 20_000  # attempts kept in the log; the oldest go first
MAX_ANSWER_BYTES = 64 * 1024  # of a receiver's answer, read and discarded


@dataclass(frozen=True)
class RetryPolicy:
    """Which failed attempts are tried again, and when.

    The wait before attempt ``n + 1`` is ``min(max_delay, base_delay * factor ** (n - 1))`` plus
    up to ``retry_jitter`` seconds. ``retry_statuses`` ``None`` retries every non-2xx answer,
    a set retries only those statuses; ``retry_errors`` says whether no answer at all (refused
    connection, timeout) is retried. ``max_attempts`` counts the first attempt.
    """

    max_attempts: int = 10
    base_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 3600.0
    retry_jitter: float = 0.0
    retry_statuses: frozenset[int] | None = None
    retry_errors: bool = True

    def retries(self, status: int | None) -> bool:
        """Whether a failed attempt with ``status`` (None: no answer) is worth another."""
        if status is None:
            return self.retry_errors
        return self.retry_statuses is None or status in self.retry_statuses

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        wait = min(self.max_delay, self.base_delay * self.factor ** max(0, attempt - 1))
        if self.retry_jitter > 0:
            wait += rng.uniform(0, self.retry_jitter)
        return wait


@dataclass(frozen=True)
class DeliverySettings:
    """How the engine delivers; replace it at run time with :meth:`WebhookEngine.configure`.

    ``timeout``: seconds the receiver has to answer (connect plus answer), else the attempt
    failed. ``jitter``: each event waits a uniformly random ``0..jitter`` seconds before its
    first attempt. ``workers``: deliveries in flight at once. ``disable_after``: consecutive
    failed attempts after which a subscription is disabled (``None``: never).
    """

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 10.0
    jitter: float = 0.0
    workers: int = 4
    disable_after: int | None = None


@dataclass(frozen=True)
class Event:
    """One event for one subscription: where to, the exact body, the API's headers.

    ``info`` is copied into each log entry of its attempts (e.g. hook id, event name, target).
    """

    subscription: Subscription
    url: str
    body: bytes
    headers: dict[str, str]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Delivery:
    number: int
    event: Event
    enqueued_at: float
    attempt: int = 0


def loopback_address(url: str) -> tuple[str, str, int, str] | str:
    """``(scheme, host to connect to, port, path)`` for a loopback URL, else why it is refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"refused: {url!r} is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"refused: {url!r} is not an http(s) URL"
    host = parts.hostname
    why = (
        f"refused: {host} is not on this machine; the sandbox delivers webhooks only to "
        "127.0.0.1, ::1 or localhost and never sends traffic off the machine"
    )
    if host.lower() in LOOPBACK_NAMES:
        connect = "127.0.0.1"  # not looked up: a hosts file could point it elsewhere
    else:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return why
        if not address.is_loopback:
            return why
        connect = str(address)
    default_port = 443 if parts.scheme == "https" else 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, connect, port or default_port, path


class WebhookEngine:
    """Delivers :class:`Event` objects from background threads; see the module docstring.

    ``clock`` gives the seconds the retry schedule and jitter are measured on (default
    :func:`time.monotonic`; a test may pass a clock it moves by hand). Workers start with the
    first event, so an API without subscribers runs no threads. :meth:`close` stops them.
    """

    def __init__(
        self,
        settings: DeliverySettings,
        *,
        signer: Signer,
        is_active: Callable[[Subscription], bool] | None = None,
        on_disable: Callable[[Subscription], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "webhooks",
    ) -> None:
        self.settings = settings
        self._signer = signer
        self._is_active = is_active
        self._on_disable = on_disable
        self._clock = clock
        self._name = name
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, _Delivery]] = []
        self._numbers = itertools.count(1)
        self._in_flight = 0
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self._streaks: dict[Subscription, int] = {}
        self._log: list[dict[str, Any]] = []
        self._dropped_entries = 0  # log entries forgotten past LOG_LIMIT (keeps ``since`` stable)

    # --- what an API calls -----------------------------------------------------------------
    def enqueue(self, event: Event) -> int:
        """Queue ``event`` for delivery after the jitter; returns its delivery number."""
        with self._cond:
            if self._stopped:
                return 0
            jitter = self.settings.jitter
            wait = self._rng.uniform(0, jitter) if jitter > 0 else 0.0
            delivery = _Delivery(next(self._numbers), event, time.time())
            heapq.heappush(self._queue, (self._clock() + wait, delivery.number, delivery))
            self._start_workers()
            self._cond.notify()
            return delivery.number

    def configure(self, **changes: Any) -> DeliverySettings:
        """Replace some :class:`DeliverySettings` fields; applies to attempts not yet started."""
        with self._cond:
            self.settings = replace(self.settings, **changes)
            if self._queue:
                self._start_workers()
            self._cond.notify_all()
            return self.settings

    def reset_streak(self, subscription: Subscription) -> None:
        """Forget ``subscription``'s failures (e.g. when it is enabled again)."""
        with self._cond:
            self._streaks.pop(subscription, None)

    def log(self, since: int = 0) -> list[dict[str, Any]]:
        """Attempt entries from number ``since`` on (0-based, counted since the last clear)."""
        with self._cond:
            start = max(0, since - self._dropped_entries)
            return [dict(entry) for entry in self._log[start:]]

    def clear_log(self) -> None:
        """Forget the logged attempts (deliveries still queued go on)."""
        with self._cond:
            self._log.clear()
            self._dropped_entries = 0

    def pending(self) -> int:
        """Deliveries queued or being attempted right now."""
        with self._cond:
            return len(self._queue) + self._in_flight

    def reset(self) -> None:
        """Drop queued deliveries, failure streaks and the log (attempts in flight finish)."""
        with self._cond:
            self._queue.clear()
            self._streaks.clear()
            self._log.clear()
            self._dropped_entries = 0

    def close(self, timeout: float = 2.0) -> None:
        """Stop the workers; queued deliveries are dropped. Safe to call more than once."""
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- workers ---------------------------------------------------------------------------
    def _start_workers(self) -> None:
        """Called with the lock held: as many workers as the settings ask for."""
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < max(1, self.settings.workers):
            thread = threading.Thread(
                target=self._work, daemon=True, name=f"{self._name}-{len(self._threads) + 1}"
            )
            self._threads.append(thread)
            thread.start()

    def _next_due(self) -> _Delivery | None:
        """Wait for a due delivery and take it; None once the engine is closed."""
        with self._cond:
            while not self._stopped:
                now = self._clock()
                if self._queue and self._queue[0][0] <= now:
                    _, _, delivery = heapq.heappop(self._queue)
                    self._in_flight += 1
                    return delivery
                wait = self._queue[0][0] - now if self._queue else None
                if self._clock is not time.monotonic:
                    wait = POLL_SECONDS if wait is None else min(wait, POLL_SECONDS)
                self._cond.wait(wait)
            return None

    def _work(self) -> None:
        while (delivery := self._next_due()) is not None:
            self._attempt_safely(delivery)

    def _attempt_safely(self, delivery: _Delivery) -> None:
        try:
            self._attempt(delivery)
        except Exception as exc:  # noqa: BLE001 - a bug in one delivery must not stop the rest
            sys.stderr.write(f"{self._name}: delivery {delivery.number} failed: {exc!r}\n")
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _attempt(self, delivery: _Delivery) -> None:
        event = delivery.event
        delivery.attempt += 1
        settings = self.settings
        entry: dict[str, Any] = {
            "delivery": delivery.number,
            "attempt": delivery.attempt,
            "url": event.url,
            **event.info,
            "outcome": "",
            "status": None,
            "error": None,
            "enqueued_at": delivery.enqueued_at,
            "started_at": time.time(),
        }
        address = loopback_address(event.url)
        if self._is_active is not None and not self._is_active(event.subscription):
            self._finish(entry, "dropped", error="the subscription is disabled or gone")
            return
        if isinstance(address, str):
            self._finish(entry, "refused", error=address)
            return
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"{self._name} (sandbox)",
            **event.headers,
            **self._signer(event.body),
        }
        entry["headers"] = headers
        status, error = _post(address, event.body, headers, settings.timeout)
        if status is not None and 200 <= status < 300:  # noqa: PLR2004 - "any 2xx" is the rule
            with self._cond:
                self._streaks.pop(event.subscription, None)
            self._finish(entry, "delivered", status=status)
            return
        disable = False
        self._complete(entry, "failed", status=status, error=error)
        with self._cond:
            streak = self._streaks.get(event.subscription, 0) + 1
            self._streaks[event.subscription] = streak
            if settings.disable_after is not None and streak >= settings.disable_after:
                disable = True
                self._streaks.pop(event.subscription, None)
            if (
                not disable
                and not self._stopped
                and delivery.attempt < settings.policy.max_attempts
                and settings.policy.retries(status)
            ):
                wait = settings.policy.delay(delivery.attempt, self._rng)
                entry.update(outcome="retry", next_attempt_in=wait)
                heapq.heappush(self._queue, (self._clock() + wait, delivery.number, delivery))
                self._cond.notify()
            self._append(entry)  # before the retry can run and log its own attempt
        if disable and self._on_disable is not None:
            self._on_disable(event.subscription)

    def _finish(
        self,
        entry: dict[str, Any],
        outcome: str,
        *,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        self._complete(entry, outcome, status=status, error=error)
        with self._cond:
            self._append(entry)

    @staticmethod
    def _complete(
        entry: dict[str, Any], outcome: str, *, status: int | None, error: str | None
    ) -> None:
        finished = time.time()
        entry.update(
            outcome=outcome,
            status=status,
            error=error,
            finished_at=finished,
            duration=round(finished - entry["started_at"], 4),
            next_attempt_in=None,
        )
        entry.setdefault("headers", {})

    def _append(self, entry: dict[str, Any]) -> None:
        """Called with the lock held."""
        self._log.append(entry)
        if len(self._log) > LOG_LIMIT:
            del self._log[0]
            self._dropped_entries += 1


def _post(
    address: tuple[str, str, int, str], body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int | None, str | None]:
    """POST ``body``; the status, or None and why there was no answer within ``timeout``."""
    scheme, host, port, path = address
    connection_class = (
        http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(host, port, timeout=timeout)
    deadline = time.monotonic() + timeout
    try:
        connection.request("POST", path, body=body, headers=headers)
        # The receiver has ``timeout`` seconds in all, not per socket read.
        connection.sock.settimeout(max(0.001, deadline - time.monotonic()))
        response = connection.getresponse()
        response.read(MAX_ANSWER_BYTES)
    except TimeoutError:
        return None, f"timed out after {timeout} s"
    except (OSError, http.client.HTTPException) as exc:
        return None, f"no answer: {exc!r}"
    else:
        if time.monotonic() > deadline:
            return None, f"answered {response.status} after the {timeout} s timeout"
        return response.status, None
    finally:
        with contextlib.suppress(OSError):
            connection.close()
