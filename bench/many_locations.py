"""Item 7: many locations at once, ``python -m bench.many_locations`` (or ``bench/run --items 7``).

N target-contacts processes (default 20) start together, each writing its own location of one
Contacts sandbox (``--extra-location``; the sandbox counts 100 requests / 10 s per location, with
answers taking 0.1-0.2 s), all with one shared ledger (a SQLite file, or with ``--ledger
postgresql`` a database of a throwaway PostgreSQL cluster, tests/postgres.py). Each gets the same
number of new contacts, enough for about 40 s of writing at the limit.

Per location, from the sandbox's request log: requests, 429s, and the share of its ceiling it
kept (``steady_fraction``: the window lag of harness.rate_stats, on arrival times; 1.0 keeps 100
requests in every 10 s). For all: the total CPU (user + system) of the target processes, measured
by ``wait4`` when each exits, and CPU seconds per request; the sandbox's CPU separately (it is not
ours). The goal: every location at >= 90 % of its own ceiling, 0 x 429.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from bench.harness import BIN, ROOT, Sandbox, log, machine_info, rate_stats

LIMIT = 100  # Contacts API: requests per window and location
WINDOW = 10.0  # seconds
GOAL_FRACTION = 0.9
LEDGERS = ("sqlite", "sqlite-per-location", "postgresql")


@dataclass
class ManyLocationsConfig:
    """Sizes of item 7 (``--locations``, ``--location-contacts``, ``--ledger``)."""

    locations: int = 20
    #: New contacts per location: 100 in the first window, then 10/s: about 40 s of writing.
    contacts: int = 450
    latency: tuple[float, float] = (0.1, 0.2)
    #: "sqlite" (one file), "sqlite-per-location" (a file each) or "postgresql" (one database)
    ledger: str = "sqlite"
    concurrency: int = 8


def location_name(i: int) -> str:
    """The id of location ``i`` (1-based)."""
    return f"loc-{i:02d}"


def _input(path: Path, location: str, contacts: int) -> None:
    schema = {
        "properties": {
            "id": {"type": ["string"]},
            "firstName": {"type": ["string", "null"]},
            "lastName": {"type": ["string", "null"]},
            "email": {"type": ["string", "null"]},
            "phone": {"type": ["string", "null"]},
            "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        }
    }
    lines = [{"type": "SCHEMA", "stream": "contacts", "schema": schema, "key_properties": ["id"]}]
    lines += [
        {
            "type": "RECORD",
            "stream": "contacts",
            "record": {
                "id": str(i),
                "firstName": f"Ada{i}",
                "lastName": location,
                "email": f"person{i}@{location}.example.com",
                "phone": f"+49 30 {5550000 + i}",
                "tags": ["moco"],
            },
        }
        for i in range(1, contacts + 1)
    ]
    lines.append({"type": "STATE", "value": {"bookmarks": {"contacts": {"done": contacts}}}})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")


@dataclass
class TargetProcess:
    """One target-contacts process and what ``wait4`` said when it ended."""

    location: str
    proc: subprocess.Popen[bytes]
    returncode: int | None = None
    cpu_s: float = 0.0
    max_rss_mb: float = 0.0
    ended: float = 0.0

    def wait(self) -> None:
        """Reap the process with ``wait4``: its exit code and its own CPU time."""
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode  # Popen must not wait for it again
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.max_rss_mb = usage.ru_maxrss / 1024
        self.ended = time.time()


def _ledger_url(cfg: ManyLocationsConfig, workdir: Path) -> tuple[str, Any]:
    """The ledger's URL (``{location}`` in it: one per location), the cluster to stop (or None)."""
    if cfg.ledger == "sqlite":
        return f"sqlite:///{workdir / 'ledger.db'}", None
    if cfg.ledger == "sqlite-per-location":
        return f"sqlite:///{workdir / '{location}' / 'ledger.db'}", None
    sys.path.insert(0, str(ROOT))
    from tests.postgres import start_cluster  # noqa: PLC0415  a development helper, only here

    cluster = start_cluster()
    return cluster.database("bench_many_locations"), cluster


