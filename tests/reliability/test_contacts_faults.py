"""Contacts API faults injected by the sandbox while a real ``tap-moco | target-contacts`` runs:
429 storms, 5xx bursts, resets, answers slower than the client's timeout, creates committed and
then answered with an error or a stall, access tokens expiring mid-run, a daily quota nearly used
up. After each, the CRM must hold exactly what a clean run leaves: no duplicate, nothing lost,
the rate limit kept by design rather than by retrying."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from target_contacts.sync import UNCONFIRMED_CREATE
from tests.hooks import Hook
from tests.reliability.harness import (
    World,
    assert_like_clean_run,
    is_write,
    login,
    oauth_target,
    times,
    token_grants,
)
from tests.timing import SANDBOX_WINDOW_SHARE, wait_for

N, SEED = 40, 7
CREATE_ROUTES = {
    "contacts": "^/contacts/$",
    "tasks": "^/contacts/[^/]+/tasks$",
    "notes": "^/contacts/[^/]+/notes$",
}


def statuses(world: World) -> Counter[int]:
    return Counter(e["status"] for e in world.contacts_log())


def one_clean_run(world: World, **target: Any) -> Any:
    run = world.run(target=target or None)
    assert run.ok, run.describe()
    assert run.summary is not None and run.summary["adds_up"]
    return run


def test_429_storm_is_waited_out_and_nothing_is_lost_or_doubled(world_factory, baseline, record):
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED)
    world.contacts_faults(
        {"kind": "status", "status": 429, "headers": {"Retry-After": "1"}, "times": 25, "after": 10}
    )
    one_clean_run(world)
    served = statuses(world)[429]
    assert served == 25
    comparison = assert_like_clean_run(world, base)
    record(
        case="contacts-429-storm",
        area="Contacts API",
        fault="429 storm",
        injection="25 consecutive requests (any route) answered 429 with Retry-After: 1",
        outcome=f"one run completed; {times(served, 429)} waited out (Retry-After honoured); "
        "CRM equal to a clean run",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_a_healthy_run_keeps_the_rate_limit_and_sees_no_429(world_factory, baseline, record):
    base = baseline(N, SEED)
    # The sandbox counts over a share of the target's window: what the limiter grants exactly is
    # held by tests/client/test_ratelimit.py on a fake clock; here the slack between a grant and
    # the sandbox's count (two processes on a busy machine) grows with the window.
    window = 1.0 * SANDBOX_WINDOW_SHARE
    world = world_factory(
        n_contacts=N, seed=SEED, latency=0.0, contacts={"rate_limit": 20, "rate_window": window}
    )
    one_clean_run(world, rate_limit_requests=20, rate_limit_window_seconds=1, max_concurrency=4)
    log = world.contacts_log()
    assert [e for e in log if e["status"] == 429] == []
    assert len(log) > 20  # the run needed more than one window
    comparison = assert_like_clean_run(world, base)
    record(
        case="contacts-rate-limit",
        area="Contacts API",
        fault="rate limit of the location (kept by design, not by retrying)",
        injection=f"sandbox enforces 20 requests / {window:.1f} s; target configured with "
        "20 / 1 s (its exact spacing is tested on a fake clock)",
        outcome=f"{len(log)} requests spread over several windows; {times(0, 429)} served",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_5xx_burst_is_retried_and_creates_look_first(world_factory, baseline, record):
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED)
    world.contacts_faults({"kind": "status", "status": 503, "times": 12, "after": 20})
    one_clean_run(world)
    served = statuses(world)[503]
    assert served == 12
    comparison = assert_like_clean_run(world, base)
    record(
        case="contacts-5xx-burst",
        area="Contacts API",
        fault="5xx burst",
        injection="12 consecutive requests answered 503 (nothing stored)",
        outcome="one run completed; failed creates looked for their object before sending "
        "again; CRM equal to a clean run",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_5xx_longer_than_the_retries_stops_the_run_and_the_rerun_completes(
    world_factory, baseline, record
):
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED)
    world.contacts_faults(
        {
            "kind": "status",
            "method": "POST",
            "path": CREATE_ROUTES["contacts"],
            "status": 502,
            "times": 3,
            "after": 5,
        }
    )
    first = world.run(target={"max_concurrency": 1})
    assert first.target_returncode != 0
    assert "failed 3 times" in first.last_error() and "rerun later" in first.last_error()
    assert first.states == []  # no state passed on: Meltano would rerun the same window
    runs = world.run_until_complete()
    comparison = assert_like_clean_run(world, base)
    record(
        case="contacts-5xx-exhausted",
        area="Contacts API",
        fault="5xx burst longer than the create retries",
        injection="one contact create answered 502 three times in a row (one writer)",
        outcome=f"run stopped with `{first.last_error().split(': ', 1)[-1][:70]}...`, no "
        f"state passed on; {len(runs)} rerun(s) completed",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_connection_resets_are_retried_without_doubles(world_factory, baseline, record):
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED)
    world.contacts_faults({"kind": "reset", "times": 8, "after": 15})
    one_clean_run(world)
    faults = world.contacts.app._faults  # type: ignore[attr-defined]
    assert faults[0].times == 0  # all 8 resets happened
    comparison = assert_like_clean_run(world, base)
    record(
        case="contacts-reset",
        area="Contacts API",
        fault="connection resets",
        injection="8 consecutive requests: connection closed without an answer",
        outcome="one run completed; creates looked first before sending again",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


@pytest.mark.parametrize("kind", ["commit_then_status", "commit_then_slow"])
def test_create_committed_then_answered_with_error_or_stall_is_adopted(
    world_factory, baseline, record, kind
):
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED)
    statuses_ = {"contacts": 502, "tasks": 500, "notes": 504}
    world.contacts_faults(
        *(
            {
                "kind": kind,
                "method": "POST",
                "path": route,
                "status": statuses_[stream],
                "delay": 2.5,
                "times": 3,
                "after": 2,
            }
            for stream, route in CREATE_ROUTES.items()
        )
    )
    run = one_clean_run(world, request_timeout=1)
    assert all(f.times == 0 for f in world.contacts.app._faults)  # type: ignore[attr-defined]
    calls = run.summary["api_calls"]
    comparison = assert_like_clean_run(world, base)
    looks = {
        "contacts": "GET /contacts/search/duplicate",
        "tasks": "GET /contacts/{id}/tasks",
        "notes": "GET /contacts/{id}/notes",
    }
    for stream in CREATE_ROUTES:
        assert calls.get(looks[stream], 0) >= 3  # looked before creating again
        answer = (
            f"answered {statuses_[stream]}"
            if kind == "commit_then_status"
            else "stalled 2.5 s past the 1 s client timeout"
        )
        record(
            case=f"contacts-{kind}-{stream}",
            area="Contacts API",
            fault=f"{stream[:-1]} create committed, then "
            f"{'a 5xx answer' if kind == 'commit_then_status' else 'a timeout'}",
            injection=f"3 creates of {stream} stored by the sandbox, then {answer}",
            outcome=f"the target looked ({looks[stream]}), found and adopted each; one run",
            lost=comparison.lost[stream],
            duplicates=comparison.duplicates[stream],
        )


def test_answer_slower_than_the_timeout_is_not_sent_twice(world_factory, baseline, record):
    """The sandbox holds the create 2.5 s *before* storing it; the client gives up after 1 s and
    finds nothing yet. Sending it again would make a duplicate once the first lands."""
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED)
    world.contacts_faults(
        *(
            {"kind": "slow", "method": "POST", "path": route, "delay": 2.5, "times": 2, "after": 2}
            for route in CREATE_ROUTES.values()
        )
    )
    run = one_clean_run(world, request_timeout=1)
    unconfirmed = [r for r in world.ledger_rows("rejects") if r["reason"] == UNCONFIRMED_CREATE]
    assert len(unconfirmed) == 6
    for r in unconfirmed:  # the warning names stream and record
        assert (
            f"rejected {r['stream']} record {r['source_id']}: the create got no answer"
            in run.stderr
        )
    # The slow creates land after the run gave up on them.
    assert wait_for(lambda: sum(1 for e in world.contacts_log() if e["duration"] >= 2.5) == 6)
    retry = world.admin("rejects", "retry")
    # Exit 1: the one record a clean run rejects too (a task on a contact the mapping filters
    # out) is still rejected; everything else was adopted or written.
    assert retry.returncode == 1 and "1 rejected record(s)" in retry.stdout, (
        retry.stdout + retry.stderr
    )
    comparison = assert_like_clean_run(world, base)
    world.clear_logs()
    world.state = None
    one_clean_run(world)
    assert world.writes() == []
    record(
        case="contacts-slow-timeout",
        area="Contacts API",
        fault="answers slower than the client timeout (create stored late)",
        injection="2 creates each of contacts, tasks, notes held 2.5 s before the sandbox "
        "stores them; request_timeout 1 s",
        outcome="the 6 timed-out creates were not sent again but kept as rejects naming "
        "stream and id (their tasks/notes wait); `contacts-admin rejects retry` "
        "adopted the late ones",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_access_token_expiring_during_the_run_is_refreshed(world_factory, baseline, record):
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED, latency=0.03, contacts={"access_token_ttl": 2})
    login(world)
    run = one_clean_run(world, **oauth_target(max_concurrency=1))  # a run of several seconds
    grants = token_grants(world)
    assert grants and all(g["status"] == 200 for g in grants)
    log = world.contacts_log()
    first_write = next(i for i, e in enumerate(log) if is_write(e["method"], e["path"]))
    mid_run = [e for e in log[first_write:] if e["path"] == "/oauth/token"]
    assert mid_run, "no refresh happened while the sync was writing"
    assert statuses(world)[401] == 0  # refreshed before expiry, not after a refusal
    assert "Refreshed the OAuth access token" in run.stderr
    comparison = assert_like_clean_run(world, base)
    record(
        case="contacts-token-expiry",
        area="Contacts API / OAuth",
        fault="access token expiring mid-run",
        injection="OAuth access tokens live 2 s; the sync takes longer",
        outcome=f"refreshed {len(grants)} time(s), {len(mid_run)} of them between writes; "
        f"each rotated token stored before use; {times(0, 401)}",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_access_token_revoked_during_the_run_gives_one_refresh(world_factory, baseline, record):
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED, contacts={"access_token_ttl": 3600})
    login(world)
    registry = world.contacts.app.registry  # type: ignore[attr-defined]
    writes = Counter[str]()

    def twentieth_write(request: Any) -> bool:
        writes["n"] += is_write(request.method, request.path)
        return writes["n"] >= 20

    revoke = Hook(world.contacts, twentieth_write, lambda _r: registry.issued.clear())
    one_clean_run(world, **oauth_target())
    revoke.uninstall()
    assert revoke.done.is_set()
    grants = token_grants(world)
    refused = statuses(world)[401]
    assert refused >= 1 and len(grants) == 1
    comparison = assert_like_clean_run(world, base)
    record(
        case="contacts-token-revoked",
        area="Contacts API / OAuth",
        fault="access token refused mid-run (expired early on the server)",
        injection="every issued access token dropped by the sandbox after 20 writes",
        outcome=f"{times(refused, 401)} from concurrent writers, exactly 1 refresh, the refused "
        "requests repeated",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_daily_quota_nearly_used_up_stops_cleanly_and_the_next_run_resumes(
    world_factory, baseline, record
):
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED, contacts={"daily_limit": 1000})
    world.configure_contacts(daily_used=1000 - 100 - 30)  # 30 requests above the reserve
    first = world.run()
    assert first.target_returncode != 0
    message = first.last_error()
    assert "daily quota" in message and "run again after the daily quota resets" in message
    assert first.states == []
    done_first = len(world.writes())
    assert 0 < done_first < base.writes
    assert statuses(world)[429] == 0  # it stopped before the API had to refuse anything
    world.configure_contacts(daily_used=0)  # the next day
    runs = world.run_until_complete()
    comparison = assert_like_clean_run(world, base)
    total = len(world.writes())
    assert total == base.writes  # the second run wrote only what the first had not
    record(
        case="contacts-daily-quota",
        area="Contacts API",
        fault="daily quota nearly used up",
        injection="30 requests left above the configured reserve of 100",
        outcome=f"run stopped before the reserve after {done_first} writes with a clear "
        f"message, no state passed on; {len(runs)} run(s) the next day wrote the "
        f"other {total - done_first}; no write repeated",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )
