"""Is this delivery authentic and fresh? The two senders' schemes, checked over the raw body.

What a caller may rely on: :meth:`MocoVerifier.verify` and :meth:`ContactsVerifier.verify`
either return the parsed delivery or raise :class:`Refused` with an HTTP status and a short
public reason. No reason contains a signature, a key or a payload value.

- MOCO (reference/moco-api.md §7): ``X-Moco-Signature`` is the lower-case hex HMAC-SHA256 of the
  raw body, keyed with the 32-character webhook key *as ASCII* (not hex-decoded); compared in
  constant time. ``X-Moco-Target``, ``X-Moco-Event`` and ``X-Moco-Timestamp`` (epoch ms) are
  required. The signature covers the body only: the timestamp and the other headers are NOT
  signed. So the freshness window (``moco_timestamp_tolerance_seconds``) only stops careless
  replays, and someone who captured a signed body can resend it with fresh headers: the dedupe
  key (target, event, record id, body hash) refuses the same body again, and since a run re-reads
  every record through the API, a forged hint costs at most one extra incremental run (or, with
  the sync user's headers, one run less, which the scheduled reconcile makes up), never a wrong
  write. ``X-Moco-Timestamp`` is the event's time, so a retry MOCO sends later than the window
  is refused too; raise the window to accept MOCO's late retries.
- HighLevel (reference/reverse-and-realtime.md §5.2): if ``x-ghl-signature`` is present it must be
  a valid Ed25519 signature (base64) of the raw body, with no fallback; otherwise
  ``x-wh-signature`` must be a valid RSA-SHA256 PKCS#1 v1.5 signature (base64); otherwise the
  delivery is refused. The body's ``timestamp`` (signed, ISO 8601) must lie within the tolerance
  of now, and its ``webhookId`` is the dedupe key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

# HTTP statuses of refusals (http.HTTPStatus names would hide which number the sender sees).
BAD_REQUEST = 400
UNAUTHORIZED = 401
FORBIDDEN = 403
CONFLICT = 409
TOO_LARGE = 413

_MAX_NAME = 64  # target, event, type, origin, user id
_MAX_ID = 255  # record id, webhookId


class Refused(Exception):  # noqa: N818  (it is an answer, not a failure of ours)
    """A delivery we do not take: ``status`` is the HTTP answer, ``reason`` safe to show."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class MocoDelivery:
    """A verified MOCO webhook."""

    target: str
    event: str
    record_id: str | None
    user_id: str | None
    origin: str | None
    event_at: dt.datetime
    body: bytes


@dataclass(frozen=True)
class ContactsDelivery:
    """A verified HighLevel webhook."""

    webhook_id: str
    event_type: str
    location_id: str
    record_id: str | None
    event_at: dt.datetime
    body: bytes


def moco_signature(secret: str, body: bytes) -> str:
    """MOCO's signature of ``body``: hex HMAC-SHA256 keyed with the webhook key as ASCII."""
    return hmac.new(secret.encode("ascii"), body, hashlib.sha256).hexdigest()


class MocoVerifier:
    """Checks MOCO deliveries against one webhook key."""

    def __init__(self, secret: str, tolerance_seconds: float) -> None:
        self._secret = secret
        self._tolerance_ms = tolerance_seconds * 1000

    def __repr__(self) -> str:
        return "MocoVerifier(secret=<hidden>)"

    def verify(self, headers: Mapping[str, str], body: bytes, now: dt.datetime) -> MocoDelivery:
        """The delivery, or :class:`Refused` (401 unsigned/forged/stale, 400 malformed)."""
        signature = headers.get("x-moco-signature")
        if not signature:
            raise Refused(UNAUTHORIZED, "X-Moco-Signature missing")
        expected = moco_signature(self._secret, body).encode("ascii")
        if not hmac.compare_digest(expected, signature.strip().lower().encode("latin-1")):
            raise Refused(UNAUTHORIZED, "X-Moco-Signature does not match the body")
        target = _header_name(headers, "x-moco-target")
        event = _header_name(headers, "x-moco-event")
        stamp = headers.get("x-moco-timestamp", "").strip()
        if not stamp:
            raise Refused(BAD_REQUEST, "X-Moco-Timestamp missing")
        try:
            millis = int(stamp)
        except ValueError:
            raise Refused(BAD_REQUEST, "X-Moco-Timestamp is not epoch milliseconds") from None
        if abs(now.timestamp() * 1000 - millis) > self._tolerance_ms:
            raise Refused(UNAUTHORIZED, "X-Moco-Timestamp outside the accepted window")
        payload = _json_object(body)
        return MocoDelivery(
            target=target,
            event=event,
            record_id=_record_id(payload.get("id")),
            user_id=_optional_header(headers, "x-moco-user-id"),
            origin=_optional_header(headers, "x-moco-origin"),
            event_at=dt.datetime.fromtimestamp(millis / 1000, tz=dt.timezone.utc),
            body=body,
        )


