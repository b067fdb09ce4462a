"""Item 9: real time through the webhook listener (``bench/run --items 9``).

Both sandboxes at their real limits (Contacts 100 requests / 10 s; MOCO 120 / 2 min, or the
unlimited plan's 1,200 with ``--realtime-moco-plan unlimited``) with the usual answer latency; the
plugins with meltano.yml's limits for those plans. Set-up, not measured: a MOCO account of N
generated people is synced to the CRM and back (``moco-to-contacts``, then ``contacts-to-moco``,
with the limits lifted), so every person is a linked pair. Then the listener runs as a user runs
it, ``meltano invoke sync-listener`` with the sandbox environment and its default debounce, and
is wired as a user wires it: the Contacts sandbox's webhook URL is the listener's
``/webhooks/contacts``, its public keys are ``SYNC_LISTENER_CONTACTS_PUBLIC_KEY`` and
``_LEGACY_PUBLIC_KEY``, and MOCO's hooks are registered with ``meltano invoke
sync-listener:register-moco-webhooks``.

- ``moco_to_crm``: one after another, a MOCO web-UI edit (``PUT /_sandbox/people/{id}``, a new
  last name) on an idle sync, until the CRM contact is written with it (the ``PUT`` in the Contacts
  sandbox's log, its body checked). Latency: from the edit's answer to the CRM write's answer.
- ``crm_to_moco``: the same the other way: a CRM contact's first name changed through the API,
  until MOCO's person is written with it.
- Each change's time is split at what the logs show: the webhook's delivery (the ledger's
  ``received_at``), the debounce (the listener's log: the run starts), Meltano's start-up (its log:
  up to its last line before the tap's first), the plugins' start-up (up to the tap's first
  request in the source's log), the tap's first read of the record's stream, and the target
  (from that read's answer to the write's answer, the two-way read included).
- ``burst``: web-UI edits to B people in a few seconds: whether all land in the CRM, when the last
  one does, the runs it took per direction, and the 429s.

The machine's load is recorded at the start and at the end: a ``meltano run`` starts several
Python processes, so on a busy machine the start-up dominates the latency.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import requests

from bench.both_ways import (
    CONTACTS_LIMIT,
    CONTACTS_WINDOW,
    CRM_HEADERS,
    MOCO_LIMIT,
    MOCO_UNLIMITED_LIMIT,
    MOCO_WINDOW,
    ApiLimits,
    BothWays,
    api_entries,
    api_stats,
    is_write,
    sync_requests,
)
from bench.harness import MELTANO, ROOT, Sandbox, log

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from pathlib import Path

MOCO_TO_CRM = "moco-to-contacts"
CRM_TO_MOCO = "contacts-to-moco"
DEBOUNCE_S = 2  # meltano.yml's debounce_seconds, which the bench leaves as it is
SETTLE_POLL_S = 0.2
WRITE_POLL_S = 0.1
#: The source's request that reads the changed record's stream, per direction.
FIRST_READ = {
    MOCO_TO_CRM: ("GET", "/api/v1/contacts/people"),
    CRM_TO_MOCO: ("POST", "/contacts/search"),
}
#: ``meltano invoke`` logs each line of the listener's stderr again, behind its own prefix.
_WRAPPED = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z \[\s*\w+\s*\] meltano\s+(.*)$")
_LISTENER_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) ([\w.]+): (.*)$")
_MELTANO_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z \[\s*(\w+)\s*\] (\S+)\s")
_RUN_START = re.compile(r"^run (\S+): (\S+) for location \S+ covers (\d+) event")
_RUN_END = re.compile(r"^run (\S+): exited (\d+) after ([\d.]+) s")
#: The phases of a change's latency, in order; each ends where the next begins.
PHASES = (
    "webhook",
    "debounce",
    "meltano_start",
    "plugin_start",
    "tap_read",
    "target_start",
    "target_write",
)


@dataclass
class RealtimeConfig:
    """Sizes of item 9 (``bench/run``'s ``--realtime-*`` options)."""

    moco_people: int = 600
    changes: int = 20
    burst: int = 500
    moco_plan: str = "standard"  # or "unlimited"
    latency: tuple[float, float] = (0.1, 0.2)
    seed: int = 1
    change_timeout_s: float = 600
    burst_timeout_s: float = 3600


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Item 9's options of ``bench/run``."""
    parser.add_argument(
        "--realtime-people", type=int, help="item 9: generated MOCO people (default 600)"
    )
    parser.add_argument(
        "--realtime-changes",
        type=int,
        help="item 9: changes per direction, one at a time (default 20)",
    )
    parser.add_argument(
        "--realtime-burst", type=int, help="item 9: MOCO web-UI edits in one burst (default 500)"
    )
    parser.add_argument(
        "--realtime-moco-plan",
        choices=("standard", "unlimited"),
        help="item 9: MOCO's limit, 120 (standard, default) or 1,200 (unlimited) / 2 min",
    )


def config_from(args: argparse.Namespace) -> RealtimeConfig:
    """Item 9's sizes: the defaults, ``--quick``'s, then the options given."""
    cfg = RealtimeConfig()
    if args.quick:
        cfg = RealtimeConfig(moco_people=60, changes=3, burst=20)
    low, _, high = args.latency.partition(",")
    cfg.latency = (float(low), float(high or low))
    for name in ("people", "changes", "burst", "moco_plan"):
        value = getattr(args, f"realtime_{name}")
        if value is not None:
            setattr(cfg, "moco_people" if name == "people" else name, value)
    return cfg


@dataclass(frozen=True)
class Pair:
    """One linked person: MOCO's id and the CRM contact's, with the names each side holds."""

    moco_id: int
    crm_id: str
    lastname: str
    first_name: str


@dataclass
class Run:
    """One run of the listener, from its log: direction, times, exit, and its Meltano lines."""

    run_id: str
    direction: str
    events: int
    started: float
    ended: float | None = None
    status: int | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)  # (time, who) of Meltano's log


