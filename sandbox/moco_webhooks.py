"""MOCO's webhooks in the sandbox: subscription rules, the signature, headers and delivery options.

The ``/account/web_hooks`` routes live with the other routes in :mod:`sandbox.moco`; this module
holds what is particular to MOCO's webhooks (reference/moco-api.md §7, reverse-and-realtime.md
§5.1) and hands the deliveries to the generic engine in :mod:`sandbox.webhooks`:

- Targets: MD's list plus OA's additions; events ``create``, ``update``, ``delete`` (the two
  bookkeeping-export targets take only create and delete, OA).
- Each delivery POSTs the record as ``GET`` serialises it (create, update) or ``{"id": ...}``
  plus ``custom_properties`` where the record has them (delete, OA), encoded exactly as the
  API encodes its answers, with the headers ``X-Moco-Target``, ``X-Moco-Event``,
  ``X-Moco-Timestamp`` (the event's time, epoch milliseconds), ``X-Moco-Signature``,
  ``X-Moco-User-Id``, ``X-Moco-Account-Url`` and ``X-Moco-Origin``.
- ``X-Moco-Signature`` is the lower-case hex HMAC-SHA256 of the exact body with the account's
  32-character hex webhook secret used as ASCII bytes (not hex-decoded). One secret per account
  here: whether MOCO keeps one per hook is UNCONFIRMED.
- The acting user: API writes act as the API key's user (:data:`API_ACTOR`, origin ``api``);
  the sandbox-only writes under ``/_sandbox/`` stand for a person in MOCO's web UI
  (:data:`WEB_UI_ACTOR`, a different user, origin empty).

UNCONFIRMED in MOCO and chosen here: the retry schedule (exponential, ``--webhook-backoff`` s
doubled per attempt, ``--webhook-max-attempts`` attempts); the failure streak that disables a
hook counts failed attempts; ``X-Moco-Account-Url`` is the account's full base URL (the URL the
sandbox was called on, without ``/api/v1``) unless ``--webhook-account-url`` says otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.moco_data import SESSION_USER, USERS, user_ref
from sandbox.server import HTTPError
from sandbox.webhooks import DeliverySettings, Event, RetryPolicy, WebhookEngine

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable

Record = dict[str, Any]

# reference/moco-api.md §7: MD (2026-05) and the five targets OA adds.
WEBHOOK_TARGETS = (
    "Activity",
    "Comment",
    "Company",
    "Contact",
    "Contract",
    "Deal",
    "Expense",
    "Invoice",
    "Invoice::Approval",
    "Invoice::BookkeepingExport",
    "Invoice::Payment",
    "InvoiceDraft",
    "InvoiceReminder",
    "Offer",
    "PlanningEntry",
    "Presence",
    "Project",
    "Project::PaymentSchedule",
    "ProjectGroup",
    "Purchase",
    "Purchase::Approval",
    "Purchase::BookkeepingExport",
    "Purchase::Draft",
    "Purchase::Order",
    "Purchase::Payment",
    "RecurringExpense",
    "Schedule",
    "Task",
    "User",
    "User::HolidayRequest",
    "User::AbsenceRequest",
    "User::PeriodLockOverride",
    "User::WorkTimeAdjustment",
)
WEBHOOK_EVENTS = ("create", "update", "delete")
CREATE_DELETE_ONLY = frozenset({"Invoice::BookkeepingExport", "Purchase::BookkeepingExport"})
HOOK_KEYS = ("id", "target", "event", "hook", "disabled", "disabled_at", "created_at", "updated_at")

# A fixed, documented sandbox value in MOCO's format (32 lower-case hex characters).
DEFAULT_WEBHOOK_SECRET = "5a4db0c5e1f2a3b4c5d6e7f8091a2b3c"  # noqa: S105 - public test value
_SECRET_RE = re.compile(r"[0-9a-f]{32}")
_URL_RE = re.compile(r"https?://[^\s/?#]+[^\s]*")


@dataclass(frozen=True)
class Actor:
    """Who made a change: the user MOCO names in ``X-Moco-User-Id`` and ``X-Moco-Origin``."""

    user: Record
    origin: str

    def ref(self) -> Record:
        """The ``{id, firstname, lastname}`` a record written by this actor embeds."""
        return user_ref(self.user)


API_ACTOR = Actor(SESSION_USER, "api")  # the owner of the sandbox's API key (GET /session)
WEB_UI_USER = USERS[1]
WEB_UI_ACTOR = Actor(WEB_UI_USER, "")


def sign(secret: str, body: bytes) -> str:
    """MOCO's ``X-Moco-Signature``: hex HMAC-SHA256 of ``body``, the secret used as ASCII."""
    return hmac.new(secret.encode("ascii"), body, hashlib.sha256).hexdigest()