class ContactsVerifier:
    """Checks HighLevel deliveries: signature, freshness, and that they are ``location_id``'s."""

    def __init__(
        self,
        key: Ed25519PublicKey,
        legacy_key: RSAPublicKey,
        tolerance_seconds: float,
        *,
        location_id: str,
    ) -> None:
        self._key = key
        self._location_id = location_id
        self._legacy_key = legacy_key
        self._tolerance = dt.timedelta(seconds=tolerance_seconds)

    def verify(self, headers: Mapping[str, str], body: bytes, now: dt.datetime) -> ContactsDelivery:
        """The delivery, or :class:`Refused` (401 unsigned/forged/stale, 400 malformed, 403 other).

        A valid signature is required by its Ed25519 key, or by its legacy RSA key when only the
        legacy header is present; "other" is the event of another location.
        """
        self._check_signature(headers, body)
        payload = _json_object(body)
        webhook_id = _field(payload, "webhookId", _MAX_ID)
        event_type = _field(payload, "type", _MAX_NAME)
        location_id = _field(payload, "locationId", _MAX_ID)
        stamp = _field(payload, "timestamp", _MAX_NAME)
        event_at = _iso_time(stamp)
        if abs(now - event_at) > self._tolerance:
            raise Refused(UNAUTHORIZED, "timestamp outside the accepted window")
        if location_id != self._location_id:
            raise Refused(FORBIDDEN, "event of another location")
        record = payload.get("id")
        nested = payload.get("appointment")
        if record is None and isinstance(nested, dict):
            record = nested.get("id")
        return ContactsDelivery(
            webhook_id=webhook_id,
            event_type=event_type,
            location_id=location_id,
            record_id=_record_id(record),
            event_at=event_at,
            body=body,
        )

    def _check_signature(self, headers: Mapping[str, str], body: bytes) -> None:
        current = headers.get("x-ghl-signature")
        if current is not None:
            # Present means it must hold: no falling back to the legacy header (as the SDK).
            try:
                self._key.verify(_base64(current), body)
            except (InvalidSignature, ValueError):
                raise Refused(UNAUTHORIZED, "x-ghl-signature does not match the body") from None
            return
        legacy = headers.get("x-wh-signature")
        if legacy is None:
            raise Refused(UNAUTHORIZED, "x-ghl-signature or x-wh-signature required")
        try:
            self._legacy_key.verify(_base64(legacy), body, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            raise Refused(UNAUTHORIZED, "x-wh-signature does not match the body") from None


def _base64(value: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Refused(UNAUTHORIZED, "signature is not base64") from None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))  # strictly UTF-8 (RFC 8259), as it is stored
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused(BAD_REQUEST, "body is not UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise Refused(BAD_REQUEST, "body is not a JSON object")
    return payload


def _header_name(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value or len(value) > _MAX_NAME:
        raise Refused(BAD_REQUEST, f"{name} missing or too long")
    return value


def _optional_header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name, "").strip()
    if not value:
        return None
    if len(value) > _MAX_NAME:
        raise Refused(BAD_REQUEST, f"{name} too long")
    return value


def _field(payload: Mapping[str, Any], name: str, limit: int) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise Refused(BAD_REQUEST, f"{name} missing or malformed")
    return value


def _record_id(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value)
    return text if 0 < len(text) <= _MAX_ID else None


def _iso_time(value: str) -> dt.datetime:
    """An ISO 8601 time; one without an offset is taken as UTC. Python 3.10 needs no ``Z``."""
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Refused(BAD_REQUEST, "timestamp is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment
