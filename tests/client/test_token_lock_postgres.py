"""The OAuth refresh lock on a PostgreSQL ledger (``SELECT ... FOR UPDATE`` on the token row):
processes that need a refresh at the same moment spend the sandbox's single-use refresh token
once, and the token stored after is the one that works. test_auth.py has the same on SQLite."""

from __future__ import annotations

import multiprocessing

from sync_ledger.db import make_engine
from sync_ledger.tokens import TokenStore
from tests import postgres as throwaway

from .conftest import LOCATION, request_log
from .oauth_worker import list_contacts_in_a_process
from .test_auth import CLIENT_ID, CLIENT_SECRET, expire, logged_in, refresh_grants, spend

# The session's PostgreSQL cluster and a database per test (tests/postgres.py).
postgres = throwaway.postgres
postgres_url = throwaway.postgres_url
PROCESSES = 3


def test_processes_refreshing_at_once_spend_the_refresh_token_once_on_postgres(
    contacts_sandbox_factory, postgres_url
):
    # Every answer takes 0.3 s: without the lock, each process would refresh with the same token.
    sandbox = contacts_sandbox_factory(rate_limit=100_000, latency=0.3)
    store = TokenStore(make_engine(postgres_url))
    login = logged_in(sandbox, store)
    expire(store, login)
    spawn = multiprocessing.get_context("spawn")
    together, results = spawn.Barrier(PROCESSES), spawn.Queue()
    procs = [
        spawn.Process(
            target=list_contacts_in_a_process,
            kwargs={
                "ledger_url": postgres_url,
                "base_url": sandbox.url,
                "location_id": LOCATION,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "barrier": together,
                "results": results,
            },
        )
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    try:
        outcomes = [results.get(timeout=60) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()

    assert outcomes == [("ok", 0)] * PROCESSES
    assert len(refresh_grants(sandbox)) == 1
    assert [e["status"] for e in request_log(sandbox) if e["path"] == "/contacts/"] == [
        200
    ] * PROCESSES
    stored = store.load(LOCATION)
    assert stored is not None and stored.refresh_token != login.refresh_token
    # The login's refresh token is spent; the one the refreshing process stored is the live one.
    assert spend(sandbox, login.refresh_token).json()["message"] == (
        "Invalid grant: refresh token is invalid"
    )
    assert spend(sandbox, stored.refresh_token).status_code == 200
