"""tap-moco's HTTP behaviour against the MOCO sandbox: retries, rate limit, auth errors, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from singer_sdk.exceptions import ConfigValidationError

from moco_api.account import api_root
from moco_api.ratelimit import RequestRateLimiter
from tap_moco.client import MocoStream
from tap_moco.tap import TapMoco
from tests.tap.support import (
    STREAMS,
    duplicates,
    expected_ids,
    request_log,
    run_tap,
    sandbox_call,
    sandbox_state,
    tap_config,
    window_start,
)
from tests.timing import SANDBOX_WINDOW_SHARE

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sandbox.server import RunningSandbox

TAP = [sys.executable, "-m", "tap_moco"]


@pytest.fixture
def seeded(moco_sandbox: RunningSandbox) -> RunningSandbox:
    sandbox_call(moco_sandbox, "POST", "/_sandbox/seed", {"generate": {"contacts": 40, "seed": 3}})
    return moco_sandbox


def _write_json(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TAP, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_429_and_5xx_are_retried_and_every_record_arrives_once(
    seeded: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MocoStream, "backoff_base_seconds", 0.01)
    sandbox_call(
        seeded,
        "POST",
        "/_sandbox/faults",
        {
            "faults": [
                {
                    "kind": "status",
                    "status": 429,
                    "times": 1,
                    "after": 1,
                    "path": "^/api/v1/contacts/people$",
                    "headers": {"Retry-After": "1"},
                },
                {"kind": "status", "status": 429, "times": 2, "path": "^/api/v1/companies$"},
                {"kind": "status", "status": 503, "times": 2, "path": "^/api/v1/todos$"},
                {
                    "kind": "status",
                    "status": 500,
                    "times": 1,
                    "after": 1,
                    "path": "^/api/v1/comments$",
                },
                {"kind": "reset", "times": 1, "after": 3, "path": "^/api/v1/contacts/people$"},
            ]
        },
    )

    run = run_tap(tap_config(seeded, page_size=5))

    assert run.error is None
    expected = expected_ids(sandbox_state(seeded))
    for stream in STREAMS:
        assert duplicates(run.ids(stream)) == [], stream
        assert set(run.ids(stream)) == expected[stream], stream
    log = request_log(seeded)
    assert sorted(e["status"] for e in log if e["status"] != 200) == [429, 429, 429, 500, 503, 503]
    contact_calls = [e for e in log if e["path"] == "/api/v1/contacts/people"]
    throttled = next(i for i, e in enumerate(contact_calls) if e["status"] == 429)
    retry = contact_calls[throttled + 1]
    assert retry["query"]["page"] == contact_calls[throttled]["query"]["page"]
    assert retry["time"] - contact_calls[throttled]["time"] >= 0.95  # Retry-After: 1 honoured
    assert all(f["times"] == 0 for f in sandbox_call(seeded, "GET", "/_sandbox/faults")["faults"])


def test_the_limiter_spaces_requests_by_the_window_plus_its_margin(fake_clock) -> None:
    limiter = RequestRateLimiter(4, 2.0)  # margin min(1 s, window / 20): 4 slots per 2.1 s
    started = fake_clock.now
    grants = []
    for _ in range(12):
        limiter.acquire()
        grants.append(fake_clock.now - started)
    for i in range(len(grants) - 4):
        # pyrate-limiter looks again 50 ms (and 1 ms of rounding) after a slot frees
        assert 2.1 <= grants[i + 4] - grants[i] <= 2.1 + 0.06, (i, grants)
    assert grants[:4] == [0.0] * 4


def test_client_never_exceeds_the_configured_rate(
    moco_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    # The sandbox counts over a share of the tap's window: the limiter's exact spacing is held by
    # the fake-clock test above, the slack here is for a busy machine's scheduling delays.
    window = 1.0 * SANDBOX_WINDOW_SHARE
    sandbox = moco_sandbox_factory(rate_limit=10, rate_window=window)
    sandbox_call(sandbox, "POST", "/_sandbox/seed", {"generate": {"contacts": 100, "seed": 4}})

    run = run_tap(
        tap_config(sandbox, page_size=5, rate_limit_requests=10, rate_limit_window_seconds=1)
    )

    assert run.error is None
    assert len(run.ids("contacts")) == 100
    log = request_log(sandbox)
    starts = sorted(e["time"] - e["duration"] for e in log)  # when the sandbox counted each
    assert len(starts) >= 40
    assert [e for e in log if e["status"] == 429] == []
    busiest = max(sum(1 for t in starts if start <= t < start + window) for start in starts)
    assert busiest <= 10


def test_limiter_is_shared_by_all_streams() -> None:
    tap = TapMoco(
        config={
            "api_key": "k",
            "base_url": "http://127.0.0.1:9",
            "rate_limit_requests": 7,
            "rate_limit_window_seconds": 3,
        }
    )
    limiters = {id(stream._limiter) for stream in tap.streams.values()}
    assert limiters == {id(tap.request_limiter)}
    assert (tap.request_limiter.requests, tap.request_limiter.window_seconds) == (7, 3)


def test_a_bad_key_fails_clearly_without_printing_it(
    seeded: RunningSandbox, tmp_path: Path
) -> None:
    secret = "wrong-key-7f3a9c0e5b"
    config = _write_json(tmp_path / "config.json", {"api_key": secret, "base_url": seeded.url})

    result = _cli("--config", config)

    assert result.returncode != 0
    assert "MOCO rejected the API key (401 Unauthorized)" in result.stderr
    assert "api_key setting" in result.stderr
    assert secret not in result.stdout + result.stderr
    assert [e["status"] for e in request_log(seeded)] == [401]  # not retried


def test_forbidden_names_the_resource_without_the_key(seeded: RunningSandbox) -> None:
    sandbox_call(
        seeded,
        "POST",
        "/_sandbox/faults",
        {
            "faults": [
                {
                    "kind": "status",
                    "status": 403,
                    "times": 1,
                    "path": "^/api/v1/companies$",
                    "body": {"errors": ["Access denied"]},
                }
            ]
        },
    )

    run = run_tap(tap_config(seeded))

    message = str(run.error)
    assert "403 Forbidden" in message
    assert "/api/v1/companies" in message
    assert "sandbox-key" not in message


def test_config_needs_subdomain_or_base_url() -> None:
    with pytest.raises(ConfigValidationError) as caught:
        TapMoco(config={"api_key": "secret-key-123"})
    assert any("subdomain" in error and "base_url" in error for error in caught.value.errors)
    assert "secret-key-123" not in str(caught.value.errors)

    assert api_root({"subdomain": "acme"}) == "https://acme.mocoapp.com/api/v1"
    assert api_root({"subdomain": "https://acme.mocoapp.com/"}) == "https://acme.mocoapp.com/api/v1"
    assert api_root({"base_url": "http://127.0.0.1:5/api/v1/"}) == "http://127.0.0.1:5/api/v1"
    assert api_root({"subdomain": "acme", "base_url": "http://127.0.0.1:5/"}) == (
        "http://127.0.0.1:5/api/v1"
    )


def test_about_says_there_are_no_appointments() -> None:
    text = _cli("--about")
    markdown = _cli("--about", "--format=markdown")

    for result in (text, markdown):
        assert result.returncode == 0
        assert "no appointment resource" in result.stdout
    assert "| api_key | True |" in markdown.stdout


def test_discover_test_and_a_run_with_config_state_and_catalog(
    seeded: RunningSandbox, tmp_path: Path
) -> None:
    config = _write_json(tmp_path / "config.json", tap_config(seeded))

    discovered = _cli("--config", config, "--discover")
    assert discovered.returncode == 0, discovered.stderr
    catalog = json.loads(discovered.stdout)
    assert sorted(s["tap_stream_id"] for s in catalog["streams"]) == sorted(STREAMS)
    assert _cli("--config", config, "--test").returncode == 0

    # Select contacts only, and start from a bookmark: only later contacts come out.
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == "contacts"
    contacts = sandbox_state(seeded)["contacts"]
    bookmark = sorted(c["updated_at"] for c in contacts)[len(contacts) // 2]
    state = {
        "bookmarks": {
            "contacts": {"replication_key": "updated_at", "replication_key_value": bookmark}
        }
    }
    result = _cli(
        "--config",
        config,
        "--catalog",
        _write_json(tmp_path / "catalog.json", catalog),
        "--state",
        _write_json(tmp_path / "state.json", state),
    )

    assert result.returncode == 0, result.stderr
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    records = [m for m in messages if m["type"] == "RECORD"]
    assert {m["stream"] for m in records} == {"contacts"}
    # The run re-reads overlap_seconds (300) before the bookmark; the sandbox's bound is strict.
    assert sorted(m["record"]["id"] for m in records) == sorted(
        c["id"] for c in contacts if c["updated_at"] > window_start(bookmark)
    )
