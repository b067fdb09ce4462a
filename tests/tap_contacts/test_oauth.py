"""tap-contacts with OAuth: tokens from the ledger's token store (the one target-contacts uses),
refreshed once under the store's lock, and the task read chosen by the scopes they carry."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from contacts_api.auth import exchange_code
from sync_ledger.db import make_engine
from sync_ledger.tokens import TokenStore
from tap_contacts.streams import TASK_PATH_STATE_KEY
from tests.tap_contacts.support import LOCATION, request_log, routes, run_tap, seed, tap_config

if TYPE_CHECKING:
    from pathlib import Path

    from sandbox.server import RunningSandbox

CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"
REDIRECT = "http://127.0.0.1:9/callback"


def log_in(sandbox: RunningSandbox, store: TokenStore) -> None:
    """What `contacts-admin login` leaves in the store: the consent's code, exchanged."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "scope": "contacts.readonly contacts.write",
            "state": "s",
        }
    )
    answer = requests.get(
        f"{sandbox.url}/v2/oauth/chooselocation?{query}", allow_redirects=False, timeout=10
    )
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    exchange_code(
        store,
        base_url=sandbox.url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        code=code,
        redirect_uri=REDIRECT,
        location_id=LOCATION,
    )


def refreshes(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    return [
        e
        for e in request_log(sandbox)
        if e["path"] == "/oauth/token"
        and (e.get("body") or {}).get("grant_type") == "refresh_token"
    ]


def test_oauth_tokens_are_the_shared_stores_and_are_refreshed_once(
    sandbox: RunningSandbox, tmp_path: Path
):
    seed(sandbox, generate={"contacts": 12, "seed": 9})
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = TokenStore(make_engine(ledger))
    log_in(sandbox, store)
    stored = store.load(LOCATION)
    assert stored is not None
    now = datetime.now(timezone.utc)
    store.save(replace(stored, expires_at=now - timedelta(seconds=1), updated_at=now))
    config = tap_config(
        sandbox, ledger_url=ledger, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    del config["private_integration_token"]

    first = run_tap(config)
    second = run_tap(config, state=first.state)

    assert first.error is None
    assert second.error is None
    assert len(first.records("contacts")) == 12
    assert len(refreshes(sandbox)) == 1  # the second run used the refreshed token as stored
    rotated = store.load(LOCATION)
    assert rotated is not None
    assert rotated.refresh_token != stored.refresh_token  # the rotation was kept
    # The consent granted no locations/tasks.readonly: tasks are read per contact, unasked.
    calls = routes(request_log(sandbox))
    assert calls["POST /locations/{locationId}/tasks/search"] == 0
    assert calls["GET /contacts/{id}/tasks"] == 12
    tasks_state = first.state["bookmarks"]["tasks"]
    assert tasks_state[TASK_PATH_STATE_KEY] == "per_contact"
    assert "not granted" in tasks_state["task_read_reason"]
