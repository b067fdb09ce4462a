"""tap-contacts' tasks, notes and appointments: contactId, content digests, the periodic full
pass, and the location-wide task read with its fallback, against the Contacts sandbox."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from tap_contacts.digests import DigestMap
from tap_contacts.streams import DIGESTS_STATE_KEY, FULL_PASS_STATE_KEY, TASK_PATH_STATE_KEY
from tests.hooks import Hook
from tests.tap_contacts.support import (
    CHILDREN,
    api,
    call,
    catalog_selecting,
    clear_log,
    contact,
    contact_id,
    request_log,
    routes,
    run_tap,
    seed,
    stamp,
    tap_config,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import Request, RunningSandbox

N = 40
READ_SCOPES = ["contacts.readonly", "contacts.write"]  # no locations/tasks.readonly
TASK_SEARCH = "POST /locations/{locationId}/tasks/search"
PER_CONTACT_TASKS = "GET /contacts/{id}/tasks"


def data() -> dict[str, list[dict[str, Any]]]:
    """N contacts (10 s apart), tasks on every third, two notes on every second, events on
    every fifth."""
    return {
        "contacts": [contact(i, dateUpdated=stamp(10 * i)) for i in range(N)],
        "tasks": [
            {
                "id": f"t{i:019d}",
                "contactId": contact_id(i),
                "title": f"Call {i}",
                "body": "About the offer",
                "dueDate": "2025-03-01T09:00:00.000Z",
                "completed": i % 2 == 0,
                "assignedTo": "sbxUser0000000000001",
            }
            for i in range(0, N, 3)
        ],
        "notes": [
            {"id": f"n{i:018d}{k}", "contactId": contact_id(i), "body": f"<p>Note {k}</p>"}
            for i in range(0, N, 2)
            for k in range(2)
        ],
        "appointments": [
            {
                "id": f"a{i:019d}",
                "contactId": contact_id(i),
                "calendarId": "cal00000000000000001",
                "title": "Kick-off",
                "appointmentStatus": "confirmed",
                "startTime": "2025-04-01 10:00:00",
                "endTime": "2025-04-01 11:00:00",
            }
            for i in range(0, N, 5)
        ],
    }


@pytest.fixture
def seeded(sandbox: RunningSandbox) -> RunningSandbox:
    seed(sandbox, **data())
    return sandbox


def owners(sandbox: RunningSandbox) -> dict[str, dict[str, str]]:
    """Per child stream: record id -> the contact the sandbox stores it under."""
    state = call(sandbox, "GET", "/_sandbox/state")
    return {kind: {item["id"]: item["contactId"] for item in state[kind]} for kind in CHILDREN}


def test_child_records_carry_their_contact_id(seeded: RunningSandbox):
    run = run_tap(tap_config(seeded))

    assert run.error is None
    expected = owners(seeded)
    for kind in CHILDREN:
        records = run.records(kind)
        assert {r["id"]: r["contactId"] for r in records} == expected[kind], kind
        assert len(records) == len(expected[kind]), kind
    # The SDK syncs a contact's children as the contact passes, just before its RECORD: the
    # next contact record after a child record is that child's contact.
    order = [(m["stream"], m["record"]) for m in run.messages if m["type"] == "RECORD"]
    for position, (stream, record) in enumerate(order):
        if stream != "contacts":
            following = next(r for s, r in order[position:] if s == "contacts")
            assert following["id"] == record["contactId"], (stream, record["id"])
    appointment = run.records("appointments")[0]
    assert appointment["startTime"] == "2025-04-01 10:00:00"  # kept as the API sends it


def test_location_wide_task_read_costs_one_search_per_page(seeded: RunningSandbox):
    config = tap_config(seeded, page_size=10)

    run = run_tap(config)

    assert run.error is None
    calls = routes(request_log(seeded))
    assert calls[TASK_SEARCH] == N // 10
    assert calls[PER_CONTACT_TASKS] == 0
    assert calls["GET /contacts/{id}/notes"] == N
    assert calls["GET /contacts/{id}/appointments"] == N
    bodies = [e["body"] for e in request_log(seeded) if e["path"].endswith("/tasks/search")]
    assert bodies[0]["contactId"] == [contact_id(i) for i in range(10)]
    assert run.state["bookmarks"]["tasks"][TASK_PATH_STATE_KEY] == "location"
    task = next(r for r in run.records("tasks") if r["id"] == f"t{3:019d}")
    assert task == {
        "id": f"t{3:019d}",
        "contactId": contact_id(3),
        "title": "Call 3",
        "body": "About the offer",
        "dueDate": "2025-03-01T09:00:00.000Z",
        "completed": False,
        "assignedTo": "sbxUser0000000000001",
    }


def _tasks_by_path(
    factory: Callable[..., RunningSandbox], task_read: str, **sandbox_options: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The tasks one run emits (by id), the sandbox's request log and the run's state."""
    sandbox = factory(rate_limit=100_000, **sandbox_options)
    seed(sandbox, **data())
    run = run_tap(tap_config(sandbox, task_read=task_read, page_size=10))
    assert run.error is None
    return sorted(run.records("tasks"), key=lambda r: r["id"]), request_log(sandbox), run.state


