"""SIGKILL of the listener while deliveries arrive and a run is in flight, then a restart.

A sender keeps delivering (before, during and after the kill) and, as MOCO and HighLevel do,
delivers again whatever got no answer. In the end every delivery answered 2xx (or 409: stored by
an attempt whose answer was lost) is stored once and handled once, by a run that finished well;
the run that was in flight at the kill covers nothing, and a further restart starts no run.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from typing import TYPE_CHECKING

import requests

from tests.listener.conftest import (
    OUTCOME_TIMEOUT,
    Keys,
    alive,
    contacts_payload,
    moco_body,
    moco_signature,
    now_ms,
)
from tests.timing import wait_for

if TYPE_CHECKING:
    from tests.listener.conftest import World

#: Deliveries the sender must get answered by the restarted listener before it stops.
AFTER_RESTART = 40
SENDER_DEADLINE = 240.0


class Sender(threading.Thread):
    """Delivers MOCO and Contacts events one after another, retrying until each is answered."""

    def __init__(self, url: str, keys: Keys) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.keys = keys
        self.restarted_url: str | None = None
        self.answers: dict[str, int] = {}  # dedupe key -> final status
        self.answered_after_restart = 0
        self.retries = 0
        self.done = False

    def _delivery(self, n: int) -> tuple[str, str, bytes, dict[str, str]]:
        if n % 2 == 0:
            body = moco_body(10_000 + n, note=uuid.uuid4().hex)
            key = f"moco:Contact:update:{10_000 + n}:{hashlib.sha256(body).hexdigest()}"
            headers = {
                "Content-Type": "application/json",
                "X-Moco-Target": "Contact",
                "X-Moco-Event": "update",
                "X-Moco-Timestamp": str(now_ms()),
                "X-Moco-Signature": moco_signature(body),
                "X-Moco-User-Id": "42",
            }
            return key, "/webhooks/moco", body, headers
        payload = contacts_payload()
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "x-ghl-signature": self.keys.sign_ed25519(body),
        }
        return f"contacts:{payload['webhookId']}", "/webhooks/contacts", body, headers

    def run(self) -> None:
        session = requests.Session()
        deadline = time.monotonic() + SENDER_DEADLINE
        n = 0
        while time.monotonic() < deadline:
            if self.restarted_url and self.answered_after_restart >= AFTER_RESTART:
                break
            key, path, body, headers = self._delivery(n)
            n += 1
            while time.monotonic() < deadline:
                url = self.url
                try:
                    answer = session.post(url + path, data=body, headers=headers, timeout=30)
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                    # No answer, or one cut off mid-body by the kill: a sender delivers again.
                    self.retries += 1
                    session.close()
                    session = requests.Session()
                    time.sleep(0.05)
                    continue
                if answer.status_code in (202, 409):
                    self.answers[key] = answer.status_code
                    if url == self.restarted_url:
                        self.answered_after_restart += 1
                    break
                self.retries += 1
                time.sleep(0.05)
        session.close()
        self.done = True


def test_sigkill_while_events_arrive_loses_none_and_handles_each_once(world: World) -> None:
    settings = {"debounce_seconds": 0.2, "max_wait_seconds": 0.5}
    first = world.start(run_sleep=0.1, **settings)
    world.hold()  # the first run stays in flight until after the kill
    sender = Sender(first.url, world.keys)
    sender.start()
    assert wait_for(lambda: len(world.starts_of()) >= 1, timeout=OUTCOME_TIMEOUT)
    assert wait_for(lambda: len(sender.answers) >= 30, timeout=OUTCOME_TIMEOUT)
    first.kill()
    killed_runs = {r["run_id"] for r in world.starts_of()} - {r["run_id"] for r in world.ends_of()}
    assert killed_runs
    answered_before_restart = len(sender.answers)
    world.release()  # the orphaned run ends on its own; its events were never marked handled

    second = world.start(run_sleep=0.1, **settings)
    sender.restarted_url = second.url
    sender.url = second.url
    sender.join(SENDER_DEADLINE + 30)
    assert sender.done
    assert sender.answered_after_restart >= AFTER_RESTART
    assert len(sender.answers) > answered_before_restart
    second.wait_settled()

    events = world.events()
    stored = {e["dedupe_key"]: e for e in events}
    assert len(stored) == len(events)  # each delivery stored once
    assert set(sender.answers) <= set(stored)  # every answered delivery is stored
    # Stored but never answered can only be the one request cut by the kill, retried since.
    assert set(stored) == set(sender.answers)
    assert {e["status"] for e in events} == {"handled"}
    finished_well = {r["run_id"] for r in world.ends_of() if r["status"] == 0} - killed_runs
    assert {e["run_id"] for e in events} <= finished_well
    assert not killed_runs & {e["run_id"] for e in events}
    restart_log = world.stderr_paths[-1].read_text()
    assert "pending again" in restart_log  # the killed run's events were given back

    # Nothing is left to run: a further restart schedules nothing.
    second.stop()
    third = world.start(**settings)
    health = third.healthz()
    assert health["pending"] == 0
    assert health["lanes"] == {}


def test_sigterm_stops_the_run_in_flight_and_the_next_start_handles_its_events(
    world: World,
) -> None:
    first = world.start()
    world.hold()
    answer = first.post_contacts(contacts_payload())
    assert answer.status_code == 202
    assert wait_for(lambda: len(world.starts_of()) == 1, timeout=OUTCOME_TIMEOUT)
    (started,) = world.starts_of()
    first.stop()  # SIGTERM: graceful
    assert first.process.returncode is not None
    # The run was stopped with the listener, not left behind.
    assert wait_for(lambda: not alive(int(started["pid"])), timeout=OUTCOME_TIMEOUT)
    assert world.ends_of() == []
    (event,) = world.events()
    assert event["status"] == "pending"

    world.release()
    second = world.start()
    second.wait_settled()
    (event,) = world.events()
    assert event["status"] == "handled"
    (ended,) = world.ends_of()
    assert ended["status"] == 0
    assert event["run_id"] == ended["run_id"] != started["run_id"]
