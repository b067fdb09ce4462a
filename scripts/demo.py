"""The README's main job: a full `meltano run`, a few MOCO changes, an incremental one.

Both sandboxes run as local processes; everything talks to 127.0.0.1 only. Run it through
``scripts/demo``, which installs what it needs first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STATE_ID = "sandbox:tap-moco-to-target-contacts"


def say(text: str) -> None:
    """Write one line of the demo's output for the person watching it (stdout, flushed)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def start_sandbox(stack: ExitStack, api: str, port: int, *extra: str) -> str:
    """Start ``python -m sandbox API`` and return its URL once it answers."""
    proc = subprocess.Popen(  # noqa: S603  this interpreter running the checkout's sandbox
        [sys.executable, "-m", "sandbox", api, "--port", str(port), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    stack.callback(proc.wait, 10)
    stack.callback(proc.terminate)
    line = proc.stdout.readline() if proc.stdout else ""
    if "listening on" not in line:
        raise SystemExit(f"the {api} sandbox did not start: {line!r}")
    url = line.strip().rsplit(" ", 1)[-1]
    say(f"  {api} sandbox: {url}")
    return url


def meltano(*args: str, env: dict[str, str], quiet: bool = False) -> None:
    """``meltano ARGS`` from the repository root; exits the demo when it fails."""
    cmd = [str(BIN / "meltano"), *args]
    result = subprocess.run(  # noqa: S603  this venv's meltano with the demo's arguments
        cmd,
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
        check=False,
    )
    if result.returncode != 0:
        if quiet and result.stdout:
            say(result.stdout[-5000:])
        raise SystemExit(f"`meltano {' '.join(args)}` failed with exit code {result.returncode}")


def show_summary(path: Path, title: str) -> dict:
    """Print the target's run summary from ``path`` as a small table; returns it."""
    report = json.loads(path.read_text())
    say(f"\n{title}")
    say(f"  {'stream':<10}{'read':>7}{'created':>9}{'updated':>9}{'unchanged':>11}{'rejected':>10}")
    for stream, c in report["streams"].items():
        say(
            f"  {stream:<10}{c['read']:>7}{c['created']:>9}{c['updated']:>9}"
            f"{c['unchanged']:>11}{c['rejected']:>10}"
        )
    calls = report.get("api_calls", {})
    say(
        f"  Contacts API calls: {sum(calls.values())} "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(calls.items()))})"
    )
    say(f"  adds up (read = written + unchanged + rejected): {report['adds_up']}")
    return report


def sync(step: int, name: str, env: dict[str, str], out: Path) -> None:
    """One ``meltano run tap-moco target-contacts`` with its summary printed."""
    say(f"\n{step}) {name}: meltano run tap-moco target-contacts")
    summary = out / f"demo-summary-{step}.json"
    started = time.monotonic()
    meltano(
        "run",
        "tap-moco",
        "target-contacts",
        env={**env, "TARGET_CONTACTS_SUMMARY_PATH": str(summary)},
        quiet=True,
    )
    show_summary(summary, f"{name} done in {time.monotonic() - started:.0f} s")


def change_moco(moco: str) -> None:
    """Edit a few MOCO records the way people do during a day."""
    headers = {"Authorization": "Token token=sandbox-key"}
    people = requests.get(
        f"{moco}/api/v1/contacts/people", params={"per_page": 5}, headers=headers, timeout=10
    ).json()
    for person in people[:3]:
        r = requests.put(
            f"{moco}/api/v1/contacts/people/{person['id']}",
            headers=headers,
            json={
                "job_position": "Head of Partnerships",
                "tags": sorted(set(person["tags"]) | {"Demo"}),
            },
            timeout=10,
        )
        r.raise_for_status()
        say(
            f"  changed contact {person['id']} ({person['firstname']} {person['lastname']}): "
            "job position, tag Demo"
        )
    r = requests.post(
        f"{moco}/api/v1/comments",
        headers=headers,
        timeout=10,
        json={
            "commentable_type": "Contact",
            "commentable_id": people[0]["id"],
            "text": "<div>Called after the demo: <strong>wants a quote</strong></div>",
        },
    )
    r.raise_for_status()
    say(f"  added a note on contact {people[0]['id']}")
    todos = requests.get(f"{moco}/api/v1/todos", headers=headers, timeout=10).json()
    open_todo = next(t for t in todos if t["todoable_type"] == "Contact" and not t["completed"])
    r = requests.put(
        f"{moco}/_sandbox/todos/{open_todo['id']}", json={"completed": True}, timeout=10
    )
    r.raise_for_status()
    say(f"  completed to-do {open_todo['id']} ({open_todo['title']})")
    r = requests.post(
        f"{moco}/api/v1/contacts/people",
        headers=headers,
        timeout=10,
        json={
            "firstname": "Zoë",
            "lastname": "Neumann",
            "gender": "F",
            "work_email": "zoe.neumann@example.org",
            "tags": ["Demo"],
        },
    )
    r.raise_for_status()
    say(f"  created contact {r.json()['id']} (Zoë Neumann)")


def main() -> int:
    """Start the sandboxes, sync, change MOCO, sync again, and show what the CRM holds."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=60, help="generated MOCO contacts")
    parser.add_argument("--moco-port", type=int, default=18081)
    parser.add_argument("--contacts-port", type=int, default=18082)
    args = parser.parse_args()
    started = time.monotonic()
    out = ROOT / ".target-contacts"
    out.mkdir(exist_ok=True)
    ledger = out / "sandbox-ledger.db"
    for path in (
        ledger,
        ledger.with_name(ledger.name + "-wal"),
        ledger.with_name(ledger.name + "-shm"),
    ):
        path.unlink(missing_ok=True)  # the sandboxes start empty, so the ledger does too

    with ExitStack() as stack:
        say("Starting the sandboxes (real HTTP servers on 127.0.0.1, real rate limits)")
        moco = start_sandbox(stack, "moco", args.moco_port, "--generate", str(args.contacts))
        contacts = start_sandbox(stack, "contacts", args.contacts_port)
        env = {
            **os.environ,
            "TAP_MOCO_BASE_URL": moco,
            "TARGET_CONTACTS_BASE_URL": contacts,
            "MELTANO_ENVIRONMENT": "sandbox",
        }
        say("\nmeltano install")
        meltano("install", env=env, quiet=True)
        meltano("state", "clear", "--force", STATE_ID, env=env, quiet=True)

        sync(1, "Full sync", env, out)
        say("\n2) Changing a few records in MOCO")
        change_moco(moco)
        sync(3, "Incremental sync", env, out)

        state = requests.get(f"{contacts}/_sandbox/state", timeout=10).json()
        done = sum(1 for t in state["tasks"] if t.get("completed"))
        say(
            f"\nThe Contacts sandbox now holds {len(state['contacts'])} contacts, "
            f"{len(state['tasks'])} tasks ({done} completed) and {len(state['notes'])} notes."
        )
        rejects = subprocess.run(  # noqa: S603  this venv's meltano
            [str(BIN / "meltano"), "invoke", "target-contacts:rejects-list"],
            cwd=ROOT,
            env=env,
            text=True,
            capture_output=True,
            check=False,
        )
        say("\nRejected records (kept in the ledger with their reason):")
        say("  " + (rejects.stdout.strip() or rejects.stderr.strip()[-2000:]).replace("\n", "\n  "))
    say(f"\nDemo finished in {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
