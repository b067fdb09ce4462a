"""MOCO's rate limit kept by the client: 120 requests / 2 min (1,200 on the unlimited plan)."""

from __future__ import annotations

from typing import Protocol

from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate, SingleBucketFactory


class RequestRateLimiter:
    """A client-side budget of ``requests`` per ``window_seconds`` (a sliding window).

    One instance belongs to one tap; all its streams share it, so together they never send more
    than the budget within any window of that length (the window is kept 5 % longer, at most 1 s,
    as a margin for network jitter). :meth:`acquire` blocks until a slot is free.
    """

    def __init__(self, requests: int, window_seconds: float) -> None:
        """Create the budget; both values must be positive."""
        if requests < 1 or window_seconds <= 0:
            msg = "The rate limit needs at least 1 request per a positive number of seconds."
            raise ValueError(msg)
        self.requests = requests
        self.window_seconds = window_seconds
        # A little longer than the server's window, so that uneven network delays between our
        # clock and the server's count cannot squeeze one request too many into its window.
        margin = min(1.0, window_seconds / 20)
        rate = Rate(requests, Duration.SECOND * (window_seconds + margin))
        self._bucket = InMemoryBucket([rate])
        # No background leak thread per tap: acquire() drops expired entries itself.
        self._limiter = Limiter(SingleBucketFactory(self._bucket, schedule_leak=False))

    def acquire(self) -> None:
        """Wait until a request may be sent, and count it."""
        # pyrate_limiter leaves AbstractBucket.now() unannotated.
        self._bucket.leak(self._bucket.now())  # type: ignore[no-untyped-call]
        if not self._limiter.try_acquire("moco-api", blocking=True):
            msg = "The client-side rate limiter refused a request it should have delayed."
            raise RuntimeError(msg)


class SlotGiver(Protocol):
    """Anything that blocks until a request may be sent (a local limiter, a shared budget)."""

    def acquire(self) -> object:
        """Block until one request may be sent, and count it (what it returns is not used)."""
        ...


class AccountLimiter:
    """The slots of one MOCO account: the process's own limiter, then the shared budget.

    The shared budget lives in the ledger (tap-moco and target-moco of one account share it).
    """

    def __init__(self, local: RequestRateLimiter, shared: SlotGiver | None = None) -> None:
        self.local = local
        self.shared = shared

    def acquire(self) -> None:
        """Wait for a slot of this process, then for one of the account's shared budget."""
        self.local.acquire()
        if self.shared is not None:
            self.shared.acquire()
