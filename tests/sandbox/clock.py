"""A clock the test moves by hand, for the sandboxes' ``clock`` option.

Rate windows and token lifetimes measured on it pass exactly when the test says so: a burst is
never spread over a window by a slow machine, and nobody sleeps to wait a window out.
"""

from __future__ import annotations

import threading


class FakeClock:
    """Seconds that stand still until :meth:`advance` moves them; safe across server threads."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the time forward by ``seconds``."""
        with self._lock:
            self._now += seconds
