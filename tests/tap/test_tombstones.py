"""tap-moco reports records deleted in MOCO as tombstones (``_sdc_deleted_at``), and only from a
complete read of a list: to-dos on every run, people and comments on a reconciliation pass."""

from __future__ import annotations

import base64
import json
import logging
import random
import zlib
from array import array
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import pytest

from tap_moco.client import KNOWN_IDS_STATE_KEY, RECONCILED_STATE_KEY
from tap_moco.known_ids import decode_ids, encode_ids
from tap_moco.tap import TapMoco
from tests.hooks import Hook
from tests.tap.support import (
    expected_ids,
    request_log,
    run_tap,
    sandbox_call,
    sandbox_state,
    tap_config,
)

if TYPE_CHECKING:
    from sandbox.server import Request, RunningSandbox
    from tests.tap.support import TapRun

DELETED_AT = "_sdc_deleted_at"


@pytest.fixture
def seeded(moco_sandbox: RunningSandbox) -> RunningSandbox:
    sandbox_call(moco_sandbox, "POST", "/_sandbox/seed", {"generate": {"contacts": 30, "seed": 5}})
    return moco_sandbox


def tombstones(run: TapRun, stream: str) -> list[dict[str, Any]]:
    return [r for r in run.records(stream) if r.get(DELETED_AT)]


def tombstone_ids(run: TapRun) -> dict[str, list[int]]:
    return {s: sorted(r["id"] for r in tombstones(run, s)) for s in ("contacts", "notes", "tasks")}


def a_contact_todo(sandbox: RunningSandbox) -> dict[str, Any]:
    return next(t for t in sandbox_state(sandbox)["todos"] if t["todoable_type"] == "Contact")


def a_contact_comment(sandbox: RunningSandbox) -> dict[str, Any]:
    return next(
        c
        for c in sandbox_state(sandbox)["comments"]
        if c["commentable_type"] == "Contact" and c["manual"]
    )


def people_reads(sandbox: RunningSandbox) -> list[dict[str, str]]:
    return [e["query"] for e in request_log(sandbox) if e["path"] == "/api/v1/contacts/people"]


def test_a_deleted_todo_is_a_tombstone_on_the_next_run(seeded: RunningSandbox) -> None:
    config = tap_config(seeded, page_size=7)
    first = run_tap(config)
    assert first.error is None
    # The first run knows no ids yet: nothing is reported deleted.
    assert tombstone_ids(first) == {"contacts": [], "notes": [], "tasks": []}
    todo = a_contact_todo(seeded)
    sandbox_call(seeded, "DELETE", f"/_sandbox/todos/{todo['id']}")

    second = run_tap(config, state=first.state)

    assert second.error is None
    assert tombstone_ids(second) == {"contacts": [], "notes": [], "tasks": [todo["id"]]}
    (gone,) = tombstones(second, "tasks")
    # Every property but the id, updated_at and the marker is null (no parent id: the targets
    # find the linked record by the id).
    assert {k for k, v in gone.items() if v is not None} == {"id", "updated_at", DELETED_AT}
    assert gone["updated_at"] == gone[DELETED_AT]
    assert set(gone) == set(TapMoco(config=config).streams["tasks"].schema["properties"])
    # It does not move the bookmark, and it is reported once.
    assert second.bookmark("tasks") == first.bookmark("tasks")
    third = run_tap(config, state=second.state)
    assert third.records("tasks") == []


def test_deleted_people_and_comments_wait_for_a_reconciliation_pass(
    seeded: RunningSandbox,
) -> None:
    config = tap_config(seeded, page_size=7)
    first = run_tap(config)
    before = expected_ids(sandbox_state(seeded))
    person = sandbox_state(seeded)["contacts"][3]
    comment = a_contact_comment(seeded)
    # Through the web UI: a hard delete, MOCO keeps no trace of either. The person's to-dos
    # and comments go with them.
    sandbox_call(seeded, "DELETE", f"/_sandbox/people/{person['id']}")
    sandbox_call(seeded, "DELETE", f"/_sandbox/comments/{comment['id']}")
    after = expected_ids(sandbox_state(seeded))
    gone = {stream: sorted(before[stream] - after[stream]) for stream in after}
    assert person["id"] in gone["contacts"]
    assert comment["id"] in gone["notes"]
    sandbox_call(seeded, "DELETE", "/_sandbox/requests")

    # An ordinary incremental run (the last pass is minutes old) cannot see a deleted person
    # or comment; the to-do list is read whole on every run, so its deletes show at once.
    incremental = run_tap(config, state=first.state)
    assert incremental.error is None
    assert tombstone_ids(incremental) == {"contacts": [], "notes": [], "tasks": gone["tasks"]}
    assert all("updated_after" in q for q in people_reads(seeded))

    sandbox_call(seeded, "DELETE", "/_sandbox/requests")
    forced = run_tap({**config, "reconcile_now": True}, state=incremental.state)
    assert forced.error is None
    assert tombstone_ids(forced) == {
        "contacts": gone["contacts"],
        "notes": gone["notes"],
        "tasks": [],
    }
    # The pass read the whole lists, and emitted nothing else: nothing else changed.
    assert people_reads(seeded)
    assert all("updated_after" not in q for q in people_reads(seeded))
    assert forced.records("contacts") == tombstones(forced, "contacts")
    assert forced.bookmark("contacts") == first.bookmark("contacts")
    known = decode_ids(forced.state["bookmarks"]["contacts"][KNOWN_IDS_STATE_KEY])
    assert known is not None
    assert set(known) == expected_ids(sandbox_state(seeded))["contacts"]


