"""The listener's settings: flags over ``SYNC_LISTENER_<NAME>`` variables over defaults.

Each setting has one name, used three ways: the flag ``--name-with-dashes``, the environment
variable ``SYNC_LISTENER_NAME`` (what ``meltano invoke sync-listener`` exports from the project's
settings), and the attribute of :class:`ListenerSettings`. A bad value fails before the listener
binds its port, with a message that names the setting and never shows a secret's value.
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from sync_ledger.db import DEFAULT_LEDGER_URL
from sync_listener.keys import CONTACTS_ED25519_PUBLIC_KEY, CONTACTS_LEGACY_RSA_PUBLIC_KEY

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

T = TypeVar("T")

ENV_PREFIX = "SYNC_LISTENER_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: The ledger's column width for location ids.
MAX_LOCATION_ID = 64
MAX_PORT = 65535


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and what to do."""


@dataclass(frozen=True)
class ListenerSettings:
    """Everything the listener needs, validated. Secrets are left out of ``repr``."""

    location_id: str
    host: str = "127.0.0.1"
    port: int = 8080
    ledger_url: str = field(default=DEFAULT_LEDGER_URL, repr=False)  # may hold a password
    moco_webhook_secret: str | None = field(default=None, repr=False)
    moco_sync_user_id: str | None = None
    contacts_public_key: Ed25519PublicKey = field(
        default_factory=lambda: _ed25519_key(CONTACTS_ED25519_PUBLIC_KEY, "contacts_public_key"),
        repr=False,
    )
    contacts_legacy_public_key: RSAPublicKey = field(
        default_factory=lambda: _rsa_key(
            CONTACTS_LEGACY_RSA_PUBLIC_KEY, "contacts_legacy_public_key"
        ),
        repr=False,
    )
    max_body_bytes: int = 256 * 1024
    timestamp_tolerance_seconds: float = 300.0
    moco_timestamp_tolerance_seconds: float | None = None  # None: timestamp_tolerance_seconds
    debounce_seconds: float = 2.0
    max_wait_seconds: float = 30.0
    retry_backoff_seconds: float = 5.0
    retry_backoff_max_seconds: float = 300.0
    moco_to_contacts_command: tuple[str, ...] = ("meltano", "run", "moco-to-contacts")
    contacts_to_moco_command: tuple[str, ...] = ("meltano", "run", "contacts-to-moco")
    run_directory: Path = Path()
    moco_targets: frozenset[str] = frozenset({"Contact", "Company", "Comment"})
    contacts_event_prefixes: tuple[str, ...] = ("Contact", "Note", "Task", "Appointment")
    store_timeout_seconds: float = 5.0
    retention_days: int = 30
    log_level: str = "INFO"


@dataclass(frozen=True)
class _Option:
    name: str
    help: str
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


_OPTIONS = (
    _Option("host", "address to listen on (default 127.0.0.1; put a TLS proxy in front)"),
    _Option("port", "port to listen on; 0 picks a free one (default 8080)"),
    _Option("ledger_url", "SQLAlchemy URL of the ledger database (default: the project's SQLite)"),
    _Option("location_id", "the Contacts API location this sync serves (required)"),
    _Option(
        "moco_webhook_secret",
        "MOCO's 32-character webhook key (used as ASCII); prefer the environment variable",
        secret=True,
    ),
    _Option("moco_sync_user_id", "the MOCO user whose API key the sync writes with"),
    _Option("contacts_public_key", "Ed25519 public key (PEM text or file) for x-ghl-signature"),
    _Option("contacts_legacy_public_key", "RSA public key (PEM text or file) for x-wh-signature"),
    _Option("max_body_bytes", "largest body accepted (default 262144)"),
    _Option("timestamp_tolerance_seconds", "how far an event's time may be from now (300)"),
    _Option(
        "moco_timestamp_tolerance_seconds",
        "the same for MOCO, whose timestamp is unsigned and kept by its retries (default: the "
        "value above; raise it to accept MOCO's late retries)",
    ),
    _Option("debounce_seconds", "quiet time after the last event before a run starts (2)"),
    _Option("max_wait_seconds", "longest wait for quiet after the first event (30)"),
    _Option("retry_backoff_seconds", "first pause after a failed run; doubles each time (5)"),
    _Option("retry_backoff_max_seconds", "longest pause between retries of a failed run (300)"),
    _Option("moco_to_contacts_command", "run for MOCO events (JSON list or shell words)"),
    _Option("contacts_to_moco_command", "run for Contacts events (JSON list or shell words)"),
    _Option("run_directory", "working directory of the runs (default: the current one)"),
    _Option("moco_targets", "MOCO targets that start a run (default Contact,Company,Comment)"),
    _Option(
        "contacts_event_prefixes",
        "Contacts event types (prefixes) that start a run (default Contact,Note,Task,Appointment)",
    ),
    _Option("store_timeout_seconds", "longest wait for the ledger to store an event (5)"),
    _Option("retention_days", "days settled events are kept for audit and dedupe (30)"),
    _Option("log_level", "DEBUG, INFO, WARNING or ERROR (default INFO)"),
)


def parser() -> argparse.ArgumentParser:
    """The command line; every flag also reads ``SYNC_LISTENER_<NAME>`` from the environment."""
    parsed = argparse.ArgumentParser(
        prog="sync-listener",
        description=(
            "Receive MOCO and Contacts API webhooks, store them in the ledger and start the "
            "matching incremental sync. Prints `listening on http://HOST:PORT` first."
        ),
    )
    for option in _OPTIONS:
        parsed.add_argument(option.flag, dest=option.name, help=f"{option.help} [{option.env}]")
    return parsed


