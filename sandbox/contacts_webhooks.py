"""HighLevel's webhooks in the Contacts sandbox: events, payloads, signatures, delivery options.

A Marketplace app gets a location's events at the webhook URL of its settings (reference
contacts-api.md §8, reverse-and-realtime.md §5.2). Here the URLs are sandbox settings
(``--webhook-url``, repeatable, or ``webhook_url`` in ``POST /_sandbox/config``: a URL, a list of
them, or null), off by default. Each URL stands for one installed app: it gets every enabled event
of every location the sandbox serves, in a delivery of its own (its own ``webhookId``). Only
``127.0.0.1``, ``::1`` and ``localhost`` URLs are taken (422 or an error at start otherwise), and
the engine in :mod:`sandbox.webhooks` refuses anything else again at delivery.

What is delivered (the routes that fire are in :mod:`sandbox.contacts`):

- ``ContactCreate``, ``ContactUpdate``, ``ContactDelete``: ``{type, locationId, id, address1,
  city, state, companyName, country, source, dateAdded, dateOfBirth, dnd, email, name, firstName,
  lastName, phone, postalCode, tags, website, attachments, assignedTo, customFields}`` (the
  fields the contact has; ``tags``, ``attachments`` and ``customFields`` always), never
  ``dateUpdated``; a delete carries the contact's last state. ``ContactTagUpdate`` the same
  fields; ``ContactDndUpdate`` adds ``dndSettings``.
- ``NoteCreate``, ``NoteUpdate``, ``NoteDelete``: ``{type, locationId, id, body, contactId,
  dateAdded}``.
- ``TaskCreate``, ``TaskComplete``, ``TaskDelete``: ``{type, locationId, id, assignedTo, body,
  contactId, title, dateAdded, dueDate}``. HighLevel has no ``TaskUpdate``: other task edits send
  nothing.
- ``AppointmentCreate``, ``AppointmentUpdate``, ``AppointmentDelete``: ``{type, locationId,
  appointment: {id, address, title, calendarId, contactId, groupId, appointmentStatus,
  assignedUserId, users, notes, source, startTime, endTime, dateAdded, dateUpdated}}`` with ISO
  8601 times (the per-contact route's ``YYYY-MM-DD HH:MM:SS`` is UTC here).
- Every payload ends with ``timestamp`` (the event's time on the sandbox clock, ISO 8601) and
  ``webhookId`` (a UUID, the receiver's dedupe key).

The body is compact JSON with non-ASCII characters as UTF-8, as Node's ``JSON.stringify`` writes
it, so a receiver that re-serialises the parsed body (as HighLevel's SDK does) gets the same bytes
as one that verifies the raw body. Headers: ``Content-Type: application/json`` and the signatures
chosen by ``--webhook-signatures`` (default both):

- ``x-ghl-signature``: base64 Ed25519 signature of the exact body bytes;
- ``x-wh-signature`` (legacy): base64 RSA-SHA256 PKCS#1 v1.5 signature of the exact body bytes.

The sandbox signs with key pairs of its own (HighLevel's private keys are, of course, not ours):
random ones made once per sandbox (at start from the command line, at first use in a test), or
derived from ``--webhook-key-seed`` so that every start has the same keys. The public halves are
served as PEM by ``GET /_sandbox/webhook_keys``: ``{"ed25519": ..., "rsa": ...}``; a receiver
verifies with them instead of HighLevel's published keys. The RSA key has ``--webhook-rsa-bits``
bits (default 2048 to start fast; HighLevel's is 4096, which verifies the same way).

Delivery (the engine's log: ``GET /_sandbox/webhook_deliveries``): only an answer 429 is retried,
every ``--webhook-retry-interval`` seconds (HighLevel: 600) plus up to ``--webhook-retry-jitter``
seconds, at most ``--webhook-max-retries`` times (HighLevel: 6); any other answer, no answer and a
timeout (``--webhook-timeout``) are final. A retry resends the same bytes: same ``webhookId``, same
``timestamp``.

UNCONFIRMED in HighLevel and chosen here, each the choice a receiver is safer to expect:
- the sync's own API writes send webhooks (HighLevel marks no origin: the listener and the
  targets must recognise their echoes);
- retries only on 429, every 10 minutes with jitter, at most 6 (a third-party summary of the
  changelog); no retry on 5xx or timeouts; the receiver's timeout (10 s here);
- a retry keeps the first attempt's ``timestamp`` (so one later than a receiver's replay window is
  refused: HighLevel's retry interval is longer than the documented 5-minute window);
- which writes send which events: a contact write (create, PUT, upsert) sends ``ContactCreate``
  or ``ContactUpdate``, plus ``ContactTagUpdate`` when it changed the tags and
  ``ContactDndUpdate`` when it changed ``dnd`` or ``dndSettings``; the tag routes send
  ``ContactTagUpdate`` even when the set stays the same; ``TaskComplete`` fires when a write
  completes an open task (reopening sends nothing); deleting a contact sends only
  ``ContactDelete``, not one delete per task, note and appointment that go with it; seeding sends
  nothing;
- deliveries may arrive out of order (``--webhook-jitter`` before each first attempt); real
  TaskCreate events were seen without ``contactId`` and ``body`` (issue #332), the sandbox always
  sends them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from sandbox.contacts_data import iso
from sandbox.contacts_oauth import error
from sandbox.contacts_search import parse_iso_ms
from sandbox.server import HTTPError, Request, Response
from sandbox.server import copy_json as clone
from sandbox.webhooks import DeliverySettings, Event, RetryPolicy, WebhookEngine, loopback_address

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable

    from sandbox.server import SandboxApp

Record = dict[str, Any]

CONTACT_EVENTS = (
    "ContactCreate",
    "ContactUpdate",
    "ContactDelete",
    "ContactDndUpdate",
    "ContactTagUpdate",
)
NOTE_EVENTS = ("NoteCreate", "NoteUpdate", "NoteDelete")
TASK_EVENTS = ("TaskCreate", "TaskComplete", "TaskDelete")
APPOINTMENT_EVENTS = ("AppointmentCreate", "AppointmentUpdate", "AppointmentDelete")
EVENT_TYPES = (*CONTACT_EVENTS, *NOTE_EVENTS, *TASK_EVENTS, *APPOINTMENT_EVENTS)

# The payload fields per record kind, in the documented order (reverse-and-realtime.md §5.2).
CONTACT_FIELDS = (
    "id",
    "address1",
    "city",
    "state",
    "companyName",
    "country",
    "source",
    "dateAdded",
    "dateOfBirth",
    "dnd",
    "email",
    "name",
    "firstName",
    "lastName",
    "phone",
    "postalCode",
    "tags",
    "website",
    "attachments",
    "assignedTo",
    "customFields",
)
CONTACT_LISTS = ("tags", "attachments", "customFields")  # sent as [] when the contact has none
NOTE_FIELDS = ("id", "body", "contactId", "dateAdded")
TASK_FIELDS = ("id", "assignedTo", "body", "contactId", "title", "dateAdded", "dueDate")
APPOINTMENT_FIELDS = (
    "id",
    "address",
    "title",
    "calendarId",
    "contactId",
    "groupId",
    "appointmentStatus",
    "assignedUserId",
    "users",
    "notes",
    "source",
    "startTime",
    "endTime",
    "dateAdded",
    "dateUpdated",
)
# kind (as the sandbox's stores name them) -> (create, update, delete) event types
ITEM_EVENTS = {"notes": NOTE_EVENTS, "tasks": TASK_EVENTS, "appointments": APPOINTMENT_EVENTS}

ED25519, RSA = "ed25519", "rsa"
SIGNATURE_SCHEMES = (ED25519, RSA)
SIGNATURE_HEADERS = {ED25519: "x-ghl-signature", RSA: "x-wh-signature"}
RSA_SIZES = (2048, 3072, 4096)


# --- payloads -------------------------------------------------------------------------------------
def encode(payload: object) -> bytes:
    """The bytes sent for ``payload``: compact UTF-8 JSON, as ``JSON.stringify`` writes it."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _pick(record: Record, names: Iterable[str]) -> Record:
    return {name: clone(record[name]) for name in names if name in record}


