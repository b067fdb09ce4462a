"""Overlapping runs of one sync: no duplicate, nothing lost, no refresh token spent twice.

- Under Meltano (system database on SQLite, then on PostgreSQL): a second ``meltano run`` of the
  same state id while the first is writing stops with Meltano's message naming ``--force``; a
  third with ``--force`` gets past Meltano, and its target waits for the first one's run lock,
  then finds everything written.
- target-contacts run outside Meltano (ledger on SQLite, then on PostgreSQL), OAuth with an
  expired access token: two processes on the same input started together, one writes and the
  other waits for the run lock and then writes nothing; a third that may not wait
  (``run_lock_wait_seconds: 0``) stops naming the running one and passes no state on. The refresh
  token is spent once.

The first writer is held at its first API request (a sandbox hook) until the others are where the
test wants them, so the overlap is an event, not a race.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import requests

from sandbox.contacts import ContactsSandbox
from sandbox.moco import MocoSandbox
from sandbox.server import RunningSandbox
from sync_ledger.db import make_engine
from sync_ledger.ledger import IdLedger
from sync_ledger.tokens import TokenStore
from tests import postgres as throwaway
from tests.client.test_auth import (
    CLIENT_ID,
    CLIENT_SECRET,
    expire,
    logged_in,
    refresh_grants,
    spend,
)
from tests.e2e import test_meltano_run as on_sqlite
from tests.e2e.conftest import BIN, Pipeline
from tests.hooks import Hook
from tests.target.singer import messages, note, person, sandbox_state, task

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sandbox.server import Request

# The session's PostgreSQL cluster and a database per test (tests/postgres.py).
postgres = throwaway.postgres
postgres_url = throwaway.postgres_url
STATE_ID = "sandbox:tap-moco-to-target-contacts"
LOCATION = "sandbox-location"
WAITING = "waiting up to"


def until(condition, what: str, *, tries: int = 1200, pause: float = 0.1):
    """Poll ``condition`` until it is truthy (a guard against hanging, not a timed assertion)."""
    for _ in range(tries):
        value = condition()
        if value:
            return value
        time.sleep(pause)
    raise AssertionError(f"never happened: {what}")


def api_request(request: Request) -> bool:
    """A Contacts API call (not the OAuth routes): only a run holding the run lock makes one."""
    return not request.path.startswith(("/oauth", "/_sandbox"))


def database_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest, name: str) -> str:
    """A fresh database: a SQLite file in ``tmp_path``, or a database of the session's cluster."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'{name}.db'}"
    return str(request.getfixturevalue("postgres").database(name))


# --- under Meltano --------------------------------------------------------------------------
def system_rows(system_database: str, query: str) -> list[Any]:
    """The first column of ``query`` (one ``?`` for STATE_ID) in Meltano's system database."""
    if system_database.startswith("sqlite:///"):
        with sqlite3.connect(system_database[len("sqlite:///") :]) as conn:
            return [r[0] for r in conn.execute(query, (STATE_ID,))]
    url = system_database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(query.replace("?", "%s"), (STATE_ID,))]


def runs(system_database: str) -> list[str]:
    """The states of the runs of STATE_ID in Meltano's system database."""
    return system_rows(system_database, "SELECT state FROM runs WHERE job_name = ? ORDER BY id")