def encode(payload: object) -> bytes:
    """The bytes the API sends for ``payload`` (as :mod:`sandbox.server` encodes answers)."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


@dataclass
class WebhookOptions:
    """The ``--webhook-*`` options; ``POST /_sandbox/config`` changes them as ``webhook_*``."""

    secret: str = DEFAULT_WEBHOOK_SECRET
    jitter: float = 0.1
    backoff: float = 1.0
    backoff_max: float = 3600.0
    max_attempts: int = 10
    timeout: float = 10.0
    disable_after: int = 500
    workers: int = 4
    account_url: str | None = None

    def delivery_settings(self) -> DeliverySettings:
        """The engine's settings for these options."""
        return DeliverySettings(
            policy=RetryPolicy(
                max_attempts=self.max_attempts,
                base_delay=self.backoff,
                factor=2.0,
                max_delay=self.backoff_max,
            ),
            timeout=self.timeout,
            jitter=self.jitter,
            workers=self.workers,
            disable_after=self.disable_after,
        )


@dataclass(frozen=True)
class _Setting:
    """One webhook option, ``--webhook-<name>`` and ``webhook_<name>`` in /_sandbox/config."""

    name: str
    kind: Callable[[str], Any]  # parses the command-line value
    check: Callable[[object], bool]  # a JSON value from /_sandbox/config
    wanted: str
    help: str


def _at_least(minimum: float, *, integer: bool = False) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return value >= minimum and (not integer or isinstance(value, int))

    return check


def _is_secret(value: object) -> bool:
    return isinstance(value, str) and _SECRET_RE.fullmatch(value) is not None


_SETTINGS = (
    _Setting(
        "secret",
        str,
        _is_secret,
        "32 lower-case hex characters",
        "the account's webhook signing secret (default: %(default)s)",
    ),
    _Setting(
        "jitter",
        float,
        _at_least(0),
        "seconds >= 0",
        "each delivery first waits a random 0..this many seconds, so order is not "
        "guaranteed (default: %(default)s)",
    ),
    _Setting(
        "backoff",
        float,
        _at_least(0),
        "seconds >= 0",
        "seconds before the first retry, doubled per attempt (default: %(default)s)",
    ),
    _Setting(
        "backoff_max",
        float,
        _at_least(0),
        "seconds >= 0",
        "longest wait between attempts (default: %(default)s)",
    ),
    _Setting(
        "max_attempts",
        int,
        _at_least(1, integer=True),
        "an integer >= 1",
        "attempts per delivery, the first included (default: %(default)s)",
    ),
    _Setting(
        "timeout",
        float,
        _at_least(0.001),
        "seconds > 0",
        "seconds a receiver has to answer 2xx (MOCO: 10)",
    ),
    _Setting(
        "disable_after",
        int,
        _at_least(1, integer=True),
        "an integer >= 1",
        "consecutive failed attempts that disable a hook (MOCO: 500)",
    ),
    _Setting(
        "workers",
        int,
        _at_least(1, integer=True),
        "an integer >= 1",
        "deliveries in flight at once (default: %(default)s)",
    ),
    _Setting(
        "account_url",
        str,
        lambda v: v is None or (isinstance(v, str) and bool(v.strip())),
        "a non-empty string or null",
        "X-Moco-Account-Url (default: the URL the sandbox was called on)",
    ),
)
_SETTINGS_BY_KEY = {f"webhook_{s.name}": s for s in _SETTINGS}
CONFIG_KEYS = frozenset(_SETTINGS_BY_KEY)


