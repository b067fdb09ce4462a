"""Item 6: tap-contacts alone against the Contacts sandbox (``bench/run --items 6``).

- ``first_read``: a first read of N contacts with their tasks, notes and appointments at the real
  100 requests / 10 s with the sandbox's latency, once with the location-wide task read
  (``task_read: auto``) and once without (``per_contact``): records/s, requests per contact, the
  share of the 10 requests/s ceiling the read kept (the window lag, see ``harness.rate_stats``)
  and the 429s.
- ``unchanged``: the same location read again with the first read's state (no change): search
  requests per 500 contacts and sub-resource reads (the goal: at most 1 and 0); with ``--quick``
  also a forced full pass (``child_full_pass_hours: 0``), which reads every contact's children
  and emits nothing.
- ``memory``: first reads of 10,000 and 100,000 contacts with limits and latency off (and an
  in-memory ledger: no shared budget): the tap's peak RSS (VmHWM) and records/s; the goal is a
  flat peak. ``--tap-contacts 0`` runs only these.

The tap runs as ``python -m tap_contacts`` (the console script ``tap-contacts`` once installed),
its ledger in the bench's work directory; the sandbox is ``python -m sandbox contacts`` with
``--generate N`` (the Contacts data generator: N/2 tasks, N/2 notes, N/4 appointments).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from bench.harness import ROOT, Sandbox, log, proc_hwm_kb, proc_stat, rate_stats

if TYPE_CHECKING:
    from pathlib import Path

LIMIT = 100  # Contacts API: requests per window and location
WINDOW = 10.0  # seconds
CHILD_STREAMS = ("tasks", "notes", "appointments")
SEARCH = "POST /contacts/search"
TASK_SEARCH = "POST /locations/{locationId}/tasks/search"


@dataclass
class TapContactsConfig:
    """Sizes of item 6 (``bench/run``'s ``--tap-contacts`` and ``--tap-memory-sizes``)."""

    contacts: int = 10_000
    memory_sizes: tuple[int, ...] = (10_000, 100_000)
    latency: tuple[float, float] = (0.1, 0.2)
    seed: int = 1
    #: Also run a forced full pass over the unchanged location (as long as a first read).
    full_pass: bool = False


@dataclass
class TapResult:
    """One tap run: time, records per stream, the last state, peak memory and CPU."""

    wall_s: float
    returncode: int
    records: Counter[str]
    state: dict[str, Any] | None
    peak_rss_mb: float
    cpu_s: float
    stderr_tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _route(path: str) -> str:
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "contacts" and parts[2] not in ("search", ""):  # noqa: PLR2004
        parts[2] = "{id}"
    if len(parts) > 2 and parts[1] == "locations":  # noqa: PLR2004
        parts[2] = "{locationId}"
    return "/".join(parts)


def run_tap(
    config: dict[str, Any], workdir: Path, name: str, state: dict[str, Any] | None
) -> TapResult:
    """``python -m tap_contacts --config [--state]`` in ``workdir``; stdout counted, not kept."""
    config_path = workdir / f"{name}.config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    command = [sys.executable, "-m", "tap_contacts", "--config", str(config_path)]
    if state is not None:
        state_path = workdir / f"{name}.state.json"
        state_path.write_text(json.dumps(state), encoding="utf-8")
        command += ["--state", str(state_path)]
    err_path = workdir / f"{name}.stderr.log"
    records: Counter[str] = Counter()
    last_state: list[dict[str, Any] | None] = [None]
    started = time.monotonic()
    with err_path.open("w", encoding="utf-8") as err:
        proc = subprocess.Popen(  # noqa: S603  this interpreter, the bench's own arguments
            command,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        )
        peak_kb = [0]
        cpu = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                hwm = proc_hwm_kb(proc.pid)
                st = proc_stat(proc.pid)
                if hwm is not None:
                    peak_kb[0] = max(peak_kb[0], hwm)
                if st is not None:
                    cpu[0] = st[1]
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for line in proc.stdout or ():
            if line.startswith('{"type":"RECORD"'):
                stream = line[len('{"type":"RECORD","stream":"') :].split('"', 1)[0]
                records[stream] += 1
            elif line.startswith('{"type":"STATE"'):
                last_state[0] = json.loads(line)["value"]
        code = proc.wait()
        done.set()
        sampler.join(5)
    wall = time.monotonic() - started
    tail = "" if code == 0 else err_path.read_text(encoding="utf-8")[-3000:]
    return TapResult(wall, code, records, last_state[0], peak_kb[0] / 1024, cpu[0], tail)


def _config(sandbox: Sandbox, workdir: Path, **settings: Any) -> dict[str, Any]:
    return {
        "base_url": sandbox.url,
        "location_id": "sandbox-location",
        "private_integration_token": "sandbox-token",
        "ledger_url": f"sqlite:///{workdir / 'ledger.db'}",
        "page_size": 100,
        **settings,
    }


def _requests(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [e for e in sandbox.requests_log() if not e["path"].startswith("/oauth")]


def _read_stats(
    result: TapResult, log_entries: list[dict[str, Any]], contacts: int
) -> dict[str, Any]:
    by_route = Counter(f"{e['method']} {_route(e['path'])}" for e in log_entries)
    times = sorted(e["time"] - e["duration"] for e in log_entries)
    rates = rate_stats(times, limit=LIMIT, window=WINDOW)
    emitted = sum(result.records.values())
    span = rates.get("span_s") or result.wall_s
    return {
        "returncode": result.returncode,
        "wall_s": round(result.wall_s, 1),
        "records": dict(result.records),
        "records_total": emitted,
        "records_per_s": round(emitted / span, 2) if span else None,
        "contacts_per_s": round(result.records["contacts"] / span, 2) if span else None,
        "requests": len(log_entries),
        "requests_by_route": dict(by_route),
        "requests_per_contact": round(len(log_entries) / max(1, contacts), 3),
        "status_429": sum(1 for e in log_entries if e["status"] == HTTPStatus.TOO_MANY_REQUESTS),
        "rate": rates,
        "peak_rss_mb": round(result.peak_rss_mb, 1),
        "tap_cpu_s": round(result.cpu_s, 1),
        **({"stderr_tail": result.stderr_tail} if result.stderr_tail else {}),
    }


def _first_and_unchanged(
    cfg: TapContactsConfig, workdir: Path, task_read: str, *, again: bool
) -> dict[str, Any]:
    """A first read; with ``again``, the unchanged location read after it (and a full pass)."""
    wd = workdir / f"first-{task_read}"
    wd.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"task_read": task_read}
    with Sandbox(
        "contacts",
        latency=cfg.latency,
        rate_limit=LIMIT,
        rate_window=WINDOW,
        extra=("--generate", str(cfg.contacts), "--generate-seed", str(cfg.seed)),
    ) as sandbox:
        sandbox.clear_log()
        config = _config(
            sandbox,
            wd,
            task_read=task_read,
            rate_limit_requests=LIMIT,
            rate_limit_window_seconds=WINDOW,
        )
        log(f"  first read of {cfg.contacts} contacts, task_read={task_read}")
        first = run_tap(config, wd, "first", None)
        out["first_read"] = _read_stats(first, _requests(sandbox), cfg.contacts)
        rate = out["first_read"]["rate"]
        read = out["first_read"]
        log(
            f"    {read['requests']} requests in {rate.get('span_s')} s, steady "
            f"{rate.get('steady_fraction')} of the ceiling, {read['status_429']} x 429, "
            f"{read['requests_per_contact']} requests per contact"
        )
        if not again or first.returncode != 0 or first.state is None:
            return out
        sandbox.clear_log()
        unchanged = run_tap(config, wd, "unchanged", first.state)
        entries = _requests(sandbox)
        stats = _read_stats(unchanged, entries, cfg.contacts)
        searches = stats["requests_by_route"].get(SEARCH, 0)
        stats["searches_per_500_contacts"] = round(searches / (cfg.contacts / 500), 4)
        stats["sub_resource_reads"] = stats["requests"] - searches
        out["unchanged"] = stats
        log(
            f"    unchanged: {stats['requests']} requests ({searches} searches), "
            f"{stats['records_total']} records"
        )
        if not cfg.full_pass:
            return out
        sandbox.clear_log()
        full = run_tap({**config, "child_full_pass_hours": 0}, wd, "full-pass", unchanged.state)
        out["full_pass_unchanged"] = _read_stats(full, _requests(sandbox), cfg.contacts)
        log(
            f"    forced full pass: {out['full_pass_unchanged']['requests']} requests, "
            f"{out['full_pass_unchanged']['records_total']} records"
        )
    return out


def _memory(cfg: TapContactsConfig, workdir: Path) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for n in cfg.memory_sizes:
        wd = workdir / f"memory-{n}"
        wd.mkdir(parents=True, exist_ok=True)
        with Sandbox(
            "contacts",
            rate_limit=0,
            rate_window=WINDOW,
            extra=("--generate", str(n), "--generate-seed", str(cfg.seed)),
        ) as sandbox:
            sandbox.clear_log()
            config = _config(
                sandbox,
                wd,
                # No limit, so no shared budget either: the tap's own work alone.
                ledger_url="sqlite:///:memory:",
                rate_limit_requests=1_000_000,
                rate_limit_window_seconds=1,
                max_concurrency=8,
            )
            log(f"  memory: first read of {n} contacts, limits and latency off")
            result = run_tap(config, wd, "first", None)
            stats = _read_stats(result, _requests(sandbox), n)
            stats.pop("rate", None)
            sizes[str(n)] = stats
            log(
                f"    peak RSS {stats['peak_rss_mb']} MB, {stats['records_per_s']} records/s, "
                f"{stats['requests']} requests"
            )
    out: dict[str, Any] = {"sizes": sizes}
    peaks = [s["peak_rss_mb"] for s in sizes.values()]
    if len(peaks) > 1 and peaks[0]:
        out["peak_growth"] = round(peaks[-1] / peaks[0], 3)
    return out


def run(cfg: TapContactsConfig, workdir: Path) -> dict[str, Any]:
    """Item 6; the dict goes to results.json under ``tap_contacts``."""
    log(
        f"item 6 (tap-contacts alone, Contacts {LIMIT}/{WINDOW:.0f} s, latency "
        f"{cfg.latency[0]}-{cfg.latency[1]} s): {cfg.contacts} contacts"
    )
    result: dict[str, Any] = {
        "settings": {
            "contacts": cfg.contacts,
            "memory_sizes": list(cfg.memory_sizes),
            "latency_s": list(cfg.latency),
            "limit": f"{LIMIT} requests / {WINDOW:.0f} s (the real limit)",
            "page_size": 100,
            "max_concurrency": 4,
            "generator": "sandbox --generate N: N/2 tasks, N/2 notes, N/4 appointments",
        },
    }
    if cfg.contacts:
        result["location_task_read"] = _first_and_unchanged(cfg, workdir, "auto", again=True)
        result["per_contact_task_read"] = _first_and_unchanged(
            cfg, workdir, "per_contact", again=False
        )
    if cfg.memory_sizes:
        result["memory"] = _memory(cfg, workdir)
    return result
