"""Helpers to drive target-contacts as a real process on Singer messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

BIN = Path(sys.executable).parent

SCHEMAS: dict[str, dict[str, Any]] = {
    "contacts": {
        "properties": {
            "id": {"type": ["string"]},
            "firstName": {"type": ["string", "null"]},
            "lastName": {"type": ["string", "null"]},
            "email": {"type": ["string", "null"]},
            "phone": {"type": ["string", "null"]},
            "companyName": {"type": ["string", "null"]},
            "tags": {"type": ["array", "null"], "items": {"type": "string"}},
            "source": {"type": ["string", "null"]},
            "custom_properties": {"type": ["object", "null"]},
        }
    },
    "tasks": {
        "properties": {
            "taskId": {"type": "string"},
            "contactId": {"type": "string"},
            "title": {"type": "string"},
            "dueDate": {"type": ["string", "null"]},
            "status": {"type": ["string", "null"]},
            "body": {"type": ["string", "null"]},
        }
    },
    "notes": {
        "properties": {
            "notesId": {"type": "string"},
            "contactId": {"type": "string"},
            "content": {"type": "string"},
            "createdAt": {"type": ["string", "null"]},
        }
    },
}
KEYS = {"contacts": ["id"], "tasks": ["taskId"], "notes": ["notesId"]}


def messages(
    records: list[tuple[str, dict[str, Any]]],
    state: dict | None = None,
    order: tuple[str, ...] = ("contacts", "tasks", "notes"),
) -> list[dict[str, Any]]:
    """SCHEMA messages for ``order``, then the RECORDs as given, then an optional STATE."""
    out: list[dict[str, Any]] = [
        {"type": "SCHEMA", "stream": s, "schema": SCHEMAS[s], "key_properties": KEYS[s]}
        for s in order
    ]
    out += [{"type": "RECORD", "stream": s, "record": r} for s, r in records]
    if state is not None:
        out.append({"type": "STATE", "value": state})
    return out


def person(i: int, **extra: Any) -> tuple[str, dict[str, Any]]:
    """A contacts record with source id ``i``; ``extra`` overrides fields."""
    record = {
        "id": str(i),
        "firstName": f"First{i}",
        "lastName": f"Last{i}",
        "email": f"person{i}@example.com",
        "phone": f"+49 30 555 {1000 + i}",
        "companyName": "ACME GmbH",
        "tags": ["moco"],
        "source": "MOCO",
    }
    record.update(extra)
    return ("contacts", record)


def task(i: int, contact: int, **extra: Any) -> tuple[str, dict[str, Any]]:
    """A tasks record ``i`` on source contact ``contact``."""
    record = {
        "taskId": str(i),
        "contactId": str(contact),
        "title": f"Task {i}",
        "dueDate": "2026-12-01T09:00:00Z",
        "status": "open",
    }
    record.update(extra)
    return ("tasks", record)


def note(
    i: int, contact: int, content: str | None = None, **extra: Any
) -> tuple[str, dict[str, Any]]:
    """A notes record ``i`` on source contact ``contact``."""
    record = {
        "notesId": str(i),
        "contactId": str(contact),
        "content": content or f"Note {i}",
        "createdAt": "2026-01-01T00:00:00Z",
    }
    record.update(extra)
    return ("notes", record)


@dataclass
class TargetRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        for line in self.stderr.splitlines():
            if line.startswith("SUMMARY "):
                return json.loads(line[len("SUMMARY ") :])
        raise AssertionError(f"no SUMMARY line in stderr:\n{self.stderr[-3000:]}")

    @property
    def states(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def counts(self, stream: str) -> dict[str, int]:
        return self.summary["streams"][stream]


def run_target(
    config: dict[str, Any],
    msgs: list[dict[str, Any]],
    workdir: Path,
    *,
    expect_ok: bool = True,
    timeout: float = 120,
) -> TargetRun:
    """Run ``target-contacts`` on ``msgs`` with ``config`` written to a file in ``workdir``."""
    config_path = workdir / "target-config.json"
    config_path.write_text(json.dumps(config))
    stdin = "".join(json.dumps(m) + "\n" for m in msgs)
    proc = subprocess.run(
        [str(BIN / "target-contacts"), "--config", str(config_path)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    run = TargetRun(proc.returncode, proc.stdout, proc.stderr)
    if expect_ok and proc.returncode != 0:
        raise AssertionError(f"target-contacts failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return run


def sandbox_state(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/_sandbox/state", timeout=10).json()


def sandbox_requests(url: str) -> list[dict[str, Any]]:
    return requests.get(f"{url}/_sandbox/requests", timeout=10).json()


def write_calls(url: str) -> list[dict[str, Any]]:
    """Logged API requests that would change data (not reads, searches or OAuth)."""
    return [
        r
        for r in sandbox_requests(url)
        if r["method"] in ("POST", "PUT", "DELETE")
        and r["path"] != "/contacts/search"
        and not r["path"].startswith("/oauth")
    ]


def clear_requests(url: str) -> None:
    requests.delete(f"{url}/_sandbox/requests", timeout=10)


def set_faults(url: str, faults: list[dict[str, Any]]) -> None:
    r = requests.post(f"{url}/_sandbox/faults", json={"faults": faults}, timeout=10)
    r.raise_for_status()
