"""ContactsRateLimiter: bursts stay inside the sandbox's sliding window, headers are followed.

The limiter's decisions (when a slot is granted, how long a pause lasts) are asserted exactly under
a controlled clock; the tests against the sandbox check the same behaviour end to end, with the
sandbox's window a share of the limiter's (``SANDBOX_WINDOW_SHARE``) so that a busy machine's
scheduling delays between a grant and the sandbox's count cannot turn into a 429.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from contacts_api.errors import DailyQuotaExhausted
from contacts_api.ratelimit import ContactsRateLimiter
from tests.timing import SANDBOX_WINDOW_SHARE

from .conftest import PIT, request_log, seed

#: pyrate-limiter looks again 50 ms (plus 1 ms of rounding) after a slot frees: a grant comes at
#: most this long after the moment it was allowed.
RECHECK = 0.06
#: The sandbox's log keeps durations to 0.1 ms; start times computed from it are that coarse.
LOG_RESOLUTION = 0.001


def busiest_window(sandbox, window: float) -> int:
    """The most requests the sandbox counted within any ``window`` seconds."""
    # the sandbox counts a request when it starts handling it: log time minus duration
    times = sorted(e["time"] - e["duration"] for e in request_log(sandbox))
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def burst(client, contact_id: str, calls: int, threads: int = 8) -> None:
    with ThreadPoolExecutor(threads) as pool:
        for result in pool.map(lambda _: client.get_contact(contact_id), range(calls)):
            assert result["id"] == contact_id


def window_headers(remaining: int, *, limit: int, interval: float) -> dict[str, str]:
    """The X-RateLimit-* headers of one Contacts API answer."""
    return {
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Max": str(limit),
        "X-RateLimit-Interval-Milliseconds": str(int(interval * 1000)),
    }


def pauses(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The limiter's "window used up by other traffic" pauses, as logged."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "contacts_api.ratelimit" and "pausing requests" in r.getMessage()
    ]


def headers_seen(client, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """Every answer's headers as the client hands them to its limiter (filled as it runs)."""
    seen: list[dict[str, str]] = []
    observe = client.limiter.observe

    def spy(headers):
        seen.append(dict(headers))
        observe(headers)

    monkeypatch.setattr(client.limiter, "observe", spy)
    return seen


# --- the limiter's decisions, on a controlled clock --------------------------------------------
def test_grants_at_most_max_requests_per_window_plus_margin_and_no_later(fake_clock):
    limiter = ContactsRateLimiter(10, 1.0)  # margin max(0.1 s, 2 %): slots per 1.1 s
    started = fake_clock.now
    grants = []
    for _ in range(30):
        limiter.answered(limiter.acquire())  # answered at once: the margin is the longer hold
        grants.append(fake_clock.now - started)
    limiter.close()
    for i in range(len(grants) - 10):
        gap = grants[i + 10] - grants[i]
        assert 1.1 <= gap <= 1.1 + RECHECK, (i, grants)
    assert grants[:10] == [0.0] * 10  # a fresh window lets a whole burst go at once


def test_own_traffic_that_fills_the_window_costs_no_pause(fake_clock):
    limiter = ContactsRateLimiter(10, 1.0)
    started = fake_clock.now
    for sent in range(1, 11):
        limiter.answered(limiter.acquire())
        if sent == 10:
            fake_clock.advance(0.6)  # a slow answer says the window is used up
        limiter.observe(window_headers(10 - sent, limit=10, interval=1.0))
    limiter.acquire()
    # The limiter's own window frees the 11th slot at 1.1 s; a pause for the server's window
    # from the answer on would have held it until 1.6 s.
    assert 1.1 <= fake_clock.now - started <= 1.1 + RECHECK
    limiter.close()


def test_other_traffic_that_fills_the_window_pauses_for_the_servers_interval(fake_clock):
    limiter = ContactsRateLimiter(20, 2.0)
    limiter.acquire()
    fake_clock.advance(0.05)
    answered = fake_clock.now
    limiter.observe(window_headers(0, limit=20, interval=2.0))  # used up, but not by us
    limiter.acquire()
    assert fake_clock.now - answered == pytest.approx(2.0)
    limiter.close()


def test_a_slot_is_held_for_a_window_from_its_answer_however_late_it_came(fake_clock):
    # The API counts a request when it arrives: a request sent late after its acquisition (a
    # busy machine) is counted late, so its slot frees a window after the answer, not before.
    limiter = ContactsRateLimiter(2, 1.0)  # hold: 1.0 s window + 0.1 s margin
    first = limiter.acquire()
    fake_clock.advance(5.0)  # its request went out (and was counted) late
    limiter.answered(first)
    answered = fake_clock.now
    limiter.answered(limiter.acquire())
    limiter.acquire()  # the acquisitions' own window freed two slots long ago
    assert fake_clock.now - answered == pytest.approx(1.1)
    limiter.close()


