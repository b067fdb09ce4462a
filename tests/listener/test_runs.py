"""Which events start which runs: coalescing, one run per location, follow-ups, echoes, retries.

The run command is ``fake_run.py``, which logs each invocation; a ``hold`` file keeps a run going
until the test lets it end, so "during a run" is decided by events, never by time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.listener.conftest import (
    CONTACTS_DIRECTION,
    LOCATION,
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


def test_events_during_a_run_cause_one_follow_up_and_its_echoes_one_reverse_run(
    world: World,
) -> None:
    listener = world.start()
    world.hold()  # the forward run lasts until the test lets it end
    first = listener.post_moco(moco_body(1))
    assert first.status_code == 202
    assert wait_for(lambda: len(world.starts_of()) == 1, timeout=OUTCOME_TIMEOUT)
    # While it runs: more MOCO changes, and the webhooks its writes cause on the CRM side
    # (HighLevel marks none of them as ours).
    moco_during = [listener.post_moco(moco_body(100 + n)) for n in range(10)]
    echoes = [listener.post_contacts(contacts_payload()) for _ in range(10)]
    assert [a.status_code for a in moco_during + echoes] == [202] * 20
    # The reverse run waits for the forward one: one run per location at a time.
    reverse_lane = f"{CONTACTS_DIRECTION}/{LOCATION}"
    assert wait_for(
        lambda: listener.healthz()["lanes"].get(reverse_lane) == "queued",
        timeout=OUTCOME_TIMEOUT,
    )
    assert listener.healthz()["runs_in_flight"] == 1
    assert len(world.starts_of()) == 1
    world.release()
    listener.wait_settled()

    runs = world.runs()
    # Never two runs at once, in this order: forward, the echoes' one reverse, the follow-up.
    assert [(r["phase"], r["direction"]) for r in runs] == [
        ("start", MOCO_DIRECTION),
        ("end", MOCO_DIRECTION),
        ("start", CONTACTS_DIRECTION),
        ("end", CONTACTS_DIRECTION),
        ("start", MOCO_DIRECTION),
        ("end", MOCO_DIRECTION),
    ]
    assert all(r["status"] == 0 for r in runs if r["phase"] == "end")
    forward, reverse, follow_up = (r["run_id"] for r in runs if r["phase"] == "start")
    by_id = {e["id"]: e for e in world.events()}
    assert by_id[first.json()["event"]]["run_id"] == forward
    assert {by_id[a.json()["event"]]["run_id"] for a in echoes} == {reverse}
    assert {by_id[a.json()["event"]]["run_id"] for a in moco_during} == {follow_up}
    assert {e["status"] for e in by_id.values()} == {"handled"}


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
