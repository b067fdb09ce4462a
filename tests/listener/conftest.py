"""The listener under test: a real ``python -m sync_listener`` process on 127.0.0.1 (port 0),
fed deliveries signed here with test keys, running ``fake_run.py`` instead of ``meltano run``."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from sqlalchemy import create_engine, select

from sync_ledger.events import webhook_events
from tests.timing import wait_for

ROOT = Path(__file__).resolve().parents[2]
FAKE_RUN = Path(__file__).with_name("fake_run.py")
MOCO_SECRET = "1d608b9d72219b90ff2393a1d3ee0ac0"
SYNC_USER = "933613686"
LOCATION = "loc-test"
MOCO_DIRECTION = "moco-to-contacts"
CONTACTS_DIRECTION = "contacts-to-moco"
#: Generous: waits end on the outcome, this only bounds a broken run.
OUTCOME_TIMEOUT = 90.0


def _pem(public_key: ed25519.Ed25519PublicKey | rsa.RSAPublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True)
class Keys:
    """Test key pairs standing in for HighLevel's."""

    ed25519: ed25519.Ed25519PrivateKey
    rsa: rsa.RSAPrivateKey

    def sign_ed25519(self, body: bytes) -> str:
        return base64.b64encode(self.ed25519.sign(body)).decode()

    def sign_rsa(self, body: bytes) -> str:
        signature = self.rsa.sign(body, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(ed25519.Ed25519PrivateKey.generate(), rsa.generate_private_key(65537, 2048))


def moco_signature(body: bytes, secret: str = MOCO_SECRET) -> str:
    return hmac.new(secret.encode("ascii"), body, hashlib.sha256).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_now(shift_seconds: float = 0.0) -> str:
    moment = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=shift_seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def contacts_payload(
    event_type: str = "ContactUpdate", record_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A HighLevel-shaped event: ``type``, ``locationId``, ``id``, ``timestamp``, ``webhookId``."""
    payload: dict[str, Any] = {
        "type": event_type,
        "locationId": LOCATION,
        "id": record_id or uuid.uuid4().hex[:20],
        "firstName": "Ada",
        "timestamp": iso_now(),
        "webhookId": str(uuid.uuid4()),
    }
    payload.update(extra)
    return payload


def moco_body(record_id: int, **extra: Any) -> bytes:
    return json.dumps({"id": record_id, "firstname": "Ada", **extra}).encode()


class Listener:
    """One running listener process."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, keys: Keys) -> None:
        self.process = process
        self.url = url
        self.keys = keys
        self.session = requests.Session()

    def healthz(self) -> dict[str, Any]:
        answer = self.session.get(self.url + "/healthz", timeout=30)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def settled(self) -> bool:
        """No pending event, no run in flight, no lane waiting: nothing more will run."""
        health = self.healthz()
        return (
            health["pending"] == 0
            and health["runs_in_flight"] == 0
            and all(state == "idle" for state in health["lanes"].values())
        )

    def wait_settled(self) -> None:
        assert wait_for(self.settled, timeout=OUTCOME_TIMEOUT), self.healthz()

    def post_moco(
        self,
        body: bytes,
        *,
        target: str = "Contact",
        event: str = "update",
        timestamp_ms: int | None = None,
        signature: str | None = None,
        origin: str | None = None,
        user_id: str | None = "42",
        content_type: str = "application/json",
        omit: tuple[str, ...] = (),
        session: requests.Session | None = None,
    ) -> requests.Response:
        headers = {
            "Content-Type": content_type,
            "X-Moco-Target": target,
            "X-Moco-Event": event,
            "X-Moco-Timestamp": str(timestamp_ms if timestamp_ms is not None else now_ms()),
            "X-Moco-Signature": signature if signature is not None else moco_signature(body),
            "X-Moco-Account-Url": "https://example.mocoapp.com",
        }
        if origin is not None:
            headers["X-Moco-Origin"] = origin
        if user_id is not None:
            headers["X-Moco-User-Id"] = user_id
        for name in omit:
            headers.pop(name, None)
        return (session or self.session).post(
            self.url + "/webhooks/moco", data=body, headers=headers, timeout=30
        )

    def post_contacts(
        self,
        payload: dict[str, Any] | bytes,
        *,
        scheme: str = "ed25519",
        headers: dict[str, str] | None = None,
        session: requests.Session | None = None,
    ) -> requests.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {"Content-Type": "application/json"}
        if scheme == "ed25519":
            sent["x-ghl-signature"] = self.keys.sign_ed25519(body)
        elif scheme == "rsa":
            sent["x-wh-signature"] = self.keys.sign_rsa(body)
        sent.update(headers or {})
        return (session or self.session).post(
            self.url + "/webhooks/contacts", data=body, headers=sent, timeout=30
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.session.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.session.close()


def _first_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    lines: queue.Queue[bytes] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout).decode().strip()
    except queue.Empty:
        return ""


@dataclass
class World:
    """A ledger file, a run log and a control folder; listeners started on them."""

    root: Path
    keys: Keys
    listeners: list[Listener] = field(default_factory=list)
    starts: int = 0

    @property
    def ledger_url(self) -> str:
        return f"sqlite:///{self.root / 'ledger.db'}"

    @property
    def run_log(self) -> Path:
        return self.root / "runs.jsonl"

    @property
    def control(self) -> Path:
        return self.root / "control"

    @property
    def stderr_paths(self) -> list[Path]:
        return sorted(self.root.glob("listener-*.stderr"))

    def command(self, direction: str, sleep: float) -> str:
        return json.dumps(
            [
                sys.executable,
                str(FAKE_RUN),
                "--log",
                str(self.run_log),
                "--control",
                str(self.control),
                "--direction",
                direction,
                "--sleep",
                str(sleep),
            ]
        )

    def environment(self, run_sleep: float = 0.0, **settings: Any) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_LISTENER_")}
        values: dict[str, Any] = {
            "ledger_url": self.ledger_url,
            "location_id": LOCATION,
            "moco_webhook_secret": MOCO_SECRET,
            "moco_sync_user_id": SYNC_USER,
            "contacts_public_key": _pem(self.keys.ed25519.public_key()),
            "contacts_legacy_public_key": _pem(self.keys.rsa.public_key()),
            "debounce_seconds": 0.3,
            "max_wait_seconds": 10,
            "retry_backoff_seconds": 0.2,
            "retry_backoff_max_seconds": 1,
            "moco_to_contacts_command": self.command(MOCO_DIRECTION, run_sleep),
            "contacts_to_moco_command": self.command(CONTACTS_DIRECTION, run_sleep),
            "run_directory": str(self.root),
            "log_level": "INFO",
        }
        values.update(settings)
        for name, value in values.items():
            env["SYNC_LISTENER_" + name.upper()] = str(value)
        # As `meltano invoke` also exports them: they must not reach the runs either.
        env["MELTANO_UTILIZE_MOCO_WEBHOOK_SECRET"] = MOCO_SECRET
        env["PYTHONPATH"] = str(ROOT)
        return env

    def start(self, *args: str, run_sleep: float = 0.0, **settings: Any) -> Listener:
        """Start a listener with ``--port 0`` and wait for its first line."""
        self.starts += 1
        stderr = (self.root / f"listener-{self.starts}.stderr").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "sync_listener", "--port", "0", *args],
            cwd=self.root,
            env=self.environment(run_sleep, **settings),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        stderr.close()
        line = _first_line(process, OUTCOME_TIMEOUT)
        if not line.startswith("listening on http://127.0.0.1:"):
            process.kill()
            process.wait()
            log = (self.root / f"listener-{self.starts}.stderr").read_text()
            pytest.fail(f"listener did not start: first line {line!r}\n{log}")
        listener = Listener(process, line.removeprefix("listening on "), self.keys)
        self.listeners.append(listener)
        return listener

    def events(self) -> list[dict[str, Any]]:
        """Every stored event, oldest first."""
        engine = create_engine(self.ledger_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(select(webhook_events).order_by(webhook_events.c.id)).all()
        finally:
            engine.dispose()
        return [dict(row._mapping) for row in rows]

    def runs(self) -> list[dict[str, Any]]:
        """The fake runs' start and end records, in the order they were written."""
        if not self.run_log.exists():
            return []
        return [json.loads(line) for line in self.run_log.read_text().splitlines() if line]

    def starts_of(self, direction: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.runs()
            if r["phase"] == "start" and (direction is None or r["direction"] == direction)
        ]

    def ends_of(self, direction: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.runs()
            if r["phase"] == "end" and (direction is None or r["direction"] == direction)
        ]

    def hold(self) -> None:
        (self.control / "hold").touch()

    def release(self) -> None:
        (self.control / "hold").unlink(missing_ok=True)

    def fail_next(self, direction: str, times: int) -> None:
        (self.control / f"fail-{direction}").write_text(str(times))

    def stop_all(self) -> None:
        self.release()
        for listener in self.listeners:
            listener.stop()
        # Fake runs orphaned by a killed listener: ours, found by the pids they logged.
        for record in self.runs():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(record["pid"]), 0)
                wait_for(lambda pid=int(record["pid"]): not alive(pid), timeout=30)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def world(tmp_path: Path, keys: Keys) -> Any:
    w = World(tmp_path, keys)
    w.control.mkdir()
    yield w
    w.stop_all()


def single_flight(records: list[dict[str, Any]], direction: str) -> bool:
    """Whether the runs of ``direction`` never overlapped: start, end, start, end, ..."""
    phases = [r["phase"] for r in records if r["direction"] == direction]
    return phases == ["start", "end"] * (len(phases) // 2) and len(phases) % 2 == 0
