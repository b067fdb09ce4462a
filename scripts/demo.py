"""The README's main job, both ways and in real time, against local sandboxes.

1. A full `meltano run tap-moco target-contacts`, a few MOCO changes, an incremental run.
2. A few changes in the CRM (a note with markup, a tag, an appointment) and one in MOCO, then
   `meltano run two-way-sync` twice: the changes cross over, and the second cycle writes nothing.
3. The webhook listener (`meltano invoke sync-listener`), subscribed to MOCO's events: a MOCO edit
   reaches the CRM within seconds.

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
STATE_IDS = ("sandbox:tap-moco-to-target-contacts", "sandbox:tap-contacts-to-target-moco")
MOCO = {"Authorization": "Token token=sandbox-key"}
CRM = {"Authorization": "Bearer sandbox-token", "Version": "2021-07-28"}
#: The demo's MOCO account is on MOCO's unlimited plan (1,200 requests per 2 minutes).
MOCO_LIMIT = "1200"
WAIT_SECONDS = 120


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


def show_summary(path: Path, title: str, api: str = "Contacts API") -> dict:
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
        f"  {api} calls: {sum(calls.values())} "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(calls.items()))})"
    )
    for stream, won in report.get("conflicts", {}).items():
        say(f"  conflicts in {stream}: {won}")
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


def writes(url: str) -> int:
    """How many data-changing requests an API sandbox logged since its log was cleared."""
    log = requests.get(f"{url}/_sandbox/requests", timeout=10).json()
    return sum(
        1
        for r in log
        if r["method"] in ("POST", "PUT", "PATCH", "DELETE")
        and not r["path"].endswith("/search")
        and not r["path"].startswith("/oauth")
    )


def two_way(step: int, name: str, env: dict[str, str], out: Path, urls: tuple[str, str]) -> None:
    """One ``meltano run two-way-sync`` with both summaries and the writes per API."""
    say(f"\n{step}) {name}: meltano run two-way-sync")
    for url in urls:
        requests.delete(f"{url}/_sandbox/requests", timeout=10)
    paths = {name: out / f"demo-{step}-{name}.json" for name in ("target-moco", "target-contacts")}
    started = time.monotonic()
    meltano(
        "run",
        "two-way-sync",
        env={
            **env,
            "TARGET_MOCO_SUMMARY_PATH": str(paths["target-moco"]),
            "TARGET_CONTACTS_SUMMARY_PATH": str(paths["target-contacts"]),
        },
        quiet=True,
    )
    elapsed = time.monotonic() - started
    show_summary(paths["target-moco"], "CRM -> MOCO (target-moco)", "MOCO")
    show_summary(paths["target-contacts"], "MOCO -> CRM (target-contacts)")
    say(
        f"  {name} done in {elapsed:.0f} s: {writes(urls[0])} write(s) in MOCO, "
        f"{writes(urls[1])} write(s) in the CRM"
    )


def change_crm(contacts: str, moco: str) -> None:
    """A person works in the CRM: a note with markup, a tag, an appointment; and one MOCO edit."""
    crm = requests.get(
        f"{contacts}/contacts/",
        params={"locationId": "sandbox-location", "limit": 3},
        headers=CRM,
        timeout=10,
    ).json()["contacts"]
    first, second = crm[0], crm[1]
    requests.post(
        f"{contacts}/contacts/{first['id']}/notes",
        headers=CRM,
        json={"body": "Asked for <b>pricing</b> & a demo <script>alert(1)</script>"},
        timeout=10,
    ).raise_for_status()
    say(f"  CRM: a note with markup on {first['firstName']} {first['lastName']}")
    requests.post(
        f"{contacts}/contacts/{first['id']}/tags", headers=CRM, json={"tags": ["vip"]}, timeout=10
    ).raise_for_status()
    say(f"  CRM: tag vip on {first['firstName']} {first['lastName']}")
    requests.post(
        f"{contacts}/_sandbox/appointments",
        json={
            "contactId": second["id"],
            "calendarId": "cal-demo",
            "title": "Kick-off",
            "appointmentStatus": "confirmed",
            "startTime": "2026-12-08 09:00:00",
            "endTime": "2026-12-08 10:00:00",
        },
        timeout=10,
    ).raise_for_status()
    say(f"  CRM: an appointment with {second['firstName']} {second['lastName']}")
    people = requests.get(
        f"{moco}/api/v1/contacts/people", params={"per_page": 3}, headers=MOCO, timeout=10
    ).json()
    person = people[-1]
    requests.put(
        f"{moco}/_sandbox/people/{person['id']}",
        json={"lastname": f"{person['lastname']}-Berg"},
        timeout=10,
    ).raise_for_status()
    name = f"{person['firstname']} {person['lastname']}"
    say(f"  MOCO (web UI): {name} is now {person['lastname']}-Berg")


def real_time(env: dict[str, str], moco: str, contacts: str) -> None:
    """Start the listener, subscribe it to MOCO's events, and time one edit crossing over."""
    listener = subprocess.Popen(  # noqa: S603  this venv's meltano
        [str(BIN / "meltano"), "invoke", "sync-listener", "--port", "0"],
        cwd=ROOT,
        env={**env, "SYNC_LISTENER_DEBOUNCE_SECONDS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = listener.stdout.readline() if listener.stdout else ""
        if "listening on" not in line:
            raise SystemExit(f"the listener did not start: {line!r}")
        url = line.strip().rsplit(" ", 1)[-1]
        say(f"  sync-listener: {url}")
        meltano(
            "invoke",
            "sync-listener:register-moco-webhooks",
            env={**env, "SYNC_LISTENER_PUBLIC_URL": f"{url}/webhooks/moco"},
            quiet=True,
        )
        say("  MOCO web hooks registered for Contact and Comment events")
        person = requests.get(
            f"{moco}/api/v1/contacts/people", params={"per_page": 1}, headers=MOCO, timeout=10
        ).json()[0]
        new_name = f"{person['lastname']}-Ost"
        started = time.monotonic()
        requests.put(
            f"{moco}/_sandbox/people/{person['id']}", json={"lastname": new_name}, timeout=10
        ).raise_for_status()
        say(f"  MOCO (web UI): {person['firstname']} {person['lastname']} is now {new_name}")
        email = person["work_email"] or person["home_email"]
        while time.monotonic() - started < WAIT_SECONDS:
            found = (
                requests.get(
                    f"{contacts}/contacts/search/duplicate",
                    params={"locationId": "sandbox-location", "email": email},
                    headers=CRM,
                    timeout=10,
                )
                .json()
                .get("contact")
                or {}
            )
            if found.get("lastName") == new_name:
                say(f"  ... and in the CRM {time.monotonic() - started:.1f} s later")
                return
            time.sleep(0.2)
        say(f"  (not in the CRM after {WAIT_SECONDS} s: see the listener's log)")
    finally:
        listener.terminate()
        listener.wait(30)


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
        moco = start_sandbox(
            stack,
            "moco",
            args.moco_port,
            "--generate",
            str(args.contacts),
            "--rate-limit",
            MOCO_LIMIT,
        )
        contacts = start_sandbox(stack, "contacts", args.contacts_port)
        env = {
            **os.environ,
            "TAP_MOCO_BASE_URL": moco,
            "TARGET_CONTACTS_BASE_URL": contacts,
            "TAP_CONTACTS_BASE_URL": contacts,
            "TARGET_MOCO_BASE_URL": moco,
            "SYNC_LISTENER_MOCO_BASE_URL": moco,
            "TAP_MOCO_RATE_LIMIT_REQUESTS": MOCO_LIMIT,
            "TARGET_MOCO_RATE_LIMIT_REQUESTS": MOCO_LIMIT,
            "MELTANO_ENVIRONMENT": "sandbox",
        }
        say("\nmeltano install")
        meltano("install", env=env, quiet=True)
        for state_id in STATE_IDS:
            meltano("state", "clear", "--force", state_id, env=env, quiet=True)

        sync(1, "Full sync", env, out)
        say("\n2) Changing a few records in MOCO")
        change_moco(moco)
        sync(3, "Incremental sync", env, out)

        say("\n4) Working in the CRM (and in MOCO)")
        change_crm(contacts, moco)
        two_way(5, "Two-way cycle", env, out, (moco, contacts))
        two_way(6, "Second two-way cycle, nothing changed", env, out, (moco, contacts))

        say("\n7) Real time: the webhook listener")
        real_time(env, moco, contacts)

        state = requests.get(f"{contacts}/_sandbox/state", timeout=10).json()
        done = sum(1 for t in state["tasks"] if t.get("completed"))
        say(
            f"\nThe Contacts sandbox now holds {len(state['contacts'])} contacts, "
            f"{len(state['tasks'])} tasks ({done} completed) and {len(state['notes'])} notes; "
            f"MOCO {len(requests.get(f'{moco}/_sandbox/state', timeout=10).json()['comments'])} "
            "comments."
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
