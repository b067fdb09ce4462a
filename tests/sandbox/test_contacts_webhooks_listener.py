"""The real listener (``python -m sync_listener --port 0``) takes the Contacts sandbox's webhooks.

Wiring, as a test or the demo does it: the listener's ``contacts_public_key`` and
``contacts_legacy_public_key`` are the PEMs of ``GET /_sandbox/webhook_keys``, its
``location_id`` the sandbox's location, and the sandbox's ``webhook_url`` the listener's
``/webhooks/contacts``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import requests
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from sandbox.contacts_webhooks import WebhookOptions
from tests.listener.conftest import CONTACTS_DIRECTION, OUTCOME_TIMEOUT, Keys, World
from tests.sandbox.test_contacts_sandbox import LOCATION, Api, configure
from tests.sandbox.test_moco_webhooks import settled
from tests.timing import wait_for

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sandbox.server import RunningSandbox

QUICK = WebhookOptions(jitter=0.0, retry_interval=0.0, retry_jitter=0.0)


def test_the_listener_verifies_and_stores_the_sandboxs_deliveries(
    tmp_path: Path, contacts_sandbox_factory: Callable[..., RunningSandbox]
) -> None:
    sandbox = contacts_sandbox_factory(rate_limit=100_000, webhooks=QUICK)
    served = requests.get(f"{sandbox.url}/_sandbox/webhook_keys", timeout=30).json()
    # the World's own test keys are not used: the listener gets the sandbox's
    world = World(
        tmp_path, Keys(ed25519.Ed25519PrivateKey.generate(), rsa.generate_private_key(65537, 2048))
    )
    world.control.mkdir()
    try:
        listener = world.start(
            location_id=LOCATION,
            contacts_public_key=served["ed25519"],
            contacts_legacy_public_key=served["rsa"],
        )
        hook = f"{listener.url}/webhooks/contacts"
        assert configure(sandbox, webhook_url=hook).status_code == 200

        # The sync's own API write comes back too (HighLevel marks no origin) ...
        contact = Api(sandbox).create(firstName="Ada", lastName="Lovelace")
        assert wait_for(lambda: len(world.events()) == 1, timeout=OUTCOME_TIMEOUT)
        # ... and a person's edit in the CRM, signed with the legacy header only.
        assert configure(sandbox, webhook_signatures="rsa").status_code == 200
        appointment = {
            "contactId": contact["id"],
            "title": "Call",
            "startTime": "2030-01-01T09:00Z",
        }
        made = requests.post(f"{sandbox.url}/_sandbox/appointments", json=appointment, timeout=30)
        event_id = made.json()["appointment"]["id"]
        assert wait_for(lambda: len(world.events()) == 2, timeout=OUTCOME_TIMEOUT)
        listener.wait_settled()

        # A sender with other keys is refused; a 401 is final, nothing is stored.
        stranger = contacts_sandbox_factory(rate_limit=100_000, webhooks=QUICK)
        assert configure(stranger, webhook_url=hook).status_code == 200
        Api(stranger).create(firstName="Mallory")
        (forged,) = settled(stranger, 1)
    finally:
        world.stop_all()

    log = settled(sandbox, 2)
    assert [(e["event"], e["outcome"], e["status"]) for e in log] == [
        ("ContactCreate", "delivered", 202),
        ("AppointmentCreate", "delivered", 202),
    ]
    assert "x-ghl-signature" in log[0]["headers"] and "x-wh-signature" in log[0]["headers"]
    assert "x-ghl-signature" not in log[1]["headers"]
    assert (forged["outcome"], forged["status"], forged["attempt"]) == ("failed", 401, 1)

    created, booked = world.events()
    assert (created["event_type"], created["record_id"]) == ("ContactCreate", contact["id"])
    assert (booked["event_type"], booked["record_id"]) == ("AppointmentCreate", event_id)
    for event, entry in zip((created, booked), log, strict=True):
        assert event["location_id"] == LOCATION and event["status"] == "handled"
        assert json.loads(event["payload"])["webhookId"] == entry["webhook_id"]
    runs = world.starts_of(CONTACTS_DIRECTION)
    assert runs and {created["run_id"], booked["run_id"]} <= {r["run_id"] for r in runs}
