"""tap-contacts and target-contacts as two real processes at once on one location: together
they keep the Contacts API's real limit of 100 requests / 10 s, with no 429 answer.

Both plugins are configured with that very limit and take every request's slot from the one
budget in their shared ledger file, holding it for a window from the request's answer (the
sandbox counts a request before it answers), so that a busy machine's delays cannot add up to a
429. Without the shared budget the two would send about twice the limit together.
"""

from __future__ import annotations

import bisect
import json
import os
import subprocess
from typing import TYPE_CHECKING, Any

from tests.tap_contacts.support import ROOT, request_log, seed, tap_command, tap_config
from tests.target.singer import BIN, messages, note, person

if TYPE_CHECKING:
    from pathlib import Path

LIMIT = 100
WINDOW = 10.0
TAP_CONTACTS = 60
TARGET_RECORDS = 50


def busiest_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def test_tap_and_target_at_once_share_the_location_budget(contacts_sandbox_factory, tmp_path: Path):
    sandbox = contacts_sandbox_factory(rate_limit=LIMIT, rate_window=WINDOW)
    seed(sandbox, generate={"contacts": TAP_CONTACTS, "seed": 5})
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    shared: dict[str, Any] = {
        "ledger_url": ledger,
        "rate_limit_requests": LIMIT,
        "rate_limit_window_seconds": WINDOW,
        "max_concurrency": 8,
    }
    tap_path = tmp_path / "tap.json"
    tap_path.write_text(json.dumps({**tap_config(sandbox), **shared, "task_read": "per_contact"}))
    target_path = tmp_path / "target.json"
    target_path.write_text(
        json.dumps(
            {
                "base_url": sandbox.url,
                "location_id": "sandbox-location",
                "private_integration_token": "sandbox-token",
                "default_phone_region": "DE",
                **shared,
            }
        )
    )
    records = [person(i) for i in range(1, TARGET_RECORDS + 1)]
    records += [note(1000 + i, i) for i in range(1, TARGET_RECORDS + 1)]
    target_input = "".join(json.dumps(m) + "\n" for m in messages(records))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}

    with (tmp_path / "tap.out").open("w") as tap_out, (tmp_path / "tap.err").open("w") as tap_err:
        tap = subprocess.Popen(
            tap_command(tap_path), stdout=tap_out, stderr=tap_err, cwd=tmp_path, env=env
        )
        target = subprocess.run(
            [str(BIN / "target-contacts"), "--config", str(target_path)],
            input=target_input,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=600,
            check=False,
        )
        tap_code = tap.wait(timeout=600)

    assert target.returncode == 0, target.stderr[-3000:]
    assert tap_code == 0, (tmp_path / "tap.err").read_text()[-3000:]
    tap_records = [
        json.loads(line)
        for line in (tmp_path / "tap.out").read_text().splitlines()
        if '"RECORD"' in line
    ]
    # The seeded contacts, and whichever the target created before the tap's read passed them.
    assert sum(m["stream"] == "contacts" for m in tap_records) >= TAP_CONTACTS
    log = request_log(sandbox)
    assert [e for e in log if e["status"] == 429] == []
    agents = {"tap": "tap-contacts/", "target": "target-contacts/"}
    started = {
        role: sorted(
            e["time"] - e["duration"] for e in log if e["headers"]["user-agent"].startswith(agent)
        )
        for role, agent in agents.items()
    }
    # Both ran at once for at least one full window (however late a busy machine started one
    # of them): each alone wants more than the limit, so without the shared budget that window
    # would have held about twice the limit.
    overlap = min(started["tap"][-1], started["target"][-1]) - max(
        started["tap"][0], started["target"][0]
    )
    assert overlap >= WINDOW, f"the two ran at once for only {overlap:.1f} s"
    everyone = started["tap"] + started["target"]
    assert len(started["tap"]) > LIMIT / 2
    assert len(started["target"]) > LIMIT / 2
    assert len(everyone) > LIMIT  # more than one window's worth: the limit was in play
    assert busiest_window(everyone, WINDOW) <= LIMIT