def load_settings(argv: Sequence[str] | None, environ: Mapping[str, str]) -> ListenerSettings:
    """Settings from ``argv`` (flags) and ``environ``; :class:`SettingsError` if one is bad."""
    flags = vars(parser().parse_args(argv))
    given: dict[str, str] = {}
    for option in _OPTIONS:
        value = flags.get(option.name)
        if value is None:
            value = environ.get(option.env)
        if value is not None and value.strip() != "":
            given[option.name] = value.strip() if not option.secret else value
    return _build(given)


def _build(given: dict[str, str]) -> ListenerSettings:
    location_id = given.pop("location_id", None)
    if not location_id:
        raise SettingsError(
            "location_id is required: set --location-id or SYNC_LISTENER_LOCATION_ID to the "
            "Contacts API location the sync writes to (events of other locations are refused)"
        )
    if len(location_id) > MAX_LOCATION_ID:
        raise SettingsError(f"location_id is longer than {MAX_LOCATION_ID} characters")
    base = ListenerSettings(location_id=location_id)

    def get(name: str, convert: Callable[[str, str], T]) -> T:
        """The setting ``name`` as given, converted; else its default."""
        return convert(given[name], name) if name in given else cast("T", getattr(base, name))

    return ListenerSettings(
        location_id=location_id,
        host=get("host", _text),
        port=get("port", _port),
        ledger_url=get("ledger_url", _text),
        moco_webhook_secret=get("moco_webhook_secret", _secret),
        moco_sync_user_id=get("moco_sync_user_id", _text),
        contacts_public_key=get("contacts_public_key", _ed25519_key),
        contacts_legacy_public_key=get("contacts_legacy_public_key", _rsa_key),
        max_body_bytes=get("max_body_bytes", _positive_int),
        timestamp_tolerance_seconds=get("timestamp_tolerance_seconds", _positive_float),
        moco_timestamp_tolerance_seconds=get("moco_timestamp_tolerance_seconds", _positive_float),
        debounce_seconds=get("debounce_seconds", _non_negative_float),
        max_wait_seconds=get("max_wait_seconds", _non_negative_float),
        retry_backoff_seconds=get("retry_backoff_seconds", _positive_float),
        retry_backoff_max_seconds=get("retry_backoff_max_seconds", _positive_float),
        moco_to_contacts_command=get("moco_to_contacts_command", _command),
        contacts_to_moco_command=get("contacts_to_moco_command", _command),
        run_directory=get("run_directory", _directory),
        moco_targets=get("moco_targets", _word_set),
        contacts_event_prefixes=get("contacts_event_prefixes", _words),
        store_timeout_seconds=get("store_timeout_seconds", _positive_float),
        retention_days=get("retention_days", _positive_int),
        log_level=get("log_level", _log_level),
    )


def _text(value: str, _name: str) -> str:
    return value


def _secret(value: str, name: str) -> str:
    if value != value.strip():
        raise SettingsError(f"{name} has leading or trailing blanks: copy the key exactly")
    return value


def _whole(value: str, name: str, *, low: int, high: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {value!r}") from None
    if number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SettingsError(f"{name} must be {bounds}, got {number}")
    return number


def _positive_int(value: str, name: str) -> int:
    return _whole(value, name, low=1)


def _port(value: str, name: str) -> int:
    return _whole(value, name, low=0, high=MAX_PORT)


def _non_negative_float(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {value!r}") from None
    if number < 0:
        raise SettingsError(f"{name} must not be negative, got {number}")
    return number


def _positive_float(value: str, name: str) -> float:
    number = _non_negative_float(value, name)
    if number == 0:
        raise SettingsError(f"{name} must be above 0")
    return number


def _command(value: str, name: str) -> tuple[str, ...]:
    """A JSON list of strings (Meltano's form of an array setting) or shell words."""
    if value.startswith("["):
        try:
            words = json.loads(value)
        except json.JSONDecodeError:
            raise SettingsError(f"{name} is not a valid JSON list of strings") from None
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise SettingsError(f"{name} must be a JSON list of strings")
    else:
        try:
            words = shlex.split(value)
        except ValueError as error:
            raise SettingsError(f"{name} cannot be split into words: {error}") from None
    if not words:
        raise SettingsError(f"{name} is empty: give the command that runs the sync")
    return tuple(words)


def _words(value: str, name: str) -> tuple[str, ...]:
    words = tuple(word.strip() for word in value.split(",") if word.strip())
    if not words:
        raise SettingsError(f"{name} needs at least one comma-separated name")
    return words


def _word_set(value: str, name: str) -> frozenset[str]:
    return frozenset(_words(value, name))


def _directory(value: str, name: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise SettingsError(f"{name} {value!r} is not a directory")
    return path


def _log_level(value: str, name: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def _pem(value: str, name: str) -> bytes:
    """PEM text as given, or the content of the file it names."""
    if "-----BEGIN" in value:
        return value.encode("ascii", errors="replace")
    path = Path(value)
    if not path.is_file():
        raise SettingsError(f"{name} is neither PEM text nor a readable file")
    return path.read_bytes()


def _public_key(value: str, name: str) -> PublicKeyTypes:
    try:
        return load_pem_public_key(_pem(value, name))
    except ValueError:
        raise SettingsError(f"{name} is not a PEM public key") from None


def _ed25519_key(value: str, name: str) -> Ed25519PublicKey:
    key = _public_key(value, name)
    if not isinstance(key, Ed25519PublicKey):
        raise SettingsError(f"{name} must be an Ed25519 public key")
    return key


def _rsa_key(value: str, name: str) -> RSAPublicKey:
    key = _public_key(value, name)
    if not isinstance(key, RSAPublicKey):
        raise SettingsError(f"{name} must be an RSA public key")
    return key
