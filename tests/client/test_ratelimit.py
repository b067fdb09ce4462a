"""ContactsRateLimiter: bursts stay inside the sandbox's sliding window, headers are followed."""

from __future__ import annotations

import bisect
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from target_contacts.errors import DailyQuotaExhausted
from target_contacts.ratelimit import ContactsRateLimiter

from .conftest import PIT, request_log, seed


def busiest_window(sandbox, window: float) -> int:
    """The most requests the sandbox counted within any ``window`` seconds."""
    # the sandbox counts a request when it starts handling it: log time minus duration
    times = sorted(e["time"] - e["duration"] for e in request_log(sandbox))
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def burst(client, contact_id: str, calls: int, threads: int = 8) -> None:
    with ThreadPoolExecutor(threads) as pool:
        for result in pool.map(lambda _: client.get_contact(contact_id), range(calls)):
            assert result["id"] == contact_id


def test_a_burst_keeps_within_the_window_without_a_single_429(
    contacts_sandbox_factory, make_client
):
    sandbox = contacts_sandbox_factory(rate_limit=30, rate_window=1.0)
    contact_id = seed(sandbox, contacts=[{"firstName": "L"}])["contacts"][0]
    client = make_client(sandbox, limiter=ContactsRateLimiter(30, 1.0))
    started = time.monotonic()
    burst(client, contact_id, 90)
    assert time.monotonic() - started >= 2.0  # 90 calls at 30 per second need two full windows
    log = request_log(sandbox)
    assert len(log) == 90 and all(e["status"] == 200 for e in log)
    assert busiest_window(sandbox, 1.0) <= 30


def test_other_traffic_on_the_location_pauses_the_client(contacts_sandbox_factory, make_client):
    sandbox = contacts_sandbox_factory(rate_limit=20, rate_window=2.0)
    contact_id = seed(sandbox, contacts=[{"firstName": "O"}])["contacts"][0]
    headers = {
        "Authorization": f"Bearer {PIT}",
        "Version": "2021-07-28",
        "Accept": "application/json",
    }
    for _ in range(19):  # another run spends the window
        requests.get(f"{sandbox.url}/contacts/{contact_id}", headers=headers, timeout=10)
    client = make_client(sandbox, limiter=ContactsRateLimiter(20, 2.0))
    client.get_contact(contact_id)  # the 20th: the answer says the window is used up
    started = time.monotonic()
    client.get_contact(contact_id)
    assert time.monotonic() - started >= 1.8
    assert all(e["status"] == 200 for e in request_log(sandbox))


def test_own_traffic_filling_the_window_does_not_pause_longer_than_needed(
    contacts_sandbox_factory, make_client
):
    sandbox = contacts_sandbox_factory(rate_limit=10, rate_window=1.0)
    contact_id = seed(sandbox, contacts=[{"firstName": "P"}])["contacts"][0]
    client = make_client(sandbox, limiter=ContactsRateLimiter(10, 1.0))
    started = time.monotonic()
    burst(client, contact_id, 30, threads=4)
    # three windows of 1.1 s (window plus margin) at most, not a full extra pause per window
    assert time.monotonic() - started < 3.0
    assert all(e["status"] == 200 for e in request_log(sandbox))


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


@pytest.mark.slow
def test_sustained_throughput_at_100ms_latency(contacts_sandbox_factory, make_client):
    """Measures calls/s with 8 threads for ~25 s at the real limit (printed; run with -s)."""
    sandbox = contacts_sandbox_factory(rate_limit=100, rate_window=10.0, latency=0.1)
    contact_id = seed(sandbox, contacts=[{"firstName": "T"}])["contacts"][0]
    client = make_client(sandbox, limiter=ContactsRateLimiter(100, 10.0))
    started = time.monotonic()
    deadline = started + 25.0
    done: list[float] = []  # completion times; list.append is atomic

    def work(_: int) -> None:
        while time.monotonic() < deadline:
            client.get_contact(contact_id)
            done.append(time.monotonic() - started)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    done.sort()
    in_run = [t for t in done if t <= 25.0]
    # A greedy client under a sliding window sends 100, waits, sends 100: the sustained rate is
    # measured between the first calls of windows one and three.
    sustained = 200 / (done[200] - done[0])
    print(
        f"\nthroughput: {len(in_run)} calls within 25 s ({len(in_run) / 25:.2f} calls/s); "
        f"first 100 calls in {done[99]:.2f} s ({100 / done[99]:.1f} calls/s unthrottled); "
        f"sustained {sustained:.2f} calls/s (limit 100 per 10 s = 10/s, latency 100 ms, "
        "8 threads)"
    )
    assert all(e["status"] == 200 for e in request_log(sandbox))
    assert busiest_window(sandbox, 10.0) <= 100
    assert sustained > 9.0