class Listener:
    """``meltano invoke sync-listener --port 0`` in its own process group, its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as err:
            # This venv's meltano, the bench's own arguments.
            self.proc = subprocess.Popen(  # noqa: S603
                [str(MELTANO), "invoke", "sync-listener", "--port", "0"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("listening on "):
            self.stop()
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the listener did not start: {line!r}\n{tail}")
        self.url = line.strip().removeprefix("listening on ")
        self.http = requests.Session()
        self.http.trust_env = False

    def health(self) -> dict[str, Any]:
        """``GET /healthz``."""
        return self.http.get(self.url + "/healthz", timeout=30).json()

    def stop(self) -> None:
        """SIGTERM to the listener (it stops a run in flight), SIGKILL after a minute."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class LogCursor:
    """New entries of a sandbox's request log since the last look (``?since=N``)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.offset = len(sandbox.requests_log())

    def new(self) -> list[dict[str, Any]]:
        """The entries logged since the last call."""
        entries = self.sandbox.get("/_sandbox/requests", since=self.offset)
        self.offset += len(entries)
        return entries


def _pending_deliveries(sandbox: Sandbox) -> int:
    answer = sandbox.http.get(
        sandbox.url + "/_sandbox/webhook_deliveries", params={"since": 10**9}, timeout=30
    )
    answer.raise_for_status()
    return int(answer.headers.get("X-Pending-Deliveries") or 0)


def settled(rig: BothWays, listener: Listener) -> bool:
    """No webhook queued on either side, no event pending, no run waiting or running."""
    if _pending_deliveries(rig.moco) or _pending_deliveries(rig.crm):
        return False
    health = listener.health()
    return bool(
        health.get("ok")
        and not health.get("pending")
        and not health.get("runs_in_flight")
        and all(state == "idle" for state in (health.get("lanes") or {}).values())
    )


def wait_settled(rig: BothWays, listener: Listener, timeout: float, stable: float = 1.0) -> float:
    """Wait until :func:`settled` holds for ``stable`` s; the time it first held (epoch s)."""
    deadline = time.monotonic() + timeout
    since: float | None = None
    while time.monotonic() < deadline:
        if settled(rig, listener):
            since = since or time.time()
            if time.time() - since >= stable:
                return since
        else:
            since = None
        time.sleep(SETTLE_POLL_S)
    raise TimeoutError(f"the sync did not settle within {timeout:.0f} s")


def _pairs(rig: BothWays) -> list[Pair]:
    """The linked people, matched by e-mail, in MOCO's id order."""
    crm = {(c.get("email") or "").lower(): c for c in rig.crm.state()["contacts"] if c.get("email")}
    out = []
    for person in rig.moco.state()["contacts"]:
        email = (person.get("work_email") or person.get("home_email") or "").lower()
        contact = crm.get(email) if email else None
        if contact is not None:
            out.append(
                Pair(
                    person["id"],
                    contact["id"],
                    person.get("lastname") or "",
                    contact.get("firstName") or "",
                )
            )
    return out


