"""A run whose events include a delete starts its tap with a forced reconciliation pass
(TAP_MOCO_RECONCILE_NOW / TAP_CONTACTS_RECONCILE_NOW), so that the delete propagates in it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.listener.conftest import (
    CONTACTS_DIRECTION,
    MOCO_DIRECTION,
    OUTCOME_TIMEOUT,
    SYNC_USER,
    contacts_payload,
    moco_body,
)
from tests.timing import wait_for

if TYPE_CHECKING:
    from tests.listener.conftest import World


def test_a_moco_delete_forces_a_pass_of_tap_moco_and_an_update_does_not(world: World) -> None:
    listener = world.start()
    world.hold()
    assert listener.post_moco(moco_body(1)).status_code == 202
    assert wait_for(lambda: len(world.starts_of()) == 1, timeout=OUTCOME_TIMEOUT)
    # While the update's run holds: a delete, and another update, for one follow-up run.
    deleted = listener.post_moco(moco_body(2), target="Comment", event="delete")
    assert deleted.status_code == 202
    assert listener.post_moco(moco_body(3)).status_code == 202
    world.release()
    listener.wait_settled()

    starts = world.starts_of(MOCO_DIRECTION)
    assert [s["reconcile"] for s in starts] == [{}, {"TAP_MOCO_RECONCILE_NOW": "true"}]
    by_id = {e["id"]: e for e in world.events()}
    assert by_id[deleted.json()["event"]]["run_id"] == starts[1]["run_id"]
    assert by_id[deleted.json()["event"]]["event_type"] == "Comment.delete"
    # Once handled, the delete forces no later run.
    assert listener.post_moco(moco_body(4)).status_code == 202
    listener.wait_settled()
    assert world.starts_of(MOCO_DIRECTION)[-1]["reconcile"] == {}


def test_a_contacts_delete_forces_a_pass_of_tap_contacts(world: World) -> None:
    listener = world.start()
    for event_type in ("NoteDelete", "ContactUpdate"):
        assert listener.post_contacts(contacts_payload(event_type)).status_code == 202
        listener.wait_settled()

    starts = world.starts_of(CONTACTS_DIRECTION)
    assert [s["reconcile"] for s in starts] == [{"TAP_CONTACTS_RECONCILE_NOW": "true"}, {}]
    assert world.starts_of(MOCO_DIRECTION) == []


def test_an_echo_of_the_syncs_own_delete_starts_no_run(world: World) -> None:
    listener = world.start()
    # target-moco deleted a comment: MOCO reports it as the sync's own API change.
    echo = listener.post_moco(
        moco_body(5), target="Comment", event="delete", origin="api", user_id=SYNC_USER
    )
    assert echo.json()["status"] == "ignored_echo"
    assert listener.healthz()["lanes"] == {}