@dataclass
class FreshPipeline(Pipeline):
    """A Pipeline with a system database of its own (fresh: no state, no runs)."""

    system_database: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {
            **super().env,
            "MELTANO_DATABASE_URI": self.system_database,
            # The first run is held at its first call while the others start: no timeout then.
            "TARGET_CONTACTS_REQUEST_TIMEOUT": "600",
        }


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_pipeline(
    meltano_project: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[FreshPipeline]:
    """Both sandboxes (MOCO with 20 generated people), Meltano's system database on SQLite, then
    on PostgreSQL."""
    system_database = database_url(request.param, tmp_path, request, "meltano_system")
    with (
        RunningSandbox(MocoSandbox(rate_limit=100_000)) as moco,
        RunningSandbox(ContactsSandbox(rate_limit=100_000)) as contacts,
    ):
        requests.post(
            f"{moco.url}/_sandbox/seed", timeout=30, json={"generate": {"contacts": 20, "seed": 5}}
        ).raise_for_status()
        yield FreshPipeline(meltano_project, moco, contacts, tmp_path, system_database)


def test_a_second_meltano_run_of_the_same_state_id_stops_and_a_forced_one_waits(
    fresh_pipeline: FreshPipeline, tmp_path: Path
) -> None:
    pipeline = fresh_pipeline
    system_database = pipeline.system_database
    seen: dict[str, Any] = {}
    forced_log = tmp_path / "forced.log"

    def while_the_first_writes(_request: Request) -> None:
        # The first run is writing: its job is RUNNING in the system database.
        seen["runs_while_first_writes"] = runs(system_database)
        seen["second"] = pipeline.meltano("run", "tap-moco", "target-contacts", check=False)
        with forced_log.open("w") as log:
            seen["forced"] = subprocess.Popen(
                [str(BIN / "meltano"), "run", "--force", "tap-moco", "target-contacts"],
                cwd=pipeline.project,
                env={**pipeline.env, "TARGET_CONTACTS_SUMMARY_PATH": str(tmp_path / "f.json")},
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        until(lambda: WAITING in forced_log.read_text(), "the forced run's target waiting")

    hook = Hook(pipeline.contacts, api_request, while_the_first_writes, when="before")
    try:
        first = pipeline.run()
    finally:
        hook.uninstall()
    forced = seen["forced"]
    assert forced.wait(600) == 0, forced_log.read_text()[-4000:]

    # The second run stopped before starting anything, with Meltano's message.
    assert seen["runs_while_first_writes"] == ["RUNNING"]
    second = seen["second"]
    assert second.returncode != 0
    output = second.stdout + second.stderr
    assert f"Another '{STATE_ID}' pipeline is already running" in output
    assert "'--force' option" in output
    # The forced run got past Meltano, its target waited for the first one and wrote nothing.
    log = forced_log.read_text()
    assert "held by target-contacts (pid" in log
    assert "took the run lock of target-contacts on location sandbox-location after" in log
    forced_summary = json.loads((tmp_path / "f.json").read_text())
    assert all(s["created"] == s["updated"] == 0 for s in forced_summary["streams"].values())
    # No duplicate, nothing lost: every MOCO person the mapping sends is in the CRM once.
    crm = pipeline.contacts_state()
    want = on_sqlite.expected_contacts(pipeline.moco_state())
    assert len(crm["contacts"]) == len(want) == first["streams"]["contacts"]["created"]
    for person_ in want.values():
        on_sqlite.match(crm["contacts"], person_)
    # Two runs in the system database, both successful; the state is there.
    assert runs(system_database) == ["SUCCESS", "SUCCESS"]
    (stored,) = system_rows(system_database, "SELECT completed_state FROM state WHERE state_id = ?")
    assert set(json.loads(stored)["singer_state"]["bookmarks"]) >= {"contacts", "tasks", "notes"}


# --- target-contacts outside Meltano -------------------------------------------------------------
N = 8
STATE = {"bookmarks": {"contacts": {"replication_key_value": "2026-11-30T12:00:00Z"}}}


def _start_target(
    config: dict[str, Any], stdin: str, workdir: Path, name: str
) -> tuple[subprocess.Popen[str], Path, Path]:
    config_path = workdir / f"{name}.config.json"
    config_path.write_text(json.dumps(config))
    out, err = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    proc = subprocess.Popen(
        [str(BIN / "target-contacts"), "--config", str(config_path)],
        stdin=subprocess.PIPE,
        stdout=out.open("w"),
        stderr=err.open("w"),
        text=True,
        cwd=workdir,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdin is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    return proc, out, err


def _summary(stderr: str) -> dict[str, Any]:
    line = next(x for x in stderr.splitlines() if x.startswith("SUMMARY "))
    return json.loads(line[len("SUMMARY ") :])


@pytest.mark.parametrize("ledger", ["sqlite", "postgresql"])
def test_targets_started_together_on_one_location_write_once(
    tmp_path: Path, request: pytest.FixtureRequest, ledger: str
) -> None:
    ledger_url = database_url(ledger, tmp_path, request, "ledger")
    records = [person(i) for i in range(1, N + 1)]
    records += [task(100 + i, i) for i in range(1, N + 1)] + [
        note(200 + i, i) for i in range(1, N + 1)
    ]
    stdin = "".join(json.dumps(m) + "\n" for m in messages(records, state=STATE))
    with RunningSandbox(ContactsSandbox(rate_limit=100_000)) as sandbox:
        store = TokenStore(make_engine(ledger_url))
        login = logged_in(sandbox, store)
        expire(store, login)  # every process starts needing a refresh
        config = {
            "base_url": sandbox.url,
            "location_id": LOCATION,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "ledger_url": ledger_url,
            "default_phone_region": "DE",
            "max_concurrency": 4,
            "request_timeout": 600,
        }
        procs: dict[str, tuple[subprocess.Popen[str], Path, Path]] = {}

        def while_the_first_writes(_request: Request) -> None:
            # One of the two has the lock and is writing; the other waits for it.
            until(
                lambda: any(WAITING in err.read_text() for _, _, err in procs.values()),
                "the other target waiting for the run lock",
            )
            # A third that may not wait stops at once, naming the run that writes.
            procs["impatient"] = _start_target(
                {**config, "run_lock_wait_seconds": 0}, stdin, tmp_path, "impatient"
            )
            procs["impatient"][0].wait(120)

        hook = Hook(sandbox, api_request, while_the_first_writes, when="before")
        try:
            for name in ("a", "b"):
                procs[name] = _start_target(config, stdin, tmp_path, name)
            for name in ("a", "b"):
                assert procs[name][0].wait(300) == 0, procs[name][2].read_text()[-4000:]
        finally:
            hook.uninstall()
            for proc, _, _ in procs.values():
                if proc.poll() is None:
                    proc.kill()
        assert hook.done.is_set()
        stderr = {name: err.read_text() for name, (_, _, err) in procs.items()}
        stdout = {name: out.read_text() for name, (_, out, _) in procs.items()}
        writer, waiter = ("a", "b") if WAITING in stderr["b"] else ("b", "a")
        assert WAITING not in stderr[writer]
        assert "took the run lock of target-contacts on location sandbox-location" in stderr[waiter]

        # The writer wrote everything; the waiter found it written and wrote nothing.
        created = _summary(stderr[writer])["streams"]
        assert {s: c["created"] for s, c in created.items()} == {
            "contacts": N,
            "tasks": N,
            "notes": N,
        }
        for counts in _summary(stderr[waiter])["streams"].values():
            assert (counts["read"], counts["unchanged"]) == (N, N)
        # Both passed the state on once done; the impatient one stopped before any write.
        for name in (writer, waiter):
            assert [json.loads(x) for x in stdout[name].splitlines()] == [STATE]
        impatient = procs["impatient"][0]
        assert impatient.returncode != 0
        assert stdout["impatient"] == ""
        assert (
            "another run is writing target-contacts on location sandbox-location"
            in (stderr["impatient"])
        )
        assert f"target-contacts (pid {procs[writer][0].pid} on" in stderr["impatient"]
        assert "passes no state on" in stderr["impatient"]

        # No duplicate, nothing lost.
        crm = sandbox_state(sandbox.url)
        assert sorted(c["email"] for c in crm["contacts"]) == sorted(
            r["email"] for s, r in records if s == "contacts"
        )
        assert Counter(t["title"] for t in crm["tasks"]) == Counter(
            r["title"] for s, r in records if s == "tasks"
        )
        assert len(crm["notes"]) == N
        assert IdLedger(make_engine(ledger_url), LOCATION).link_count() == 3 * N
        # One refresh for three processes; the stored refresh token is the live one.
        assert len(refresh_grants(sandbox)) == 1
        stored = store.load(LOCATION)
        assert stored is not None
        assert spend(sandbox, login.refresh_token).status_code != 200
        assert spend(sandbox, stored.refresh_token).status_code == 200
