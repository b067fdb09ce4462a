"""Builds the writer from a configuration: ledger, auth, rate limiter, client, dry-run wrappers.

Shared by the target and the operator CLI (`contacts-admin rejects retry`), so both write with
exactly the same rules and settings.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import phonenumbers

from contacts_api.auth import (
    AuthProvider,
    OAuthAuth,
    StaticTokenAuth,
    check_token_encryption,
)
from contacts_api.client import ContactsClient
from contacts_api.errors import ConfigError
from contacts_api.ratelimit import limiter_from_config
from sync_ledger.db import DEFAULT_LEDGER_URL, is_in_memory, make_engine
from sync_ledger.ledger import IdLedger
from sync_ledger.merge import POLICIES, ConflictPolicy
from sync_ledger.tokens import TokenStore
from sync_ledger.writer import delete_policy
from target_contacts.dryrun import DryRunClient, OverlayLedger
from target_contacts.sync import ClientLike, ContactsSync, LedgerLike, WriteRules

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sync_ledger.summary import RunSummary

logger = logging.getLogger(__name__)
ENV = "TARGET_CONTACTS_"

DEFAULT_BASE_URL = "https://services.leadconnectorhq.com"


def check_settings(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the first setting whose value cannot work."""
    base_url = str(config.get("base_url") or DEFAULT_BASE_URL)
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"base_url {base_url!r} is not an http(s) URL "
            f"(TARGET_CONTACTS_BASE_URL): use {DEFAULT_BASE_URL}, or the "
            "sandbox's http://127.0.0.1:PORT"
        )
    region = config.get("default_phone_region")
    if region and str(region).upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(
            f"default_phone_region {region!r} is not a country code "
            "(TARGET_CONTACTS_DEFAULT_PHONE_REGION): use a two-letter ISO code "
            "such as DE, AT or US"
        )
    for name in (
        "max_concurrency",
        "rate_limit_requests",
        "rate_limit_window_seconds",
        "request_timeout",
        "daily_quota_reserve",
    ):
        value = config.get(name)
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not number >= (0 if name == "daily_quota_reserve" else 1e-9):
            raise ConfigError(
                f"{name} must be a number greater than "
                f"{'or equal to ' if name == 'daily_quota_reserve' else ''}0, "
                f"got {value!r} (TARGET_CONTACTS_{name.upper()})"
            )


def conflict_policy(config: Mapping[str, Any]) -> ConflictPolicy | None:
    """The two-way conflict policy the settings ask for; None when ``two_way`` is off."""
    if not config.get("two_way"):
        return None
    name = str(config.get("conflict_policy") or ConflictPolicy.MOST_RECENT.value)
    try:
        return ConflictPolicy(name)
    except ValueError:
        raise ConfigError(
            f"conflict_policy {name!r} is not one of {', '.join(POLICIES)} "
            "(TARGET_CONTACTS_CONFLICT_POLICY)"
        ) from None


def build_sync(config: Mapping[str, Any], summary: RunSummary | None = None) -> ContactsSync:
    """A :class:`ContactsSync` for ``config``; checks auth now so bad config fails before writes."""
    check_settings(config)
    location_id = config.get("location_id")
    if not location_id:
        raise ConfigError("location_id is required: the HighLevel location (sub-account) id")
    base_url = config.get("base_url") or DEFAULT_BASE_URL
    ledger_url = str(config.get("ledger_url") or DEFAULT_LEDGER_URL)
    engine = make_engine(ledger_url)
    concurrency = int(config.get("max_concurrency") or 8)
    if is_in_memory(ledger_url) and concurrency > 1:
        # One shared connection holds an in-memory database: write one record at a time.
        logger.warning(
            "ledger_url is an in-memory SQLite database: it is forgotten when the run ends (the "
            "next run cannot know what was written), and records are written one at a time"
        )
        concurrency = 1
    id_ledger = IdLedger(engine, location_id)
    auth: AuthProvider
    if config.get("private_integration_token"):
        auth = StaticTokenAuth(config["private_integration_token"])
    elif config.get("client_id") and config.get("client_secret"):
        check_token_encryption(config)
        store = TokenStore(engine, encryption_key=config.get("token_encryption_key"))
        auth = OAuthAuth(
            store,
            base_url=base_url,
            location_id=location_id,
            client_id=config["client_id"],
            client_secret=config["client_secret"],
            agency_token=config.get("agency_token"),
            company_id=config.get("company_id"),
        )
        auth.token()  # fails now, saying what to do, when nobody has logged in
    else:
        raise ConfigError(
            "target-contacts needs either private_integration_token or OAuth "
            "(client_id and client_secret, then `contacts-admin login`)"
        )
    # Shared through the ledger with every other process on this location (tap-contacts too).
    limiter = limiter_from_config(config, engine=engine)
    client: ClientLike = ContactsClient(
        base_url,
        location_id,
        auth,
        limiter=limiter,
        timeout=float(config.get("request_timeout") or 30),
    )
    ledger: LedgerLike = id_ledger
    if config.get("dry_run"):
        client = DryRunClient(client, location_id)
        ledger = OverlayLedger(id_ledger)
    return ContactsSync(
        client,
        ledger,
        location_id=location_id,
        summary=summary,
        concurrency=concurrency,
        rules=WriteRules(
            default_phone_region=config.get("default_phone_region"),
            custom_field_map=config.get("custom_fields") or {},
            merge_shared_contacts=bool(config.get("merge_shared_contacts")),
            conflict_policy=conflict_policy(config),
            deletes=delete_policy(config, ConfigError, ENV),
        ),
    )