def contact_fields(contact: Record, *, dnd_settings: bool = False) -> Record:
    """A contact event's own fields (after ``type`` and ``locationId``); no ``dateUpdated``."""
    fields = {
        name: clone(contact.get(name, [])) if name in CONTACT_LISTS else clone(contact[name])
        for name in CONTACT_FIELDS
        if name in contact or name in CONTACT_LISTS
    }
    if dnd_settings:
        fields["dndSettings"] = clone(contact.get("dndSettings", {}))
    return fields


def item_fields(kind: str, item: Record) -> Record:
    """A note, task or appointment event's own fields; an appointment's are nested."""
    if kind == "notes":
        return _pick(item, NOTE_FIELDS)
    if kind == "tasks":
        return _pick(item, TASK_FIELDS)
    appointment = _pick(item, APPOINTMENT_FIELDS)
    for name in ("startTime", "endTime"):
        ms = parse_iso_ms(appointment.get(name))
        if ms is not None:
            appointment[name] = iso(ms)
    return {"appointment": appointment}


# --- signing keys ---------------------------------------------------------------------------------
_SMALL_PRIMES = tuple(p for p in range(3, 5000) if all(p % d for d in range(2, int(p**0.5) + 1)))
_SMALL_PRODUCT = math.prod(_SMALL_PRIMES)
_WITNESSES = _SMALL_PRIMES[:16]  # fixed Miller-Rabin bases: plenty for random candidates


