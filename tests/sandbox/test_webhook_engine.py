"""The generic webhook engine both sandboxes deliver with: queue, retries, policies, loopback."""

from __future__ import annotations

import http.client
import random
import threading
from typing import TYPE_CHECKING, Any

import pytest

from sandbox.webhooks import (
    DeliverySettings,
    Event,
    RetryPolicy,
    WebhookEngine,
    loopback_address,
)
from tests.sandbox.clock import FakeClock
from tests.sandbox.receiver import Receiver
from tests.timing import wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

FAST = RetryPolicy(max_attempts=4, base_delay=0.0)


@pytest.fixture
def engines() -> Iterator[list[WebhookEngine]]:
    made: list[WebhookEngine] = []
    yield made
    for engine in made:
        engine.close()


def make(engines: list[WebhookEngine], settings: DeliverySettings, **kwargs: Any) -> WebhookEngine:
    kwargs.setdefault("signer", lambda body: {"X-Signature": str(len(body))})
    engine = WebhookEngine(settings, **kwargs)
    engines.append(engine)
    return engine


def event(url: str, body: bytes = b"{}", subscription: int = 1) -> Event:
    return Event(subscription, url, body, {"X-Event": "test"}, {"hook": subscription})


def finished(engine: WebhookEngine, count: int) -> list[dict[str, Any]]:
    """The log once ``count`` attempts are logged and nothing is left queued or in flight."""
    assert wait_for(lambda: len(engine.log()) >= count and engine.pending() == 0, 10), engine.log()
    return engine.log()


