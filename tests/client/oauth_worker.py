"""A separate process that needs a token refresh: used by the cross-process refresh test."""

from __future__ import annotations

from typing import Any


def list_contacts_in_a_process(
    *,
    ledger_url: str,
    base_url: str,
    location_id: str,
    client_id: str,
    client_secret: str,
    barrier: Any,
    results: Any,
) -> None:
    """Open the shared token store, wait for the other process, then call the API once."""
    from contacts_api.auth import OAuthAuth
    from contacts_api.client import ContactsClient
    from contacts_api.ratelimit import ContactsRateLimiter
    from sync_ledger.db import make_engine
    from sync_ledger.tokens import TokenStore

    try:
        store = TokenStore(make_engine(ledger_url))
        auth = OAuthAuth(
            store,
            base_url=base_url,
            location_id=location_id,
            client_id=client_id,
            client_secret=client_secret,
        )
        client = ContactsClient(
            base_url, location_id, auth, limiter=ContactsRateLimiter(1000, 10.0)
        )
        barrier.wait(timeout=30)
        contacts = list(client.list_contacts())
        results.put(("ok", len(contacts)))
    except Exception as exc:  # noqa: BLE001  reported to the test, which fails on anything but ok
        results.put(("error", f"{type(exc).__name__}: {exc}"))
