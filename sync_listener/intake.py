"""What a verified delivery becomes in the ledger: its dedupe key, its direction and its status.

What a caller may rely on:

- MOCO events start ``moco-to-contacts`` for the configured location, Contacts events start
  ``contacts-to-moco`` for theirs.
- A MOCO event with ``X-Moco-Origin: api`` by ``moco_sync_user_id`` is the echo of the sync's
  own write: stored as ``ignored_echo``, it starts no run. HighLevel marks nothing, so its events
  always start a run (which then writes nothing: the targets skip unchanged records).
- An event of a kind the sync does not read (a MOCO target outside ``moco_targets``, a Contacts
  type outside ``contacts_event_prefixes``) is stored as ``ignored_type`` and starts no run.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from sync_ledger.events import DEDUPE_KEY_LENGTH, IGNORED_ECHO, IGNORED_TYPE, PENDING, NewEvent

if TYPE_CHECKING:
    from sync_listener.settings import ListenerSettings
    from sync_listener.verify import ContactsDelivery, MocoDelivery

MOCO = "moco"
CONTACTS = "contacts"
MOCO_TO_CONTACTS = "moco-to-contacts"
CONTACTS_TO_MOCO = "contacts-to-moco"
#: ``X-Moco-Origin`` of a change made through MOCO's API.
API_ORIGIN = "api"


def moco_event(delivery: MocoDelivery, settings: ListenerSettings) -> NewEvent:
    """The row for a verified MOCO delivery."""
    body_hash = hashlib.sha256(delivery.body).hexdigest()
    # MOCO sends no delivery id: the same body for the same record and event is the same event.
    dedupe_key = _bounded(
        ":".join((MOCO, delivery.target, delivery.event, delivery.record_id or "", body_hash))
    )
    echo = (
        delivery.origin == API_ORIGIN
        and settings.moco_sync_user_id is not None
        and delivery.user_id == settings.moco_sync_user_id
    )
    if echo:
        status = IGNORED_ECHO
    elif delivery.target not in settings.moco_targets:
        status = IGNORED_TYPE
    else:
        status = PENDING
    return NewEvent(
        source=MOCO,
        dedupe_key=dedupe_key,
        direction=MOCO_TO_CONTACTS,
        location_id=settings.location_id,
        event_type=f"{delivery.target}.{delivery.event}",
        record_id=delivery.record_id,
        origin=delivery.origin,
        user_id=delivery.user_id,
        event_at=delivery.event_at,
        payload=delivery.body.decode("utf-8"),
        status=status,
    )


def contacts_event(delivery: ContactsDelivery, settings: ListenerSettings) -> NewEvent:
    """The row for a verified Contacts delivery (its location already checked)."""
    relevant = delivery.event_type.startswith(settings.contacts_event_prefixes)
    return NewEvent(
        source=CONTACTS,
        dedupe_key=_bounded(f"{CONTACTS}:{delivery.webhook_id}"),
        direction=CONTACTS_TO_MOCO,
        location_id=delivery.location_id,
        event_type=delivery.event_type,
        record_id=delivery.record_id,
        origin=None,
        user_id=None,
        event_at=delivery.event_at,
        payload=delivery.body.decode("utf-8"),
        status=PENDING if relevant else IGNORED_TYPE,
    )


def _bounded(key: str) -> str:
    """``key`` if it fits the column, else its hash (readable keys for every usual id)."""
    if len(key) <= DEDUPE_KEY_LENGTH:
        return key
    return f"sha256:{hashlib.sha256(key.encode()).hexdigest()}"