def _edit_moco(rig: BothWays, pair: Pair, value: str) -> None:
    """A person's edit in MOCO's web UI: a new last name."""
    rig.moco.http.put(
        f"{rig.moco.url}/_sandbox/people/{pair.moco_id}", json={"lastname": value}, timeout=60
    ).raise_for_status()


def _edit_crm(rig: BothWays, pair: Pair, value: str) -> None:
    """A person's edit in the CRM through the API: a new first name."""
    rig.crm.http.put(
        f"{rig.crm.url}/contacts/{pair.crm_id}",
        json={"firstName": value},
        headers=CRM_HEADERS,
        timeout=60,
    ).raise_for_status()


def _write_of(entries: list[dict[str, Any]], field_name: str, value: str) -> dict[str, Any] | None:
    """The first successful write in ``entries`` whose body sets ``field_name`` to ``value``."""
    for entry in entries:
        body = entry.get("body")
        if (
            is_write(entry)
            and entry["status"] < HTTPStatus.MULTIPLE_CHOICES
            and isinstance(body, dict)
            and body.get(field_name) == value
        ):
            return entry
    return None


@dataclass(frozen=True)
class Direction:
    """How a change is made on one side and seen on the other."""

    name: str
    edit: Callable[[BothWays, Pair, str], None]
    source: str  # "moco" or "crm"
    field_name: str  # the field the target writes
    record_id: Callable[[Pair], str]  # the id in the source's webhook


DIRECTIONS = {
    MOCO_TO_CRM: Direction(MOCO_TO_CRM, _edit_moco, "moco", "lastName", lambda p: str(p.moco_id)),
    CRM_TO_MOCO: Direction(CRM_TO_MOCO, _edit_crm, "crm", "firstname", lambda p: p.crm_id),
}


def one_change(
    rig: BothWays, listener: Listener, direction: Direction, pair: Pair, value: str, timeout: float
) -> dict[str, Any]:
    """Make one change on an idle sync and wait for the other side's write; its times."""
    destination = LogCursor(rig.crm if direction.source == "moco" else rig.moco)
    edit_sent = time.time()
    direction.edit(rig, pair, value)
    changed = time.time()
    out: dict[str, Any] = {
        "record": direction.record_id(pair),
        "edit_sent": edit_sent,
        "changed": changed,
    }
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        write = _write_of(destination.new(), direction.field_name, value)
        if write is not None:
            out["written"] = write["time"]
            out["latency_s"] = round(write["time"] - changed, 3)
            break
        time.sleep(WRITE_POLL_S)
    out["settled"] = wait_settled(rig, listener, timeout)
    return out


def _percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    out: dict[str, float | int] = {
        "count": len(values),
        "mean_s": round(statistics.fmean(values), 3),
        "min_s": round(min(values), 3),
        "max_s": round(max(values), 3),
    }
    if len(values) > 1:
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        out["p50_s"] = round(cuts[49], 3)
        out["p95_s"] = round(cuts[94], 3)
    else:
        out["p50_s"] = out["p95_s"] = round(values[0], 3)
    return out