def test_a_pass_is_due_every_reconcile_every_hours(seeded: RunningSandbox) -> None:
    config = tap_config(seeded, reconcile_every_hours=24)
    first = run_tap(config)
    person = sandbox_state(seeded)["contacts"][0]
    sandbox_call(seeded, "DELETE", f"/_sandbox/people/{person['id']}")
    state = first.state
    assert tombstone_ids(run_tap(config, state=state))["contacts"] == []

    # The last pass began a day ago.
    state["bookmarks"]["contacts"][RECONCILED_STATE_KEY] = "2020-01-01T00:00:00Z"
    due = run_tap(config, state=state)
    assert tombstone_ids(due)["contacts"] == [person["id"]]
    assert due.state["bookmarks"]["contacts"][RECONCILED_STATE_KEY] > "2020-01-01T00:00:00Z"

    # 0: every run is a pass.
    other = sandbox_state(seeded)["contacts"][0]
    sandbox_call(seeded, "DELETE", f"/_sandbox/people/{other['id']}")
    every = run_tap({**config, "reconcile_every_hours": 0}, state=due.state)
    assert tombstone_ids(every)["contacts"] == [other["id"]]


def test_state_from_before_deletes_were_tracked_reports_nothing_at_first(
    seeded: RunningSandbox,
) -> None:
    config = tap_config(seeded)
    first = run_tap(config)
    old_state = first.state
    for stream in ("contacts", "notes", "tasks"):
        old_state["bookmarks"][stream].pop(KNOWN_IDS_STATE_KEY)
        old_state["bookmarks"][stream].pop(RECONCILED_STATE_KEY)
    sandbox_call(seeded, "DELETE", f"/_sandbox/todos/{a_contact_todo(seeded)['id']}")
    person = sandbox_state(seeded)["contacts"][0]
    sandbox_call(seeded, "DELETE", f"/_sandbox/people/{person['id']}")

    upgraded = run_tap(config, state=old_state)

    # No known ids: this read starts them (a pass, since none is recorded) and reports nothing.
    assert tombstone_ids(upgraded) == {"contacts": [], "notes": [], "tasks": []}
    assert RECONCILED_STATE_KEY in upgraded.state["bookmarks"]["contacts"]


def test_a_person_created_between_passes_is_known_by_the_next_pass(
    seeded: RunningSandbox,
) -> None:
    config = tap_config(seeded)
    first = run_tap(config)
    created = sandbox_call(
        seeded,
        "POST",
        "/_sandbox/people",
        {"firstname": "Neu", "lastname": "Person", "gender": "F", "work_email": "neu@x.example"},
    )
    incremental = run_tap(config, state=first.state)
    assert created["id"] in incremental.ids("contacts")
    sandbox_call(seeded, "DELETE", f"/_sandbox/people/{created['id']}")

    forced = run_tap({**config, "reconcile_now": True}, state=incremental.state)

    assert tombstone_ids(forced)["contacts"] == [created["id"]]