def test_without_the_scope_tasks_are_read_per_contact_with_the_same_records(
    contacts_sandbox_factory, caplog
):
    location, _log, _state = _tasks_by_path(contacts_sandbox_factory, "auto")
    with caplog.at_level(logging.WARNING):
        fallback, log, state = _tasks_by_path(
            contacts_sandbox_factory, "auto", token_scopes=READ_SCOPES
        )

    assert fallback == location
    calls = routes(log)
    assert calls[PER_CONTACT_TASKS] == N
    # Refused once (401, no token refresh), then per contact.
    assert [e["status"] for e in log if e["path"].endswith("/tasks/search")] == [401]
    assert state["bookmarks"]["tasks"][TASK_PATH_STATE_KEY] == "per_contact"
    assert any("reading tasks per contact" in r.getMessage() for r in caplog.records)


def test_task_read_per_contact_never_searches(contacts_sandbox_factory):
    tasks, log, state = _tasks_by_path(contacts_sandbox_factory, "per_contact")

    calls = routes(log)
    assert calls[TASK_SEARCH] == 0
    assert calls[PER_CONTACT_TASKS] == N
    assert len(tasks) == len(range(0, N, 3))
    assert state["bookmarks"]["tasks"][TASK_PATH_STATE_KEY] == "per_contact"


def test_task_read_location_stops_when_the_token_may_not_search(contacts_sandbox_factory):
    sandbox = contacts_sandbox_factory(rate_limit=100_000, token_scopes=READ_SCOPES)
    seed(sandbox, **data())

    run = run_tap(tap_config(sandbox, task_read="location"))

    assert run.error is not None
    message = str(run.error)
    assert "stream 'tasks'" in message
    assert "locations/tasks.readonly" in message
    assert "task_read" in message
    assert "sandbox-token" not in message
    assert run.bookmark() is None


def test_an_unchanged_run_reads_no_children_and_emits_none(seeded: RunningSandbox):
    config = tap_config(seeded)
    first = run_tap(config)
    clear_log(seeded)

    second = run_tap(config, state=first.state)

    assert second.error is None
    assert [m for m in second.messages if m["type"] == "RECORD"] == []
    assert set(routes(request_log(seeded))) == {"POST /contacts/search"}


def test_the_full_pass_picks_up_a_note_added_to_an_unchanged_contact(seeded: RunningSandbox):
    config = tap_config(seeded)
    first = run_tap(config)
    assert first.state["bookmarks"]["contacts"][FULL_PASS_STATE_KEY]["streams"] == sorted(CHILDREN)
    note = api(seeded, "POST", f"/contacts/{contact_id(7)}/notes", {"body": "Added later"})["note"]
    contact_after = api(seeded, "GET", f"/contacts/{contact_id(7)}")["contact"]
    assert contact_after["dateUpdated"] == stamp(70)  # the note did not touch the contact

    # Within child_full_pass_hours: the note is not seen (nothing is read per contact).
    clear_log(seeded)
    second = run_tap(config, state=first.state)
    assert second.records("notes") == []
    assert set(routes(request_log(seeded))) == {"POST /contacts/search"}

    # A full pass (0: every run) reads every contact's children and emits only the new note.
    clear_log(seeded)
    third = run_tap({**config, "child_full_pass_hours": 0}, state=second.state)

    assert third.error is None
    assert third.records("notes") == [{**note, "contactId": contact_id(7)}]
    assert third.records("contacts") == []
    assert third.records("tasks") == third.records("appointments") == []
    calls = routes(request_log(seeded))
    assert calls["GET /contacts/{id}/notes"] == N
    assert calls["GET /contacts/{id}/appointments"] == N
    assert calls[TASK_SEARCH] == 1
    full_pass = third.state["bookmarks"]["contacts"][FULL_PASS_STATE_KEY]
    assert (
        full_pass["completed_at"]
        > first.state["bookmarks"]["contacts"][FULL_PASS_STATE_KEY]["completed_at"]
    )


