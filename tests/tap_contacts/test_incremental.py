"""tap-contacts' contacts stream against the Contacts sandbox over HTTP: paging, bookmarks,
the lookback window for the search index's lag, and contacts changed while the tap reads."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from tap_contacts.streams import EMITTED_STATE_KEY
from tests.hooks import Hook
from tests.tap_contacts.support import (
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

CONTACTS_ONLY = {"contacts"}


def searches(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    return [e["body"] for e in request_log(sandbox) if e["path"] == "/contacts/search"]


def test_first_read_pages_with_search_after_sorted_by_date_updated(sandbox: RunningSandbox):
    seed(sandbox, contacts=[contact(i) for i in range(250)])
    config = tap_config(sandbox, page_size=100)

    run = run_tap(config, catalog=catalog_selecting(config, CONTACTS_ONLY))

    assert run.error is None
    assert run.ids("contacts") == [contact_id(i) for i in range(250)]
    bodies = searches(sandbox)
    assert len(bodies) == 3
    for body in bodies:
        assert "page" not in body
        assert body["pageLimit"] == 100
        assert body["sort"] == [{"field": "dateUpdated", "direction": "asc"}]
        assert "filters" not in body  # no bookmark, no start_date: everything
    assert "searchAfter" not in bodies[0]
    assert bodies[1]["searchAfter"][-1] == contact_id(99)
    assert bodies[2]["searchAfter"][-1] == contact_id(199)
    record = run.records("contacts")[7]
    assert record["dateUpdated"] == stamp(7)
    assert "searchAfter" not in record
    assert record["firstName"] == "First7"
    assert run.bookmark() == stamp(249)


def test_more_than_ten_thousand_contacts_are_read_by_search_after(sandbox: RunningSandbox):
    call(sandbox, "POST", "/_sandbox/config", {"log_bodies": True})
    seed(sandbox, generate={"contacts": 10_250, "seed": 3, "tasks": 0, "notes": 0})
    config = tap_config(sandbox, page_size=500)

    run = run_tap(config, catalog=catalog_selecting(config, CONTACTS_ONLY))

    assert run.error is None
    ids = run.ids("contacts")
    assert len(ids) == 10_250
    assert len(set(ids)) == 10_250
    bodies = searches(sandbox)
    assert len(bodies) == 21  # 20 full pages of 500 and a short one
    assert all("page" not in body for body in bodies)
    assert all("searchAfter" in body for body in bodies[1:])
    updated = [r["dateUpdated"] for r in run.records("contacts")]
    assert updated == sorted(updated)


def test_unchanged_location_costs_one_search_and_no_sub_resource_read(sandbox: RunningSandbox):
    # Contacts ten seconds apart: only the last 30 are within the 300 s lookback.
    seed(
        sandbox,
        contacts=[contact(i, dateUpdated=stamp(10 * i)) for i in range(400)],
        tasks=[
            {"id": f"t{i:019d}", "contactId": contact_id(i), "title": "Call", "completed": False}
            for i in range(0, 400, 2)
        ],
        notes=[{"id": f"n{i:019d}", "contactId": contact_id(i), "body": "Hi"} for i in range(400)],
    )
    config = tap_config(sandbox, page_size=100)
    first = run_tap(config)
    assert first.error is None
    assert len(first.records("notes")) == 400

    clear_log(sandbox)
    second = run_tap(config, state=first.state)

    assert second.error is None
    assert [m for m in second.messages if m["type"] == "RECORD"] == []
    assert routes(request_log(sandbox)) == {"POST /contacts/search": 1}
    assert second.bookmark() == first.bookmark() == stamp(3990)
    assert searches(sandbox)[0]["filters"] == [
        {"field": "dateUpdated", "operator": "range", "value": {"gte": stamp(3990 - 300)}}
    ]


def test_a_changed_contact_is_emitted_once_per_version(sandbox: RunningSandbox):
    seed(sandbox, contacts=[contact(i) for i in range(20)])
    config = tap_config(sandbox)
    first = run_tap(config, catalog=catalog_selecting(config, CONTACTS_ONLY))
    api(sandbox, "PUT", f"/contacts/{contact_id(3)}", {"firstName": "Changed"})

    second = run_tap(config, state=first.state, catalog=catalog_selecting(config, CONTACTS_ONLY))
    third = run_tap(config, state=second.state, catalog=catalog_selecting(config, CONTACTS_ONLY))

    assert second.error is None
    assert second.ids("contacts") == [contact_id(3)]
    assert second.records("contacts")[0]["firstName"] == "Changed"
    assert third.ids("contacts") == []
    assert contact_id(3) in third.state["bookmarks"]["contacts"][EMITTED_STATE_KEY]


def test_contact_changed_during_the_read_is_emitted_and_the_bookmark_stays_behind(
    sandbox: RunningSandbox,
):
    seed(sandbox, contacts=[contact(i) for i in range(30)])
    config = tap_config(sandbox, page_size=10)

    def change_first_contact(_request: Request) -> None:
        # Already read on page 1; the change moves it behind the cursor.
        api(sandbox, "PUT", f"/contacts/{contact_id(0)}", {"lastName": "Moved"})

    def second_page(request: Request) -> bool:
        return request.path == "/contacts/search" and b"searchAfter" in request.body

    hook = Hook(sandbox, second_page, change_first_contact, when="before")
    try:
        started = time.time()
        run = run_tap(config, catalog=catalog_selecting(config, CONTACTS_ONLY))
    finally:
        hook.uninstall()

    assert run.error is None
    assert hook.done.is_set()
    ids = run.ids("contacts")
    assert ids.count(contact_id(0)) == 2  # the version read first, and the changed one
    assert run.records("contacts")[-1]["lastName"] == "Moved"
    # The changed version is newer than the read's start: the bookmark stops at the start,
    # so that a contact the index showed late in that span is read again next time.
    bookmark = run.bookmark()
    assert bookmark is not None
    assert stamp(29) < bookmark < run.records("contacts")[-1]["dateUpdated"]
    assert bookmark >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started - 1))

    again = run_tap(config, state=run.state, catalog=catalog_selecting(config, CONTACTS_ONLY))
    assert again.error is None
    assert again.ids("contacts") == []  # the moved version was emitted already


def _lagging(
    factory: Callable[..., RunningSandbox],
) -> tuple[RunningSandbox, list[float]]:
    """A sandbox whose clock a test can move forward (the index lag is on that clock)."""
    offset = [0.0]
    sandbox = factory(rate_limit=100_000, clock=lambda: time.time() + offset[0])
    return sandbox, offset


def _index_lag_case(
    factory: Callable[..., RunningSandbox], lookback: int
) -> tuple[list[str], list[str]]:
    """A write the index shows late, behind a later write it shows at once.

    Returns the contacts emitted by the run during the lag and by the run after it.
    """
    sandbox, offset = _lagging(factory)
    now = time.time()
    seed(sandbox, contacts=[contact(i, dateUpdated=stamp(i)) for i in range(5)])
    config = tap_config(sandbox, lookback_seconds=lookback)
    catalog = catalog_selecting(config, CONTACTS_ONLY)
    first = run_tap(config, catalog=catalog)
    assert first.error is None
    call(sandbox, "POST", "/_sandbox/config", {"search_lag": 60})
    api(sandbox, "PUT", f"/contacts/{contact_id(1)}", {"firstName": "Late"})
    call(sandbox, "POST", "/_sandbox/config", {"search_lag": 0})
    api(sandbox, "PUT", f"/contacts/{contact_id(2)}", {"firstName": "Early"})
    during = run_tap(config, state=first.state, catalog=catalog)
    assert during.error is None
    assert during.bookmark() is not None
    assert during.bookmark() >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 1))
    offset[0] = 61.0  # the late write shows now
    after = run_tap(config, state=during.state, catalog=catalog)
    assert after.error is None
    return during.ids("contacts"), after.ids("contacts")


def test_a_change_the_index_shows_late_is_read_by_the_next_run(contacts_sandbox_factory):
    during, after = _index_lag_case(contacts_sandbox_factory, lookback=300)

    assert during == [contact_id(2)]
    assert after == [contact_id(1)]


def test_without_a_lookback_the_late_change_would_be_lost(contacts_sandbox_factory):
    # Why lookback_seconds exists: the bookmark passed the late write before the index showed it.
    during, after = _index_lag_case(contacts_sandbox_factory, lookback=0)

    assert during == [contact_id(2)]
    assert after == []


def test_start_date_limits_the_read(sandbox: RunningSandbox):
    seed(sandbox, contacts=[contact(i) for i in range(10)])
    config = tap_config(sandbox, start_date=stamp(6))

    run = run_tap(config, catalog=catalog_selecting(config, CONTACTS_ONLY))

    assert run.error is None
    assert run.ids("contacts") == [contact_id(i) for i in range(6, 10)]
    assert searches(sandbox)[0]["filters"][0]["value"] == {"gte": stamp(6)}


def test_versions_remembered_for_the_overlap_are_bounded(sandbox: RunningSandbox, monkeypatch):
    from tap_contacts.streams import ContactsStream

    monkeypatch.setattr(ContactsStream, "max_remembered_versions", 5)
    seed(sandbox, contacts=[contact(i) for i in range(12)])
    config = tap_config(sandbox)
    first = run_tap(config, catalog=catalog_selecting(config, CONTACTS_ONLY))

    remembered = first.state["bookmarks"]["contacts"][EMITTED_STATE_KEY]
    assert sorted(remembered) == [contact_id(i) for i in range(7, 12)]
    # Versions beyond the bound are emitted once more (never lost).
    second = run_tap(config, state=first.state, catalog=catalog_selecting(config, CONTACTS_ONLY))
    assert second.ids("contacts") == [contact_id(i) for i in range(7)]


def test_a_failed_read_keeps_the_old_state(sandbox: RunningSandbox):
    seed(sandbox, contacts=[contact(i) for i in range(30)])
    config = tap_config(sandbox, page_size=10)
    first = run_tap(config, catalog=catalog_selecting(config, CONTACTS_ONLY))
    for i in range(30):
        api(sandbox, "PUT", f"/contacts/{contact_id(i)}", {"lastName": "Again"})
    call(
        sandbox,
        "POST",
        "/_sandbox/faults",
        {"faults": [{"kind": "status", "status": 400, "path": "^/contacts/search$", "after": 1}]},
    )

    second = run_tap(config, state=first.state, catalog=catalog_selecting(config, CONTACTS_ONLY))

    assert second.error is not None
    assert "stream 'contacts'" in str(second.error)
    assert second.bookmark() == first.bookmark()
    assert (
        second.state["bookmarks"]["contacts"][EMITTED_STATE_KEY]
        == first.state["bookmarks"]["contacts"][EMITTED_STATE_KEY]
    )


_ = threading  # the hook runs in the sandbox's handler thread