# --- the logs --------------------------------------------------------------------------------
def _local_epoch(text: str) -> float:
    """The listener's ``asctime`` (local time, milliseconds) as epoch seconds."""
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()


def _utc_epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


def parse_listener_log(path: Path) -> list[Run]:
    """The runs in the listener's log, with the Meltano lines logged while each ran."""
    runs: dict[str, Run] = {}
    current: Run | None = None
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        wrapped = _WRAPPED.match(raw)
        inner = wrapped.group(1) if wrapped else ""
        line = inner if _LISTENER_LINE.match(inner) or _MELTANO_LINE.match(inner) else raw
        melt = _MELTANO_LINE.match(line)
        if melt is not None:
            if current is not None:
                current.lines.append((_utc_epoch(melt.group(1)), melt.group(3)))
            continue
        own = _LISTENER_LINE.match(line)
        if own is None:
            continue
        at, message = _local_epoch(own.group(1)), own.group(4)
        start = _RUN_START.match(message)
        if start is not None:
            current = Run(start.group(1), start.group(2), int(start.group(3)), at)
            runs[current.run_id] = current
            continue
        end = _RUN_END.match(message)
        if end is not None and end.group(1) in runs:
            run = runs[end.group(1)]
            run.ended, run.status = at, int(end.group(2))
            current = None
    return sorted(runs.values(), key=lambda r: r.started)


def ledger_events(rig: BothWays) -> list[dict[str, Any]]:
    """The listener's stored events (``webhook_events``), oldest first."""
    with contextlib.closing(sqlite3.connect(rig.workdir / "ledger.db")) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT source, direction, event_type, record_id, status, run_id, received_at "
            "FROM webhook_events ORDER BY id"
        ).fetchall()
    out = []
    for row in rows:
        event = dict(row)
        received = dt.datetime.fromisoformat(str(event["received_at"]))
        if received.tzinfo is None:  # SQLite keeps the UTC time without its zone
            received = received.replace(tzinfo=dt.timezone.utc)
        event["received"] = received.timestamp()
        out.append(event)
    return out


def _phases(
    change: dict[str, Any],
    direction: str,
    events: list[dict[str, Any]],
    runs: dict[str, Run],
    source_log: list[dict[str, Any]],
) -> dict[str, Any]:
    """Where one change's time went, from the ledger, the listener's log and the source's log."""
    event = next(
        (
            e
            for e in events
            if e["direction"] == direction
            and e["record_id"] == change["record"]
            and e["received"] >= change["edit_sent"] - 1
            and e["status"] in ("handled", "pending")
        ),
        None,
    )
    run = runs.get(event["run_id"]) if event and event["run_id"] else None
    if event is None or run is None or "written" not in change:
        return {}
    method, path = FIRST_READ[direction]
    reads = [e for e in source_log if e["time"] - e["duration"] >= run.started]
    first_request = min((e["time"] - e["duration"] for e in reads), default=None)
    first_read = next(
        (e["time"] for e in reads if e["method"] == method and e["path"] == path), None
    )
    plugin_lines = [t for t, who in run.lines if who != "meltano"]
    spawned = max(
        (t for t, who in run.lines if who == "meltano" and t <= min(plugin_lines, default=0)),
        default=None,
    )
    target_up = min((t for t, who in run.lines if who.startswith("target-")), default=None)
    if first_read is None or target_up is None:
        return {"run": run.run_id}
    marks = [
        change["changed"],
        event["received"],
        run.started,
        spawned,
        first_request,
        first_read,
        # the target's first log line, unless it was up before the tap's read came back
        max(first_read, min(target_up, change["written"])),
        change["written"],
    ]
    if any(m is None for m in marks):
        return {"run": run.run_id}
    times = [float(m) for m in marks if m is not None]
    phases = {name: round(times[i + 1] - times[i], 3) for i, name in enumerate(PHASES)}
    phases["run"] = run.run_id
    if run.ended is not None:
        phases["after_write_s"] = round(run.ended - change["written"], 3)
        phases["run_wall_s"] = round(run.ended - run.started, 3)
    return phases