def test_retry_policy_backs_off_exponentially_up_to_the_maximum() -> None:
    policy = RetryPolicy(base_delay=1.0, factor=2.0, max_delay=5.0)
    rng = random.Random(1)  # noqa: S311 - jitter, not security
    assert [policy.delay(n, rng) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    jittered = RetryPolicy(base_delay=600, factor=1, retry_jitter=60)
    assert all(600 <= jittered.delay(n, rng) <= 660 for n in (1, 5))
    assert policy.retries(500) and policy.retries(None)
    only_429 = RetryPolicy(retry_statuses=frozenset({429}), retry_errors=False)
    assert only_429.retries(429)
    assert not only_429.retries(500) and not only_429.retries(None)


def test_only_loopback_urls_are_contacted() -> None:
    assert loopback_address("http://localhost:8080/hook?x=1") == (
        "http",
        "127.0.0.1",
        8080,
        "/hook?x=1",
    )
    assert loopback_address("http://127.0.0.5:9/") == ("http", "127.0.0.5", 9, "/")
    assert loopback_address("https://[::1]/h") == ("https", "::1", 443, "/h")
    for url in (
        "https://example.org/hook",
        "http://10.0.0.1:8080/",
        "http://localhost.example.org/",
        "http://[::ffff:8.8.8.8]/",
        "ftp://127.0.0.1/",
        "not a url",
        "http://127.0.0.1:99999/",
    ):
        why = loopback_address(url)
        assert isinstance(why, str) and why.startswith("refused"), url


def test_delivery_signs_every_attempt_and_retries_until_2xx(engines: list[WebhookEngine]) -> None:
    keys = iter(["first", "second", "third"])
    current = {"key": next(keys)}
    engine = make(
        engines,
        DeliverySettings(policy=FAST),
        signer=lambda body: {"X-Signature": f"{current['key']}:{body.decode()}"},
    )
    with Receiver(statuses=(500, 503, 204)) as receiver:

        def rotate(_subscription: object) -> bool:
            current["key"] = next(keys, current["key"])  # a secret changed between attempts
            return True

        engine._is_active = rotate
        assert engine.enqueue(event(f"{receiver.url}/in", b'{"id":1}')) == 1
        log = finished(engine, 3)
        got = receiver.wait_for(3)
    assert [e["outcome"] for e in log] == ["retry", "retry", "delivered"]
    assert [e["status"] for e in log] == [500, 503, 204]
    assert [e["attempt"] for e in log] == [1, 2, 3]
    assert all(e["delivery"] == 1 and e["hook"] == 1 for e in log)
    assert [r.headers["X-Signature"] for r in got] == [
        'second:{"id":1}',
        'third:{"id":1}',
        'third:{"id":1}',
    ]
    assert {r.body for r in got} == {b'{"id":1}'} and {r.path for r in got} == {"/in"}
    assert got[0].headers["X-Event"] == "test"
    assert got[0].headers["Content-Type"] == "application/json"


def test_attempts_stop_at_max_attempts(engines: list[WebhookEngine]) -> None:
    engine = make(engines, DeliverySettings(policy=RetryPolicy(max_attempts=3, base_delay=0)))
    with Receiver(statuses=(500,)) as receiver:
        engine.enqueue(event(receiver.url))
        log = finished(engine, 3)
    assert [e["outcome"] for e in log] == ["retry", "retry", "failed"]
    assert len(receiver.received) == 3


def test_a_highlevel_style_policy_retries_only_429(engines: list[WebhookEngine]) -> None:
    policy = RetryPolicy(
        max_attempts=7,
        base_delay=0.0,
        factor=1,
        retry_statuses=frozenset({429}),
        retry_errors=False,
    )
    engine = make(engines, DeliverySettings(policy=policy, timeout=0.3))
    with Receiver(statuses=(429, 429, 500)) as receiver:
        engine.enqueue(event(receiver.url))
        log = finished(engine, 3)
        assert [(e["status"], e["outcome"]) for e in log] == [
            (429, "retry"),
            (429, "retry"),
            (500, "failed"),  # 5xx is final for this policy
        ]
    with Receiver(statuses=(200,), delay=1.0) as slow:
        engine.clear_log()
        engine.enqueue(event(slow.url))
        log = finished(engine, 1)
    assert log[0]["outcome"] == "failed" and log[0]["status"] is None
    assert "timed out" in log[0]["error"]


def test_a_failure_streak_disables_and_a_success_resets_it(engines: list[WebhookEngine]) -> None:
    disabled: list[object] = []
    engine = make(
        engines,
        DeliverySettings(policy=RetryPolicy(max_attempts=1), disable_after=3, workers=1),
        on_disable=disabled.append,
        is_active=lambda sub: sub not in disabled,
    )
    with Receiver(statuses=(500, 500, 200, 500, 500, 500, 500)) as receiver:
        for n in range(7):
            engine.enqueue(event(receiver.url, f'{{"n":{n}}}'.encode()))
            finished(engine, n + 1)  # one at a time: the streak is counted in order
    log = engine.log()
    assert [e["outcome"] for e in log] == ["failed"] * 2 + ["delivered"] + ["failed"] * 3 + [
        "dropped"
    ]
    assert disabled == [1]  # once, after the 3rd failure in a row (not after the first two)
    assert len(receiver.received) == 6
    engine.reset_streak(1)


def test_refused_and_dropped_attempts_contact_nobody(
    engines: list[WebhookEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    connected: list[str] = []
    original = http.client.HTTPConnection.connect

    def connect(self: http.client.HTTPConnection) -> None:
        connected.append(self.host)
        original(self)

    monkeypatch.setattr(http.client.HTTPConnection, "connect", connect)
    engine = make(engines, DeliverySettings(policy=FAST), is_active=lambda sub: sub != 2)
    with Receiver() as receiver:
        engine.enqueue(event("https://example.org/hook"))
        engine.enqueue(event("http://192.168.1.10/hook"))
        engine.enqueue(event(receiver.url, subscription=2))
        log = finished(engine, 3)
    outcomes = sorted((e["url"], e["outcome"]) for e in log)
    assert outcomes == [
        (receiver.url, "dropped"),
        ("http://192.168.1.10/hook", "refused"),
        ("https://example.org/hook", "refused"),
    ]
    refused = next(e for e in log if e["url"] == "https://example.org/hook")
    assert "never sends traffic off the machine" in refused["error"]
    assert connected == [] and receiver.received == []


def test_jitter_is_measured_on_the_engine_clock(engines: list[WebhookEngine]) -> None:
    clock = FakeClock()
    engine = make(engines, DeliverySettings(policy=FAST, jitter=5.0), clock=clock)
    with Receiver() as receiver:
        for n in range(3):
            engine.enqueue(event(receiver.url, str(n).encode()))
        assert not wait_for(lambda: receiver.received, 0.3)  # the fake clock stands still
        clock.advance(5.0)
        receiver.wait_for(3)


def test_close_stops_the_workers_and_drops_the_queue(engines: list[WebhookEngine]) -> None:
    clock = FakeClock()
    engine = make(engines, DeliverySettings(policy=FAST, jitter=1.0, workers=3), clock=clock)
    engine.enqueue(event("http://127.0.0.1:9/"))
    workers = [t for t in threading.enumerate() if t.name.startswith("webhooks-")]
    assert len(workers) == 3 and engine.pending() == 1
    engine.close()
    assert not any(t.is_alive() for t in workers)
    assert engine.pending() == 0
    assert engine.enqueue(event("http://127.0.0.1:9/")) == 0
