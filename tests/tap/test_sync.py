"""Full and incremental syncs against the MOCO sandbox: paging, bookmarks, de-duplication."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pytest

from sandbox.moco_data import CONTACT_DEFAULTS, fresh
from tap_moco.client import MocoStream
from tests.hooks import Hook
from tests.tap.support import (
    STREAMS,
    duplicates,
    expected_ids,
    request_log,
    run_tap,
    sandbox_call,
    sandbox_state,
    tap_config,
    window_start,
)

if TYPE_CHECKING:
    from sandbox.server import Request, RunningSandbox

N_CONTACTS = 60


@pytest.fixture
def seeded(moco_sandbox: RunningSandbox) -> RunningSandbox:
    sandbox_call(
        moco_sandbox, "POST", "/_sandbox/seed", {"generate": {"contacts": N_CONTACTS, "seed": 5}}
    )
    return moco_sandbox


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exponential waits of milliseconds and three attempts, so failing cases end quickly."""
    monkeypatch.setattr(MocoStream, "backoff_base_seconds", 0.01)
    monkeypatch.setattr(MocoStream, "backoff_attempts", 3)


def test_paging_returns_every_record_exactly_once(seeded: RunningSandbox) -> None:
    run = run_tap(tap_config(seeded, page_size=7))

    assert run.error is None
    expected = expected_ids(sandbox_state(seeded))
    for stream in STREAMS:
        ids = run.ids(stream)
        assert duplicates(ids) == [], stream
        assert set(ids) == expected[stream], stream
    log = request_log(seeded)
    contact_pages = [e["query"] for e in log if e["path"] == "/api/v1/contacts/people"]
    assert [q["page"] for q in contact_pages] == [
        str(page) for page in range(1, math.ceil(N_CONTACTS / 7) + 1)
    ]
    assert {q["per_page"] for q in contact_pages} == {"7"}
    assert all(
        e["query"]["include_archived"] == "true" for e in log if e["path"] == "/api/v1/companies"
    )
    assert all(
        e["query"]["commentable_type"] == "Contact" for e in log if e["path"] == "/api/v1/comments"
    )
    assert all(e["status"] == 200 for e in log)


def test_notes_carry_plain_text_next_to_the_html(seeded: RunningSandbox) -> None:
    run = run_tap(tap_config(seeded))

    notes = run.records("notes")
    assert notes
    assert all(note["commentable_type"] == "Contact" for note in notes)
    html_note = next(note for note in notes if "<" in note["text"])
    assert "<" not in html_note["text_plain"]
    assert all(isinstance(note["text_plain"], str) for note in notes)
    assert {task["todoable_type"] for task in run.records("tasks")} == {"Contact"}


def test_second_run_emits_only_what_changed(seeded: RunningSandbox) -> None:
    config = tap_config(seeded, page_size=7)
    first = run_tap(config)
    assert first.error is None
    stored = sandbox_state(seeded)
    contact = stored["contacts"][10]
    company = stored["companies"][2]
    note = first.records("notes")[0]
    task = first.records("tasks")[0]

    sandbox_call(
        seeded,
        "PUT",
        f"/contacts/people/{contact['id']}",
        {"job_position": "Head of Growth"},
        api=True,
    )
    created = sandbox_call(
        seeded,
        "POST",
        "/contacts/people",
        {"lastname": "Neumann", "firstname": "Nora", "gender": "F"},
        api=True,
    )
    sandbox_call(seeded, "PUT", f"/companies/{company['id']}", {"info": "Neuer Vertrag"}, api=True)
    sandbox_call(
        seeded, "PUT", f"/comments/{note['id']}", {"text": "<div>bearbeitet</div>"}, api=True
    )
    sandbox_call(seeded, "PUT", f"/_sandbox/todos/{task['id']}", {"completed": True})
    sandbox_call(seeded, "DELETE", "/_sandbox/requests")

    second = run_tap(config, state=first.state)

    assert second.error is None
    assert sorted(second.ids("contacts")) == sorted([contact["id"], created["id"]])
    assert second.ids("companies") == [company["id"]]
    assert second.ids("notes") == [note["id"]]
    assert second.records("notes")[0]["text_plain"] == "bearbeitet"
    assert second.ids("tasks") == [task["id"]]
    assert second.records("tasks")[0]["completed"] is True
    # The server-side filter was used with the overlap window; to-dos were read in full.
    contact_queries = [
        e["query"] for e in request_log(seeded) if e["path"] == "/api/v1/contacts/people"
    ]
    assert {q["updated_after"] for q in contact_queries} == {
        window_start(first.bookmark("contacts"))
    }
    assert all(
        "updated_after" not in e["query"]
        for e in request_log(seeded)
        if e["path"] == "/api/v1/todos"
    )

    third = run_tap(config, state=second.state)
    assert third.error is None
    assert {stream: third.ids(stream) for stream in STREAMS} == {s: [] for s in STREAMS}


