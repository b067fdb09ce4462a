"""The run lock (sync_ledger.runlock): one writing run per location and target, a lease kept by a
heartbeat. Each test runs on SQLite and on PostgreSQL (``ledger_url``, tests/ledger/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import inspect

from sync_ledger import runlock
from sync_ledger.db import make_engine
from sync_ledger.runlock import NO_RUN_LOCK, RunLock, RunLockBusy, RunLockLost, run_lock_for

LOCATION = "loc-1"
LANE = "target-contacts"
ROOT = str(Path(__file__).resolve().parents[2])


def until(condition, what: str, *, tries: int = 600, pause: float = 0.05):
    """Poll ``condition`` until it is truthy (a guard against hanging, not a timed assertion)."""
    for _ in range(tries):
        value = condition()
        if value:
            return value
        time.sleep(pause)
    raise AssertionError(f"never happened: {what}")


def test_a_second_run_stops_at_once_naming_the_holder_and_other_lanes_are_free(ledger_url):
    engine = make_engine(ledger_url)
    assert "run_locks" in inspect(engine).get_table_names()
    first = RunLock(engine, LOCATION, LANE, holder="target-contacts (pid 1 on runner-a)")
    first.acquire(0)
    second = RunLock(engine, LOCATION, LANE, holder="target-contacts (pid 2 on runner-b)")
    with pytest.raises(RunLockBusy) as busy:
        second.acquire(0)
    message = str(busy.value)
    assert "another run is writing target-contacts on location loc-1" in message
    assert "target-contacts (pid 1 on runner-a), running since" in message
    assert "did not wait (run_lock_wait_seconds=0)" in message
    assert "passes no state on" in message
    # The other direction of the same location, and the same target on another location, are free.
    for location, lane in ((LOCATION, "target-moco"), ("loc-2", LANE)):
        other = RunLock(engine, location, lane)
        other.acquire(0)
        other.release()
    first.release()
    first.release()  # idempotent
    second.acquire(0)
    assert second.current().holder == "target-contacts (pid 2 on runner-b)"
    second.release()
    assert second.current() is None


def test_a_waiting_run_takes_the_lock_once_the_holder_releases_it(ledger_url, monkeypatch, caplog):
    engine = make_engine(ledger_url)
    first = RunLock(engine, LOCATION, LANE, holder="the first run")
    first.acquire(0)
    second = RunLock(engine, LOCATION, LANE, holder="the second run")
    pauses = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            first.release()  # the first run ends while the second waits

    monkeypatch.setattr(
        runlock, "time", SimpleNamespace(monotonic=time.monotonic, time=time.time, sleep=sleep)
    )
    with caplog.at_level("WARNING", logger="sync_ledger.runlock"):
        second.acquire(600, heartbeat=False)
    assert len(pauses) == 2
    assert second.current().holder == "the second run"
    logged = caplog.text
    assert "waiting up to" in logged and "held by the first run" in logged
    assert "took the run lock of target-contacts on location loc-1 after waiting" in logged
    second.release()


def test_the_heartbeat_keeps_the_lease_and_a_holder_that_lost_it_learns_so(ledger_url):
    engine = make_engine(ledger_url)
    kept = RunLock(engine, "loc-kept", LANE, lease_seconds=2, holder="the kept run")
    kept.acquire(0)
    start = kept.current()
    # Past the first lease's end, the heartbeat has moved it on: the lock is still held.
    until(
        lambda: kept.current() and kept.current().heartbeat_at > start.acquired_at + 2,
        "a heartbeat after the first lease's end",
    )
    assert RunLock(engine, "loc-kept", LANE).try_acquire().holder == "the kept run"
    kept.check()
    kept.release()

    # A holder without a heartbeat (a stalled process) loses the lock when its lease ends.
    stalled = RunLock(engine, LOCATION, LANE, lease_seconds=0.5, holder="the stalled run")
    stalled.acquire(0, heartbeat=False)
    other = RunLock(engine, LOCATION, LANE, holder="the other run")
    other.acquire(60)
    assert not stalled.renew()
    stalled._start_heartbeat()  # it wakes up: its first heartbeat finds the lock taken
    lost = until(lambda: _lost(stalled), "the stalled run noticing")
    assert "lost the run lock of target-contacts on location loc-1" in lost
    assert "the other run" in lost
    stalled.release()  # gives nothing back: the lock is the other run's
    assert other.current().holder == "the other run"
    other.release()


def _lost(lock: RunLock) -> str | None:
    try:
        lock.check()
    except RunLockLost as exc:
        return str(exc)
    return None


HOLD = """
import json, sys, time
from sync_ledger.db import make_engine
from sync_ledger.runlock import RunLock, run_lock_for
url, mode = sys.argv[1], sys.argv[2]
if mode == "exit":
    run_lock_for("target-contacts", {"ledger_url": url, "location_id": "loc-1"})
    print("held", flush=True)
    sys.exit(0)  # no release: the interpreter's exit gives the lock back
lock = RunLock(make_engine(url), "loc-1", "target-contacts", lease_seconds=1)
lock.acquire(0)
print("held", flush=True)
time.sleep(600)
"""


def _holder_process(ledger_url: str, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, ledger_url, mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_holder_that_exits_or_is_killed_frees_the_lock(ledger_url):
    engine = make_engine(ledger_url)
    # A run that ends without releasing (an error, sys.exit) gives the lock back as it exits.
    proc = _holder_process(ledger_url, "exit")
    assert proc.wait(30) == 0
    assert RunLock(engine, LOCATION, LANE).current() is None

    # A run killed outright blocks others until its lease ends, then the lock is free.
    proc = _holder_process(ledger_url, "hold")
    held = RunLock(engine, LOCATION, LANE).current()
    assert held is not None and f"pid {proc.pid}" in held.holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    after = RunLock(engine, LOCATION, LANE, holder="the next run")
    after.acquire(60)
    assert after.current().holder == "the next run"
    after.release()


def test_run_lock_settings(ledger_url):
    assert run_lock_for(LANE, {"dry_run": True, "ledger_url": ledger_url}) is NO_RUN_LOCK
    with pytest.raises(ValueError, match=r"TARGET_MOCO_RUN_LOCK_WAIT_SECONDS"):
        run_lock_for("target-moco", {"ledger_url": ledger_url, "run_lock_wait_seconds": -1})
    lock = run_lock_for(LANE, {"ledger_url": ledger_url, "location_id": LOCATION})
    assert isinstance(lock, RunLock)
    assert json.dumps(runlock.WAIT_SETTING)  # the schema added to every LedgerTarget's config
    lock.release()
