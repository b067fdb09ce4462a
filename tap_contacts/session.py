"""One tap run's connection to the Contacts API: ledger, auth, rate limiter, client, child reader.

Built on first use (discovery and ``--about`` need none of it) from the tap's settings, with the
same pieces target-contacts uses: the auth of :func:`contacts_api.auth.auth_from_config` (OAuth
tokens in the ledger's token store, so that both plugins share one rotating refresh token) and
the limiter of :func:`contacts_api.ratelimit.limiter_from_config` (one request budget per
location in the ledger, shared with every other process on that location).
"""

from __future__ import annotations

from functools import cached_property
from importlib import metadata
from typing import TYPE_CHECKING, Any

from contacts_api.auth import DEFAULT_BASE_URL, OAuthAuth, auth_from_config
from contacts_api.client import ContactsClient
from contacts_api.ratelimit import limiter_from_config
from sync_ledger.db import DEFAULT_LEDGER_URL, make_engine
from tap_contacts.children import ChildReader, TaskRead

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy import Engine

ENV_PREFIX = "TAP_CONTACTS"
DEFAULT_CONCURRENCY = 4


def _version() -> str:
    try:
        return metadata.version("moco-contacts-sync")
    except metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"tap-contacts/{_version()} (moco-contacts-sync)"


class ReadSession:
    """The client and child reader of one run; :meth:`close` releases them."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    @cached_property
    def engine(self) -> Engine:
        """The ledger database (token store and shared request budget)."""
        return make_engine(str(self.config.get("ledger_url") or DEFAULT_LEDGER_URL))

    @cached_property
    def client(self) -> ContactsClient:
        """The Contacts API client; fails here (before any read) when auth cannot work."""
        auth = auth_from_config(self.config, self.engine, env_prefix=ENV_PREFIX)
        auth.token()  # OAuth: says what to do now when nobody has logged in
        return ContactsClient(
            str(self.config.get("base_url") or DEFAULT_BASE_URL),
            str(self.config["location_id"]),
            auth,
            limiter=limiter_from_config(self.config, engine=self.engine),
            timeout=float(self.config.get("request_timeout") or 30),
            user_agent=USER_AGENT,
        )

    @cached_property
    def reader(self) -> ChildReader:
        """The reader of tasks, notes and appointments (shared by the child streams)."""
        client = self.client
        scopes = client.auth.granted_scopes() if isinstance(client.auth, OAuthAuth) else None
        return ChildReader(
            client,
            concurrency=int(self.config.get("max_concurrency") or DEFAULT_CONCURRENCY),
            task_read=TaskRead(str(self.config.get("task_read") or TaskRead.AUTO.value)),
            granted_scopes=scopes,
        )

    def close(self) -> None:
        """Stop the child reads and close the HTTP session; a later use builds them anew."""
        reader = self.__dict__.pop("reader", None)
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.cancel()  # reads still in flight (a failed run) stop at their next try
        if reader is not None:
            reader.close()
        if client is not None:
            client.close()