def _summarise_phases(changes: list[dict[str, Any]]) -> dict[str, Any]:
    """Each phase's median and mean over the changes whose phases are known."""
    known = [c["phases"] for c in changes if all(p in c.get("phases", {}) for p in PHASES)]
    out: dict[str, Any] = {"changes": len(known)}
    for name in PHASES:
        values = [p[name] for p in known]
        if values:
            out[name] = {
                "median_s": round(statistics.median(values), 3),
                "mean_s": round(statistics.fmean(values), 3),
            }
    return out


# --- the scenario ------------------------------------------------------------------------------
def _plan_limits(plan: str) -> ApiLimits:
    moco = MOCO_UNLIMITED_LIMIT if plan == "unlimited" else MOCO_LIMIT
    return ApiLimits(moco, MOCO_WINDOW, CONTACTS_LIMIT, CONTACTS_WINDOW)


def _listener_env(rig: BothWays, limits: ApiLimits) -> dict[str, str]:
    keys = rig.crm.get("/_sandbox/webhook_keys")
    return {
        **rig.env(limits),
        "SYNC_LISTENER_CONTACTS_PUBLIC_KEY": keys["ed25519"],
        "SYNC_LISTENER_CONTACTS_LEGACY_PUBLIC_KEY": keys["rsa"],
        "SYNC_LISTENER_LOG_LEVEL": "INFO",
    }


def _register_moco_hooks(env: dict[str, str], url: str) -> str:
    result = subprocess.run(  # noqa: S603  this venv's meltano with the bench's arguments
        [str(MELTANO), "invoke", "sync-listener:register-moco-webhooks"],
        cwd=ROOT,
        env={**env, "SYNC_LISTENER_PUBLIC_URL": f"{url}/webhooks/moco"},
        text=True,
        capture_output=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"register-moco-webhooks failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip()


def start_up_probe() -> dict[str, float]:
    """Seconds each program takes to start and answer ``--about`` (``--version``) here, now.

    What every run pays at least once per process before its first request, on this machine's
    current load.
    """
    programs = {
        "meltano": [str(MELTANO), "--version"],
        **{
            name: [str(ROOT / ".meltano" / kind / name / "venv" / "bin" / name), "--about"]
            for kind, name in (
                ("extractors", "tap-moco"),
                ("loaders", "target-contacts"),
                ("extractors", "tap-contacts"),
                ("loaders", "target-moco"),
            )
        },
    }
    out = {}
    for name, command in programs.items():
        started = time.monotonic()
        # The checkout's installed plugins and this venv's meltano, fixed arguments.
        subprocess.run(command, cwd=ROOT, capture_output=True, timeout=300, check=False)  # noqa: S603
        out[name] = round(time.monotonic() - started, 2)
    return out


def _changes(
    rig: BothWays, listener: Listener, direction: Direction, pairs: list[Pair], timeout: float
) -> list[dict[str, Any]]:
    out = []
    for i, pair in enumerate(pairs):
        time.sleep(DEBOUNCE_S)  # the last run's settle time has passed: an idle sync
        base = pair.lastname if direction.source == "moco" else pair.first_name
        value = f"{base or 'X'} Rt{i}"
        change = one_change(rig, listener, direction, pair, value, timeout)
        out.append(change)
        log(
            f"    {direction.name} #{i + 1}: "
            + (f"{change['latency_s']:.1f} s" if "latency_s" in change else "not written")
        )
    return out


def _burst(rig: BothWays, listener: Listener, pairs: list[Pair], timeout: float) -> dict[str, Any]:
    """Web-UI edits to ``pairs`` in a few seconds; when they land, the runs, the 429s."""
    crm_cursor, moco_cursor = LogCursor(rig.crm), LogCursor(rig.moco)
    values = {pair.crm_id: f"{pair.lastname or 'X'} Burst" for pair in pairs}
    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: _edit_moco(rig, p, values[p.crm_id]), pairs))
    edited = time.time()
    settled_at = wait_settled(rig, listener, timeout, stable=3.0)
    crm_log, moco_log = crm_cursor.new(), moco_cursor.new()
    landed_at = []
    for entry in crm_log:
        body = entry.get("body")
        crm_id = entry["path"].rsplit("/", 1)[-1]
        if (
            is_write(entry)
            and entry["status"] < HTTPStatus.MULTIPLE_CHOICES
            and isinstance(body, dict)
            and values.get(crm_id) == body.get("lastName")
        ):
            landed_at.append(entry["time"])
    state = {c["id"]: c for c in rig.crm.state()["contacts"]}
    landed = sum(1 for crm_id, value in values.items() if state[crm_id].get("lastName") == value)
    return {
        "edits": len(pairs),
        "edit_span_s": round(edited - started, 3),
        "landed": landed,
        "first_landed_s": round(min(landed_at) - started, 3) if landed_at else None,
        "last_landed_s": round(max(landed_at) - started, 3) if landed_at else None,
        "settled_s": round(settled_at - started, 3),
        "started": started,
        "settled": settled_at,
        "contacts_api": api_stats(
            sync_requests("contacts", crm_log),
            api="contacts",
            limit=CONTACTS_LIMIT,
            window=CONTACTS_WINDOW,
        ),
        "moco_api_entries": sync_requests("moco", moco_log),
    }


