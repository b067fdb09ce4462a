"""The listener against the MOCO sandbox's own signed webhooks (as MOCO delivers them).

The sync's write through the API comes back as an echo (``X-Moco-Origin: api`` by the API key's
user) and starts nothing; a person's edit in MOCO's web UI starts one run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

from sandbox.moco_webhooks import API_ACTOR, DEFAULT_WEBHOOK_SECRET, WEB_UI_ACTOR
from tests.listener.conftest import MOCO_DIRECTION, OUTCOME_TIMEOUT
from tests.timing import wait_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import RunningSandbox
    from tests.listener.conftest import World

KEY = {"Authorization": "Token token=sandbox-key"}


def test_sandbox_deliveries_are_verified_and_the_syncs_echo_starts_no_run(
    world: World, moco_sandbox_factory: Callable[..., RunningSandbox]
) -> None:
    sandbox = moco_sandbox_factory(rate_limit=100_000)
    listener = world.start(
        moco_webhook_secret=DEFAULT_WEBHOOK_SECRET, moco_sync_user_id=str(API_ACTOR.user["id"])
    )
    api = sandbox.url + "/api/v1"
    for event in ("create", "update"):
        hook = {"target": "Contact", "event": event, "hook": listener.url + "/webhooks/moco"}
        requests.post(
            api + "/account/web_hooks", json=hook, headers=KEY, timeout=30
        ).raise_for_status()

    # The sync writes through the API (with its own key) ...
    person = {"firstname": "Ada", "lastname": "Lovelace", "gender": "F"}
    created = requests.post(api + "/contacts/people", json=person, headers=KEY, timeout=30)
    created.raise_for_status()
    person_id = created.json()["id"]
    assert wait_for(lambda: len(world.events()) == 1, timeout=OUTCOME_TIMEOUT)
    # ... and a person edits the contact in MOCO's web UI.
    edited = requests.put(
        f"{sandbox.url}/_sandbox/people/{person_id}", json={"lastname": "King"}, timeout=30
    )
    edited.raise_for_status()
    assert wait_for(lambda: len(world.events()) == 2, timeout=OUTCOME_TIMEOUT)
    listener.wait_settled()

    deliveries = requests.get(sandbox.url + "/_sandbox/webhook_deliveries", timeout=30).json()
    assert [(d["outcome"], d["status"]) for d in deliveries] == [("delivered", 202)] * 2
    echo, edit = world.events()
    assert (echo["event_type"], echo["status"], echo["run_id"]) == (
        "Contact.create",
        "ignored_echo",
        None,
    )
    assert (echo["origin"], echo["user_id"]) == ("api", str(API_ACTOR.user["id"]))
    assert (edit["event_type"], edit["status"]) == ("Contact.update", "handled")
    assert edit["user_id"] == str(WEB_UI_ACTOR.user["id"])
    assert edit["record_id"] == str(person_id)
    (run,) = world.starts_of()
    assert run["direction"] == MOCO_DIRECTION
    assert edit["run_id"] == run["run_id"]