def _contact(record_id: int, updated_at: str, lastname: str) -> dict[str, Any]:
    contact = fresh(CONTACT_DEFAULTS)
    contact.update(
        id=record_id,
        lastname=lastname,
        gender="F",
        created_at="2025-01-01T00:00:00Z",
        updated_at=updated_at,
    )
    return contact


def test_records_in_the_overlap_window_are_emitted_once(moco_sandbox: RunningSandbox) -> None:
    """A version seen before is skipped; one not seen before is emitted, even at the bookmark."""

    def seed(*contacts: dict[str, Any]) -> None:
        sandbox_call(moco_sandbox, "POST", "/_sandbox/seed", {"contacts": list(contacts)})

    seed(
        _contact(1001, "2025-06-01T12:00:00Z", "Albers"),
        _contact(1002, "2025-06-01T11:59:50Z", "Brandt"),
    )
    config = tap_config(moco_sandbox)
    first = run_tap(config)
    assert sorted(first.ids("contacts")) == [1001, 1002]
    assert first.bookmark("contacts") == "2025-06-01T12:00:00Z"

    # Written after the first run read its page, with timestamps at or before its bookmark:
    # the same second as the bookmark, and a minute earlier (on a page already read).
    seed(
        _contact(1003, "2025-06-01T12:00:00Z", "Claasen"),
        _contact(1004, "2025-06-01T11:59:00Z", "Dietz"),
    )
    second = run_tap(config, state=first.state)

    assert sorted(second.ids("contacts")) == [1003, 1004]
    third = run_tap(config, state=second.state)
    assert third.ids("contacts") == []