def _runs_between(runs: list[Run], start: float, end: float) -> list[dict[str, Any]]:
    return [
        {
            "run": r.run_id,
            "direction": r.direction,
            "events": r.events,
            "status": r.status,
            "wall_s": round(r.ended - r.started, 3) if r.ended else None,
            "started_s": round(r.started - start, 3),
        }
        for r in runs
        if start <= r.started <= end
    ]


def run(cfg: RealtimeConfig, workdir: Path) -> dict[str, Any]:  # noqa: PLR0915  one scenario
    """Item 9; the dict goes to results.json under ``realtime``."""
    limits = _plan_limits(cfg.moco_plan)
    wd = workdir / "realtime"
    wd.mkdir(parents=True, exist_ok=True)
    log(
        f"item 9 (real time, MOCO {limits.moco_requests}/{limits.moco_window} s, Contacts "
        f"{limits.contacts_requests}/{limits.contacts_window} s): {cfg.moco_people} MOCO people, "
        f"{cfg.changes} changes each way, a burst of {cfg.burst}"
    )
    out: dict[str, Any] = {
        "settings": {
            "moco_plan": cfg.moco_plan,
            "limits": limits.describe(),
            "moco_people": cfg.moco_people,
            "changes_per_direction": cfg.changes,
            "burst": cfg.burst,
            "latency_s": list(cfg.latency),
            "debounce_seconds": f"meltano.yml ({DEBOUNCE_S})",
            "listener": "meltano invoke sync-listener --port 0 (runs: meltano run JOB)",
        },
        "load_average_start": list(os.getloadavg()),
    }
    moco = Sandbox(
        "moco",
        latency=cfg.latency,
        rate_limit=limits.moco_requests,
        rate_window=limits.moco_window,
        generate=cfg.moco_people,
        extra=("--generate-seed", str(cfg.seed)),
    )
    with (
        moco,
        Sandbox(
            "contacts", latency=cfg.latency, rate_limit=CONTACTS_LIMIT, rate_window=CONTACTS_WINDOW
        ) as crm,
    ):
        rig = BothWays(wd, moco, crm)
        log("  set-up (limits lifted): moco-to-contacts, then contacts-to-moco")
        out["set_up"] = {
            "forward": rig.set_up("setup-forward", MOCO_TO_CRM, settle=0),
            "reverse": rig.set_up("setup-reverse", CRM_TO_MOCO),
        }
        rig.enforce(limits)
        pairs = _pairs(rig)
        out["pairs"] = len(pairs)
        env = _listener_env(rig, limits)
        listener = Listener(env, wd / "listener.log")
        try:
            crm.configure(webhook_url=f"{listener.url}/webhooks/contacts")
            out["register_moco_webhooks"] = _register_moco_hooks(env, listener.url)
            moco.configure(log_bodies=True)
            crm.configure(log_bodies=True)
            moco.clear_log()
            crm.clear_log()
            wait_settled(rig, listener, cfg.change_timeout_s)
            n = min(cfg.changes, (len(pairs) - 2) // 2)
            log("  warm-up: one change each way, not counted (a first run may install plugins)")
            for direction, pair in zip(DIRECTIONS.values(), pairs[-2:], strict=True):
                out.setdefault("warm_up", []).append(
                    one_change(rig, listener, direction, pair, "Warm Up", cfg.change_timeout_s)
                )
            out["start_up_probe"] = start_up_probe()
            log(f"  start-up of each program (s): {out['start_up_probe']}")
            log(f"  {n} MOCO web-UI edits, one at a time")
            forward = _changes(
                rig, listener, DIRECTIONS[MOCO_TO_CRM], pairs[:n], cfg.change_timeout_s
            )
            log(f"  {n} CRM edits through the API, one at a time")
            backward = _changes(
                rig, listener, DIRECTIONS[CRM_TO_MOCO], pairs[n : 2 * n], cfg.change_timeout_s
            )
            log(f"  a burst of {min(cfg.burst, len(pairs))} MOCO web-UI edits")
            time.sleep(DEBOUNCE_S)
            burst = _burst(rig, listener, pairs[: cfg.burst], cfg.burst_timeout_s)
            moco_all = api_entries(moco)
            crm_all = api_entries(crm)
        finally:
            listener.stop()
        runs = parse_listener_log(wd / "listener.log")
        by_id = {r.run_id: r for r in runs}
        events = ledger_events(rig)
        moco_log = [e for e in moco_all if e["time"] < burst["started"]]
        crm_log = [e for e in crm_all if e["time"] < burst["started"]]
        for direction, changes, source_log in (
            (MOCO_TO_CRM, forward, moco_log),
            (CRM_TO_MOCO, backward, crm_log),
        ):
            for change in changes:
                change["phases"] = _phases(change, direction, events, by_id, source_log)
                change["runs"] = _runs_between(runs, change["edit_sent"], change["settled"])
            out[direction.replace("-", "_")] = {
                "latency": _percentiles([c["latency_s"] for c in changes if "latency_s" in c]),
                "not_written": sum(1 for c in changes if "latency_s" not in c),
                "phases": _summarise_phases(changes),
                "runs_per_change": _percentiles([float(len(c["runs"])) for c in changes]),
                "changes": changes,
            }
        burst_runs = _runs_between(runs, burst["started"], burst["settled"])
        burst["runs"] = burst_runs
        burst["runs_by_direction"] = {
            d: sum(1 for r in burst_runs if r["direction"] == d) for d in (MOCO_TO_CRM, CRM_TO_MOCO)
        }
        burst["moco_api"] = api_stats(
            burst.pop("moco_api_entries"),
            api="moco",
            limit=limits.moco_requests,
            window=limits.moco_window,
        )
        out["burst"] = burst
        out["api_totals"] = {
            "moco_api": api_stats(
                moco_all, api="moco", limit=limits.moco_requests, window=limits.moco_window
            ),
            "contacts_api": api_stats(
                crm_all, api="contacts", limit=CONTACTS_LIMIT, window=CONTACTS_WINDOW
            ),
        }
        out["runs"] = {
            "total": len(runs),
            "failed": sum(1 for r in runs if r.status not in (0, None)),
        }
    out["load_average_end"] = list(os.getloadavg())
    return out