def _location_stats(entries: list[dict[str, Any]]) -> dict[str, Any]:
    api = [e for e in entries if not e["path"].startswith(("/oauth", "/_sandbox"))]
    arrivals = sorted(e["time"] - e["duration"] for e in api)
    rates = rate_stats(arrivals, limit=LIMIT, window=WINDOW)
    return {
        "requests": len(api),
        "status_429": sum(1 for e in api if e["status"] == HTTPStatus.TOO_MANY_REQUESTS),
        "steady_fraction": rates.get("steady_fraction"),
        "steady_per_s": rates.get("steady_per_s"),
        "whole_per_s": rates.get("whole_per_s"),
        "span_s": rates.get("span_s"),
    }


def run(cfg: ManyLocationsConfig, workdir: Path) -> dict[str, Any]:
    """Item 7; the dict goes to results.json under ``many_locations``."""
    locations = [location_name(i) for i in range(1, cfg.locations + 1)]
    log(
        f"item 7 (many locations): {cfg.locations} target-contacts at once, {cfg.contacts} new "
        f"contacts each, {LIMIT}/{WINDOW:.0f} s per location, latency {cfg.latency[0]}-"
        f"{cfg.latency[1]} s, ledger {cfg.ledger}"
    )
    ledger_url, cluster = _ledger_url(cfg, workdir)
    extra = ["--location-id", "bench-main"]
    for location in locations:
        extra += ["--extra-location", location]
    try:
        with Sandbox(
            "contacts",
            latency=cfg.latency,
            rate_limit=LIMIT,
            rate_window=WINDOW,
            extra=tuple(extra),
        ) as sandbox:
            result = _run_targets(cfg, workdir, sandbox, locations, ledger_url)
    finally:
        if cluster is not None:
            cluster.stop()
    return result


