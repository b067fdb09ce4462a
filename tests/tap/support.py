"""Helpers for the tap-moco tests: run the tap in-process and talk to the MOCO sandbox."""

from __future__ import annotations

import copy
import io
import json
from collections import Counter
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import requests

from moco_api.timestamps import format_moco_timestamp, parse_moco_timestamp
from tap_moco.tap import TapMoco

if TYPE_CHECKING:
    from sandbox.server import RunningSandbox

API_KEY = "sandbox-key"
STREAMS = ("companies", "contacts", "notes", "tasks")


def tap_config(sandbox: RunningSandbox, **overrides: Any) -> dict[str, Any]:
    """A config for ``sandbox``: its URL, the default key, no client-side limit unless given."""
    config: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": sandbox.url,
        "rate_limit_requests": 100_000,
        "rate_limit_window_seconds": 1,
    }
    config.update(overrides)
    return config


@dataclass
class TapRun:
    """What one tap run wrote to stdout, and the exception it ended with (if any)."""

    messages: list[dict[str, Any]]
    error: BaseException | None

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def ids(self, stream: str) -> list[int]:
        return [r["id"] for r in self.records(stream)]

    @property
    def state(self) -> dict[str, Any]:
        """The last STATE message's value, as Meltano would store it."""
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return copy.deepcopy(states[-1]) if states else {}

    def bookmark(self, stream: str) -> str | None:
        return self.state.get("bookmarks", {}).get(stream, {}).get("replication_key_value")


def run_tap(
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
) -> TapRun:
    """Run a full sync in-process, as ``tap-moco --config --state --catalog`` would."""
    out = io.StringIO()
    error: BaseException | None = None
    with redirect_stdout(out):
        try:
            tap = TapMoco(
                config=config, state=copy.deepcopy(state) if state else None, catalog=catalog
            )
            tap.sync_all()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            error = exc
    messages = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return TapRun(messages, error)


def sandbox_call(
    sandbox: RunningSandbox, method: str, path: str, body: Any = None, *, api: bool = False
) -> Any:
    """Call a sandbox route (``api=True``: under ``/api/v1`` with the key); returns the JSON."""
    headers = {"Authorization": f"Token token={API_KEY}"} if api else {}
    url = sandbox.url + ("/api/v1" if api else "") + path
    response = requests.request(method, url, json=body, headers=headers, timeout=30)
    response.raise_for_status()
    return response.json() if response.content else None


def sandbox_state(sandbox: RunningSandbox) -> dict[str, list[dict[str, Any]]]:
    return sandbox_call(sandbox, "GET", "/_sandbox/state")


def request_log(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    return sandbox_call(sandbox, "GET", "/_sandbox/requests")


def expected_ids(state: dict[str, list[dict[str, Any]]]) -> dict[str, set[int]]:
    """What a full sync must emit for each stream, from the sandbox's stored records."""
    return {
        "companies": {c["id"] for c in state["companies"]},
        "contacts": {c["id"] for c in state["contacts"]},
        "notes": {c["id"] for c in state["comments"] if c["commentable_type"] == "Contact"},
        "tasks": {t["id"] for t in state["todos"] if t["todoable_type"] == "Contact"},
    }


def window_start(bookmark: str | None, overlap_seconds: int = 300) -> str:
    """The ``updated_after`` a run starting from ``bookmark`` sends (bookmark minus the overlap)."""
    moment = parse_moco_timestamp(bookmark or "") - timedelta(seconds=overlap_seconds)
    return format_moco_timestamp(moment)


def duplicates(ids: list[int]) -> list[int]:
    return [record_id for record_id, n in Counter(ids).items() if n > 1]
