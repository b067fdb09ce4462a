"""A contact's tasks, notes and appointments over real HTTP: the location task search and its
scope, the per-contact shapes, sandbox appointment writes, seeding and state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox.contacts_data import USERS
from tests.sandbox.clock import FakeClock
from tests.sandbox.test_contacts_sandbox import LOCATION, Api, configure, seed, state

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import RunningSandbox

TASKS = f"/locations/{LOCATION}/tasks/search"
ROW_FIELDS = {
    "_id",
    "title",
    "completed",
    "contactId",
    "dueDate",
    "dateAdded",
    "dateUpdated",
    "updatedAt",
    "deleted",
    "locationId",
    "status",
    "statusGroup",
    "contactDetails",
    "assignedToUserDetails",
    "searchAfter",
}
USER = USERS[1]["id"]


@pytest.fixture
def api(contacts_sandbox: RunningSandbox) -> Api:
    return Api(contacts_sandbox)


def task_search(api: Api, **body: Any) -> list[dict[str, Any]]:
    answer = api("POST", TASKS, json=body)
    assert answer.status_code == 201, answer.text
    assert set(answer.json()) == {"tasks"}  # no total
    return answer.json()["tasks"]


def seed_tasks(sandbox: RunningSandbox) -> None:
    seed(
        sandbox,
        contacts=[
            {"id": "p" * 20, "firstName": "Jürgen", "lastName": "Müßig", "businessId": "biz1"},
            {"id": "q" * 20, "email": "q@example.com"},
        ],
        tasks=[
            {
                "id": f"task{n:016d}",
                "contactId": ("p" if n % 2 else "q") * 20,
                "title": f"Angebot {n} prüfen" if n % 3 else f"Rückruf {n}",
                "body": "Preise & Rabatt" if n == 4 else None,
                "assignedTo": USER if n % 4 == 0 else None,
                "dueDate": f"2026-0{1 + n % 9}-0{1 + n % 7}T10:00:00.000Z" if n != 5 else None,
                "completed": n % 5 == 0,
                "dateAdded": "2025-01-01T00:00:00.000Z",
                "dateUpdated": f"2025-02-{10 + n}T00:00:00.000Z",
            }
            for n in range(12)
        ],
    )


# --- location task search ----------------------------------------------------------------------
def test_task_search_rows(contacts_sandbox: RunningSandbox, api: Api) -> None:
    seed_tasks(contacts_sandbox)
    rows = task_search(api, limit=500)
    assert len(rows) == 12
    row = next(r for r in rows if r["_id"] == "task0000000000000004")
    assert set(row) == ROW_FIELDS | {"body", "assignedTo"} and "id" not in row
    assert row["contactDetails"] == {"_id": "q" * 20, "firstName": None, "lastName": None}
    assert row["assignedToUserDetails"] == {
        "id": USER,
        "firstName": USERS[1]["firstName"],
        "lastName": USERS[1]["lastName"],
        "profilePhoto": USERS[1]["profilePhoto"],
    }
    assert (row["status"], row["statusGroup"], row["deleted"]) == ("to_do", "to_do", False)
    assert row["dateUpdated"] == row["updatedAt"] == "2025-02-14T00:00:00.000Z"
    done = next(r for r in rows if r["_id"] == "task0000000000000005")
    assert done["status"] == done["statusGroup"] == "completed" and done["dueDate"] is None
    assert done["assignedToUserDetails"] is None
    assert done["contactDetails"]["firstName"] == "Jürgen"
    # due date ascending, no due date last, ties by id; the cursor is [due ms, id]
    dues = [r["dueDate"] for r in rows]
    assert dues[-1] is None and dues[:-1] == sorted(dues[:-1])
    assert done["searchAfter"] == [None, done["_id"]]
    assert rows[0]["searchAfter"][1] == rows[0]["_id"]


def test_task_search_pages_by_search_after_and_skip(
    contacts_sandbox: RunningSandbox, api: Api
) -> None:
    seed_tasks(contacts_sandbox)
    everything = [r["_id"] for r in task_search(api, limit=500)]
    walked: list[str] = []
    after: list[Any] | None = None
    while True:
        page = task_search(api, limit=5, **({"searchAfter": after} if after else {}))
        walked += [r["_id"] for r in page]
        if len(page) < 5:
            break
        after = page[-1]["searchAfter"]
    assert walked == everything
    assert [r["_id"] for r in task_search(api, limit=3, skip=4)] == everything[4:7]
    assert len(task_search(api)) == 12  # default limit 25
    seed(
        contacts_sandbox,
        tasks=[
            {"contactId": "q" * 20, "title": f"t{n}", "dueDate": "2027-01-01T00:00:00Z"}
            for n in range(20)
        ],
    )
    assert len(task_search(api)) == 25


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"contactId": ["p" * 20]}, {1, 3, 5, 7, 9, 11}),
        ({"completed": True}, {0, 5, 10}),
        ({"completed": False, "contactId": ["p" * 20]}, {1, 3, 7, 9, 11}),
        ({"assignedTo": [USER]}, {0, 4, 8}),
        ({"query": "RÜCKRUF"}, {0, 3, 6, 9}),
        ({"query": "rabatt"}, {4}),
        ({"businessId": "biz1"}, {1, 3, 5, 7, 9, 11}),
    ],
)
def test_task_search_filters(
    contacts_sandbox: RunningSandbox, api: Api, body: dict[str, Any], expected: set[int]
) -> None:
    seed_tasks(contacts_sandbox)
    got = {int(r["_id"][4:]) for r in task_search(api, limit=500, **body)}
    assert got == expected


def test_task_search_refuses_bad_bodies_and_other_locations(
    contacts_sandbox: RunningSandbox, api: Api
) -> None:
    seed_tasks(contacts_sandbox)
    for body, message in (
        ({"limit": 501}, "limit must not be greater than 500"),
        ({"limit": 0}, "limit must not be less than 1"),
        ({"sortKey": "dueDate"}, "property sortKey should not exist"),
        ({"contactId": "p" * 20}, "contactId must be an array"),
        ({"searchAfter": ["x"]}, "searchAfter must be the searchAfter of a task"),
    ):
        answer = api("POST", TASKS, json=body)
        assert answer.status_code == 422, body
        assert message in " ".join(answer.json()["message"]), answer.text
    other = api("POST", "/locations/elsewhere/tasks/search", json={})
    assert other.status_code == 403
    # the Version header "is irrelevant here" (reverse-and-realtime.md §3.1)
    unversioned = requests.post(
        contacts_sandbox.url + TASKS,
        json={"limit": 1},
        headers={"Authorization": "Bearer sandbox-token"},
        timeout=5,
    )
    assert unversioned.status_code == 201


def test_task_search_needs_the_tasks_scope(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    sandbox = contacts_sandbox_factory(
        rate_limit=100_000, token_scopes=["contacts.readonly", "contacts.write"]
    )
    api = Api(sandbox)
    refused = api("POST", TASKS, json={})
    assert refused.status_code == 401
    assert refused.json()["message"] == "The token is not authorized for this scope."
    cid = api.create(email="scope@example.com")["id"]
    assert api("GET", f"/contacts/{cid}/tasks").status_code == 200  # per contact: still fine
    granted = "contacts.readonly contacts.write locations/tasks.readonly"
    assert configure(sandbox, token_scopes=granted).status_code == 200
    assert api("POST", TASKS, json={}).status_code == 201
    assert configure(sandbox, token_scopes=["contacts.readonly"]).status_code == 200
    assert api("POST", TASKS, json={}).status_code == 401
    assert configure(sandbox, token_scopes=7).status_code == 422


@pytest.mark.parametrize("scope", ["contacts.readonly contacts.write", None])
def test_oauth_tokens_get_the_task_search_only_with_its_scope(
    contacts_sandbox: RunningSandbox, scope: str | None
) -> None:
    asked = scope or "contacts.readonly contacts.write locations/tasks.readonly"
    consent = requests.get(
        f"{contacts_sandbox.url}/oauth/chooselocation",
        params={
            "response_type": "code",
            "client_id": "sandbox-client-id",
            "redirect_uri": "http://127.0.0.1:9/cb",
            "scope": asked,
        },
        allow_redirects=False,
        timeout=5,
    )
    code = parse_qs(urlsplit(consent.headers["Location"]).query)["code"][0]
    tokens = requests.post(
        f"{contacts_sandbox.url}/oauth/token",
        data={
            "client_id": "sandbox-client-id",
            "client_secret": "sandbox-client-secret",
            "grant_type": "authorization_code",
            "code": code,
        },
        timeout=5,
    ).json()
    answer = Api(contacts_sandbox, token=tokens["access_token"])("POST", TASKS, json={})
    assert answer.status_code == (401 if scope else 201)


def test_task_writes_reach_the_task_search_after_the_lag(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clock = FakeClock()
    sandbox = contacts_sandbox_factory(rate_limit=100_000, clock=clock, search_lag=3)
    api = Api(sandbox)
    cid = api.create(email="tasks@example.com")["id"]
    created = api(
        "POST",
        f"/contacts/{cid}/tasks",
        json={"title": "Call", "dueDate": "2030-01-01T00:00:00Z", "completed": False},
    ).json()["task"]
    assert set(created) == {"id", "title", "dueDate", "completed", "contactId"}  # no dates here
    listed = api("GET", f"/contacts/{cid}/tasks").json()["tasks"]
    assert listed == [created]
    assert task_search(api) == []
    clock.advance(3)
    (row,) = task_search(api)
    assert row["_id"] == created["id"] and row["dateAdded"] == row["dateUpdated"]
    clock.advance(10)
    api("PUT", f"/contacts/{cid}/tasks/{created['id']}/completed", json={"completed": True})
    assert api("GET", f"/contacts/{cid}/tasks").json()["tasks"][0]["completed"] is True
    assert task_search(api)[0]["completed"] is False  # the index still shows the old version
    clock.advance(3)
    (done,) = task_search(api)
    assert done["completed"] is True and done["dateUpdated"] > row["dateUpdated"]
    assert done["dateUpdated"] == state(sandbox)["tasks"][0]["dateUpdated"]
    api("DELETE", f"/contacts/{cid}")
    assert len(task_search(api)) == 1  # lingers with its contact
    clock.advance(3)
    assert task_search(api) == []


# --- appointments --------------------------------------------------------------------------------
def test_sandbox_appointment_writes(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clock = FakeClock()
    sandbox = contacts_sandbox_factory(rate_limit=100_000, clock=clock)
    api = Api(sandbox)
    cid = api.create(email="events@example.com")["id"]
    url = f"{sandbox.url}/_sandbox/appointments"
    created = requests.post(
        url,
        json={
            "contactId": cid,
            "calendarId": "cal1",
            "title": "Beratung",
            "startTime": "2027-03-01T09:30:00Z",
            "endTime": "2027-03-01 10:00:00",
            "appointmentStatus": "new",
            "status": "booked",
        },
        timeout=5,
    )
    assert created.status_code == 201, created.text
    event = created.json()["appointment"]
    assert event["startTime"] == "2027-03-01 09:30:00" and event["endTime"] == "2027-03-01 10:00:00"
    assert event["locationId"] == LOCATION and event["users"] == event["assignedResources"] == []
    assert event["dateAdded"] == event["dateUpdated"] == "2023-11-14T22:13:20.000Z"
    listed = api("GET", f"/contacts/{cid}/appointments").json()
    assert listed == {"events": [event]}

    clock.advance(60)
    moved = requests.put(
        f"{url}/{event['id']}",
        json={"startTime": "2027-03-02 09:30:00", "appointmentStatus": "cancelled"},
        timeout=5,
    )
    assert moved.status_code == 200
    changed = api("GET", f"/contacts/{cid}/appointments").json()["events"][0]
    assert changed["appointmentStatus"] == "cancelled"
    assert changed["startTime"] == "2027-03-02 09:30:00"
    assert changed["dateUpdated"] == "2023-11-14T22:14:20.000Z" > changed["dateAdded"]

    for body in (
        {"appointmentStatus": "booked"},
        {"colour": "red"},
        {"startTime": "soon"},
        {"contactId": "x"},
    ):
        assert requests.put(f"{url}/{event['id']}", json=body, timeout=5).status_code == 422
    unknown_contact = requests.post(url, json={"contactId": "nobody", "title": "x"}, timeout=5)
    assert unknown_contact.status_code == 422
    assert requests.put(f"{url}/{'z' * 20}", json={}, timeout=5).status_code == 404
    deleted = requests.delete(f"{url}/{event['id']}", timeout=5)
    assert deleted.json() == {"succeded": True}
    assert api("GET", f"/contacts/{cid}/appointments").json() == {"events": []}


def test_notes_per_contact_shape(contacts_sandbox: RunningSandbox, api: Api) -> None:
    seed(
        contacts_sandbox,
        contacts=[{"id": "n" * 20, "email": "notes@example.com"}],
        notes=[
            {
                "contactId": "n" * 20,
                "body": "<p>Grüße</p><script>alert(1)</script>",
                "userId": USER,
                "dateAdded": "2024-05-01T08:00:00Z",
            }
        ],
    )
    (note,) = api("GET", f"/contacts/{'n' * 20}/notes").json()["notes"]
    assert note == {
        "id": note["id"],
        "body": "<p>Grüße</p><script>alert(1)</script>",
        "userId": USER,
        "dateAdded": "2024-05-01T08:00:00.000Z",
        "contactId": "n" * 20,
    }


# --- seed and state ------------------------------------------------------------------------------
def test_seed_is_checked_before_anything_is_stored(contacts_sandbox: RunningSandbox) -> None:
    bad = requests.post(
        f"{contacts_sandbox.url}/_sandbox/seed",
        json={
            "contacts": [{"id": "s" * 20, "email": "s@example.com"}],
            "tasks": [{"contactId": "s" * 20, "title": "x", "status": "open"}],
        },
        timeout=5,
    )
    assert bad.status_code == 422 and "status should not exist" in bad.text
    assert state(contacts_sandbox)["contacts"] == []
    for kind, item in (
        ("notes", {"contactId": "s" * 20, "body": "x", "color": "#fff", "dateUpdated": "x"}),
        ("appointments", {"contactId": "s" * 20, "appointmentStatus": "maybe"}),
        ("tasks", {"contactId": "s" * 20, "dueDate": "tomorrow"}),
    ):
        answer = requests.post(
            f"{contacts_sandbox.url}/_sandbox/seed",
            json={"contacts": [{"id": "s" * 20}], kind: [item]},
            timeout=5,
        )
        assert answer.status_code == 422, (kind, answer.text)
    assert state(contacts_sandbox)["contacts"] == []


def test_seed_state_round_trip_and_replacing_a_contact_keeps_its_children(
    contacts_sandbox: RunningSandbox, api: Api
) -> None:
    ids = seed(
        contacts_sandbox,
        contacts=[{"id": "r" * 20, "firstName": "Ré", "dateUpdated": "2024-01-02T00:00:00Z"}],
        tasks=[{"contactId": "r" * 20, "title": "T", "dueDate": "2024-01-01T00:00:00Z"}],
        notes=[{"contactId": "r" * 20, "body": "N"}],
        appointments=[{"contactId": "r" * 20, "title": "A", "startTime": "2024-02-01 10:00:00"}],
    )
    assert set(ids) == {"contacts", "tasks", "notes", "appointments"}
    first = state(contacts_sandbox)
    task = first["tasks"][0]
    assert task["dateUpdated"] == task["dateAdded"] and task["completed"] is False
    assert first["contacts"][0]["dateUpdated"] == "2024-01-02T00:00:00.000Z"
    seed(contacts_sandbox, contacts=[{"id": "r" * 20, "firstName": "René"}])
    again = state(contacts_sandbox)
    assert again["contacts"][0]["firstName"] == "René"
    assert [len(again[k]) for k in ("tasks", "notes", "appointments")] == [1, 1, 1]
    # state is a seed document: loading it into an empty sandbox gives the same state
    requests.post(f"{contacts_sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    seed(contacts_sandbox, **again)
    assert state(contacts_sandbox) == again
    found = api("POST", "/contacts/search", json={"locationId": LOCATION, "pageLimit": 5})
    assert found.json()["total"] == 1


def test_seed_generate(contacts_sandbox: RunningSandbox, api: Api) -> None:
    answer = seed(contacts_sandbox, generate={"contacts": 30, "seed": 4, "tasks": 10, "notes": 0})
    assert answer["generated"] == {"contacts": 30, "tasks": 10, "notes": 0, "appointments": 16}
    data = state(contacts_sandbox)
    assert [len(data[k]) for k in ("contacts", "tasks", "notes", "appointments")] == [30, 10, 0, 16]
    listed = api("GET", "/contacts/", params={"locationId": LOCATION, "limit": 100}).json()
    assert listed["meta"]["total"] == 30
    searched = api("POST", "/contacts/search", json={"locationId": LOCATION, "pageLimit": 5})
    assert searched.json()["total"] == 30
    assert len(task_search(api, limit=500)) == 10
    for options in (
        {"contacts": -1},
        {"seed": 1},
        {"contacts": 5, "colour": 1},
        {"contacts": "5"},
        {"contacts": 5, "locationId": "elsewhere"},
    ):
        bad = requests.post(
            f"{contacts_sandbox.url}/_sandbox/seed", json={"generate": options}, timeout=5
        )
        assert bad.status_code == 422, options
