"""A run whose events include a delete reads the whole list: the delete then propagates at once.

MOCO and the Contacts API delete hard, and a delete webhook carries only an id; the taps learn
of deletes only from a reconciliation pass (a complete read of a list, see the taps' docs),
which they make every ``reconcile_every_hours``. What a caller may rely on: when the events a
run claimed include a delete (MOCO ``X-Moco-Event: delete``, HighLevel ``ContactDelete``,
``NoteDelete``, ``TaskDelete``, ``AppointmentDelete``), :func:`run_environment` names the tap
setting that forces that pass for the run's direction (``TAP_MOCO_RECONCILE_NOW`` for
moco-to-contacts, ``TAP_CONTACTS_RECONCILE_NOW`` for contacts-to-moco, both ``true``); Meltano
hands it to the tap as its ``reconcile_now`` setting. Whether anything is then deleted on the
other side is still the targets' ``delete_streams`` and caps to decide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from sync_ledger.events import PENDING, webhook_events
from sync_listener.intake import CONTACTS_TO_MOCO, MOCO_TO_CONTACTS

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sync_ledger.events import Lane

#: Per direction, the environment variable of its tap's ``reconcile_now`` setting.
RECONCILE_NOW_ENV = {
    MOCO_TO_CONTACTS: "TAP_MOCO_RECONCILE_NOW",
    CONTACTS_TO_MOCO: "TAP_CONTACTS_RECONCILE_NOW",
}


def is_delete(event_type: str) -> bool:
    """Whether ``event_type`` is a delete: MOCO ``<Target>.delete``, HighLevel ``*Delete``."""
    return event_type.endswith((".delete", "Delete"))


class ClaimedDeletes:
    """Reads which event types a run claimed, in the ledger the events are stored in."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __call__(self, run_id: str) -> bool:
        """Whether the pending events claimed by ``run_id`` include a delete."""
        with self._engine.connect() as conn:
            types = conn.execute(
                select(webhook_events.c.event_type)
                .where(webhook_events.c.run_id == run_id, webhook_events.c.status == PENDING)
                .distinct()
            ).scalars()
            return any(is_delete(str(event_type)) for event_type in types)


def run_environment(lane: Lane, *, covers_delete: bool) -> dict[str, str]:
    """What a run of ``lane`` adds to its environment: the forced pass when it covers a delete."""
    name = RECONCILE_NOW_ENV.get(lane.direction)
    return {name: "true"} if covers_delete and name else {}