def test_a_changed_child_is_emitted_again_and_a_deleted_one_leaves_the_digests(
    seeded: RunningSandbox,
):
    config = tap_config(seeded, child_full_pass_hours=0)
    first = run_tap(config)
    notes_before = len(DigestMap.load(first.state["bookmarks"]["notes"][DIGESTS_STATE_KEY]))
    assert notes_before == len(data()["notes"])
    changed = f"n{4:018d}1"
    gone = f"n{6:018d}0"
    api(seeded, "PUT", f"/contacts/{contact_id(4)}/notes/{changed}", {"body": "Edited"})
    api(seeded, "DELETE", f"/contacts/{contact_id(6)}/notes/{gone}")

    second = run_tap(config, state=first.state)

    assert second.error is None
    notes = [r for r in second.records("notes") if not r.get("_sdc_deleted_at")]
    assert [r["id"] for r in notes] == [changed]
    assert notes[0]["body"] == "Edited"
    # The deleted one is reported once, as a tombstone (tests/tap_contacts/test_tombstones.py).
    assert [r["id"] for r in second.records("notes") if r.get("_sdc_deleted_at")] == [gone]
    notes_after = DigestMap.load(second.state["bookmarks"]["notes"][DIGESTS_STATE_KEY])
    assert len(notes_after) == notes_before - 1


def test_children_of_a_changed_contact_are_read_outside_a_full_pass(seeded: RunningSandbox):
    config = tap_config(seeded)
    first = run_tap(config)
    api(seeded, "POST", f"/contacts/{contact_id(5)}/notes", {"body": "Call back"})
    api(seeded, "PUT", f"/contacts/{contact_id(5)}", {"firstName": "Changed"})
    clear_log(seeded)

    second = run_tap(config, state=first.state)

    assert second.error is None
    assert second.ids("contacts") == [contact_id(5)]
    assert [r["body"] for r in second.records("notes")] == ["Call back"]
    calls = routes(request_log(seeded))
    assert calls["GET /contacts/{id}/notes"] == 1
    assert calls["GET /contacts/{id}/appointments"] == 1
    assert calls[TASK_SEARCH] == 1


def test_deselected_children_are_not_read(seeded: RunningSandbox):
    config = tap_config(seeded)

    run = run_tap(config, catalog=catalog_selecting(config, {"contacts", "notes"}))

    assert run.error is None
    assert len(run.records("notes")) == len(data()["notes"])
    calls = routes(request_log(seeded))
    assert set(calls) == {"POST /contacts/search", "GET /contacts/{id}/notes"}


def test_a_task_search_that_ignores_the_contact_filter_falls_back_per_contact(
    seeded: RunningSandbox, caplog
):
    def drop_the_filter(request: Request) -> None:
        body = json.loads(request.body)
        del body["contactId"]
        request.body = json.dumps(body).encode()

    hook = Hook(seeded, lambda r: r.path.endswith("/tasks/search"), drop_the_filter, when="before")
    try:
        with caplog.at_level(logging.WARNING):
            run = run_tap(tap_config(seeded, page_size=10))
    finally:
        hook.uninstall()

    assert run.error is None
    expected = {t["id"]: t["contactId"] for t in data()["tasks"]}
    assert {r["id"]: r["contactId"] for r in run.records("tasks")} == expected
    calls = routes(request_log(seeded))
    assert calls[TASK_SEARCH] == 1
    assert calls[PER_CONTACT_TASKS] == N
    assert any("ignores the contactId filter" in r.getMessage() for r in caplog.records)
    assert run.state["bookmarks"]["tasks"][TASK_PATH_STATE_KEY] == "per_contact"
