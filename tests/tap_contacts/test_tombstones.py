"""tap-contacts reports records deleted in the CRM as tombstones (``_sdc_deleted_at``): a contact
on a reconciliation pass (confirmed by a 404), a task, note or appointment whenever its contact's
list is read (every contact in a full pass)."""

from __future__ import annotations

import json
import logging
import random
import string
from typing import TYPE_CHECKING, Any

import pytest

from tap_contacts import streams
from tap_contacts.known_ids import KnownIds
from tap_contacts.streams import KNOWN_IDS_STATE_KEY, RECONCILED_STATE_KEY
from tap_contacts.tap import TapContacts
from tests.hooks import SandboxHook
from tests.tap_contacts.support import (
    CHILDREN,
    api,
    call,
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
    from sandbox.server import Request, Response, RunningSandbox
    from tests.tap_contacts.support import TapRun

DELETED_AT = "_sdc_deleted_at"
N = 12
STREAMS = ("contacts", *CHILDREN)


def data() -> dict[str, list[dict[str, Any]]]:
    """N contacts; every one has a task, a note and an appointment."""
    return {
        "contacts": [contact(i, dateUpdated=stamp(10 * i)) for i in range(N)],
        "tasks": [
            {"id": f"t{i:019d}", "contactId": contact_id(i), "title": f"Call {i}"} for i in range(N)
        ],
        "notes": [
            {"id": f"n{i:019d}", "contactId": contact_id(i), "body": f"Note {i}"} for i in range(N)
        ],
        "appointments": [
            {
                "id": f"a{i:019d}",
                "contactId": contact_id(i),
                "calendarId": "cal00000000000000001",
                "title": "Kick-off",
                "startTime": "2025-04-01 10:00:00",
                "endTime": "2025-04-01 11:00:00",
            }
            for i in range(N)
        ],
    }


@pytest.fixture
def seeded(sandbox: RunningSandbox) -> RunningSandbox:
    seed(sandbox, **data())
    return sandbox


def tombstones(run: TapRun, stream: str) -> list[dict[str, Any]]:
    return [r for r in run.records(stream) if r.get(DELETED_AT)]


def gone(run: TapRun) -> dict[str, list[str]]:
    return {s: sorted(r["id"] for r in tombstones(run, s)) for s in STREAMS}


NOTHING: dict[str, list[str]] = {s: [] for s in STREAMS}


def delete_children(sandbox: RunningSandbox, i: int) -> dict[str, str]:
    """Delete contact i's task, note (through the API) and appointment (the calendar UI)."""
    api(sandbox, "DELETE", f"/contacts/{contact_id(i)}/tasks/t{i:019d}")
    api(sandbox, "DELETE", f"/contacts/{contact_id(i)}/notes/n{i:019d}")
    call(sandbox, "DELETE", f"/_sandbox/appointments/a{i:019d}")
    return {"tasks": f"t{i:019d}", "notes": f"n{i:019d}", "appointments": f"a{i:019d}"}


def last_pass_long_ago(state: dict[str, Any]) -> dict[str, Any]:
    contacts = state["bookmarks"]["contacts"]
    contacts[RECONCILED_STATE_KEY] = "2020-01-01T00:00:00.000Z"
    contacts["child_full_pass"]["completed_at"] = "2020-01-01T00:00:00.000Z"
    return state


class DropFromAnswers(SandboxHook):
    """Leaves ids out of the search answers, as an index that lags a write would."""

    def __init__(self, sandbox: RunningSandbox, path_end: str, key: str, ids: set[str]) -> None:
        self.path_end, self.key, self.ids = path_end, key, ids
        super().__init__(sandbox)

    def _handle(self, request: Request) -> Response:
        response = self._original(request)
        body = response.body
        if request.path.endswith(self.path_end) and isinstance(body, dict):
            rows = body.get(self.key) or []
            body[self.key] = [r for r in rows if (r.get("id") or r.get("_id")) not in self.ids]
        return response


def test_deleted_children_are_tombstones_at_the_next_full_pass(seeded: RunningSandbox):
    config = tap_config(seeded)
    first = run_tap(config)
    assert first.error is None
    assert gone(first) == NOTHING  # nothing was known before the first run
    deleted = delete_children(seeded, 4)

    # Outside a full pass an unchanged contact's lists are not read: nothing can show.
    incremental = run_tap(config, state=first.state)
    assert incremental.error is None
    assert gone(incremental) == NOTHING

    full = run_tap(config, state=last_pass_long_ago(incremental.state))

    assert full.error is None
    assert gone(full) == {"contacts": [], **{k: [v] for k, v in deleted.items()}}
    for kind in CHILDREN:
        (record,) = tombstones(full, kind)
        assert record["contactId"] == contact_id(4)
        assert {k for k, v in record.items() if v is not None} == {"id", "contactId", DELETED_AT}
        known = KnownIds.load(full.state["bookmarks"][kind][KNOWN_IDS_STATE_KEY])
        assert known is not None
        assert deleted[kind] not in known.of(contact_id(4))
    # Once: the next full pass has nothing more to say.
    again = run_tap({**config, "child_full_pass_hours": 0}, state=full.state)
    assert gone(again) == NOTHING


def test_a_changed_contacts_deleted_child_shows_on_the_next_run(seeded: RunningSandbox):
    config = tap_config(seeded)
    first = run_tap(config)
    deleted = delete_children(seeded, 7)
    api(seeded, "PUT", f"/contacts/{contact_id(7)}", {"firstName": "Changed"})

    second = run_tap(config, state=first.state)

    # Its lists were read (the contact changed), so what is missing from them is reported.
    assert second.error is None
    assert gone(second) == {"contacts": [], **{k: [v] for k, v in deleted.items()}}


def test_a_deleted_contact_is_a_tombstone_on_a_reconciliation_pass(seeded: RunningSandbox):
    config = tap_config(seeded)
    first = run_tap(config)
    api(seeded, "DELETE", f"/contacts/{contact_id(3)}")

    incremental = run_tap(config, state=first.state)
    assert incremental.error is None
    assert gone(incremental) == NOTHING  # the last pass is minutes old
    clear_log(seeded)

    forced = run_tap({**config, "reconcile_now": True}, state=incremental.state)

    assert forced.error is None
    # One tombstone for the contact: its task, note and appointment went with it.
    assert gone(forced) == {**NOTHING, "contacts": [contact_id(3)]}
    (record,) = tombstones(forced, "contacts")
    assert record["dateUpdated"] == record[DELETED_AT]
    assert {k for k, v in record.items() if v is not None} == {"id", "dateUpdated", DELETED_AT}
    assert set(record) == set(TapContacts(config=config).streams["contacts"].schema["properties"])
    assert forced.records("contacts") == [record]  # nothing else changed
    assert forced.bookmark() == first.bookmark()  # a tombstone does not move the bookmark
    calls = routes(request_log(seeded))
    assert calls["GET /contacts/{id}"] == 1  # confirmed gone before it was reported
    searches = [e["body"] for e in request_log(seeded) if e["path"] == "/contacts/search"]
    assert all("filters" not in body for body in searches)
    # reconcile_now is also a full pass: the deleted contact's children leave the known ids.
    for kind in CHILDREN:
        known = KnownIds.load(forced.state["bookmarks"][kind][KNOWN_IDS_STATE_KEY])
        assert known is not None
        assert known.of(contact_id(3)) == frozenset()
    assert gone(run_tap({**config, "reconcile_now": True}, state=forced.state)) == NOTHING


def test_a_pass_is_due_every_reconcile_every_hours(seeded: RunningSandbox):
    config = tap_config(seeded, reconcile_every_hours=24)
    first = run_tap(config)
    api(seeded, "DELETE", f"/contacts/{contact_id(2)}")
    assert gone(run_tap(config, state=first.state)) == NOTHING

    state = first.state
    state["bookmarks"]["contacts"][RECONCILED_STATE_KEY] = "2020-01-01T00:00:00.000Z"
    due = run_tap(config, state=state)
    assert gone(due)["contacts"] == [contact_id(2)]

    api(seeded, "DELETE", f"/contacts/{contact_id(5)}")
    every = run_tap({**config, "reconcile_every_hours": 0}, state=due.state)
    assert gone(every)["contacts"] == [contact_id(5)]


def test_a_contact_the_search_misses_but_that_exists_is_not_reported(seeded: RunningSandbox):
    config = tap_config(seeded, reconcile_now=True)
    first = run_tap(config)
    lagging = contact_id(6)
    hook = DropFromAnswers(seeded, "/contacts/search", "contacts", {lagging})
    try:
        missed = run_tap(config, state=first.state)
    finally:
        hook.uninstall()

    assert missed.error is None
    assert gone(missed) == NOTHING
    known = KnownIds.load(missed.state["bookmarks"]["contacts"][KNOWN_IDS_STATE_KEY])
    assert known is not None
    assert lagging in known.of("")  # still known: a later delete is still reported
    api(seeded, "DELETE", f"/contacts/{lagging}")
    assert gone(run_tap(config, state=missed.state))["contacts"] == [lagging]


def test_a_search_that_misses_many_existing_contacts_stops_the_checks(
    seeded: RunningSandbox, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(streams, "MAX_STILL_THERE", 2)
    config = tap_config(seeded, reconcile_now=True)
    first = run_tap(config)
    lagging = {contact_id(i) for i in range(1, 6)}
    clear_log(seeded)
    hook = DropFromAnswers(seeded, "/contacts/search", "contacts", lagging)
    try:
        partial = run_tap(config, state=first.state)
    finally:
        hook.uninstall()

    assert partial.error is None
    assert gone(partial) == NOTHING
    # Two existed: the search is taken to be partial, the other three are not asked about.
    assert routes(request_log(seeded))["GET /contacts/{id}"] == 2
    known = KnownIds.load(partial.state["bookmarks"]["contacts"][KNOWN_IDS_STATE_KEY])
    assert known is not None
    assert lagging <= known.of("")


def test_at_most_max_confirmations_are_checked_per_pass(
    seeded: RunningSandbox, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(streams, "MAX_CONFIRMATIONS", 2)
    config = tap_config(seeded, reconcile_now=True)
    first = run_tap(config)
    deleted = [contact_id(i) for i in (2, 4, 6)]
    for one in deleted:
        api(seeded, "DELETE", f"/contacts/{one}")

    second = run_tap(config, state=first.state)
    third = run_tap(config, state=second.state)

    # Two confirmed and reported now; the third stays known and is reported by the next pass.
    assert gone(second)["contacts"] == deleted[:2]
    assert gone(third)["contacts"] == deleted[2:]


def test_a_task_the_task_search_misses_but_that_exists_is_not_reported(seeded: RunningSandbox):
    config = tap_config(seeded, child_full_pass_hours=0)
    first = run_tap(config)
    lagging = f"t{8:019d}"
    hook = DropFromAnswers(seeded, "/tasks/search", "tasks", {lagging})
    try:
        missed = run_tap(config, state=first.state)
    finally:
        hook.uninstall()

    assert missed.error is None
    assert gone(missed) == NOTHING
    api(seeded, "DELETE", f"/contacts/{contact_id(8)}/tasks/{lagging}")
    assert gone(run_tap(config, state=missed.state))["tasks"] == [lagging]


def test_a_failed_read_reports_nothing_and_keeps_what_was_known(seeded: RunningSandbox):
    config = tap_config(seeded, reconcile_now=True, request_timeout=2)
    first = run_tap(config)
    api(seeded, "DELETE", f"/contacts/{contact_id(1)}")
    delete_children(seeded, 9)
    call(
        seeded,
        "POST",
        "/_sandbox/faults",
        {"faults": [{"kind": "status", "status": 404, "times": -1, "path": "/appointments$"}]},
    )

    failed = run_tap(config, state=first.state)

    assert failed.error is not None
    assert gone(failed)["contacts"] == []  # reported only after the whole read
    call(seeded, "DELETE", "/_sandbox/faults")
    # The failed run passed on no state; the next one reports everything.
    retried = run_tap(config, state=first.state)
    assert gone(retried)["contacts"] == [contact_id(1)]
    assert gone(retried)["notes"] == [f"n{9:019d}"]


def test_an_emptied_location_reports_every_contact_and_warns(
    seeded: RunningSandbox, caplog: pytest.LogCaptureFixture
):
    config = tap_config(seeded)
    first = run_tap(config)
    for i in range(N):
        api(seeded, "DELETE", f"/contacts/{contact_id(i)}")

    with caplog.at_level(logging.WARNING):
        emptied = run_tap({**config, "reconcile_now": True}, state=first.state)

    # The targets' caps decide whether so many deletes go through; the tap reports them all.
    assert gone(emptied)["contacts"] == [contact_id(i) for i in range(N)]
    assert any("came back EMPTY" in r.getMessage() for r in caplog.records)


def test_known_ids_in_state_cost_about_21_characters_each() -> None:
    rng = random.Random(3)  # noqa: S311  test data, not a secret
    alphabet = string.ascii_letters + string.digits

    def new_id() -> str:
        return "".join(rng.choice(alphabet) for _ in range(20))

    contacts = [new_id() for _ in range(100_000)]
    flat = KnownIds({"": contacts})
    loaded = KnownIds.load(flat.dump())
    assert loaded is not None
    assert loaded.of("") == frozenset(contacts)
    # HighLevel ids are 20 random characters (about 15 bytes of information each): the state
    # cannot be much smaller than this.
    assert len(json.dumps(flat.dump())) < 2_200_000
    owners = contacts[:30_000]
    grouped: dict[str, list[str]] = {}
    for _ in range(100_000):
        grouped.setdefault(rng.choice(owners), []).append(new_id())
    children = KnownIds(grouped)
    assert len(json.dumps(children.dump())) < 2_900_000
    assert KnownIds.load(children.dump()) is not None
    assert len(KnownIds.load(children.dump()) or []) == 100_000


def test_known_ids_that_are_not_ours_read_as_unknown() -> None:
    assert KnownIds.load(None) is None
    assert KnownIds.load({"a": 1}) is None
    assert KnownIds.load("z1:not base64!") is None
    assert KnownIds.load("v1:" + KnownIds({"": ["a"]}).dump()[3:]) is None
    empty = KnownIds.load(KnownIds().dump())
    assert empty is not None
    assert len(empty) == 0
    # Ids that hold a separator cannot be kept, and are left out.
    kept = KnownIds.load(KnownIds({"c1": ["a", "b\tc", "d\ne"], "c\t2": ["x"]}).dump())
    assert kept is not None
    assert kept.groups == {"c1": frozenset({"a"})}