def test_a_list_that_moves_while_paged_reports_no_deletes(seeded: RunningSandbox) -> None:
    """A person deleted between two pages shifts the pages: a record may be hidden from the
    read, so nothing is reported gone; the next complete read reports the delete."""
    config = tap_config(seeded, page_size=7, reconcile_now=True)
    first = run_tap(config)
    people = sandbox_state(seeded)["contacts"]
    deleted = people[0]["id"]

    def second_people_page(request: Request) -> bool:
        return request.path == "/api/v1/contacts/people" and request.arg("page") == "2"

    hook = Hook(
        seeded,
        second_people_page,
        lambda _request: sandbox_call(seeded, "DELETE", f"/_sandbox/people/{deleted}"),
        when="before",
    )
    moved = run_tap(config, state=first.state)
    hook.uninstall()

    assert hook.done.is_set()
    assert moved.error is None
    assert tombstone_ids(moved)["contacts"] == []
    # What the moved read saw is kept next to what was known: nothing is forgotten.
    known = decode_ids(moved.state["bookmarks"]["contacts"][KNOWN_IDS_STATE_KEY])
    assert known is not None
    assert deleted in set(known)
    after = run_tap(config, state=moved.state)
    assert tombstone_ids(after)["contacts"] == [deleted]


def test_a_failed_read_reports_nothing_and_keeps_the_known_ids(seeded: RunningSandbox) -> None:
    config = tap_config(seeded, page_size=7, reconcile_now=True)
    first = run_tap(config)
    deleted = sandbox_state(seeded)["contacts"][0]["id"]
    sandbox_call(seeded, "DELETE", f"/_sandbox/people/{deleted}")
    fault = {"kind": "status", "status": 404, "times": -1, "after": 2}
    sandbox_call(
        seeded, "POST", "/_sandbox/faults", {"faults": [{**fault, "path": "^/api/v1/contacts/"}]}
    )

    failed = run_tap(config, state=first.state)

    assert failed.error is not None
    assert tombstones(failed, "contacts") == []
    sandbox_call(seeded, "DELETE", "/_sandbox/faults")
    retried = run_tap(config, state=failed.state or first.state)
    assert tombstone_ids(retried)["contacts"] == [deleted]


def test_an_emptied_list_reports_every_known_id_and_warns(
    seeded: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    config = tap_config(seeded)
    first = run_tap(config)
    people = expected_ids(sandbox_state(seeded))["contacts"]
    sandbox_call(seeded, "POST", "/_sandbox/reset")

    with caplog.at_level(logging.WARNING):
        emptied = run_tap({**config, "reconcile_now": True}, state=first.state)

    # The targets' caps decide whether so many deletes go through; the tap reports them all.
    assert set(tombstone_ids(emptied)["contacts"]) == people
    assert any("came back EMPTY" in r.getMessage() for r in caplog.records)


def test_without_the_marker_selected_no_tombstone_is_sent(seeded: RunningSandbox) -> None:
    config = tap_config(seeded)
    catalog = TapMoco(config=config).catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == ["properties", DELETED_AT]:
                item["metadata"]["selected"] = False
    first = run_tap(config, catalog=catalog)
    sandbox_call(seeded, "DELETE", f"/_sandbox/todos/{a_contact_todo(seeded)['id']}")

    second = run_tap(config, state=first.state, catalog=catalog)

    # A tombstone without its marker would reach a target as a to-do of nulls.
    assert second.records("tasks") == []


def test_100000_known_ids_stay_small_in_state() -> None:
    rng = random.Random(7)  # noqa: S311  test data, not a secret
    cases = {
        # Ids of one kind, a few apart: MOCO hands them out in order.
        "close": list(accumulate(rng.randint(1, 20) for _ in range(100_000))),
        # The worst case: spread over MOCO's whole nine-digit range.
        "spread": rng.sample(range(100_000_000, 1_000_000_000), 100_000),
    }
    sizes = {}
    for name, ids in cases.items():
        text = encode_ids(ids)
        decoded = decode_ids(text)
        assert decoded is not None
        assert list(decoded) == sorted(ids)
        sizes[name] = len(json.dumps(text))
    assert sizes["close"] < 100_000
    assert sizes["spread"] < 400_000


def test_known_ids_that_are_not_ours_read_as_unknown() -> None:
    assert decode_ids(None) is None
    assert decode_ids({"1": 2}) is None
    assert decode_ids("d1:not base64!") is None
    assert decode_ids("v9:" + encode_ids([1, 2])[3:]) is None
    assert decode_ids(encode_ids([1, 2**40])[:-6]) is None  # cut short
    # A number cut off inside its last byte (its "more" bit set).
    assert decode_ids("d1:" + base64.b64encode(zlib.compress(b"\x81")).decode()) is None
    assert decode_ids(encode_ids([])) == array("q")
    assert decode_ids(encode_ids([5, 3, 5, 0])) == array("q", [0, 3, 5])
    with pytest.raises(ValueError, match="negative"):
        encode_ids([-1])