def hook_errors(body: dict[str, Any], *, creating: bool) -> dict[str, list[str]]:
    """Validation errors of a web hook write, field-keyed as MOCO's 422 answers them.

    Creating needs ``target``, ``event`` and ``hook``; an update looks only at ``hook`` (OA:
    "Only ``hook`` can be changed"; other fields sent are ignored, as Rails drops unpermitted
    ones). A hook must be an http(s) URL (MOCO's exact URL rule is UNCONFIRMED; real hooks
    are https, the sandbox takes http too because its receivers run on 127.0.0.1).
    """
    errors: dict[str, list[str]] = {}
    if creating:
        target, event = body.get("target"), body.get("event")
        if target in (None, ""):
            errors["target"] = ["can't be blank"]
        elif target not in WEBHOOK_TARGETS:
            errors["target"] = ["is not included in the list"]
        if event in (None, ""):
            errors["event"] = ["can't be blank"]
        elif event not in WEBHOOK_EVENTS or (event == "update" and target in CREATE_DELETE_ONLY):
            errors["event"] = ["is not included in the list"]
    if creating or "hook" in body:
        hook = body.get("hook")
        if hook in (None, ""):
            errors["hook"] = ["can't be blank"]
        elif not isinstance(hook, str) or not _URL_RE.fullmatch(hook.strip()):
            errors["hook"] = ["is invalid"]
    return errors


class MocoWebhooks:
    """Delivers MOCO's events to the account's web hooks through a :class:`WebhookEngine`.

    ``is_active(hook_id)`` and ``disable(hook_id)`` come from the sandbox that stores the
    hooks; the engine calls them from its worker threads.
    """

    def __init__(
        self,
        options: WebhookOptions,
        *,
        is_active: Callable[[object], bool],
        disable: Callable[[object], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.engine = WebhookEngine(
            options.delivery_settings(),
            signer=lambda body: {"X-Moco-Signature": sign(self.options.secret, body)},
            is_active=is_active,
            on_disable=disable,
            clock=clock,
            name="moco-webhooks",
        )

    def notify(
        self,
        hooks: Iterable[Record],
        target: str,
        event: str,
        payload: Record,
        actor: Actor,
        account_url: str,
    ) -> None:
        """Queue one delivery of ``payload`` to every enabled hook for ``target`` and ``event``."""
        matching = [
            h for h in hooks if h["target"] == target and h["event"] == event and not h["disabled"]
        ]
        if not matching:
            return
        body = encode(payload)
        headers = {
            "X-Moco-Target": target,
            "X-Moco-Event": event,
            "X-Moco-Timestamp": str(int(time.time() * 1000)),
            "X-Moco-User-Id": str(actor.user["id"]),
            "X-Moco-Account-Url": self.options.account_url or account_url,
            "X-Moco-Origin": actor.origin,
        }
        info = {"target": target, "event": event, "record_id": payload.get("id")}
        for hook in matching:
            self.engine.enqueue(
                Event(hook["id"], hook["hook"], body, headers, {"hook": hook["id"], **info})
            )

    def configure(self, settings: dict[str, Any]) -> None:
        """Apply ``webhook_*`` settings (all checked first: a 422 changes nothing)."""
        changes = {}
        for key, value in settings.items():
            setting = _SETTINGS_BY_KEY[key]
            if not setting.check(value):
                raise HTTPError(422, {"message": f"{key} must be {setting.wanted}"})
            changes[setting.name] = value
        for option, value in changes.items():
            setattr(self.options, option, value)
        self.engine.configure(**vars(self.options.delivery_settings()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--webhook-*`` options of ``python -m sandbox moco``."""
    defaults = WebhookOptions()
    for setting in _SETTINGS:
        parser.add_argument(
            f"--webhook-{setting.name.replace('_', '-')}",
            type=setting.kind,
            default=getattr(defaults, setting.name),
            help=setting.help,
        )


def options_from_args(args: argparse.Namespace) -> WebhookOptions:
    """:class:`WebhookOptions` from parsed ``--webhook-*`` options (absent ones: defaults)."""
    options = WebhookOptions()
    for setting in _SETTINGS:
        value = getattr(args, f"webhook_{setting.name}", getattr(options, setting.name))
        if not setting.check(value):
            raise SystemExit(f"--webhook-{setting.name.replace('_', '-')} must be {setting.wanted}")
        setattr(options, setting.name, value)
    return options
