"""Singer input for target-moco (records in MOCO's field names, ids are CRM ids) and a runner."""

from __future__ import annotations

import json
import os
import subprocess
from typing import TYPE_CHECKING, Any

import requests

from tests.target.singer import BIN, TargetRun

if TYPE_CHECKING:
    from pathlib import Path

STREAMS = ("contacts", "notes", "tasks", "appointments")


def messages(
    records: list[tuple[str, dict[str, Any]]], state: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """SCHEMA messages for the four streams, the RECORDs as given, then an optional STATE."""
    out: list[dict[str, Any]] = [
        {
            "type": "SCHEMA",
            "stream": s,
            "schema": {"type": "object", "properties": {"id": {"type": "string"}}},
            "key_properties": ["id"],
        }
        for s in STREAMS
    ]
    out += [{"type": "RECORD", "stream": s, "record": r} for s, r in records]
    if state is not None:
        out.append({"type": "STATE", "value": state})
    return out


def contact(i: int, **extra: Any) -> tuple[str, dict[str, Any]]:
    """A CRM contact ``c<i>`` in MOCO's field names."""
    record = {
        "id": f"c{i}",
        "firstname": f"Vorname{i}",
        "lastname": f"Nachname{i}",
        "work_email": f"crm{i}@example.com",
        "work_phone": f"+49 40 777 {2000 + i}",
        "tags": ["crm"],
    }
    record.update(extra)
    return ("contacts", record)


def note(
    i: int, contact_i: int, body: str | None = None, **extra: Any
) -> tuple[str, dict[str, Any]]:
    """A CRM note ``n<i>`` on contact ``c<contact_i>``."""
    record = {
        "id": f"n{i}",
        "contactId": f"c{contact_i}",
        "body": body or f"Note {i}",
        "dateAdded": "2026-11-20T08:00:00.000Z",
    }
    record.update(extra)
    return ("notes", record)


def task(i: int, contact_i: int, **extra: Any) -> tuple[str, dict[str, Any]]:
    """A CRM task ``t<i>``."""
    record = {
        "id": f"t{i}",
        "contactId": f"c{contact_i}",
        "title": f"Task {i}",
        "dueDate": "2026-12-10T09:00:00.000Z",
        "completed": False,
    }
    record.update(extra)
    return ("tasks", record)


def appointment(i: int, contact_i: int, **extra: Any) -> tuple[str, dict[str, Any]]:
    """A CRM appointment ``a<i>``."""
    record = {
        "id": f"a{i}",
        "contactId": f"c{contact_i}",
        "title": f"Meeting {i}",
        "startTime": "2026-12-03 10:00:00",
        "endTime": "2026-12-03 10:30:00",
        "status": "confirmed",
        "calendarId": "cal-1",
    }
    record.update(extra)
    return ("appointments", record)


def run_target_moco(
    config: dict[str, Any],
    msgs: list[dict[str, Any]],
    workdir: Path,
    *,
    expect_ok: bool = True,
    timeout: float = 120,
) -> TargetRun:
    """Run ``target-moco`` on ``msgs`` with ``config`` written to a file in ``workdir``."""
    path = workdir / "target-moco-config.json"
    path.write_text(json.dumps(config))
    proc = subprocess.run(
        [str(BIN / "target-moco"), "--config", str(path)],
        input="".join(json.dumps(m) + "\n" for m in msgs),
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    run = TargetRun(proc.returncode, proc.stdout, proc.stderr)
    if expect_ok and proc.returncode != 0:
        raise AssertionError(f"target-moco failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return run


def moco_state(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/_sandbox/state", timeout=10).json()


def moco_writes(url: str) -> list[dict[str, Any]]:
    """Logged MOCO API requests that change data."""
    log = requests.get(f"{url}/_sandbox/requests", timeout=10).json()
    return [r for r in log if r["method"] in ("POST", "PUT", "PATCH", "DELETE")]


def clear_log(url: str) -> None:
    requests.delete(f"{url}/_sandbox/requests", timeout=10)


def moco_seed(url: str, data: dict[str, Any]) -> None:
    requests.post(f"{url}/_sandbox/seed", json=data, timeout=10).raise_for_status()


def moco_faults(url: str, faults: list[dict[str, Any]]) -> None:
    requests.post(f"{url}/_sandbox/faults", json={"faults": faults}, timeout=10).raise_for_status()
