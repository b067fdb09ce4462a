"""Time in tests: a controlled clock for the rate limiters, and waits that end on an event.

Wall-clock bounds make a test depend on how busy the machine is. Where a test asserts *when*
something happens, it either runs the code under a :class:`FakeClock` (the limiters' decisions,
exactly) or waits for the event itself with :func:`wait_for` (never a fixed sleep).
"""

from __future__ import annotations

import time
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest

#: A sandbox that enforces the same limit as a client counts a request when its handler starts,
#: the client's limiter when it grants the slot; on a loaded machine a thread can wait hundreds
#: of milliseconds in between. Integration tests give the sandbox this share of the client's
#: window, so that the slack grows with the window instead of being the limiter's 0.1 s margin.
#: The limiters' exact spacing is asserted under a :class:`FakeClock` instead.
SANDBOX_WINDOW_SHARE = 0.7


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it (or a test advances it)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def monotonic_ns(self) -> int:
        return round(self.now * 1e9)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass, as an answer that takes that long would."""
        self.now += seconds


def install_fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Run both rate limiters (pyrate-limiter inside MOCO's, the Contacts limiter's own window
    and pauses) on a :class:`FakeClock`; sleeping advances it instead of waiting.

    The patched names are pyrate-limiter's module-level imports of ``monotonic``, ``sleep`` and
    ``monotonic_ns``; if a pyrate-limiter release renames them, ``monkeypatch`` fails loudly here
    rather than letting a test run on the real clock.
    """
    import pyrate_limiter.clocks
    import pyrate_limiter.limiter

    import contacts_api.ratelimit

    clock = FakeClock()
    monkeypatch.setattr(pyrate_limiter.clocks, "monotonic_ns", clock.monotonic_ns)
    monkeypatch.setattr(pyrate_limiter.limiter, "monotonic", clock.monotonic)
    monkeypatch.setattr(pyrate_limiter.limiter, "sleep", clock.sleep)
    monkeypatch.setattr(
        contacts_api.ratelimit,
        "time",
        types.SimpleNamespace(monotonic=clock.monotonic, sleep=clock.sleep),
    )
    return clock


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` s pass (its last answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
