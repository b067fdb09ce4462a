"""Item 4's CPU per record for both targets: a first sync and an unchanged full re-read.

- :func:`measure`: one ``meltano run`` of a tap and a target with latency and limits off: wall
  time, records, peak RSS and CPU per process, the target's and the tap's CPU per record.
- :func:`target_moco`: the same for the reverse direction: ``meltano run tap-contacts
  target-moco`` against a Contacts sandbox that generates N contacts (``--generate``) and an
  empty MOCO sandbox, first sync and unchanged full re-read (``--full-refresh``: every record
  reaches the target again and needs no call).

CPU is what the process used (``/proc/PID/stat``, user + system), so other jobs on the machine
change it far less than they change the wall time.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bench.harness import NO_LIMIT, Sandbox, base_env, log, run_meltano

if TYPE_CHECKING:
    from pathlib import Path

_REVERSE_PREFIXES = ("TAP_CONTACTS_", "TARGET_MOCO_")


def _records_read(summary: dict[str, Any] | None) -> int:
    if not summary:
        return 0
    return sum(c.get("read", 0) for c in summary.get("streams", {}).values())


def measure(
    args: list[str],
    env: dict[str, str],
    workdir: Path,
    name: str,
    *,
    summary_variable: str = "TARGET_CONTACTS_SUMMARY_PATH",
    sandboxes: tuple[Sandbox, ...] = (),
) -> dict[str, Any]:
    """One ``meltano ARGS`` run: records, wall time, peak RSS, CPU (per record for tap/target).

    ``summary_variable`` is the target's setting that names its summary file; the sandboxes'
    CPU during the run is reported too (it is not the target's).
    """
    summary_path = workdir / f"{name}-summary.json"
    summary_path.unlink(missing_ok=True)
    before = {s.api: s.cpu_seconds() for s in sandboxes}
    res = run_meltano(args, {**env, summary_variable: str(summary_path)}, workdir / f"{name}.log")
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    records = _records_read(summary)
    cpu = {
        **{f"{s.api}_sandbox": round(s.cpu_seconds() - before[s.api], 2) for s in sandboxes},
        **res.cpu_s,
    }
    ours = sum(cpu.values())
    other = max(0.0, res.machine_busy_s - ours)
    entry = {
        "wall_s": res.wall_s,
        "records": records,
        "streams": summary.get("streams"),
        "api_calls": sum((summary.get("api_calls") or {}).values()),
        "records_per_s": round(records / res.wall_s, 1) if res.wall_s else None,
        "peak_rss_mb": res.peak_rss_mb,
        "cpu_s": cpu,
        "other_processes_cores": round(other / res.wall_s, 2) if res.wall_s else None,
        "target_cpu_ms_per_record": round(1000 * cpu.get("target", 0) / records, 3)
        if records
        else None,
        "tap_cpu_ms_per_record": round(1000 * cpu.get("tap", 0) / records, 3) if records else None,
    }
    log(
        f"  {name}: {records} records in {res.wall_s:.1f} s, target CPU "
        f"{cpu.get('target')} s = {entry['target_cpu_ms_per_record']} ms per record"
    )
    return entry


def _reverse_env(workdir: Path, contacts: Sandbox, moco: Sandbox, streams: str) -> dict[str, str]:
    env = {k: v for k, v in base_env(workdir).items() if not k.startswith(_REVERSE_PREFIXES)}
    ledger = f"sqlite:///{workdir / 'ledger.db'}"
    env.update(
        {
            "TAP_CONTACTS_BASE_URL": contacts.url,
            "TAP_CONTACTS_LEDGER_URL": ledger,
            "TAP_CONTACTS_RATE_LIMIT_REQUESTS": str(NO_LIMIT),
            "TAP_CONTACTS_RATE_LIMIT_WINDOW_SECONDS": "1",
            "TARGET_MOCO_BASE_URL": moco.url,
            "TARGET_MOCO_LEDGER_URL": ledger,
            "TARGET_MOCO_RATE_LIMIT_REQUESTS": str(NO_LIMIT),
            "TARGET_MOCO_RATE_LIMIT_WINDOW_SECONDS": "1",
        }
    )
    if streams == "contacts":
        env["TAP_CONTACTS__SELECT_FILTER"] = '["contacts"]'
    return env


def target_moco(
    sizes: tuple[int, ...], workdir: Path, *, streams: str, seed: int
) -> dict[str, Any]:
    """Item 4 for target-moco: first sync and unchanged full re-read of each size."""
    result: dict[str, Any] = {
        "settings": {
            "pipeline": "meltano run tap-contacts target-moco",
            "latency_s": [0, 0],
            "streams": streams,
            "contacts_limit": "off (sandbox 10,000,000 / 1 s, daily limit 10^9)",
            "moco_limit": "off (sandbox rate_limit 0)",
            "tap_and_target": {"rate_limit_requests": NO_LIMIT, "rate_limit_window_seconds": 1},
            "target_max_concurrency": "target-moco's default (2)",
            "generator": "Contacts sandbox --generate N",
        },
        "sizes": {},
    }
    for n in sizes:
        wd = workdir / f"overhead-moco-{n}"
        wd.mkdir(parents=True, exist_ok=True)
        log(f"item 4, target-moco (no latency, no limits): {n} CRM contacts, streams: {streams}")
        with (
            Sandbox(
                "contacts",
                rate_limit=NO_LIMIT,
                rate_window=1,
                extra=(
                    "--generate",
                    str(n),
                    "--generate-seed",
                    str(seed),
                    "--daily-limit",
                    str(10**9),
                ),
            ) as contacts,
            Sandbox("moco", rate_limit=0, rate_window=1) as moco,
        ):
            env = _reverse_env(wd, contacts, moco, streams)
            run = ["run", "--no-install", "--state-id-suffix", f"overhead-moco-{n}"]
            pipeline = ["tap-contacts", "target-moco"]
            kwargs: dict[str, Any] = {
                "summary_variable": "TARGET_MOCO_SUMMARY_PATH",
                "sandboxes": (contacts, moco),
            }
            first = measure([*run, *pipeline], env, wd, "first", **kwargs)
            again = measure([*run, "--full-refresh", *pipeline], env, wd, "unchanged", **kwargs)
        result["sizes"][str(n)] = {"contacts": n, "first_sync": first, "unchanged_rerun": again}
    return result