@pytest.mark.usefixtures("fast_retries")
def test_failure_mid_stream_does_not_advance_the_bookmark(
    seeded: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tap_config(seeded, page_size=7)
    first = run_tap(config)
    assert first.error is None
    monkeypatch.setattr(MocoStream, "STATE_MSG_FREQUENCY", 5)  # STATE messages mid-stream too
    changed = [c["id"] for c in sandbox_state(seeded)["contacts"][::3]]  # 20 contacts, 3 pages
    for contact_id in changed:
        sandbox_call(
            seeded, "PUT", f"/contacts/people/{contact_id}", {"info": "geändert"}, api=True
        )
    sandbox_call(
        seeded,
        "POST",
        "/_sandbox/faults",
        {
            "faults": [
                {
                    "kind": "status",
                    "status": 500,
                    "times": -1,
                    "after": 2,
                    "path": "^/api/v1/contacts/people$",
                }
            ]
        },
    )

    failed = run_tap(config, state=first.state)

    assert failed.error is not None
    assert "500" in str(failed.error)
    assert 0 < len(failed.ids("contacts")) < len(changed)  # two pages were read and emitted
    # Every state written, mid-stream ones included, still starts contacts where the first run
    # ended: progress is kept apart in progress_markers, which a new run discards.
    states = [m["value"]["bookmarks"]["contacts"] for m in failed.messages if m["type"] == "STATE"]
    assert any("progress_markers" in state for state in states)
    assert {state["replication_key_value"] for state in states} == {first.bookmark("contacts")}
    assert failed.bookmark("contacts") == first.bookmark("contacts")
    assert failed.state["bookmarks"]["contacts"].get("emitted_in_overlap") == first.state[
        "bookmarks"
    ]["contacts"].get("emitted_in_overlap")
    assert failed.bookmark("companies") == first.bookmark("companies")

    sandbox_call(seeded, "DELETE", "/_sandbox/faults")
    resumed = run_tap(config, state=failed.state)

    assert resumed.error is None
    assert sorted(resumed.ids("contacts")) == sorted(changed)


@pytest.mark.usefixtures("fast_retries")
def test_failure_on_a_first_run_leaves_no_bookmark(seeded: RunningSandbox) -> None:
    config = tap_config(seeded, page_size=7)
    sandbox_call(
        seeded,
        "POST",
        "/_sandbox/faults",
        {
            "faults": [
                {
                    "kind": "status",
                    "status": 503,
                    "times": -1,
                    "after": 2,
                    "path": "^/api/v1/contacts/people$",
                }
            ]
        },
    )

    failed = run_tap(config)

    assert failed.error is not None
    assert failed.bookmark("contacts") is None
    assert failed.bookmark("companies") is not None  # finished before contacts started
    sandbox_call(seeded, "DELETE", "/_sandbox/faults")
    resumed = run_tap(config, state=failed.state)
    assert set(resumed.ids("contacts")) == expected_ids(sandbox_state(seeded))["contacts"]
    assert duplicates(resumed.ids("contacts")) == []
    assert resumed.ids("companies") == []


def test_a_list_that_changes_while_paged_keeps_the_bookmark(seeded: RunningSandbox) -> None:
    """A contact deleted mid-read shifts a changed contact onto a page already read.

    MOCO pages by offset in name order, so that contact is not in this run's answers; because
    X-Total changed between pages the bookmark must stay, and the next run must emit it.
    """
    config = tap_config(seeded, page_size=7)
    first = run_tap(config)
    # 15 contacts changed after the first run, hours apart (more than the overlap window).
    changed = sandbox_state(seeded)["contacts"][::4]
    for hour, contact in enumerate(changed, start=1):
        contact["updated_at"] = f"2026-01-02T{hour:02d}:00:00Z"
    sandbox_call(seeded, "POST", "/_sandbox/seed", {"contacts": changed})
    since = window_start(first.bookmark("contacts"))
    order = [
        c["id"]
        for c in sandbox_call(
            seeded, "GET", f"/contacts/people?per_page=100&updated_after={since}", api=True
        )
    ]
    deleted, shifted = order[0], order[7]  # first on page 1; first on page 2
    for contact in changed:
        if contact["id"] == shifted:  # the oldest change: far behind the newest one
            contact["updated_at"] = "2026-01-01T00:00:00Z"
            sandbox_call(seeded, "POST", "/_sandbox/seed", {"contacts": [contact]})
    sandbox_call(seeded, "DELETE", "/_sandbox/requests")

    def second_contacts_page(request: Request) -> bool:
        return request.path == "/api/v1/contacts/people" and request.arg("page") == "2"

    # The deletion lands between the tap's pages 1 and 2: the sandbox does it when page 2 is
    # asked for, before answering it, so no race with the tap decides what page 2 holds.
    delete_between_pages = Hook(
        seeded,
        second_contacts_page,
        lambda _request: sandbox_call(seeded, "DELETE", f"/contacts/people/{deleted}", api=True),
        when="before",
    )
    second = run_tap(config, state=first.state)
    delete_between_pages.uninstall()

    assert delete_between_pages.done.is_set()
    assert second.error is None
    assert shifted not in second.ids("contacts")
    assert duplicates(second.ids("contacts")) == []
    assert second.bookmark("contacts") == first.bookmark("contacts")
    third = run_tap(config, state=second.state)
    assert third.ids("contacts") == [shifted]
    assert sorted(second.ids("contacts") + third.ids("contacts")) == sorted(
        c["id"] for c in changed
    )
