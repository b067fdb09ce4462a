"""Builds target-moco's writer from a configuration: ledger, MOCO client, limiter, dry run.

Shared by the target and its rejects commands, so both write with the same rules and settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from moco_api.account import api_root
from moco_api.client import MocoClient
from moco_api.errors import ConfigError
from moco_api.ratelimit import AccountLimiter, RequestRateLimiter
from sync_ledger.budget import RateBudget, budget_name
from sync_ledger.db import DEFAULT_LEDGER_URL, is_in_memory, make_engine
from sync_ledger.ledger import Direction, IdLedger
from sync_ledger.merge import POLICIES, ConflictPolicy
from sync_ledger.overlay import OverlayLedger
from sync_ledger.writer import delete_policy
from target_moco.dryrun import DryRunMocoClient
from target_moco.payloads import GENDERS
from target_moco.people import MODES as PEOPLE_MODES
from target_moco.sync import MocoClientLike, MocoRules, MocoSync

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy import Engine

    from sync_ledger.summary import RunSummary
    from sync_ledger.writer import LedgerLike

ENV = "TARGET_MOCO_"


def _setting(config: Mapping[str, Any], name: str, default: float) -> float:
    value = config.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0:
        raise ConfigError(f"{name} must be a number above 0, got {value!r} ({ENV}{name.upper()})")
    return number


def check_settings(config: Mapping[str, Any]) -> str:
    """Raise :class:`ConfigError` naming the first setting that cannot work; the API root."""
    if not config.get("api_key"):
        raise ConfigError(f"api_key is required: the MOCO API key ({ENV}API_KEY)")
    if not config.get("location_id"):
        raise ConfigError(
            f"location_id is required: the CRM location these records come from ({ENV}LOCATION_ID)"
        )
    try:
        root = api_root(config)
    except ValueError:
        raise ConfigError(
            f"set subdomain ({ENV}SUBDOMAIN) or base_url ({ENV}BASE_URL) for target-moco"
        ) from None
    parts = urlsplit(root)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base_url {root!r} is not an http(s) URL ({ENV}BASE_URL)")
    gender = str(config.get("default_gender") or "U").upper()
    if gender not in GENDERS:
        raise ConfigError(f"default_gender must be one of F, M, U ({ENV}DEFAULT_GENDER)")
    try:
        ZoneInfo(str(config.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"timezone {config.get('timezone')!r} is not an IANA time zone such as "
            f"Europe/Berlin ({ENV}TIMEZONE)"
        ) from None
    return root


def people_directory(config: Mapping[str, Any]) -> str:
    """The ``people_directory`` setting, checked."""
    mode = str(config.get("people_directory") or "auto").strip().lower()
    if mode not in PEOPLE_MODES:
        raise ConfigError(
            f"people_directory must be one of {', '.join(PEOPLE_MODES)}, not {mode!r} "
            f"({ENV}PEOPLE_DIRECTORY)"
        )
    return mode


def conflict_policy(config: Mapping[str, Any]) -> ConflictPolicy | None:
    """The two-way conflict policy the settings ask for; None when ``two_way`` is off."""
    if not config.get("two_way"):
        return None
    name = str(config.get("conflict_policy") or ConflictPolicy.MOST_RECENT.value)
    try:
        return ConflictPolicy(name)
    except ValueError:
        raise ConfigError(
            f"conflict_policy {name!r} is not one of {', '.join(POLICIES)} ({ENV}CONFLICT_POLICY)"
        ) from None


def account_limiter(config: Mapping[str, Any], root: str, engine: Engine | None) -> AccountLimiter:
    """The MOCO account's limiter: this process's window, plus the ledger's shared budget.

    The budget is named after the account's API root, and used when processes share the ledger.
    """
    requests = int(_setting(config, "rate_limit_requests", 120))
    window = _setting(config, "rate_limit_window_seconds", 120)
    local = RequestRateLimiter(requests, window)
    shared = None
    if engine is not None and not is_in_memory(str(engine.url)):
        shared = RateBudget(engine, budget_name("moco-api", root), requests, window + 1)
    return AccountLimiter(local, shared)


def build_moco_sync(config: Mapping[str, Any], summary: RunSummary | None = None) -> MocoSync:
    """A :class:`MocoSync` for ``config``; bad settings fail here, before the first write."""
    root = check_settings(config)
    policy = conflict_policy(config)
    engine = make_engine(str(config.get("ledger_url") or DEFAULT_LEDGER_URL))
    id_ledger = IdLedger(engine, str(config["location_id"]), Direction.REVERSE)
    client: MocoClientLike = MocoClient(
        root,
        str(config["api_key"]),
        limiter=account_limiter(config, root, engine),
        timeout=_setting(config, "request_timeout", 60),
        user_agent=str(config.get("user_agent") or "target-moco (moco-contacts-sync)"),
    )
    ledger: LedgerLike = id_ledger
    if config.get("dry_run"):
        client = DryRunMocoClient(client)
        ledger = OverlayLedger(id_ledger)
    concurrency = int(_setting(config, "max_concurrency", 2))
    if is_in_memory(str(config.get("ledger_url") or "")):
        concurrency = 1  # one shared connection holds an in-memory ledger
    return MocoSync(
        client,
        ledger,
        summary=summary,
        concurrency=concurrency,
        rules=MocoRules(
            default_gender=str(config.get("default_gender") or "U").upper(),
            merge_shared_contacts=bool(config.get("merge_shared_contacts")),
            people_directory=people_directory(config),
            conflict_policy=policy,
            timezone_name=str(config.get("timezone") or "UTC"),
            deletes=delete_policy(config, ConfigError, ENV),
        ),
    )
