"""A stand-in for ``meltano run``: records each invocation, then waits, sleeps and exits.

It appends one JSON line when it starts and one when it ends (``phase``, ``direction``,
``run_id`` from the listener's ``SYNC_LISTENER_RUN_ID``, ``pid``, ``time``, ``reconcile`` (the
taps' RECONCILE_NOW variables it got), and ``status`` at the end) to ``--log``. In
``--control``: while a file ``hold`` exists it waits (so a test decides when a run ends); a file
``fail-<direction>`` holding a number N makes the next N runs of that direction exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def record(log: Path, **fields: object) -> None:
    line = json.dumps({**fields, "time": time.time()}) + "\n"
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def failures_left(control: Path, direction: str) -> bool:
    """Whether this run must fail; spends one of the failures asked for."""
    path = control / f"fail-{direction}"
    if not path.exists():
        return False
    left = int(path.read_text() or "0")
    if left <= 0:
        return False
    path.write_text(str(left - 1))
    return True


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--direction", required=True)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()
    run_id = os.environ.get("SYNC_LISTENER_RUN_ID", "?")
    common = {
        "direction": args.direction,
        "run_id": run_id,
        "pid": os.getpid(),
        "meltano_run_id": os.environ.get("MELTANO_RUN_ID"),
        # The taps' forced reconciliation pass, set for a run that covers a delete event.
        "reconcile": {
            name: os.environ[name]
            for name in ("TAP_MOCO_RECONCILE_NOW", "TAP_CONTACTS_RECONCILE_NOW")
            if name in os.environ
        },
        # The listener's own settings (the webhook key among them) must not reach the run.
        "leaked": sorted(
            name
            for name in os.environ
            if name.startswith("SYNC_LISTENER_")
            and name
            not in ("SYNC_LISTENER_RUN_ID", "SYNC_LISTENER_DIRECTION", "SYNC_LISTENER_LOCATION_ID")
        ),
    }
    record(args.log, phase="start", **common)
    while (args.control / "hold").exists():
        time.sleep(0.02)
    time.sleep(args.sleep)
    status = 1 if failures_left(args.control, args.direction) else 0
    record(args.log, phase="end", status=status, **common)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