def _run_targets(
    cfg: ManyLocationsConfig,
    workdir: Path,
    sandbox: Sandbox,
    locations: list[str],
    ledger_url: str,
) -> dict[str, Any]:
    sandbox.clear_log()
    targets: list[TargetProcess] = []
    for location in locations:
        folder = workdir / location
        folder.mkdir(parents=True, exist_ok=True)
        _input(folder / "input.jsonl", location, cfg.contacts)
        config = {
            "base_url": sandbox.url,
            "location_id": location,
            "private_integration_token": f"sandbox-token-{location}",
            "ledger_url": ledger_url.replace("{location}", location),
            "default_phone_region": "DE",
            "max_concurrency": cfg.concurrency,
            "rate_limit_requests": LIMIT,
            "rate_limit_window_seconds": WINDOW,
            "summary_path": str(folder / "summary.json"),
        }
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sandbox_cpu = sandbox.cpu_seconds()
    started = time.time()
    for location in locations:
        folder = workdir / location
        with (folder / "input.jsonl").open("rb") as stdin:
            proc = subprocess.Popen(  # noqa: S603  this venv's target-contacts, the bench's config
                [str(BIN / "target-contacts"), "--config", str(folder / "config.json")],
                stdin=stdin,
                stdout=(folder / "state.jsonl").open("wb"),
                stderr=(folder / "stderr.log").open("wb"),
                cwd=folder,
            )
        targets.append(TargetProcess(location, proc))
    reapers = [threading.Thread(target=t.wait, daemon=True) for t in targets]
    for reaper in reapers:
        reaper.start()
    for reaper in reapers:
        reaper.join()
    ended = time.time()
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sandbox_cpu = sandbox.cpu_seconds() - sandbox_cpu
    entries = sandbox.requests_log()
    by_location: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        by_location[str(entry.get("location_id"))].append(entry)

    per_location: dict[str, Any] = {}
    for target in targets:
        stats = _location_stats(by_location.get(target.location, []))
        summary_path = workdir / target.location / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        stats.update(
            {
                "returncode": target.returncode,
                "created": summary.get("streams", {}).get("contacts", {}).get("created"),
                "target_cpu_s": round(target.cpu_s, 2),
                "target_max_rss_mb": round(target.max_rss_mb, 1),
                "wall_s": round(target.ended - started, 1),
            }
        )
        if target.returncode != 0:
            tail = (workdir / target.location / "stderr.log").read_text(errors="replace")
            stats["stderr_tail"] = tail[-2000:]
        per_location[target.location] = stats
    fractions = [s["steady_fraction"] or 0.0 for s in per_location.values()]
    requests_total = sum(s["requests"] for s in per_location.values())
    cpu_total = sum(t.cpu_s for t in targets)
    children_cpu = (usage_after.ru_utime - usage_before.ru_utime) + (
        usage_after.ru_stime - usage_before.ru_stime
    )
    out: dict[str, Any] = {
        "settings": {
            "locations": cfg.locations,
            "contacts_per_location": cfg.contacts,
            "latency_s": list(cfg.latency),
            "limit": f"{LIMIT} requests / {WINDOW:.0f} s per location (the real limit)",
            "max_concurrency": cfg.concurrency,
            "ledger": cfg.ledger,
        },
        "wall_s": round(ended - started, 1),
        "all_exit_0": all(t.returncode == 0 for t in targets),
        "requests": requests_total,
        "status_429": sum(s["status_429"] for s in per_location.values()),
        "steady_fraction_min": round(min(fractions), 4),
        "steady_fraction_mean": round(sum(fractions) / len(fractions), 4),
        "every_location_at_goal": all(f >= GOAL_FRACTION for f in fractions),
        "targets_cpu_s": round(cpu_total, 1),
        "targets_cpu_s_rusage_children": round(children_cpu, 1),
        "targets_cpu_ms_per_request": round(1000 * cpu_total / max(1, requests_total), 2),
        "targets_cpu_cores_busy": round(cpu_total / max(1e-9, ended - started), 2),
        # What one core carries at this CPU per request, each location at its ceiling.
        "locations_per_core_at_ceiling": round(
            1 / max(1e-9, cpu_total / max(1, requests_total) * LIMIT / WINDOW), 1
        ),
        "sandbox_cpu_s": round(sandbox_cpu, 1),
        "per_location": per_location,
    }
    log(
        f"  {requests_total} requests in {out['wall_s']} s, {out['status_429']} x 429, steady "
        f"share of each location's ceiling min {out['steady_fraction_min']} / mean "
        f"{out['steady_fraction_mean']}; targets' CPU {out['targets_cpu_s']} s "
        f"({out['targets_cpu_ms_per_request']} ms per request), sandbox {out['sandbox_cpu_s']} s"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run item 7 alone and print its JSON (with the machine)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locations", type=int, default=20, help="target processes (20)")
    parser.add_argument(
        "--location-contacts", type=int, default=450, help="new contacts per location (450)"
    )
    parser.add_argument("--ledger", choices=LEDGERS, default="sqlite", help="the ledger(s)")
    parser.add_argument("--latency", default="0.1,0.2", help="sandbox latency range (s)")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    low, _, high = args.latency.partition(",")
    cfg = ManyLocationsConfig(
        locations=args.locations,
        contacts=args.location_contacts,
        latency=(float(low), float(high or low)),
        ledger=args.ledger,
    )
    started = time.monotonic()
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="moco-bench-many-") as tmp:
        result = run(cfg, Path(tmp))
    machine["load_average_end"] = list(os.getloadavg())
    report = {
        "command": "python -m bench.many_locations "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine,
        "duration_s": round(time.monotonic() - started, 1),
        "many_locations": result,
    }
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0 if result["all_exit_0"] else 1


if __name__ == "__main__":
    sys.exit(main())