def _probable_prime(n: int) -> bool:
    """Miller-Rabin for a large odd ``n`` (after a sieve by every odd prime below 5000)."""
    if math.gcd(n, _SMALL_PRODUCT) != 1:
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in _WITNESSES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


class _SeededBits:
    """Random bits derived from a seed by SHA-512 in counter mode: the same on every Python."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def bits(self, count: int) -> int:
        out = b""
        while len(out) * 8 < count:
            self._counter += 1
            out += hashlib.sha512(self._seed + self._counter.to_bytes(8, "big")).digest()
        return int.from_bytes(out, "big") >> (len(out) * 8 - count)


@functools.lru_cache(maxsize=4)  # a few seconds of pure Python: sandboxes of one process share
def _seeded_rsa(seed: bytes, bits: int) -> rsa.RSAPrivateKey:
    """The RSA key ``seed`` stands for (``cryptography`` has no seeded key generation)."""
    source = _SeededBits(b"rsa:" + seed)
    exponent = 65537

    def prime(size: int) -> int:
        while True:
            # the two top bits set: the product of two such primes has exactly 2 * size bits
            candidate = source.bits(size) | (3 << (size - 2)) | 1
            if (candidate - 1) % exponent and _probable_prime(candidate):
                return candidate

    p, q = prime(bits // 2), prime(bits // 2)
    while q == p:
        q = prime(bits // 2)
    d = pow(exponent, -1, (p - 1) * (q - 1))
    public = rsa.RSAPublicNumbers(exponent, p * q)
    return rsa.RSAPrivateNumbers(
        p,
        q,
        d,
        rsa.rsa_crt_dmp1(d, p),
        rsa.rsa_crt_dmq1(d, q),
        rsa.rsa_crt_iqmp(p, q),
        public,
    ).private_key()


def _pem(key: ed25519.Ed25519PublicKey | rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


class SigningKeys:
    """The sandbox's Ed25519 and RSA key pairs, made on first use (thread-safe).

    ``seed`` (text) derives both keys, the same ones at every start; ``None`` makes random ones.
    """

    def __init__(self, seed: str | None = None, rsa_bits: int = 2048) -> None:
        self.seed = seed
        self.rsa_bits = rsa_bits
        self._lock = threading.Lock()
        self._keys: tuple[ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey] | None = None

    def pairs(self) -> tuple[ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey]:
        """Both private keys, made now if they are not yet."""
        with self._lock:
            if self._keys is None:
                if self.seed is None:
                    self._keys = (
                        ed25519.Ed25519PrivateKey.generate(),
                        rsa.generate_private_key(65537, self.rsa_bits),
                    )
                else:
                    seed = self.seed.encode("utf-8")
                    self._keys = (
                        ed25519.Ed25519PrivateKey.from_private_bytes(
                            hashlib.sha256(b"ed25519:" + seed).digest()
                        ),
                        _seeded_rsa(seed, self.rsa_bits),
                    )
            return self._keys

    def public_pems(self) -> dict[str, str]:
        """``{"ed25519": PEM, "rsa": PEM}``: the public keys receivers verify with."""
        ed_key, rsa_key = self.pairs()
        return {ED25519: _pem(ed_key.public_key()), RSA: _pem(rsa_key.public_key())}

    def sign(self, scheme: str, body: bytes) -> str:
        """The base64 signature of ``body`` by ``scheme`` (``ed25519`` or ``rsa``)."""
        ed_key, rsa_key = self.pairs()
        if scheme == ED25519:
            signature = ed_key.sign(body)
        else:
            signature = rsa_key.sign(body, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode("ascii")


# --- options --------------------------------------------------------------------------------------
@dataclass
class WebhookOptions:
    """The ``--webhook-*`` options; ``POST /_sandbox/config`` changes most as ``webhook_*``.

    ``urls`` empty: no webhooks. ``key_seed`` and ``rsa_bits`` are fixed at construction.
    """

    urls: tuple[str, ...] = ()
    events: tuple[str, ...] = EVENT_TYPES
    signatures: tuple[str, ...] = SIGNATURE_SCHEMES
    retry_interval: float = 600.0
    retry_jitter: float = 60.0
    max_retries: int = 6
    timeout: float = 10.0
    jitter: float = 0.1
    workers: int = 4
    key_seed: str | None = None
    rsa_bits: int = 2048

    def delivery_settings(self) -> DeliverySettings:
        """The engine's settings: retry 429 only, at a fixed interval plus jitter."""
        return DeliverySettings(
            policy=RetryPolicy(
                max_attempts=self.max_retries + 1,
                base_delay=self.retry_interval,
                factor=1.0,
                max_delay=self.retry_interval,
                retry_jitter=self.retry_jitter,
                retry_statuses=frozenset({429}),
                retry_errors=False,
            ),
            timeout=self.timeout,
            jitter=self.jitter,
            workers=self.workers,
            disable_after=None,  # HighLevel documents no disabling of a failing URL
        )


