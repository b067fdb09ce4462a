"""The bench's scenarios; each returns a JSON-able dict for results.json.

- :func:`writes`: items 1 and 2 (and 5): first sync, unchanged re-runs, 1 % change, with the naive
  baseline measured against its own pair of sandboxes with the same settings. Scaled limits.
- :func:`unscaled`: item 1 (and 5) again at the real 100 requests / 10 s, with fewer records.
- :func:`reads`: item 3, the tap alone (``meltano invoke tap-moco``) against MOCO's limit.
- :func:`overhead`: item 4, ``meltano run`` with latency and limits off, records/s and peak memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench import target_cost
from bench.harness import (
    NO_LIMIT,
    ROOT,
    MeltanoResult,
    Sandbox,
    base_env,
    change_fraction,
    contacts_log_stats,
    log,
    moco_log_stats,
    moco_totals,
    run_meltano,
)

if TYPE_CHECKING:
    from pathlib import Path

MOCO_LIMIT = 120  # requests per window and API key (standard plans)
MOCO_WINDOW = 120  # seconds
CONTACTS_LIMIT = 100  # requests per window and location
CONTACTS_WINDOW = 10  # seconds
PAGE_SIZE = 100


@dataclass
class Config:
    """Sizes and settings of the scenarios (``bench/run``'s options)."""

    scale: int = 5
    latency: tuple[float, float] = (0.1, 0.2)
    contacts: int = 2000
    naive_contacts: int = 150
    change_fraction: float = 0.01
    concurrency: int | None = None  # default: 8 x scale / 5, at least 8
    unscaled_contacts: int = 300
    unscaled_naive_contacts: int = 60
    read_contacts: int = 20000
    read_fast_contacts: int = 6000
    overhead_sizes: tuple[int, ...] = (10_000, 100_000)
    overhead_streams: str = "contacts"  # or "all"
    #: Item 4 also re-reads everything unchanged (``--full-refresh``) after each first sync.
    overhead_rerun: bool = True
    #: Item 4 for target-moco (``tap-contacts | target-moco``): CRM contacts per run; () skips it.
    overhead_moco_sizes: tuple[int, ...] = (10_000,)
    seed: int = 1


def _target_concurrency(cfg: Config, scale: int) -> int:
    if cfg.concurrency:
        return cfg.concurrency
    return max(8, 16 * scale // 5)


@dataclass(frozen=True)
class Limits:
    """The tap's budget on MOCO and the target's on the Contacts API in one scenario.

    The request logs' rates are measured against the same numbers.
    """

    moco_limit: int
    moco_window: float
    target_limit: int
    target_window: float


@dataclass(frozen=True)
class Rig:
    """A pair of sandboxes, the limits the pipeline is configured with, and the runs' folder."""

    workdir: Path
    moco: Sandbox
    crm: Sandbox
    limits: Limits


def _env(rig: Rig, *, concurrency: int) -> dict[str, str]:
    env = base_env(rig.workdir)
    env.update(
        {
            "TAP_MOCO_BASE_URL": rig.moco.url,
            "TAP_MOCO_RATE_LIMIT_REQUESTS": str(rig.limits.moco_limit),
            "TAP_MOCO_RATE_LIMIT_WINDOW_SECONDS": str(rig.limits.moco_window),
            "TARGET_CONTACTS_BASE_URL": rig.crm.url,
            "TARGET_CONTACTS_LEDGER_URL": f"sqlite:///{rig.workdir / 'ledger.db'}",
            "TARGET_CONTACTS_RATE_LIMIT_REQUESTS": str(rig.limits.target_limit),
            "TARGET_CONTACTS_RATE_LIMIT_WINDOW_SECONDS": str(rig.limits.target_window),
            "TARGET_CONTACTS_MAX_CONCURRENCY": str(concurrency),
        }
    )
    return env


def _api_stats(rig: Rig) -> dict[str, Any]:
    """Both sandboxes' request-log statistics, against the rig's limits."""
    limits = rig.limits
    return {
        "contacts_api": contacts_log_stats(
            rig.crm.requests_log(), limit=limits.target_limit, window=limits.target_window
        ),
        "moco_api": moco_log_stats(
            rig.moco.requests_log(), limit=limits.moco_limit, window=limits.moco_window
        ),
    }


def _other_load(result: MeltanoResult, cpu: dict[str, float]) -> dict[str, Any]:
    """CPU the rest of the machine used meanwhile: all CPUs' busy time minus our processes'."""
    ours = sum(cpu.values())
    other = max(0.0, result.machine_busy_s - ours)
    cores = os.cpu_count() or 1
    return {
        "machine_busy_s": result.machine_busy_s,
        "bench_processes_s": round(ours, 2),
        "other_processes_s": round(other, 2),
        "other_processes_cores": round(other / result.wall_s, 2) if result.wall_s else None,
        "cores": cores,
    }


def _records_read(summary: dict[str, Any] | None) -> int:
    if not summary:
        return 0
    return sum(c.get("read", 0) for c in summary.get("streams", {}).values())


def _sync_run(rig: Rig, name: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    workdir, moco, crm = rig.workdir, rig.moco, rig.crm
    moco.clear_log()
    crm.clear_log()
    cpu0 = {"moco_sandbox": moco.cpu_seconds(), "contacts_sandbox": crm.cpu_seconds()}
    result: MeltanoResult = run_meltano(
        ["run", "--no-install", *args, "tap-moco", "target-contacts"],
        env,
        workdir / f"{name}.log",
        summary_path=workdir / f"{name}-summary.json",
    )
    cpu = {
        "moco_sandbox": round(moco.cpu_seconds() - cpu0["moco_sandbox"], 2),
        "contacts_sandbox": round(crm.cpu_seconds() - cpu0["contacts_sandbox"], 2),
        **result.cpu_s,
    }
    summary = result.summary or {}
    out = {
        "wall_s": result.wall_s,
        "records_read_by_target": _records_read(summary),
        "streams": summary.get("streams"),
        "target_api_calls": summary.get("api_calls"),
        **_api_stats(rig),
        "peak_rss_mb": result.peak_rss_mb,
        "cpu_s": cpu,
        "machine_load": _other_load(result, cpu),
    }
    c = out["contacts_api"]
    log(
        f"  {name}: {out['records_read_by_target']} records, {c['calls']} Contacts API calls "
        f"({c['writes']} writes, {c['status_429']} x 429), {result.wall_s:.1f} s"
    )
    return out


def _naive_run(rig: Rig, name: str) -> dict[str, Any]:
    moco, crm = rig.moco, rig.crm
    moco.clear_log()
    crm.clear_log()
    out_path = rig.workdir / f"{name}.json"
    t0 = time.monotonic()
    proc = subprocess.run(  # noqa: S603  this interpreter running the bench's own module
        [
            sys.executable,
            "-m",
            "bench.naive",
            "--moco",
            moco.url,
            "--contacts",
            crm.url,
            "--out",
            str(out_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"bench.naive failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    naive = json.loads(out_path.read_text())
    out = {
        "wall_s": round(wall, 3),
        "naive": naive,
        "records_read_by_target": naive["source_records"],
        **_api_stats(rig),
    }
    c = out["contacts_api"]
    log(
        f"  {name}: {naive['source_records']} records, {c['calls']} Contacts API calls "
        f"({c['status_429']} x 429), {wall:.1f} s"
    )
    return out


def writes(cfg: Config, workdir: Path, *, naive: bool = True) -> dict[str, Any]:
    """Items 1, 2 and 5 with scaled limits (both APIs' rates x ``cfg.scale``)."""
    k = cfg.scale
    if MOCO_WINDOW % k:
        raise ValueError("--scale must divide 120 (MOCO's window is scaled to 120/scale s)")
    moco_window = MOCO_WINDOW // k
    target_limit = CONTACTS_LIMIT * k
    limits = Limits(MOCO_LIMIT, moco_window, target_limit, CONTACTS_WINDOW)
    concurrency = _target_concurrency(cfg, k)
    settings = {
        "scale": k,
        "latency_s": list(cfg.latency),
        "contacts": cfg.contacts,
        "moco_limit": f"{MOCO_LIMIT} requests / {moco_window} s (real: {MOCO_LIMIT} / "
        f"{MOCO_WINDOW} s; window / {k})",
        "contacts_limit": f"{target_limit} requests / {CONTACTS_WINDOW} s (real: "
        f"{CONTACTS_LIMIT} / {CONTACTS_WINDOW} s; limit x {k})",
        "tap": {
            "rate_limit_requests": MOCO_LIMIT,
            "rate_limit_window_seconds": moco_window,
            "page_size": PAGE_SIZE,
        },
        "target": {
            "rate_limit_requests": target_limit,
            "rate_limit_window_seconds": CONTACTS_WINDOW,
            "max_concurrency": concurrency,
        },
        "change_fraction": cfg.change_fraction,
    }
    result: dict[str, Any] = {"settings": settings}
    wd = workdir / "writes"
    wd.mkdir(parents=True, exist_ok=True)
    log(f"items 1+2 (scaled x{k}): {cfg.contacts} MOCO contacts, latency {cfg.latency} s")
    with (
        Sandbox(
            "moco",
            latency=cfg.latency,
            rate_limit=MOCO_LIMIT,
            rate_window=moco_window,
            generate=cfg.contacts,
            extra=("--generate-seed", str(cfg.seed)),
        ) as moco,
        Sandbox(
            "contacts", latency=cfg.latency, rate_limit=target_limit, rate_window=CONTACTS_WINDOW
        ) as crm,
    ):
        rig = Rig(wd, moco, crm, limits)
        env = _env(rig, concurrency=concurrency)
        result["moco_totals"] = moco_totals(moco.state())
        runs: dict[str, Any] = {}
        suffix = ["--state-id-suffix", "bench"]
        runs["first"] = _sync_run(rig, "first", suffix, env)
        runs["unchanged_incremental"] = _sync_run(rig, "unchanged-incremental", suffix, env)
        runs["unchanged_full_reread"] = _sync_run(
            rig, "unchanged-full-reread", [*suffix, "--full-refresh"], env
        )
        result["change"] = change_fraction(moco, cfg.change_fraction, seed=cfg.seed)
        log(
            f"  changed {result['change']['changed_total']} MOCO records "
            f"({result['change']['changed']})"
        )
        runs["changed_1pct"] = _sync_run(rig, "changed", suffix, env)
        result["ours"] = runs
    if naive:
        log(f"item 5 (naive baseline, scaled x{k}): {cfg.naive_contacts} MOCO contacts")
        nwd = workdir / "writes-naive"
        nwd.mkdir(parents=True, exist_ok=True)
        with (
            Sandbox(
                "moco",
                latency=cfg.latency,
                rate_limit=MOCO_LIMIT,
                rate_window=moco_window,
                generate=cfg.naive_contacts,
                extra=("--generate-seed", str(cfg.seed)),
            ) as moco,
            Sandbox(
                "contacts",
                latency=cfg.latency,
                rate_limit=target_limit,
                rate_window=CONTACTS_WINDOW,
            ) as crm,
        ):
            rig = Rig(nwd, moco, crm, limits)
            nruns: dict[str, Any] = {"contacts": cfg.naive_contacts}
            nruns["first"] = _naive_run(rig, "first")
            nruns["unchanged_rerun"] = _naive_run(rig, "unchanged")
            nruns["change"] = change_fraction(moco, cfg.change_fraction, seed=cfg.seed)
            nruns["changed_1pct"] = _naive_run(rig, "changed")
            result["naive"] = nruns
    return result


def unscaled(cfg: Config, workdir: Path, *, naive: bool = True) -> dict[str, Any]:
    """Item 1 (and 5) at the real limits: 100 / 10 s and 120 / 120 s, fewer records."""
    concurrency = cfg.concurrency or 8
    settings = {
        "scale": 1,
        "latency_s": list(cfg.latency),
        "contacts": cfg.unscaled_contacts,
        "naive_contacts": cfg.unscaled_naive_contacts,
        "moco_limit": f"{MOCO_LIMIT} requests / {MOCO_WINDOW} s",
        "contacts_limit": f"{CONTACTS_LIMIT} requests / {CONTACTS_WINDOW} s",
        "tap": {"rate_limit_requests": MOCO_LIMIT, "rate_limit_window_seconds": MOCO_WINDOW},
        "target": {
            "rate_limit_requests": CONTACTS_LIMIT,
            "rate_limit_window_seconds": CONTACTS_WINDOW,
            "max_concurrency": concurrency,
        },
    }
    result: dict[str, Any] = {"settings": settings}
    limits = Limits(MOCO_LIMIT, MOCO_WINDOW, CONTACTS_LIMIT, CONTACTS_WINDOW)
    wd = workdir / "unscaled"
    wd.mkdir(parents=True, exist_ok=True)
    log(f"item 1 unscaled (real limits): {cfg.unscaled_contacts} MOCO contacts")
    with (
        Sandbox(
            "moco",
            latency=cfg.latency,
            rate_limit=MOCO_LIMIT,
            rate_window=MOCO_WINDOW,
            generate=cfg.unscaled_contacts,
            extra=("--generate-seed", str(cfg.seed)),
        ) as moco,
        Sandbox(
            "contacts", latency=cfg.latency, rate_limit=CONTACTS_LIMIT, rate_window=CONTACTS_WINDOW
        ) as crm,
    ):
        rig = Rig(wd, moco, crm, limits)
        env = _env(rig, concurrency=concurrency)
        result["ours"] = {"first": _sync_run(rig, "first", ["--state-id-suffix", "bench"], env)}
    if naive:
        nwd = workdir / "unscaled-naive"
        nwd.mkdir(parents=True, exist_ok=True)
        log(f"item 5 unscaled (naive baseline): {cfg.unscaled_naive_contacts} MOCO contacts")
        with (
            Sandbox(
                "moco",
                latency=cfg.latency,
                rate_limit=MOCO_LIMIT,
                rate_window=MOCO_WINDOW,
                generate=cfg.unscaled_naive_contacts,
                extra=("--generate-seed", str(cfg.seed)),
            ) as moco,
            Sandbox(
                "contacts",
                latency=cfg.latency,
                rate_limit=CONTACTS_LIMIT,
                rate_window=CONTACTS_WINDOW,
            ) as crm,
        ):
            result["naive"] = {
                "contacts": cfg.unscaled_naive_contacts,
                "first": _naive_run(Rig(nwd, moco, crm, limits), "first"),
            }
    return result


def _tap_read(
    name: str,
    workdir: Path,
    moco: Sandbox,
    *,
    limit: int,
    window: int,
) -> dict[str, Any]:
    env = base_env(workdir)
    env.update(
        {
            "TAP_MOCO_BASE_URL": moco.url,
            "TAP_MOCO_RATE_LIMIT_REQUESTS": str(limit),
            "TAP_MOCO_RATE_LIMIT_WINDOW_SECONDS": str(window),
        }
    )
    moco.clear_log()
    totals = moco_totals(moco.state())
    fetched = sum(totals.values()) - totals["companies"]  # companies are not selected
    result = run_meltano(["invoke", "tap-moco"], env, workdir / f"{name}.log", stdout_counter=True)
    stats = moco_log_stats(moco.requests_log(), limit=limit, window=window)
    out: dict[str, Any] = {
        "wall_s": result.wall_s,
        "records_emitted": result.records_out,
        "records_fetched": fetched,
        "moco_totals": totals,
        "moco_api": stats,
        "peak_rss_mb": result.peak_rss_mb,
        "ceiling_records_per_s": round(PAGE_SIZE * limit / window, 2),
    }
    span = stats.get("span_s") or 0
    if span:
        out["records_per_s"] = round(fetched / span, 2)
        out["records_fraction"] = round(out["records_per_s"] / out["ceiling_records_per_s"], 4)
        out["records_per_request"] = round(fetched / max(1, stats["requests"]), 1)
    rate = stats.get("rate", {})
    log(
        f"  {name}: {stats['requests']} MOCO requests in {span:.1f} s, steady "
        f"{rate.get('steady_fraction', 'n/a')} of the ceiling, {stats['status_429']} x 429"
    )
    return out


def reads(cfg: Config, workdir: Path) -> dict[str, Any]:
    """Item 3: the tap alone, MOCO's window scaled by ``cfg.scale``; plus 10 requests/s."""
    k = cfg.scale
    window = MOCO_WINDOW // k
    wd = workdir / "reads"
    wd.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "settings": {
            "scale": k,
            "latency_s": list(cfg.latency),
            "contacts": cfg.read_contacts,
            "moco_limit": f"{MOCO_LIMIT} requests / {window} s "
            f"(real: {MOCO_LIMIT} / {MOCO_WINDOW} s; window / {k})",
            "tap": {
                "rate_limit_requests": MOCO_LIMIT,
                "rate_limit_window_seconds": window,
                "page_size": PAGE_SIZE,
            },
            "fast_contacts": cfg.read_fast_contacts,
            "fast_limit": f"{MOCO_LIMIT} requests / {MOCO_WINDOW // 10} s (10 requests/s: the rate "
            "of MOCO's unlimited plan, 1,200 / 120 s)",
        }
    }
    log(f"item 3 (tap alone, MOCO {MOCO_LIMIT}/{window} s): {cfg.read_contacts} MOCO contacts")
    with Sandbox(
        "moco",
        latency=cfg.latency,
        rate_limit=MOCO_LIMIT,
        rate_window=window,
        generate=cfg.read_contacts,
        extra=("--generate-seed", str(cfg.seed)),
    ) as moco:
        result["standard"] = _tap_read("standard", wd, moco, limit=MOCO_LIMIT, window=window)
    if cfg.read_fast_contacts:
        fast_window = MOCO_WINDOW // 10
        log(
            f"item 3b (tap alone, MOCO {MOCO_LIMIT}/{fast_window} s = 10 requests/s): "
            f"{cfg.read_fast_contacts} MOCO contacts"
        )
        with Sandbox(
            "moco",
            latency=cfg.latency,
            rate_limit=MOCO_LIMIT,
            rate_window=fast_window,
            generate=cfg.read_fast_contacts,
            extra=("--generate-seed", str(cfg.seed)),
        ) as moco:
            result["fast"] = _tap_read("fast", wd, moco, limit=MOCO_LIMIT, window=fast_window)
    return result


def overhead(cfg: Config, workdir: Path) -> dict[str, Any]:
    """Item 4: ``meltano run`` with no latency and no limits; records/s and peak memory."""
    # Limits "off": the sandboxes' limits are far above what the pipeline reaches. The Contacts
    # sandbox gets a huge limit rather than 0: with 0 it answers X-RateLimit-Remaining: 0 to every
    # request, and the target (rightly) pauses for a window each time.
    target_limit = 1000
    result: dict[str, Any] = {
        "settings": {
            "latency_s": [0, 0],
            "streams": cfg.overhead_streams,
            "moco_limit": "off (sandbox rate_limit 0)",
            "contacts_limit": "off (sandbox 10,000,000 / 1 s, daily limit 10^9)",
            "tap": {"rate_limit_requests": 100_000, "rate_limit_window_seconds": 1},
            "target": {
                "rate_limit_requests": target_limit,
                "rate_limit_window_seconds": 1,
                "max_concurrency": cfg.concurrency or 8,
            },
        },
        "sizes": {},
    }
    for n in cfg.overhead_sizes:
        wd = workdir / f"overhead-{n}"
        wd.mkdir(parents=True, exist_ok=True)
        log(f"item 4 (no latency, no limits): {n} MOCO contacts, streams: {cfg.overhead_streams}")
        with (
            Sandbox(
                "moco",
                rate_limit=0,
                rate_window=1,
                generate=n,
                extra=("--generate-seed", str(cfg.seed)),
            ) as moco,
            Sandbox(
                "contacts",
                rate_limit=NO_LIMIT,
                rate_window=1,
                extra=("--daily-limit", str(10**9)),
            ) as crm,
        ):
            rig = Rig(wd, moco, crm, Limits(100_000, 1, target_limit, 1))
            env = _env(rig, concurrency=cfg.concurrency or 8)
            if cfg.overhead_streams == "contacts":
                env["TAP_MOCO__SELECT_FILTER"] = '["contacts"]'
            cpu0 = {"moco_sandbox": moco.cpu_seconds(), "contacts_sandbox": crm.cpu_seconds()}
            res = run_meltano(
                [
                    "run",
                    "--no-install",
                    "--state-id-suffix",
                    f"overhead-{n}",
                    "tap-moco",
                    "target-contacts",
                ],
                env,
                wd / "run.log",
                summary_path=wd / "summary.json",
            )
            records = _records_read(res.summary)
            calls = sum((res.summary or {}).get("api_calls", {}).values())
            moco_log = moco.requests_log()
            first_read = min((e["time"] - e["duration"] for e in moco_log), default=None)
            pipeline_s = res.ended - first_read if first_read else None
            cpu = {
                "moco_sandbox": round(moco.cpu_seconds() - cpu0["moco_sandbox"], 2),
                "contacts_sandbox": round(crm.cpu_seconds() - cpu0["contacts_sandbox"], 2),
                **res.cpu_s,
            }
            entry = {
                "contacts": n,
                "wall_s": res.wall_s,
                "records": records,
                "api_calls": calls,
                "streams": (res.summary or {}).get("streams"),
                "records_per_s": round(records / res.wall_s, 1) if res.wall_s else None,
                "startup_s": round(res.wall_s - pipeline_s, 1) if pipeline_s else None,
                "records_per_s_after_startup": round(records / pipeline_s, 1)
                if pipeline_s
                else None,
                "moco_requests": len(moco_log),
                "peak_rss_mb": res.peak_rss_mb,
                "cpu_s": cpu,
                "machine_load": _other_load(res, cpu),
                "target_cpu_ms_per_record": round(1000 * cpu.get("target", 0) / records, 2)
                if records
                else None,
                "tap_cpu_ms_per_record": round(1000 * cpu.get("tap", 0) / records, 3)
                if records
                else None,
            }
            result["sizes"][str(n)] = entry
            log(
                f"  {n}: {records} records in {res.wall_s:.1f} s = {entry['records_per_s']}/s; "
                f"peak RSS {res.peak_rss_mb}; target CPU {entry['target_cpu_ms_per_record']} ms "
                "per record"
            )
            if cfg.overhead_rerun:
                entry["unchanged_rerun"] = target_cost.measure(
                    [
                        "run",
                        "--no-install",
                        "--full-refresh",
                        "--state-id-suffix",
                        f"overhead-{n}",
                        "tap-moco",
                        "target-contacts",
                    ],
                    env,
                    wd,
                    "unchanged",
                    sandboxes=(moco, crm),
                )
    return result
