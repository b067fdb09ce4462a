"""Helpers for the tap-contacts tests: seed the Contacts sandbox, run the tap, read what it did."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
from collections import Counter
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from tap_contacts.tap import TapContacts

if TYPE_CHECKING:
    from sandbox.server import RunningSandbox

LOCATION = "sandbox-location"
PIT = "sandbox-token"
CHILDREN = ("tasks", "notes", "appointments")
ROOT = Path(__file__).resolve().parents[2]
BASE_TIME = datetime(2025, 1, 1, tzinfo=timezone.utc)


def tap_config(sandbox: RunningSandbox, **overrides: Any) -> dict[str, Any]:
    """A config for ``sandbox`` (its URL, the default token), with no client-side limit."""
    config: dict[str, Any] = {
        "base_url": sandbox.url,
        "location_id": LOCATION,
        "private_integration_token": PIT,
        "ledger_url": "sqlite:///:memory:",
        "rate_limit_requests": 100_000,
        "rate_limit_window_seconds": 1,
        "request_timeout": 10,
    }
    config.update(overrides)
    return config


def stamp(seconds: float) -> str:
    """``BASE_TIME + seconds`` in the API's form."""
    moment = BASE_TIME + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def contact_id(i: int) -> str:
    return f"c{i:019d}"


def contact(i: int, **extra: Any) -> dict[str, Any]:
    """A seedable contact ``i``, updated ``i`` seconds after BASE_TIME."""
    record: dict[str, Any] = {
        "id": contact_id(i),
        "firstName": f"First{i}",
        "lastName": f"Last{i}",
        "email": f"person{i}@example.com",
        "dateAdded": stamp(0),
        "dateUpdated": stamp(i),
    }
    record.update(extra)
    return record


def seed(sandbox: RunningSandbox, **data: Any) -> dict[str, Any]:
    return call(sandbox, "POST", "/_sandbox/seed", data)


def call(sandbox: RunningSandbox, method: str, path: str, body: Any = None) -> Any:
    """A sandbox control route; returns the JSON answer."""
    response = requests.request(method, sandbox.url + path, json=body, timeout=60)
    response.raise_for_status()
    return response.json() if response.content else None


def api(sandbox: RunningSandbox, method: str, path: str, body: Any = None) -> Any:
    """A Contacts API route as a client would call it (the location's token)."""
    response = requests.request(
        method,
        sandbox.url + path,
        json=body,
        headers={"Authorization": f"Bearer {PIT}", "Version": "2021-07-28"},
        timeout=60,
    )
    response.raise_for_status()
    return response.json() if response.content else None


def request_log(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    return call(sandbox, "GET", "/_sandbox/requests")


def clear_log(sandbox: RunningSandbox) -> None:
    call(sandbox, "DELETE", "/_sandbox/requests")


def routes(log: list[dict[str, Any]]) -> Counter[str]:
    """Requests per route, ids replaced by ``{id}``."""
    out: Counter[str] = Counter()
    for entry in log:
        parts = entry["path"].split("/")
        if len(parts) > 2 and parts[1] == "contacts" and parts[2] not in ("search", ""):
            parts[2] = "{id}"
        if len(parts) > 2 and parts[1] == "locations":
            parts[2] = "{locationId}"
        out[f"{entry['method']} {'/'.join(parts)}"] += 1
    return out


@dataclass
class TapRun:
    """What one tap run wrote to stdout, and the exception it ended with (if any)."""

    messages: list[dict[str, Any]]
    error: BaseException | None

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def ids(self, stream: str) -> list[str]:
        return [r["id"] for r in self.records(stream)]

    @property
    def state(self) -> dict[str, Any]:
        """The last STATE message's value, as Meltano would store it."""
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return copy.deepcopy(states[-1]) if states else {}

    def bookmark(self, stream: str = "contacts") -> str | None:
        return self.state.get("bookmarks", {}).get(stream, {}).get("replication_key_value")


def run_tap(
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
) -> TapRun:
    """Run a full sync in-process, as ``tap-contacts --config --state --catalog`` would."""
    out = io.StringIO()
    error: BaseException | None = None
    with redirect_stdout(out):
        try:
            tap = TapContacts(
                config=config, state=copy.deepcopy(state) if state else None, catalog=catalog
            )
            tap.sync_all()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            error = exc
    messages = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return TapRun(messages, error)


@dataclass
class TapProcess:
    returncode: int
    stdout: str
    stderr: str

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]


def tap_command(config_path: Path, state_path: Path | None = None) -> list[str]:
    """The tap-contacts command line (``python -m tap_contacts`` until the script exists)."""
    command = [sys.executable, "-m", "tap_contacts", "--config", str(config_path)]
    if state_path is not None:
        command += ["--state", str(state_path)]
    return command


def run_tap_process(
    config: dict[str, Any],
    workdir: Path,
    state: dict[str, Any] | None = None,
    *,
    timeout: float = 300,
) -> TapProcess:
    """Run tap-contacts as a real process in ``workdir``."""
    config_path = workdir / "tap-config.json"
    config_path.write_text(json.dumps(config))
    state_path = None
    if state is not None:
        state_path = workdir / "tap-state.json"
        state_path.write_text(json.dumps(state))
    proc = subprocess.run(
        tap_command(config_path, state_path),
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)},
        check=False,
    )
    return TapProcess(proc.returncode, proc.stdout, proc.stderr)


def catalog_selecting(config: dict[str, Any], streams: set[str]) -> dict[str, Any]:
    """The tap's discovered catalog with only ``streams`` selected."""
    tap = TapContacts(config=config)
    catalog = tap.catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog
