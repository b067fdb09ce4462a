"""The final scan: no secret used or issued anywhere in the suite appears in anything it captured.

Runs last among the reliability tests of its process (file order; with pytest-xdist each worker
also scans its own captures when it ends, see the ``evidence`` fixture). It first makes one run
that combines OAuth with an encrypted store, rotating tokens, Contacts API and MOCO faults and a
rejected record, so the scan has its own material when it runs alone; then it searches every
captured
text: stdout and stderr of every process (logs, errors, tracebacks, SUMMARY lines), the state
messages Meltano would store, summary and plan files, the sandboxes' request logs, the ledger's
rejects, and the operator CLI's output. The secrets: the private integration token, the MOCO key,
the OAuth client secret, the agency token, the encryption key, every authorization code, and
every access and refresh token the Contacts sandbox issued during the session.
"""

from __future__ import annotations

from tests.reliability.harness import (
    AGENCY_TOKEN,
    CLIENT_SECRET,
    COMPANY_ID,
    ENCRYPTION_KEY,
    MOCO_KEY,
    PIT,
    login,
    oauth_target,
)


def test_no_secret_appears_in_anything_the_suite_captured(world_factory, evidence, record):
    world = world_factory(
        n_contacts=30, seed=3, latency=0.02, agency=True, contacts={"access_token_ttl": 2}
    )
    login(world, encryption_key=ENCRYPTION_KEY)
    world.contacts_faults(
        {"kind": "status", "status": 429, "headers": {"Retry-After": "1"}, "times": 3, "after": 5},
        {
            "kind": "commit_then_status",
            "method": "POST",
            "path": "^/contacts/$",
            "status": 502,
            "times": 2,
            "after": 3,
        },
        {"kind": "status", "status": 401, "times": 1, "after": 20},
    )
    world.moco_faults({"kind": "status", "status": 503, "times": 1, "after": 2})
    settings = oauth_target(
        token_encryption_key=ENCRYPTION_KEY,
        agency_token=AGENCY_TOKEN,
        company_id=COMPANY_ID,
        max_concurrency=2,
    )
    runs = world.run_until_complete(target=settings, tap={"page_size": 10})
    assert runs[-1].summary is not None and runs[-1].summary["adds_up"]
    world.run(tap={"api_key": "wrong-key-Pq83Zx71"})  # a failing run's output is scanned too
    world.evidence.secret("wrong-key-Pq83Zx71")
    world.admin("status", target=settings)
    world.admin("rejects", "list", target=settings)
    world.collect()

    secrets = evidence.secrets
    for fixed in (PIT, MOCO_KEY, CLIENT_SECRET, AGENCY_TOKEN, ENCRYPTION_KEY):
        assert fixed in secrets
    issued = [s for s in secrets if s.startswith(("at-", "rt-"))]
    assert len(issued) >= 4  # this run alone rotated tokens several times
    assert evidence.size > 20_000  # logs of real processes, not an empty list
    leaks = evidence.leaks()
    assert leaks == [], f"secrets found in captured output: {leaks[:20]}"
    record(
        case="secrets-scan",
        area="Secrets",
        fault="secrets in logs, errors, state, summaries, request logs",
        injection=f"{len(evidence.texts)} captured texts ({evidence.size // 1024} KiB) from "
        f"the reliability tests of its test process, searched for {len(secrets)} "
        f"secrets ({len(issued)} of them OAuth tokens issued during the session)",
        outcome="none found",
        lost=0,
        duplicates=0,
    )
