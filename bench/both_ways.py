"""The rig of items 8 and 9: both sandboxes, all four plugins on one ledger, and what they called.

- :class:`ApiLimits`: the plugins' rate-limit settings (the same numbers the sandboxes enforce).
- :class:`BothWays`: a MOCO and a Contacts sandbox, the environment of every plugin and of the
  listener (one SQLite ledger, Meltano's system database and state in the work directory), and
  ``meltano`` runs with both targets' summaries.
- :func:`api_stats`: a sandbox's request log as reads and writes per route, 429s and the rate
  against a ceiling.
- :func:`crm_seed`: generated CRM contacts, each with one note and at least one tag.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from bench.harness import (
    MeltanoResult,
    Sandbox,
    base_env,
    rate_stats,
    run_meltano,
)
from sandbox import contacts_data

if TYPE_CHECKING:
    from pathlib import Path

MOCO_LIMIT = 120  # requests per window and API key (standard plans)
MOCO_UNLIMITED_LIMIT = 1200  # the unlimited plan
MOCO_WINDOW = 120  # seconds
CONTACTS_LIMIT = 100  # requests per window and location
CONTACTS_WINDOW = 10  # seconds
LOCATION = "sandbox-location"
#: The User-Agent of the bench's own API calls (a person's CRM edits), told apart in the logs.
BENCH_AGENT = "moco-contacts-sync-bench"
CRM_HEADERS = {
    "Authorization": "Bearer sandbox-token",
    "Version": "2021-07-28",
    "User-Agent": BENCH_AGENT,
}
_WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_CONTACTS_FIXED = {
    "",
    "contacts",
    "tasks",
    "notes",
    "tags",
    "upsert",
    "search",
    "duplicate",
    "business",
    "completed",
    "appointments",
    "locations",
}
_PLUGIN_PREFIXES = ("TAP_MOCO_", "TARGET_CONTACTS_", "TAP_CONTACTS_", "TARGET_MOCO_")


@dataclass(frozen=True)
class ApiLimits:
    """Requests per window of each API, as the plugins are configured and the sandboxes enforce."""

    moco_requests: int
    moco_window: int
    contacts_requests: int
    contacts_window: int

    @classmethod
    def scaled(cls, scale: int, *, moco_requests: int = MOCO_LIMIT) -> ApiLimits:
        """Both APIs ``scale`` times faster, as items 1-3 do (MOCO's window / scale)."""
        if MOCO_WINDOW % scale:
            raise ValueError("--scale must divide 120 (MOCO's window is scaled to 120/scale s)")
        return cls(moco_requests, MOCO_WINDOW // scale, CONTACTS_LIMIT * scale, CONTACTS_WINDOW)

    def describe(self) -> dict[str, str]:
        """The limits in words, for results.json."""
        return {
            "moco": f"{self.moco_requests} requests / {self.moco_window} s",
            "contacts": f"{self.contacts_requests} requests / {self.contacts_window} s",
        }


#: The plugins' settings while a set-up run (not measured) fills the sandboxes.
LIFTED = ApiLimits(100_000, 1, 1000, 1)


def moco_route(path: str) -> str:
    """``/api/v1/contacts/people/123`` -> ``/contacts/people/{id}``."""
    parts = path.removeprefix("/api/v1").split("/")
    return "/".join("{id}" if part.isdigit() else part for part in parts)


def contacts_route(path: str) -> str:
    """``/contacts/AbC.../notes`` -> ``/contacts/{id}/notes``; location ids too."""
    return "/".join(part if part in _CONTACTS_FIXED else "{id}" for part in path.split("/"))


def is_write(entry: dict[str, Any]) -> bool:
    """Whether a logged request changed data (searches are reads, even when POSTed)."""
    return entry["method"] in _WRITE_METHODS and not entry["path"].endswith("/search")


def from_bench(entry: dict[str, Any]) -> bool:
    """Whether the bench itself sent the request (a person's edit, not the sync's)."""
    return (entry.get("headers") or {}).get("user-agent") == BENCH_AGENT


def sync_requests(api: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sync's API requests among a sandbox's log ``entries`` (``api``: moco or contacts)."""
    if api == "moco":
        entries = [e for e in entries if e["path"].startswith("/api/v1")]
    else:
        entries = [e for e in entries if not e["path"].startswith("/oauth")]
    return sorted((e for e in entries if not from_bench(e)), key=lambda e: e["time"])


def api_entries(sandbox: Sandbox) -> list[dict[str, Any]]:
    """The sync's API requests in a sandbox's log, by time."""
    return sync_requests(sandbox.api, sandbox.requests_log())


def api_stats(
    entries: list[dict[str, Any]], *, api: str, limit: int, window: float
) -> dict[str, Any]:
    """Requests, reads, writes, routes, 429s and the rate against ``limit`` per ``window`` s."""
    route = moco_route if api == "moco" else contacts_route
    by_route = Counter(f"{e['method']} {route(e['path'])}" for e in entries)
    status = Counter(str(e["status"]) for e in entries)
    writes = sum(1 for e in entries if is_write(e))
    out: dict[str, Any] = {
        "requests": len(entries),
        "reads": len(entries) - writes,
        "writes": writes,
        "status_429": status.get(str(HTTPStatus.TOO_MANY_REQUESTS.value), 0),
        "by_route": dict(sorted(by_route.items())),
        "by_status": dict(sorted(status.items())),
    }
    if len(entries) > 1:
        times = [e["time"] for e in entries]
        out["span_s"] = round(times[-1] - times[0], 3)
        out["rate"] = rate_stats(times, limit=limit, window=window)
    return out


def crm_seed(contacts: int, seed: int) -> dict[str, Any]:
    """``contacts`` generated CRM contacts, each with one note and at least one tag."""
    doc = contacts_data.generate(contacts, seed, tasks=0, notes=contacts, appointments=0)
    for contact, note in zip(doc["contacts"], doc["notes"], strict=True):
        note["contactId"] = contact["id"]
        if not contact.get("tags"):
            contact["tags"] = ["bench"]
    return {"contacts": doc["contacts"], "notes": doc["notes"]}


@dataclass
class BothWays:
    """Both sandboxes and the environment of everything that runs against them."""

    workdir: Path
    moco: Sandbox
    crm: Sandbox

    @property
    def ledger_url(self) -> str:
        """The one ledger all plugins and the listener share."""
        return f"sqlite:///{self.workdir / 'ledger.db'}"

    def env(self, limits: ApiLimits | None) -> dict[str, str]:
        """Every plugin's and the listener's environment; ``None``: meltano.yml's own limits."""
        env = {
            k: v
            for k, v in base_env(self.workdir).items()
            if not k.startswith((*_PLUGIN_PREFIXES, "SYNC_LISTENER_"))
        }
        ledger = self.ledger_url
        env.update(
            {
                "TAP_MOCO_BASE_URL": self.moco.url,
                "TARGET_MOCO_BASE_URL": self.moco.url,
                "SYNC_LISTENER_MOCO_BASE_URL": self.moco.url,
                "TAP_CONTACTS_BASE_URL": self.crm.url,
                "TARGET_CONTACTS_BASE_URL": self.crm.url,
                "TAP_CONTACTS_LEDGER_URL": ledger,
                "TARGET_CONTACTS_LEDGER_URL": ledger,
                "TARGET_MOCO_LEDGER_URL": ledger,
                "SYNC_LISTENER_LEDGER_URL": ledger,
            }
        )
        if limits is not None:
            for prefix in ("TAP_MOCO_", "TARGET_MOCO_"):
                env[prefix + "RATE_LIMIT_REQUESTS"] = str(limits.moco_requests)
                env[prefix + "RATE_LIMIT_WINDOW_SECONDS"] = str(limits.moco_window)
            for prefix in ("TAP_CONTACTS_", "TARGET_CONTACTS_"):
                env[prefix + "RATE_LIMIT_REQUESTS"] = str(limits.contacts_requests)
                env[prefix + "RATE_LIMIT_WINDOW_SECONDS"] = str(limits.contacts_window)
        return env

    def enforce(self, limits: ApiLimits | None) -> None:
        """The sandboxes' limits; ``None`` lifts them (a set-up run, not measured).

        MOCO's sandbox does not count requests while its limit is 0. The Contacts sandbox gets a
        huge limit instead (with 0 it answers ``X-RateLimit-Remaining: 0``, and the plugins wait).
        """
        if limits is None:
            self.moco.configure(rate_limit=0)
            self.crm.configure(rate_limit=10_000_000, rate_window=1, daily_limit=10**9)
            return
        self.moco.configure(rate_limit=limits.moco_requests, rate_window=limits.moco_window)
        self.crm.configure(rate_limit=limits.contacts_requests, rate_window=limits.contacts_window)

    def forget_budgets(self) -> None:
        """Drop the shared request budgets' slots: what set-up runs spent is not the next run's.

        Measured runs then start with empty windows on both sides, as the sandboxes do.
        """
        path = self.workdir / "ledger.db"
        if not path.exists():
            return
        with sqlite3.connect(path) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if "rate_budget_slots" in tables:
                db.execute("DELETE FROM rate_budget_slots")

    def set_up(self, name: str, job: str, *, settle: float = CONTACTS_WINDOW + 1) -> dict[str, Any]:
        """``meltano run JOB`` with the limits lifted, to fill the other side; its summaries.

        Afterwards the budgets are forgotten and the Contacts sandbox's window (which counted the
        set-up's requests) is let pass.
        """
        self.enforce(None)
        try:
            run = self.run(name, ["run", "--no-install", job], self.env(LIFTED))
        finally:
            self.forget_budgets()
        time.sleep(settle)
        return {"wall_s": run["wall_s"], "summaries": run["summaries"]}

    def run(self, name: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
        """``meltano ARGS`` with both targets' summaries; time, memory, CPU, summaries."""
        paths = {
            "target-moco": self.workdir / f"{name}-target-moco.json",
            "target-contacts": self.workdir / f"{name}-target-contacts.json",
        }
        for path in paths.values():
            path.unlink(missing_ok=True)
        env = {
            **env,
            "TARGET_MOCO_SUMMARY_PATH": str(paths["target-moco"]),
            "TARGET_CONTACTS_SUMMARY_PATH": str(paths["target-contacts"]),
        }
        result: MeltanoResult = run_meltano(args, env, self.workdir / f"{name}.log")
        return {
            "wall_s": result.wall_s,
            "started": result.started,
            "ended": result.ended,
            "peak_rss_mb": result.peak_rss_mb,
            "cpu_s": result.cpu_s,
            "summaries": {
                target: json.loads(path.read_text(encoding="utf-8"))
                for target, path in paths.items()
                if path.exists()
            },
        }