def test_requests_in_flight_hold_their_slots_until_answered(fake_clock):
    limiter = ContactsRateLimiter(2, 1.0)
    slots = [limiter.acquire(), limiter.acquire()]
    fake_clock.advance(100.0)  # far past any window: only the answers are missing
    third = threading.Thread(target=limiter.acquire)
    third.start()
    third.join(0.3)
    assert third.is_alive()  # both requests are still in flight
    limiter.answered(slots[0])
    answered = fake_clock.now
    third.join(10)
    assert not third.is_alive()
    assert fake_clock.now - answered == pytest.approx(1.1)  # a window from that answer
    limiter.answered(slots[1])
    limiter.close()


# --- the same behaviour against the sandbox ------------------------------------------------------
def test_a_burst_keeps_within_the_window_without_a_single_429(
    contacts_sandbox_factory, make_client
):
    window = 1.0 * SANDBOX_WINDOW_SHARE
    sandbox = contacts_sandbox_factory(rate_limit=30, rate_window=window)
    contact_id = seed(sandbox, contacts=[{"firstName": "L"}])["contacts"][0]
    client = make_client(sandbox, limiter=ContactsRateLimiter(30, 1.0))
    started = time.monotonic()
    burst(client, contact_id, 90)
    assert time.monotonic() - started >= 2.0  # 90 calls at 30 per second need two full windows
    log = request_log(sandbox)
    assert len(log) == 90 and all(e["status"] == 200 for e in log)
    assert busiest_window(sandbox, window) <= 30


def test_other_traffic_on_the_location_pauses_the_client(
    contacts_sandbox_factory, make_client, caplog
):
    caplog.set_level(logging.INFO, logger="contacts_api.ratelimit")
    sandbox = contacts_sandbox_factory(rate_limit=5, rate_window=2.0)
    contact_id = seed(sandbox, contacts=[{"firstName": "O"}])["contacts"][0]
    headers = {
        "Authorization": f"Bearer {PIT}",
        "Version": "2021-07-28",
        "Accept": "application/json",
    }
    for _ in range(4):  # another run spends the window
        requests.get(f"{sandbox.url}/contacts/{contact_id}", headers=headers, timeout=10)
    client = make_client(sandbox, limiter=ContactsRateLimiter(5, 2.0))
    client.get_contact(contact_id)  # the 5th: the answer says the window is used up
    client.get_contact(contact_id)
    log = request_log(sandbox)
    assert all(e["status"] == 200 for e in log)
    # The client heard "used up" after the sandbox logged the 5th answer; the 6th request may
    # start no earlier than the server's whole window after that, however slow the machine.
    fifth_answered = log[-2]["time"]
    sixth_started = log[-1]["time"] - log[-1]["duration"]
    assert sixth_started - fifth_answered >= 2.0 - LOG_RESOLUTION
    assert len(pauses(caplog)) == 1


def test_own_traffic_filling_the_window_does_not_pause_the_client(
    contacts_sandbox_factory, make_client, caplog, monkeypatch
):
    caplog.set_level(logging.INFO, logger="contacts_api.ratelimit")
    sandbox = contacts_sandbox_factory(rate_limit=10, rate_window=1.0 * SANDBOX_WINDOW_SHARE)
    contact_id = seed(sandbox, contacts=[{"firstName": "P"}])["contacts"][0]
    client = make_client(sandbox, limiter=ContactsRateLimiter(10, 1.0))
    seen = headers_seen(client, monkeypatch)
    started = time.monotonic()
    burst(client, contact_id, 30, threads=4)
    assert time.monotonic() - started >= 2.0  # two windows of our own were waited out
    assert all(e["status"] == 200 for e in request_log(sandbox))
    # The sandbox did say the window was used up, and the client took it for its own traffic:
    # no pause for the server's window on top of its own (held exactly by
    # test_own_traffic_that_fills_the_window_costs_no_pause).
    assert any(h.get("X-RateLimit-Remaining") == "0" for h in seen)
    assert pauses(caplog) == []


def test_daily_reserve_is_kept_and_counted_down_locally():
    limiter = ContactsRateLimiter(100, 10.0, daily_reserve=5)
    limiter.observe({"X-RateLimit-Daily-Remaining": "7", "X-RateLimit-Remaining": "50"})
    limiter.acquire()
    limiter.acquire()
    assert limiter.daily_remaining == 5
    with pytest.raises(DailyQuotaExhausted) as exhausted:
        limiter.acquire()
    assert exhausted.value.daily_remaining == 5
    limiter.close()


def test_one_limiter_per_location_and_base_url():
    a = ContactsRateLimiter.shared("http://127.0.0.1:1/", "loc-a", max_requests=5)
    assert ContactsRateLimiter.shared("http://127.0.0.1:1", "loc-a") is a
    assert a.max_requests == 5
    assert ContactsRateLimiter.shared("http://127.0.0.1:1", "loc-b") is not a


@pytest.mark.slow
def test_real_limit_300_calls_see_no_429(contacts_sandbox_factory, make_client):
    sandbox = contacts_sandbox_factory(rate_limit=100, rate_window=10.0)
    contact_id = seed(sandbox, contacts=[{"firstName": "R"}])["contacts"][0]
    client = make_client(sandbox, limiter=ContactsRateLimiter(100, 10.0))
    burst(client, contact_id, 300)
    assert all(e["status"] == 200 for e in request_log(sandbox))
    assert busiest_window(sandbox, 10.0) <= 100