def _words(value: object, name: str) -> list[str]:
    """A list of strings, or one string split at commas and spaces."""
    if isinstance(value, str):
        return value.replace(",", " ").split()
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ValueError(f"{name} must be a list of names or a comma-separated string")


def _urls(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, (list, tuple)) or not all(isinstance(u, str) and u for u in urls):
        raise ValueError("webhook_url must be a URL, a list of URLs or null")
    refused = [why for url in urls if isinstance(why := loopback_address(url), str)]
    if refused:
        raise ValueError(f"webhook_url {refused[0]}")
    return tuple(dict.fromkeys(urls))


def _names(allowed: tuple[str, ...], name: str) -> Callable[[object], tuple[str, ...]]:
    def parse(value: object) -> tuple[str, ...]:
        if value in ("all", ["all"]):
            return allowed
        words = [] if value in ("none", ["none"]) else _words(value, name)
        unknown = [w for w in words if w not in allowed]
        if unknown:
            raise ValueError(f"{name}: unknown {unknown}; known: {', '.join(allowed)}")
        return tuple(dict.fromkeys(words))

    return parse


def _number(name: str, low: float, *, integer: bool = False) -> Callable[[object], Any]:
    def parse(value: object) -> float | int:
        if isinstance(value, str):  # from the command line
            try:
                value = int(value) if integer else float(value)
            except ValueError:
                value = None
        ok = (
            not isinstance(value, bool)
            and isinstance(value, (int, float))
            and value >= low
            and (not integer or isinstance(value, int))
        )
        if not ok:
            kind = "an integer" if integer else "a number"
            raise ValueError(f"{name} must be {kind} >= {low}")
        return value  # type: ignore[return-value]  # checked just above

    return parse


def _rsa_bits(value: object) -> int:
    bits = int(value) if isinstance(value, str) and value.isdigit() else value
    if bits not in RSA_SIZES or isinstance(bits, bool) or not isinstance(bits, int):
        raise ValueError(f"webhook_rsa_bits must be one of {', '.join(map(str, RSA_SIZES))}")
    return bits


