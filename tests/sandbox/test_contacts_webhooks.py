"""HighLevel's webhooks from the Contacts sandbox: events, payload shapes, signatures, retries.

A tiny receiver on 127.0.0.1 records what the sandbox POSTs; signatures are checked as a receiver
must, over the exact raw body, with the public keys the sandbox serves at
``/_sandbox/webhook_keys`` (reference/reverse-and-realtime.md §5.2, contacts-api.md §8).
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import re
import subprocess
import sys
import threading
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from sandbox.contacts_webhooks import EVENT_TYPES, SigningKeys, WebhookOptions
from tests.sandbox.clock import FakeClock
from tests.sandbox.receiver import Received, Receiver
from tests.sandbox.test_contacts_sandbox import LOCATION, REPO, Api, configure, seed
from tests.sandbox.test_moco_webhooks import settled
from tests.timing import wait_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import RunningSandbox

QUICK = {"jitter": 0.0, "retry_interval": 0.0, "retry_jitter": 0.0}
# The documented payloads (reverse-and-realtime.md §5.2), written out here as the reference has them
CONTACT_KEYS = {
    "id", "address1", "city", "state", "companyName", "country", "source", "dateAdded",
    "dateOfBirth", "dnd", "email", "name", "firstName", "lastName", "phone", "postalCode", "tags",
    "website", "attachments", "assignedTo", "customFields",
}  # fmt: skip
APPOINTMENT_KEYS = {
    "id", "address", "title", "calendarId", "contactId", "groupId", "appointmentStatus",
    "assignedUserId", "users", "notes", "source", "startTime", "endTime", "dateAdded",
    "dateUpdated",
}  # fmt: skip
ENVELOPE = {"type", "locationId", "timestamp", "webhookId"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def start(factory: Callable[..., RunningSandbox], *urls: str, **options: Any) -> RunningSandbox:
    """A Contacts sandbox sending to ``urls`` at once and retrying without waiting."""
    clock = options.pop("clock", None)
    webhooks = WebhookOptions(urls=urls, **{**QUICK, **options})
    return factory(rate_limit=100_000, clock=clock, webhooks=webhooks)


def public_keys(sandbox: RunningSandbox) -> tuple[ed25519.Ed25519PublicKey, rsa.RSAPublicKey]:
    served = requests.get(f"{sandbox.url}/_sandbox/webhook_keys", timeout=5).json()
    assert set(served) == {"ed25519", "rsa"}
    assert all(pem.startswith("-----BEGIN PUBLIC KEY-----\n") for pem in served.values())
    ed_key = load_pem_public_key(served["ed25519"].encode())
    rsa_key = load_pem_public_key(served["rsa"].encode())
    assert isinstance(ed_key, ed25519.Ed25519PublicKey) and isinstance(rsa_key, rsa.RSAPublicKey)
    return ed_key, rsa_key


def verified(received: Received, sandbox: RunningSandbox) -> set[str]:
    """Which of the two signature headers hold for the raw body (a forged one fails the test)."""
    ed_key, rsa_key = public_keys(sandbox)
    found = set()
    if "x-ghl-signature" in received.headers:
        ed_key.verify(base64.b64decode(received.headers["x-ghl-signature"]), received.body)
        found.add("ed25519")
    if "x-wh-signature" in received.headers:
        signature = base64.b64decode(received.headers["x-wh-signature"])
        rsa_key.verify(signature, received.body, padding.PKCS1v15(), hashes.SHA256())
        found.add("rsa")
    return found


def refused_at_start(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m sandbox contacts`` with bad ``args``: it must stop before listening."""
    return subprocess.run(
        [sys.executable, "-m", "sandbox", "contacts", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def by_type(received: list[Received]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for item in received:
        payload = item.json()
        out.setdefault(payload["type"], []).append(payload)
    return out


# --- what is sent ---------------------------------------------------------------------------------


def test_every_write_sends_its_event_in_the_documented_shape(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    with Receiver(statuses=(200,)) as receiver:
        sandbox = start(contacts_sandbox_factory, f"{receiver.url}/hl")
        api = Api(sandbox)
        seed(sandbox, contacts=[{"firstName": "Seeded"}])  # seeding sends nothing
        contact = api.create(
            firstName="Jürgen",
            lastName="Müßig",
            email="jm@example.com",
            companyName="Müller & Söhne",
            tags=["VIP"],
            customFields=[{"id": "cf1", "field_value": "x"}],
        )
        cid = contact["id"]
        path = f"/contacts/{cid}"
        assert api("PUT", path, json={"city": "Köln", "tags": ["b"], "dnd": True}).ok
        assert api("POST", f"{path}/tags", json={"tags": ["c"]}).status_code == 201
        assert api("DELETE", f"{path}/tags", json={"tags": ["b"]}).ok
        upsert = {"locationId": LOCATION, "email": "jm@example.com", "website": "https://jm.de"}
        assert api("POST", "/contacts/upsert", json=upsert).json()["new"] is False

        note = api("POST", f"{path}/notes", json={"body": "<p>Grüße</p>"}).json()["note"]
        assert api("PUT", f"{path}/notes/{note['id']}", json={"body": "<p>neu</p>"}).ok
        assert api("DELETE", f"{path}/notes/{note['id']}").ok

        task_body = {
            "title": "Anrufen",
            "body": "bitte",
            "dueDate": "2030-01-02T03:04:05.000Z",
            "completed": False,
        }
        task = api("POST", f"{path}/tasks", json=task_body).json()["task"]
        task_path = f"{path}/tasks/{task['id']}"
        assert api("PUT", task_path, json={"title": "Zurückrufen"}).ok  # no TaskUpdate exists
        assert api("PUT", f"{task_path}/completed", json={"completed": True}).ok
        assert api("PUT", f"{task_path}/completed", json={"completed": False}).ok  # reopened
        assert api("DELETE", task_path).ok

        appointment = {
            "contactId": cid,
            "title": "Beratung",
            "calendarId": "sbxCalBeratung000001",
            "appointmentStatus": "confirmed",
            "startTime": "2030-05-06T07:00:00Z",
            "endTime": "2030-05-06T08:00:00Z",
            "notes": "erstes Treffen",
        }
        made = requests.post(f"{sandbox.url}/_sandbox/appointments", json=appointment, timeout=5)
        event_id = made.json()["appointment"]["id"]
        event_url = f"{sandbox.url}/_sandbox/appointments/{event_id}"
        assert requests.put(event_url, json={"appointmentStatus": "cancelled"}, timeout=5).ok
        assert requests.delete(event_url, timeout=5).ok
        last_state = api("GET", path).json()["contact"]
        assert api("DELETE", path).ok

        expected = {
            "ContactCreate": 1,
            "ContactUpdate": 2,  # the PUT and the upsert
            "ContactTagUpdate": 3,  # the PUT changed the tags, then the two tag routes
            "ContactDndUpdate": 1,
            "ContactDelete": 1,
            "NoteCreate": 1,
            "NoteUpdate": 1,
            "NoteDelete": 1,
            "TaskCreate": 1,
            "TaskComplete": 1,
            "TaskDelete": 1,
            "AppointmentCreate": 1,
            "AppointmentUpdate": 1,
            "AppointmentDelete": 1,
        }
        received = receiver.wait_for(sum(expected.values()))
        settled(sandbox, sum(expected.values()))
    assert len(received) == sum(expected.values())  # nothing more: no TaskUpdate, no seed events
    assert set(expected) == set(EVENT_TYPES)
    events = by_type(received)
    assert {kind: len(items) for kind, items in events.items()} == expected
    assert all(r.path == "/hl" for r in received)
    assert all(r.headers["Content-Type"] == "application/json" for r in received)
    assert all(verified(r, sandbox) == {"ed25519", "rsa"} for r in received)
    payloads = [r.json() for r in received]
    assert all(p["locationId"] == LOCATION and ISO.match(p["timestamp"]) for p in payloads)
    assert all(str(uuid.UUID(p["webhookId"])) == p["webhookId"] for p in payloads)
    assert len({p["webhookId"] for p in payloads}) == len(payloads)
    # the exact bytes: compact UTF-8 JSON, as JSON.stringify writes it
    (created_body,) = [r.body for r in received if r.json()["type"] == "ContactCreate"]
    assert created_body.startswith(b'{"type":"ContactCreate","locationId":"sandbox-location",')
    assert b'"firstName":"J\xc3\xbcrgen",' in created_body

    for kind in ("ContactCreate", "ContactUpdate", "ContactTagUpdate", "ContactDelete"):
        for payload in events[kind]:
            assert set(payload) - ENVELOPE <= CONTACT_KEYS, kind
            assert "dateUpdated" not in payload
            assert {"id", "tags", "attachments", "customFields", "dnd"} <= set(payload)
    (created,) = events["ContactCreate"]
    assert (created["id"], created["firstName"], created["lastName"]) == (cid, "Jürgen", "Müßig")
    assert created["tags"] == ["vip"] and created["customFields"] == [{"id": "cf1", "value": "x"}]
    assert created["companyName"] == "Müller & Söhne" and created["attachments"] == []
    (dnd,) = events["ContactDndUpdate"]
    assert dnd["dnd"] is True and dnd["dndSettings"] == {}
    assert set(dnd) - ENVELOPE <= CONTACT_KEYS | {"dndSettings"}
    (deleted,) = events["ContactDelete"]  # the full last state
    assert deleted == {
        "type": "ContactDelete",
        "locationId": LOCATION,
        **{k: v for k, v in last_state.items() if k in CONTACT_KEYS},
        "attachments": [],  # the sandbox stores none
        "timestamp": deleted["timestamp"],
        "webhookId": deleted["webhookId"],
    }
    assert (deleted["city"], deleted["website"], deleted["tags"]) == (
        "Köln",
        "https://jm.de",
        ["c"],
    )
    assert sorted(p["tags"] for p in events["ContactTagUpdate"]) == [["b"], ["b", "c"], ["c"]]

    for kind in ("NoteCreate", "NoteUpdate", "NoteDelete"):
        (payload,) = events[kind]
        assert set(payload) == ENVELOPE | {"id", "body", "contactId", "dateAdded"}, kind
        assert (payload["id"], payload["contactId"]) == (note["id"], cid)
    assert events["NoteUpdate"][0]["body"] == "<p>neu</p>"
    task_keys = {"id", "assignedTo", "body", "contactId", "title", "dateAdded", "dueDate"}
    for kind in ("TaskCreate", "TaskComplete", "TaskDelete"):
        (payload,) = events[kind]
        assert set(payload) - ENVELOPE <= task_keys and "completed" not in payload, kind
        assert (payload["id"], payload["contactId"], payload["body"]) == (task["id"], cid, "bitte")
        assert payload["dueDate"] == "2030-01-02T03:04:05.000Z"
    assert events["TaskCreate"][0]["title"] == "Anrufen"
    assert events["TaskComplete"][0]["title"] == "Zurückrufen"
    for kind in ("AppointmentCreate", "AppointmentUpdate", "AppointmentDelete"):
        (payload,) = events[kind]
        assert set(payload) == ENVELOPE | {"appointment"} and "id" not in payload, kind
        nested = payload["appointment"]
        assert set(nested) <= APPOINTMENT_KEYS
        assert (nested["id"], nested["contactId"], nested["title"]) == (event_id, cid, "Beratung")
        assert (nested["startTime"], nested["endTime"]) == (
            "2030-05-06T07:00:00.000Z",
            "2030-05-06T08:00:00.000Z",
        )
    assert events["AppointmentCreate"][0]["appointment"]["appointmentStatus"] == "confirmed"
    assert events["AppointmentUpdate"][0]["appointment"]["appointmentStatus"] == "cancelled"

    log = requests.get(f"{sandbox.url}/_sandbox/webhook_deliveries", timeout=5).json()
    assert {(e["event"], e["outcome"], e["status"], e["location_id"]) for e in log} == {
        (kind, "delivered", 200, LOCATION) for kind in expected
    }
    assert {e["webhook_id"] for e in log} == {p["webhookId"] for p in payloads}
    assert {e["record_id"] for e in log} == {cid, note["id"], task["id"], event_id}


def test_the_timestamp_is_the_sandbox_clocks_and_every_url_gets_its_own_delivery(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clock = FakeClock(1_750_000_000.0)
    with Receiver() as first, Receiver() as second:
        sandbox = start(contacts_sandbox_factory, first.url, second.url, clock=clock)
        contact = Api(sandbox).create(firstName="Ada")
        (one,) = first.wait_for(1)
        (two,) = second.wait_for(1)
    assert one.json()["timestamp"] == "2025-06-15T15:06:40.000Z" == contact["dateAdded"]
    assert one.json()["webhookId"] != two.json()["webhookId"]
    assert {k: v for k, v in one.json().items() if k != "webhookId"} == {
        k: v for k, v in two.json().items() if k != "webhookId"
    }


def test_both_signatures_verify_and_each_can_be_sent_alone(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    with Receiver() as receiver:
        sandbox = start(contacts_sandbox_factory, receiver.url)
        api = Api(sandbox)
        api.create(firstName="Both")
        (both,) = receiver.wait_for(1)
        assert verified(both, sandbox) == {"ed25519", "rsa"}
        ed_key, rsa_key = public_keys(sandbox)
        tampered = both.body.replace(b"Both", b"Bath")
        with pytest.raises(InvalidSignature):
            ed_key.verify(base64.b64decode(both.headers["x-ghl-signature"]), tampered)
        with pytest.raises(InvalidSignature):
            rsa_key.verify(
                base64.b64decode(both.headers["x-wh-signature"]),
                tampered,
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        for setting, expected in (
            ("ed25519", {"ed25519"}),
            (["rsa"], {"rsa"}),
            ("none", set()),  # as a workflow's Webhook action: unsigned
            ("rsa, ed25519", {"ed25519", "rsa"}),
        ):
            assert configure(sandbox, webhook_signatures=setting).status_code == 200
            count = len(receiver.received) + 1
            api.create(firstName=f"Alone {setting}")
            assert verified(receiver.wait_for(count)[-1], sandbox) == expected, setting
    # the keys are made once: the same all along
    assert public_keys(sandbox)[0].public_bytes_raw() == ed_key.public_bytes_raw()


# --- delivery -------------------------------------------------------------------------------------


def test_a_429_is_retried_every_interval_plus_jitter_on_the_sandbox_clock(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clock = FakeClock()
    with Receiver(statuses=(429, 429, 202)) as receiver:
        sandbox = start(
            contacts_sandbox_factory,
            receiver.url,
            clock=clock,
            retry_interval=600.0,
            retry_jitter=30.0,
        )
        Api(sandbox).create(firstName="Later")
        receiver.wait_for(1)
        (first,) = settled(sandbox, 1, idle=False)  # the retry is waiting
        assert (first["status"], first["outcome"]) == (429, "retry")
        assert 600.0 <= first["next_attempt_in"] <= 630.0
        clock.advance(599.9)
        assert not wait_for(lambda: len(receiver.received) > 1, 0.3)  # not before its time
        clock.advance(30.2)
        receiver.wait_for(2)
        second = settled(sandbox, 2, idle=False)[-1]
        assert (second["status"], second["attempt"], second["outcome"]) == (429, 2, "retry")
        assert 600.0 <= second["next_attempt_in"] <= 630.0
        clock.advance(630.1)
        received = receiver.wait_for(3)
        log = settled(sandbox, 3)
    assert [(e["attempt"], e["outcome"]) for e in log] == [
        (1, "retry"),
        (2, "retry"),
        (3, "delivered"),
    ]
    # the same event, byte for byte: same webhookId and timestamp, same signatures
    assert len({r.body for r in received}) == 1
    assert len({r.headers["x-ghl-signature"] for r in received}) == 1
    assert all(verified(r, sandbox) == {"ed25519", "rsa"} for r in received)


def test_at_most_six_retries(contacts_sandbox_factory: Callable[..., RunningSandbox]) -> None:
    with Receiver(statuses=(429,)) as receiver:
        sandbox = start(contacts_sandbox_factory, receiver.url)
        Api(sandbox).create(firstName="Never")
        log = settled(sandbox, 7)
        assert not wait_for(lambda: len(receiver.received) > 7, 0.3)
    assert [e["outcome"] for e in log] == ["retry"] * 6 + ["failed"]
    assert [e["attempt"] for e in log] == list(range(1, 8))
    assert len({r.json()["webhookId"] for r in receiver.received}) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 400, 401, 404, 410])
def test_any_other_answer_is_final(
    contacts_sandbox_factory: Callable[..., RunningSandbox], status: int
) -> None:
    with Receiver(statuses=(status, 200)) as receiver:
        sandbox = start(contacts_sandbox_factory, receiver.url)
        Api(sandbox).create(firstName="Once")
        log = settled(sandbox, 1)
        assert not wait_for(lambda: len(receiver.received) > 1, 0.3)
    assert [(e["status"], e["outcome"], e["attempt"]) for e in log] == [(status, "failed", 1)]


def test_a_timeout_and_no_answer_are_final(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    with Receiver(delay=1.0) as slow:
        sandbox = start(contacts_sandbox_factory, slow.url, timeout=0.2)
        Api(sandbox).create(firstName="Slow")
        (timed_out,) = settled(sandbox, 1)
        assert not wait_for(lambda: len(slow.received) > 1, 0.3)
    assert (timed_out["status"], timed_out["outcome"]) == (None, "failed")
    assert "timed out" in timed_out["error"]
    gone = slow.url  # nobody listens there any more
    assert configure(sandbox, webhook_url=gone).status_code == 200
    requests.delete(f"{sandbox.url}/_sandbox/webhook_deliveries", timeout=5)
    Api(sandbox).create(firstName="Nobody")
    (refused,) = settled(sandbox, 1)
    assert (refused["status"], refused["outcome"], refused["attempt"]) == (None, "failed", 1)


def test_the_api_answers_before_the_delivery_is_done(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    with Receiver() as receiver:
        sandbox = start(contacts_sandbox_factory, receiver.url)
        receiver.hold()
        Api(sandbox).create(firstName="Fast")
        receiver.wait_for(1)
        pending = requests.get(f"{sandbox.url}/_sandbox/webhook_deliveries", timeout=5)
        assert pending.json() == [] and pending.headers["X-Pending-Deliveries"] == "1"
        receiver.release()
        (entry,) = settled(sandbox, 1)
    assert entry["outcome"] == "delivered"


def test_nothing_goes_off_the_machine(
    contacts_sandbox_factory: Callable[..., RunningSandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts: list[str] = []  # every host a webhook worker connected to
    original = http.client.HTTPConnection.connect

    def connect(self: http.client.HTTPConnection) -> None:
        if threading.current_thread().name.startswith("contacts-webhooks-"):
            hosts.append(self.host)
        original(self)

    monkeypatch.setattr(http.client.HTTPConnection, "connect", connect)
    with Receiver() as receiver:
        sandbox = start(contacts_sandbox_factory, receiver.url)
        for url in (
            "https://example.org/hl",
            "http://203.0.113.7:8080/hook",
            "http://localhost.example.org/hook",
            [receiver.url, "http://10.0.0.1/hook"],
        ):
            refused = configure(sandbox, webhook_url=url)
            assert refused.status_code == 422, url
            assert "never sends traffic off the machine" in str(refused.json()["message"])
        # past the setting's check (as if a bug let one through), the engine refuses at delivery
        options = sandbox.app.webhooks.options  # type: ignore[attr-defined]
        options.urls = (receiver.url, "http://203.0.113.7:8080/hook")
        Api(sandbox).create(firstName="Local")
        log = settled(sandbox, 2)
    outcomes = {e["url"]: e["outcome"] for e in log}
    assert outcomes == {receiver.url: "delivered", "http://203.0.113.7:8080/hook": "refused"}
    assert hosts == ["127.0.0.1"]
    bad = refused_at_start("--webhook-url", "https://example.org/")
    assert bad.returncode != 0 and "--webhook-url" in bad.stderr
    assert "off the machine" in bad.stderr


# --- settings, reset, shutdown, command line ------------------------------------------------------


def test_off_by_default_settings_at_run_time_reset_and_stop(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    sandbox = contacts_sandbox_factory(rate_limit=100_000)
    api = Api(sandbox)
    api.create(firstName="Unheard")
    deliveries = f"{sandbox.url}/_sandbox/webhook_deliveries"
    assert requests.get(deliveries, timeout=5).json() == []
    assert not [t for t in threading.enumerate() if t.name.startswith("contacts-webhooks-")]
    for bad in (
        {"webhook_url": 5},
        {"webhook_url": ["http://127.0.0.1:1/", ""]},
        {"webhook_url": "ftp://127.0.0.1/"},
        {"webhook_events": ["ContactCreate", "TaskUpdate"]},
        {"webhook_signatures": "md5"},
        {"webhook_retry_interval": -1},
        {"webhook_max_retries": 1.5},
        {"webhook_workers": 0},
        {"webhook_timeout": True},
        {"webhook_key_seed": "later"},  # the keys are made at start
        {"webhook_jitter": 0, "webhook_colour": "red"},
    ):
        assert configure(sandbox, **bad).status_code == 422, bad

    with Receiver() as receiver, Receiver() as other:
        settings = {
            "webhook_url": [receiver.url, other.url],
            "webhook_events": "ContactUpdate,NoteCreate",
            "webhook_jitter": 0,
            "webhook_workers": 2,
        }
        assert configure(sandbox, **settings).status_code == 200
        contact = api.create(firstName="Filtered")  # ContactCreate: not enabled
        assert api("PUT", f"/contacts/{contact['id']}", json={"lastName": "X"}).ok
        note = {"body": "hi"}
        assert api("POST", f"/contacts/{contact['id']}/notes", json=note).status_code == 201
        log = settled(sandbox, 4)
        assert sorted((e["url"], e["event"]) for e in log) == sorted(
            (url, kind)
            for url in (receiver.url, other.url)
            for kind in ("ContactUpdate", "NoteCreate")
        )
        workers = [t for t in threading.enumerate() if t.name.startswith("contacts-webhooks-")]
        assert len(workers) >= 2

        assert requests.delete(deliveries, timeout=5).json() == {"cleared": True}
        assert requests.get(deliveries, timeout=5).json() == []
        assert configure(sandbox, webhook_url=receiver.url, webhook_events="all").ok
        api.create(firstName="All again")
        assert receiver.wait_for(3)[-1].json()["type"] == "ContactCreate"
        assert configure(sandbox, webhook_url=None).status_code == 200
        api.create(firstName="Off again")
        assert not wait_for(lambda: len(receiver.received) > 3, 0.3)
    sandbox.stop()
    assert not any(t.is_alive() for t in workers)


def test_reset_drops_the_queue_and_the_log_and_keeps_the_url(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    with Receiver() as receiver:
        # one worker: while the receiver holds the first delivery, the second waits in the queue
        sandbox = start(contacts_sandbox_factory, receiver.url, workers=1)
        api = Api(sandbox)
        deliveries = f"{sandbox.url}/_sandbox/webhook_deliveries"
        api.create(firstName="Logged")
        settled(sandbox, 1)
        receiver.hold()
        api.create(firstName="In flight")
        receiver.wait_for(2)
        api.create(firstName="Queued")
        pending = requests.get(deliveries, timeout=5).headers["X-Pending-Deliveries"]
        assert pending == "2"
        assert requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).ok
        receiver.release()
        (in_flight,) = settled(sandbox, 1)  # the one in flight finishes, the queued one is gone
        assert in_flight["outcome"] == "delivered" and in_flight["delivery"] == 2
        assert not wait_for(lambda: len(receiver.received) > 2, 0.3)
        api.create(firstName="After reset")  # the URL is a setting: it stays
        assert receiver.wait_for(3)[-1].json()["firstName"] == "After reset"


def test_seeded_keys_sign_and_verify() -> None:
    # (that another process derives the same keys: test_command_line_webhook_options)
    one, two = SigningKeys("demo"), SigningKeys("demo")
    assert one.public_pems() == two.public_pems()
    body = b'{"type":"ContactCreate"}'
    ed_key, rsa_key = two.pairs()
    ed_key.public_key().verify(base64.b64decode(one.sign("ed25519", body)), body)
    rsa_key.public_key().verify(
        base64.b64decode(one.sign("rsa", body)), body, padding.PKCS1v15(), hashes.SHA256()
    )
    assert rsa_key.key_size == 2048
    assert SigningKeys().public_pems()["ed25519"] != one.public_pems()["ed25519"]


def test_command_line_webhook_options() -> None:
    bad = refused_at_start("--webhook-signatures", "md5")
    assert bad.returncode != 0 and "--webhook-signatures" in bad.stderr
    with Receiver() as receiver:
        command = [
            sys.executable,
            "-m",
            "sandbox",
            "contacts",
            "--port",
            "0",
            "--webhook-url",
            f"{receiver.url}/a",
            "--webhook-url",
            f"{receiver.url}/b",
            "--webhook-signatures",
            "ed25519",
            "--webhook-key-seed",
            "demo",
            "--webhook-jitter",
            "0",
            "--webhook-events",
            "ContactCreate",
        ]
        process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert process.stdout is not None
            match = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline())
            assert match, process.stderr.read() if process.stderr else ""
            url = match.group(0)
            served = requests.get(f"{url}/_sandbox/webhook_keys", timeout=5).json()
            assert served == SigningKeys("demo").public_pems()
            headers = {"Authorization": "Bearer sandbox-token", "Version": "2021-07-28"}
            body = {"locationId": LOCATION, "firstName": "Cli"}
            created = requests.post(f"{url}/contacts/", json=body, headers=headers, timeout=5)
            assert created.status_code == 201
            received = receiver.wait_for(2)
        finally:
            process.kill()
            process.wait(timeout=5)
    assert sorted(r.path for r in received) == ["/a", "/b"]
    ed_key = load_pem_public_key(served["ed25519"].encode())
    assert isinstance(ed_key, ed25519.Ed25519PublicKey)
    for item in received:
        assert "x-wh-signature" not in item.headers
        ed_key.verify(base64.b64decode(item.headers["x-ghl-signature"]), item.body)
        assert item.json()["firstName"] == "Cli"
        stamp = dt.datetime.fromisoformat(item.json()["timestamp"].replace("Z", "+00:00"))
        assert abs(dt.datetime.now(dt.timezone.utc) - stamp) < dt.timedelta(minutes=5)
