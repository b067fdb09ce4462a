"""Which events start which runs: coalescing, single flight, follow-ups, echoes, retries.

The run command is ``fake_run.py``, which logs each invocation; a ``hold`` file keeps a run going
until the test lets it end, so "during a run" is decided by events, never by time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.listener.conftest import (
    CONTACTS_DIRECTION,
    MOCO_DIRECTION,
    OUTCOME_TIMEOUT,
    SYNC_USER,
    contacts_payload,
    moco_body,
    single_flight,
)
from tests.timing import wait_for

if TYPE_CHECKING:
    from tests.listener.conftest import World


def test_burst_of_50_events_is_one_run(world: World) -> None:
    # The quiet time is long next to the gap between two requests, so the burst stays one.
    listener = world.start(debounce_seconds=3, max_wait_seconds=300)
    answers = [listener.post_moco(moco_body(1000 + n)) for n in range(50)]
    assert [a.status_code for a in answers] == [202] * 50
    listener.wait_settled()
    starts = world.starts_of()
    assert len(starts) == 1
    assert starts[0]["direction"] == MOCO_DIRECTION
    events = world.events()
    assert len(events) == 50
    assert {e["status"] for e in events} == {"handled"}
    assert {e["run_id"] for e in events} == {starts[0]["run_id"]}
    # The run got its id (Meltano's too) and none of the listener's settings.
    assert starts[0]["meltano_run_id"] == starts[0]["run_id"]
    assert starts[0]["leaked"] == []


def test_events_during_a_run_cause_exactly_one_follow_up_per_direction(world: World) -> None:
    listener = world.start()
    world.hold()
    first_moco = listener.post_moco(moco_body(1))
    first_contacts = listener.post_contacts(contacts_payload())
    assert (first_moco.status_code, first_contacts.status_code) == (202, 202)
    # Both directions run at once: one flight per direction, not one for the listener.
    assert wait_for(lambda: len(world.starts_of()) == 2, timeout=OUTCOME_TIMEOUT)
    assert listener.healthz()["runs_in_flight"] == 2
    during = [listener.post_moco(moco_body(100 + n)) for n in range(10)]
    during += [listener.post_contacts(contacts_payload()) for _ in range(10)]
    assert [a.status_code for a in during] == [202] * 20
    # Still one run per direction while the first ones last.
    assert len(world.starts_of()) == 2
    world.release()
    listener.wait_settled()

    for direction, first in ((MOCO_DIRECTION, first_moco), (CONTACTS_DIRECTION, first_contacts)):
        starts = world.starts_of(direction)
        assert len(starts) == 2, world.runs()
        assert single_flight(world.runs(), direction), world.runs()
        assert [e["status"] for e in world.ends_of(direction)] == [0, 0]
        by_id = {e["id"]: e for e in world.events()}
        assert by_id[first.json()["event"]]["run_id"] == starts[0]["run_id"]
        later = [
            a.json()["event"] for a in during if by_id[a.json()["event"]]["direction"] == direction
        ]
        assert len(later) == 10
        assert {by_id[i]["run_id"] for i in later} == {starts[1]["run_id"]}
    assert {e["status"] for e in world.events()} == {"handled"}


def test_echo_of_the_syncs_own_write_starts_no_run(world: World) -> None:
    listener = world.start()
    echo = listener.post_moco(moco_body(5), origin="api", user_id=SYNC_USER)
    other_target = listener.post_moco(moco_body(6), target="Invoice")
    assert (echo.status_code, other_target.status_code) == (202, 202)
    assert echo.json()["status"] == "ignored_echo"
    assert other_target.json()["status"] == "ignored_type"
    # Neither scheduled anything: no lane exists, nothing is pending.
    health = listener.healthz()
    assert health["lanes"] == {}
    assert health["pending"] == 0

    # The same user through the web UI, or another API user: real changes, one run.
    by_hand = listener.post_moco(moco_body(7), origin=None, user_id=SYNC_USER)
    other_api_user = listener.post_moco(moco_body(8), origin="api", user_id="1")
    assert (by_hand.json()["status"], other_api_user.json()["status"]) == ("pending", "pending")
    listener.wait_settled()
    starts = world.starts_of()
    assert len(starts) == 1
    by_id = {e["id"]: e for e in world.events()}
    assert by_id[echo.json()["event"]]["status"] == "ignored_echo"
    assert by_id[echo.json()["event"]]["run_id"] is None
    assert by_id[other_target.json()["event"]]["run_id"] is None
    for answer in (by_hand, other_api_user):
        assert by_id[answer.json()["event"]]["run_id"] == starts[0]["run_id"]
        assert by_id[answer.json()["event"]]["status"] == "handled"


def test_failed_run_is_retried_and_its_events_stay_pending_until_one_succeeds(
    world: World,
) -> None:
    world.fail_next(CONTACTS_DIRECTION, 2)
    listener = world.start()
    answer = listener.post_contacts(contacts_payload())
    assert answer.status_code == 202
    listener.wait_settled()
    ends = world.ends_of(CONTACTS_DIRECTION)
    assert [e["status"] for e in ends] == [1, 1, 0]
    assert single_flight(world.runs(), CONTACTS_DIRECTION)
    (event,) = world.events()
    assert event["status"] == "handled"
    assert event["run_id"] == ends[-1]["run_id"]
    assert event["attempts"] == 2
    logs = "".join(path.read_text() for path in world.stderr_paths)
    assert "exited 1" in logs
    assert "stay pending" in logs