def _key_seed(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("webhook_key_seed must be a non-empty text")
    return value


@dataclass(frozen=True)
class _Setting:
    """One option: ``--webhook-<name>`` and, unless ``start_only``, ``webhook_<name>``.

    ``parse`` takes the command line's text or a JSON value; ``option`` is the
    :class:`WebhookOptions` attribute (default: ``name``).
    """

    name: str
    parse: Callable[[object], Any]
    help: str
    start_only: bool = False
    attribute: str | None = None

    @property
    def option(self) -> str:
        """The :class:`WebhookOptions` attribute this setting sets."""
        return self.attribute or self.name


_SETTINGS = (
    _Setting(
        "url",
        _urls,
        "a receiver's URL on 127.0.0.1, ::1 or localhost (repeatable: each is one installed "
        "app; default: none, no webhooks)",
        attribute="urls",
    ),
    _Setting(
        "events",
        _names(EVENT_TYPES, "webhook_events"),
        "the event types sent, comma-separated, or all or none (default: all 14)",
    ),
    _Setting(
        "signatures",
        _names(SIGNATURE_SCHEMES, "webhook_signatures"),
        "signature headers sent, comma-separated: ed25519 (x-ghl-signature), rsa "
        "(x-wh-signature), all or none (default: ed25519,rsa)",
    ),
    _Setting(
        "retry_interval",
        _number("webhook_retry_interval", 0),
        "seconds between retries after an answer 429 (HighLevel: 600)",
    ),
    _Setting(
        "retry_jitter",
        _number("webhook_retry_jitter", 0),
        "up to this many seconds added to each retry's wait (default: 60)",
    ),
    _Setting(
        "max_retries",
        _number("webhook_max_retries", 0, integer=True),
        "retries after the first attempt, on 429 only (HighLevel: 6)",
    ),
    _Setting(
        "timeout",
        _number("webhook_timeout", 0.001),
        "seconds a receiver has to answer; later is a final failure (default: 10)",
    ),
    _Setting(
        "jitter",
        _number("webhook_jitter", 0),
        "each delivery first waits a random 0..this many seconds, so order is not "
        "guaranteed (default: 0.1)",
    ),
    _Setting(
        "workers",
        _number("webhook_workers", 1, integer=True),
        "deliveries in flight at once (default: 4)",
    ),
    _Setting(
        "key_seed",
        _key_seed,
        "derive the signing keys from this text: the same keys at every start (default: "
        "random keys per start)",
        start_only=True,
    ),
    _Setting(
        "rsa_bits",
        _rsa_bits,
        "size of the RSA key (default: 2048; HighLevel's is 4096)",
        start_only=True,
    ),
)
_CONFIG = {f"webhook_{s.name}": s for s in _SETTINGS if not s.start_only}
CONFIG_KEYS = frozenset(_CONFIG)


# --- delivery -------------------------------------------------------------------------------------
class ContactsWebhooks:
    """Sends HighLevel's events through a :class:`WebhookEngine`; see the module docstring.

    ``now_ms`` gives the events' ``timestamp`` (the sandbox clock); ``clock`` the seconds the
    retry schedule is measured on (a test's fake clock, or :func:`time.monotonic`).
    """

    def __init__(
        self,
        options: WebhookOptions,
        *,
        now_ms: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.keys = SigningKeys(options.key_seed, options.rsa_bits)
        self._now_ms = now_ms
        self.engine = WebhookEngine(
            options.delivery_settings(),
            signer=self._sign,
            is_active=lambda url: url in self.options.urls,
            clock=clock,
            name="contacts-webhooks",
        )

    def _sign(self, body: bytes) -> dict[str, str]:
        return {
            SIGNATURE_HEADERS[scheme]: self.keys.sign(scheme, body)
            for scheme in self.options.signatures
        }

    def send(self, event_type: str, location_id: str, fields: Record) -> None:
        """Queue ``event_type`` with ``fields`` for every URL, if that type is enabled."""
        urls = self.options.urls
        if not urls or event_type not in self.options.events:
            return
        timestamp = iso(self._now_ms())
        nested = fields.get("appointment")
        record_id = (nested if isinstance(nested, dict) else fields).get("id")
        for url in urls:
            webhook_id = str(uuid.uuid4())
            payload = {
                "type": event_type,
                "locationId": location_id,
                **fields,
                "timestamp": timestamp,
                "webhookId": webhook_id,
            }
            info = {
                "event": event_type,
                "webhook_id": webhook_id,
                "location_id": location_id,
                "record_id": record_id,
            }
            self.engine.enqueue(Event(url, url, encode(payload), {}, info))

    # --- what the sandbox's writes send ---------------------------------------------------------
    def contact_written(self, before: Record | None, after: Record) -> None:
        """A create (``before`` None), PUT or upsert of a contact."""
        location = after["locationId"]
        self.send(
            "ContactCreate" if before is None else "ContactUpdate",
            location,
            contact_fields(after),
        )
        if before is None:
            return
        if before.get("tags", []) != after.get("tags", []):
            self.send("ContactTagUpdate", location, contact_fields(after))
        if any(before.get(k) != after.get(k) for k in ("dnd", "dndSettings")):
            self.send("ContactDndUpdate", location, contact_fields(after, dnd_settings=True))

    def tags_written(self, contact: Record) -> None:
        """``POST`` or ``DELETE /contacts/{id}/tags``: ``ContactTagUpdate``."""
        self.send("ContactTagUpdate", contact["locationId"], contact_fields(contact))

    def contact_deleted(self, contact: Record) -> None:
        """``ContactDelete`` with the contact's last state."""
        self.send("ContactDelete", contact["locationId"], contact_fields(contact))

    def item_written(
        self, kind: str, location_id: str, before: Record | None, after: Record
    ) -> None:
        """A note, task or appointment created (``before`` None) or changed.

        Tasks have no update event: only a write that completes an open task sends one.
        """
        create, update, _ = ITEM_EVENTS[kind]
        if before is None:
            self.send(create, location_id, item_fields(kind, after))
        elif kind != "tasks":
            self.send(update, location_id, item_fields(kind, after))
        elif after.get("completed") and not before.get("completed"):
            self.send(update, location_id, item_fields(kind, after))  # TaskComplete

    def item_deleted(self, kind: str, location_id: str, item: Record) -> None:
        """``NoteDelete``, ``TaskDelete`` or ``AppointmentDelete`` with the item's last state."""
        self.send(ITEM_EVENTS[kind][2], location_id, item_fields(kind, item))

    # --- sandbox routes and settings -----------------------------------------------------------
    def register(self, app: SandboxApp) -> None:
        """``GET``/``DELETE /_sandbox/webhook_deliveries`` and ``GET /_sandbox/webhook_keys``."""
        app.add_route("GET", "/_sandbox/webhook_deliveries", self._get_deliveries)
        app.add_route("DELETE", "/_sandbox/webhook_deliveries", self._clear_deliveries)
        app.add_route("GET", "/_sandbox/webhook_keys", lambda _: Response(200, self.public_keys()))

    def public_keys(self) -> dict[str, str]:
        """The PEM public keys of ``x-ghl-signature`` (``ed25519``) and ``x-wh-signature``."""
        return self.keys.public_pems()

    def _get_deliveries(self, request: Request) -> Response:
        raw = request.arg("since") or "0"
        since = int(raw) if raw.isdigit() else 0
        return Response(
            200, self.engine.log(since), {"X-Pending-Deliveries": str(self.engine.pending())}
        )

    def _clear_deliveries(self, _request: Request) -> Response:
        self.engine.clear_log()
        return Response(200, {"cleared": True})

    def prepare(self, settings: dict[str, Any]) -> Callable[[], None]:
        """Check the ``webhook_*`` keys of ``settings`` (422 on a bad one); returns the apply."""
        changes = {}
        for key, value in settings.items():
            setting = _CONFIG.get(key)
            if setting is None:
                continue
            try:
                changes[setting.option] = setting.parse(value)
            except ValueError as exc:
                raise HTTPError(422, error(422, [str(exc)])) from exc

        def apply() -> None:
            if not changes:
                return
            for name, value in changes.items():
                setattr(self.options, name, value)
            self.engine.configure(**vars(self.options.delivery_settings()))

        return apply

    def reset(self) -> None:
        """Drop queued deliveries and the log; the URLs and settings stay (they are settings)."""
        self.engine.reset()

    def close(self) -> None:
        """Stop the delivery workers; queued deliveries are dropped."""
        self.engine.close()


# --- command line ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--webhook-*`` options of ``python -m sandbox contacts``."""
    for setting in _SETTINGS:
        flag = f"--webhook-{setting.name.replace('_', '-')}"
        if setting.name == "url":
            parser.add_argument(flag, action="append", default=[], help=setting.help)
        else:
            parser.add_argument(flag, default=None, help=setting.help)


def options_from_args(args: argparse.Namespace) -> WebhookOptions:
    """:class:`WebhookOptions` from parsed ``--webhook-*`` options (absent ones: defaults)."""
    options = WebhookOptions()
    for setting in _SETTINGS:
        value = getattr(args, f"webhook_{setting.name}", None)
        if value is None or value == []:
            continue
        try:
            parsed = setting.parse(value)
        except ValueError as exc:
            raise SystemExit(f"--webhook-{setting.name.replace('_', '-')}: {exc}") from exc
        setattr(options, setting.option, parsed)
    return options
