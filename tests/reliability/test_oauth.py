"""OAuth under faults, with the real target process: the rotated refresh token is stored before
anything uses it; a refresh token lost anyway is reported as exactly that, with what to do, and
recovered through the agency token when one is configured; two runs started together spend one
refresh token once."""

from __future__ import annotations

import sqlite3

from sandbox.contacts_oauth import bearer
from tests.hooks import Hook
from tests.reliability.harness import (
    AGENCY_TOKEN,
    COMPANY_ID,
    LOCATION,
    KillSwitch,
    assert_like_clean_run,
    expire_stored_token,
    login,
    note,
    oauth_target,
    person,
    singer,
    token_grants,
)

N, SEED = 40, 7


def stored_refresh_token(world) -> str | None:
    """The refresh token in the ledger's token row, read by another process's connection."""
    with sqlite3.connect(world.ledger_path) as conn:
        row = conn.execute(
            "SELECT refresh_token FROM oauth_tokens WHERE location_id = ?", (LOCATION,)
        ).fetchone()
    return row[0] if row else None


def test_rotated_refresh_token_is_stored_before_the_new_access_token_is_used(
    world_factory, baseline, record
):
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED, contacts={"access_token_ttl": 3600})
    login(world)
    expire_stored_token(world)  # the run must refresh before its first call
    seen: dict[str, str | None] = {}
    kill = KillSwitch(world.contacts, 10**9, "after")  # fired by the hook below, not by count

    def first_use(request) -> bool:
        return len(world.issued) >= 2 and bearer(request) == world.issued[-1]["access_token"]

    def check_then_kill(_request) -> None:
        seen["stored"] = stored_refresh_token(world)
        kill._kill()

    hook = Hook(world.contacts, first_use, check_then_kill, when="before")
    killed = world.run(kill=kill, target=oauth_target())
    hook.uninstall()
    kill.uninstall()
    assert hook.done.is_set() and killed.killed, killed.describe()
    rotated = world.issued[-1]["refresh_token"]
    # At the first request that carried the new access token, the new refresh token was
    # committed already: the only window for losing it is the token answer itself.
    assert seen["stored"] == rotated
    rerun = world.run(target=oauth_target())
    assert rerun.ok, rerun.describe()
    assert len(token_grants(world)) == 1  # the rerun used the stored token, no second refresh
    comparison = assert_like_clean_run(world, base)
    record(
        case="oauth-rotation-durable",
        area="OAuth",
        fault="process killed right after a refresh",
        injection="stored access token expired; pipeline SIGKILLed when the first request "
        "with the new access token arrived",
        outcome="the rotated refresh token was already committed (read from another "
        "connection); the rerun used it without a new refresh",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def lose_the_refresh_answer(world) -> None:
    """The sandbox rotates the refresh token, then the answer is lost (502)."""
    login(world)
    expire_stored_token(world)
    world.contacts_faults(
        {"kind": "commit_then_status", "method": "POST", "path": "^/oauth/token$", "status": 502}
    )


def test_lost_refresh_token_is_reported_with_what_to_do(world_factory, record):
    world = world_factory(n_contacts=N, seed=SEED)
    lose_the_refresh_answer(world)
    first = world.run(target=oauth_target())
    assert first.target_returncode != 0
    assert "POST /oauth/token answered 502" in first.last_error()
    assert "contacts-admin login" in first.last_error()  # says what to do if it was spent
    second = world.run(target=oauth_target())
    assert second.target_returncode != 0
    message = second.last_error()
    assert message.startswith("contacts_api.errors.TokenLostError: ")
    assert "refresh token" in message and "no longer valid" in message
    assert "contacts-admin login" in message and "agency_token" in message
    assert world.writes() == []  # bad auth fails before the first write
    status = world.admin("status", target=oauth_target())
    assert "refresh token: stored" in status.stdout
    record(
        case="oauth-lost-no-agency",
        area="OAuth",
        fault="rotated refresh token lost (no agency token configured)",
        injection="POST /oauth/token rotated by the sandbox, then answered 502",
        outcome="run 1 stops (502, says the token may be spent); run 2 stops with "
        "TokenLostError: 'no longer valid ... Run `contacts-admin login` again'; "
        "0 writes",
        lost=0,
        duplicates=0,
    )


def test_lost_refresh_token_is_recovered_with_the_agency_token(world_factory, baseline, record):
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED, agency=True)
    lose_the_refresh_answer(world)
    settings = oauth_target(agency_token=AGENCY_TOKEN, company_id=COMPANY_ID)
    runs = world.run_until_complete(target=settings)
    assert len(runs) == 2 and runs[0].target_returncode != 0  # the lost answer, then recovery
    minted = [e["status"] for e in world.contacts_log() if e["path"] == "/oauth/locationToken"]
    assert minted == [200]
    assert "getting a location token with the agency token" in runs[1].stderr
    comparison = assert_like_clean_run(world, base)
    record(
        case="oauth-lost-agency",
        area="OAuth",
        fault="rotated refresh token lost, agency token configured",
        injection="POST /oauth/token rotated by the sandbox, then answered 502",
        outcome="the next run's refresh is refused, it mints a location token with POST "
        "/oauth/locationToken and completes the sync",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_two_runs_started_together_spend_the_refresh_token_once(world_factory, record):
    world = world_factory(n_contacts=0, contacts={"access_token_ttl": 3600})
    login(world)
    expire_stored_token(world)
    # The refresh answer takes 3 s, so the second run reaches the lock while the first holds it.
    world.contacts_faults(
        {"kind": "slow", "method": "POST", "path": "^/oauth/token$", "delay": 3.0, "times": 2}
    )
    inputs = {"a": range(1, 6), "b": range(6, 11)}
    procs = {
        name: world.start_target(
            singer([person(i) for i in ids] + [note(100 + i, i) for i in ids]),
            target=oauth_target(),
            name=f"run-{name}",
        )
        for name, ids in inputs.items()
    }
    results = {}
    for name, (proc, _folder) in procs.items():
        out, err = proc.communicate(timeout=180)
        world.evidence.text(f"run-{name} stdout", out)
        world.evidence.text(f"run-{name} stderr", err)
        results[name] = (proc.returncode, err)
    assert [code for code, _ in results.values()] == [0, 0], "\n".join(
        err[-2000:] for _, err in results.values()
    )
    grants = token_grants(world)
    assert len(grants) == 1 and grants[0]["status"] == 200
    logs = "".join(err for _, err in results.values())
    assert "Refreshed the OAuth access token" in logs
    assert "Using the tokens another run refreshed" in logs  # they did overlap
    crm = world.crm()
    assert sorted(c["email"] for c in crm["contacts"]) == sorted(
        f"person{i}@example.com" for i in range(1, 11)
    )
    assert len(crm["notes"]) == 10
    record(
        case="oauth-two-runs",
        area="OAuth",
        fault="two runs started together",
        injection="two target processes start at once with an expired access token; the "
        "token endpoint answers after 3 s",
        outcome="exactly 1 refresh grant; the second run waited for the lock and used the "
        "rotated token; both completed",
        lost=0,
        duplicates=0,
    )
