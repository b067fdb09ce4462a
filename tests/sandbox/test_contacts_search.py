"""POST /contacts/search over real HTTP: filters, sort, paging, limits, and the indexing lag."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from sandbox.contacts_search import parse_iso_ms
from tests.sandbox.clock import FakeClock
from tests.sandbox.test_contacts_sandbox import LOCATION, REPO, VERSION, Api, configure, seed

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import RunningSandbox


def search(api: Api, **body: Any) -> requests.Response:
    return api("POST", "/contacts/search", json={"locationId": LOCATION, "pageLimit": 100, **body})


def found(api: Api, **body: Any) -> list[dict[str, Any]]:
    response = search(api, **body)
    assert response.status_code == 200, response.text
    return response.json()["contacts"]


def ids(contacts: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in contacts]


def walk(api: Api, page_limit: int, **body: Any) -> list[dict[str, Any]]:
    """Every contact of a search, page after page by searchAfter."""
    out: list[dict[str, Any]] = []
    after: list[Any] | None = None
    while True:
        cursor = {"searchAfter": after} if after is not None else {}
        answer = search(api, pageLimit=page_limit, **body, **cursor)
        assert answer.status_code == 200, answer.text
        page = answer.json()["contacts"]
        out += page
        if len(page) < page_limit:
            return out
        after = page[-1]["searchAfter"]


PEOPLE = [
    {
        "id": "a" * 20,
        "firstName": "Jürgen",
        "lastName": "Müßig",
        "email": "juergen@example.com",
        "phone": "+49 151 12345678",
        "city": "München",
        "tags": ["vip", "kunde"],
        "source": "moco",
        "dnd": True,
        "customFields": [{"id": "cfNumber", "value": 42}],
        "dateAdded": "2024-01-01T00:00:00.000Z",
        "dateUpdated": "2024-03-01T10:00:00.000Z",
    },
    {
        "id": "b" * 20,
        "firstName": "Zoë",
        "lastName": "Lefèvre",
        "city": "Paris",
        "companyName": "Café Élysée SARL",
        "tags": ["lead"],
        "source": "website",
        "customFields": [{"id": "cfNumber", "value": 7}],
        "dateAdded": "2024-01-02T00:00:00.000Z",
        "dateUpdated": "2024-03-01T10:00:00.000Z",
    },
    {
        "id": "c" * 20,
        "firstName": "Łukasz",
        "lastName": "Müßig",
        "email": "lukasz@example.pl",
        "city": "Kraków",
        "tags": [],
        "source": "moco",
        "dateAdded": "2024-01-03T00:00:00.000Z",
        "dateUpdated": "2024-02-01T00:00:00.000Z",
    },
    {
        "id": "d" * 20,
        "lastName": "O'Brien",
        "email": "obrien@example.ie",
        "dateAdded": "2024-01-04T00:00:00.000Z",
        "dateUpdated": "2024-04-01T00:00:00.000Z",
    },
]


@pytest.fixture
def people(contacts_sandbox: RunningSandbox, api: Api) -> Api:
    seed(contacts_sandbox, contacts=PEOPLE)
    return api


@pytest.fixture
def api(contacts_sandbox: RunningSandbox) -> Api:
    return Api(contacts_sandbox)


# --- the body ----------------------------------------------------------------------------------
def test_location_id_and_page_limit_are_required(people: Api) -> None:
    no_location = people("POST", "/contacts/search", json={"pageLimit": 10})
    assert no_location.status_code == 422
    assert "locationId must be a string" in no_location.json()["message"]
    no_limit = people("POST", "/contacts/search", json={"locationId": LOCATION})
    assert no_limit.status_code == 422
    assert no_limit.json()["message"] == [
        "pageLimit must be a number conforming to the specified constraints"
    ]
    other = people("POST", "/contacts/search", json={"locationId": "elsewhere", "pageLimit": 1})
    assert other.status_code == 403


def test_page_limit_500_is_the_maximum_and_configurable(
    contacts_sandbox: RunningSandbox, people: Api
) -> None:
    assert search(people, pageLimit=500).status_code == 200
    above = search(people, pageLimit=501)
    assert above.status_code == 422
    assert above.json()["message"] == ["pageLimit must not be greater than 500"]
    assert configure(contacts_sandbox, search_page_limit_max=100).status_code == 200
    assert search(people, pageLimit=100).status_code == 200
    assert search(people, pageLimit=101).json()["message"] == [
        "pageLimit must not be greater than 100"
    ]


def test_answer_carries_total_trace_id_and_search_after(people: Api) -> None:
    answer = search(people, pageLimit=2, sort=[{"field": "dateAdded", "direction": "asc"}])
    body = answer.json()
    assert set(body) == {"contacts", "total", "traceId"} and body["total"] == 4
    first = body["contacts"][0]
    assert first["searchAfter"] == [parse_iso_ms("2024-01-01T00:00:00.000Z"), "a" * 20]
    assert first["opportunities"] == [] and first["firstName"] == "Jürgen"


# --- filters -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([{"field": "email", "operator": "eq", "value": "JUERGEN@example.com"}], "a"),
        ([{"field": "phone", "operator": "eq", "value": "+4915112345678"}], "a"),
        ([{"field": "tags", "operator": "eq", "value": "kunde"}], "a"),
        ([{"field": "city", "operator": "not_eq", "value": "münchen"}], "bcd"),
        ([{"field": "companyName", "operator": "contains", "value": "élysée"}], "b"),
        ([{"field": "lastNameLowerCase", "operator": "not_contains", "value": "müß"}], "bd"),
        ([{"field": "email", "operator": "exists"}], "acd"),
        ([{"field": "email", "operator": "not_exists"}], "b"),
        ([{"field": "tags", "operator": "not_exists"}], "cd"),
        ([{"field": "dnd", "operator": "eq", "value": True}], "a"),
        ([{"field": "address", "operator": "not_exists"}], "abcd"),
        ([{"field": "id", "operator": "eq", "value": "c" * 20}], "c"),
        ([{"field": "customFields.cfNumber", "operator": "range", "value": {"gt": 7}}], "a"),
        ([{"field": "customFields.cfNumber", "operator": "eq", "value": 7}], "b"),
        (
            [
                {
                    "field": "dateUpdated",
                    "operator": "range",
                    "value": {"gte": "2024-03-01T10:00:00.000Z", "lt": "2024-04-01T00:00:00.000Z"},
                }
            ],
            "ab",
        ),
        (
            [{"field": "dateAdded", "operator": "range", "value": {"gt": "2024-01-03T00:00:00Z"}}],
            "d",
        ),
        (
            [
                {"field": "source", "operator": "eq", "value": "moco"},
                {
                    "group": "OR",
                    "filters": [
                        {"field": "city", "operator": "eq", "value": "Kraków"},
                        {"field": "dnd", "operator": "eq", "value": True},
                    ],
                },
            ],
            "ac",
        ),
        (
            [
                {
                    "group": "AND",
                    "filters": [
                        {"field": "lastNameLowerCase", "operator": "eq", "value": "müßig"},
                        {
                            "group": "OR",
                            "filters": [
                                {"field": "tags", "operator": "eq", "value": "vip"},
                                {"field": "email", "operator": "eq", "value": "nobody@x.y"},
                            ],
                        },
                    ],
                }
            ],
            "a",
        ),
    ],
)
def test_filters(people: Api, filters: list[dict[str, Any]], expected: str) -> None:
    got = found(people, filters=filters, sort=[{"field": "dateAdded", "direction": "asc"}])
    assert ids(got) == [letter * 20 for letter in expected]


@pytest.mark.parametrize(
    ("item", "status", "message"),
    [
        ({"field": "tasks.assignedTo", "operator": "eq", "value": "x"}, 400, "Invalid field"),
        ({"field": "email", "operator": "contains", "value": "example"}, 400, "not supported"),
        ({"field": "dateUpdated", "operator": "eq", "value": "2024"}, 400, "not supported"),
        ({"field": "city", "operator": "contains", "value": "mü"}, 400, "Min. 3 characters"),
        ({"field": "city", "operator": "like", "value": "x"}, 422, "operator"),
        ({"field": "city", "operator": "eq", "value": "x" * 76}, 422, "75 characters"),
        ({"field": "city", "operator": "eq"}, 422, "needs a string"),
        (
            {"field": "dateUpdated", "operator": "range", "value": {"gte": 1704067200000}},
            422,
            "ISO-8601",
        ),
        ({"field": "dateUpdated", "operator": "range", "value": {"from": "x"}}, 422, "gte|gt"),
        ({"group": "XOR", "filters": []}, 422, "group AND|OR"),
    ],
)
def test_bad_filters_are_refused(
    people: Api, item: dict[str, Any], status: int, message: str
) -> None:
    response = search(people, filters=[item])
    assert response.status_code == status, response.text
    text = response.json()["message"]
    assert message in (text if isinstance(text, str) else " ".join(text))


def test_free_text_query(people: Api) -> None:
    assert ids(found(people, query="élysée")) == ["b" * 20]
    too_long = search(people, query="x" * 76)
    assert too_long.status_code == 422


# --- sort ----------------------------------------------------------------------------------------
def test_two_sort_entries_and_ties_by_id(people: Api) -> None:
    got = found(
        people,
        sort=[
            {"field": "lastNameLowerCase", "direction": "desc"},
            {"field": "dateUpdated", "direction": "asc"},
        ],
    )
    # descending: o'brien, müßig (then by dateUpdated: c in February, a in March), lefèvre
    assert ids(got) == ["d" * 20, "c" * 20, "a" * 20, "b" * 20]
    assert got[1]["searchAfter"] == ["müßig", parse_iso_ms("2024-02-01T00:00:00Z"), "c" * 20]
    tied = found(people, sort=[{"field": "dateUpdated", "direction": "asc"}])
    assert ids(tied) == ["c" * 20, "a" * 20, "b" * 20, "d" * 20]  # a and b tie: by id
    tied_desc = found(people, sort=[{"field": "dateUpdated", "direction": "desc"}])
    assert ids(tied_desc) == ["d" * 20, "a" * 20, "b" * 20, "c" * 20]  # the tie stays by id asc


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_range_bounds_on_the_sort_field_are_exact_to_the_millisecond(
    people: Api, direction: str
) -> None:
    def between(**bounds: str) -> list[str]:
        item = {"field": "dateUpdated", "operator": "range", "value": bounds}
        got = found(people, filters=[item], sort=[{"field": "dateUpdated", "direction": direction}])
        return sorted(ids(got))

    feb, mar = "2024-02-01T00:00:00.000Z", "2024-03-01T10:00:00.000Z"
    assert between(gt=feb, lte=mar) == ["a" * 20, "b" * 20]
    assert between(gte=feb, lt=mar) == ["c" * 20]
    assert between(gt="2024-02-01T00:00:00.001Z", lt="2024-03-01T10:00:00.001Z") == [
        "a" * 20,
        "b" * 20,
    ]
    assert between(gte="2024-03-01T10:00:00.001Z") == ["d" * 20]
    assert between(lte="2024-01-31T23:59:59.999Z") == []


def test_missing_values_sort_last_both_ways(people: Api) -> None:
    for direction in ("asc", "desc"):
        got = found(people, sort=[{"field": "email", "direction": direction}])
        assert got[-1]["id"] == "b" * 20 and got[-1]["searchAfter"] == [None, "b" * 20]
    by_name = found(people, sort=[{"field": "firstNameLowerCase", "direction": "asc"}])
    assert ids(by_name) == ["a" * 20, "b" * 20, "c" * 20, "d" * 20]  # jürgen, zoë, łukasz, -


def test_sort_limits(people: Api) -> None:
    three = [{"field": f} for f in ("dateAdded", "dateUpdated", "email")]
    assert search(people, sort=three).json()["message"] == [
        "sort must contain no more than 2 elements"
    ]
    unsortable = search(people, sort=[{"field": "city"}])
    assert unsortable.status_code == 422 and "sort.field must be one of" in str(unsortable.json())
    bad_direction = search(people, sort=[{"field": "email", "direction": "up"}])
    assert bad_direction.status_code == 422


# --- paging --------------------------------------------------------------------------------------
def test_search_after_pages_match_page_numbers(contacts_sandbox: RunningSandbox, api: Api) -> None:
    requests.post(
        f"{contacts_sandbox.url}/_sandbox/seed",
        json={"generate": {"contacts": 57, "seed": 5}},
        timeout=10,
    ).raise_for_status()
    for sort in (
        [{"field": "dateUpdated", "direction": "asc"}],
        [{"field": "dateAdded", "direction": "desc"}],
        [{"field": "lastNameLowerCase"}, {"field": "dateUpdated", "direction": "desc"}],
        [{"field": "email", "direction": "desc"}],
    ):
        by_cursor = walk(api, 7, sort=sort)
        by_page = [c for n in range(1, 10) for c in found(api, pageLimit=7, page=n, sort=sort)]
        assert ids(by_cursor) == ids(by_page)
        assert len(set(ids(by_cursor))) == 57


def test_range_on_date_updated_walks_the_changed_contacts(
    contacts_sandbox: RunningSandbox, api: Api
) -> None:
    requests.post(
        f"{contacts_sandbox.url}/_sandbox/seed",
        json={"generate": {"contacts": 300, "seed": 2}},
        timeout=10,
    ).raise_for_status()
    everyone = walk(api, 500)
    since = sorted(c["dateUpdated"] for c in everyone)[200]
    body = {
        "filters": [{"field": "dateUpdated", "operator": "range", "value": {"gte": since}}],
        "sort": [{"field": "dateUpdated", "direction": "asc"}],
    }
    changed = walk(api, 9, **body)
    expected = sorted(
        (c for c in everyone if c["dateUpdated"] >= since),
        key=lambda c: (c["dateUpdated"], c["id"]),
    )
    assert ids(changed) == ids(expected)
    assert search(api, pageLimit=9, **body).json()["total"] == len(expected)
    # newest first over a closed range: the slice of a descending view
    until = sorted(c["dateUpdated"] for c in everyone)[260]
    window = {"gt": since, "lte": until}
    newest_first = walk(
        api,
        6,
        filters=[{"field": "dateUpdated", "operator": "range", "value": window}],
        sort=[{"field": "dateUpdated", "direction": "desc"}],
    )
    assert ids(newest_first) == ids(
        sorted(
            (c for c in everyone if since < c["dateUpdated"] <= until),
            key=lambda c: (-parse_iso_ms(c["dateUpdated"]), c["id"]),  # type: ignore[operator]
        )
    )
    # the same walk with one more filter (a predicate over the slice) stays consistent
    tagged = walk(
        api, 4, **{**body, "filters": [*body["filters"], {"field": "tags", "operator": "exists"}]}
    )
    assert ids(tagged) == ids([c for c in expected if c["tags"]])


def test_page_and_search_after_rules(people: Api) -> None:
    first = found(people, pageLimit=1)
    both = search(people, pageLimit=1, page=2, searchAfter=first[0]["searchAfter"])
    assert both.status_code == 422
    assert both.json()["message"] == ["page and searchAfter cannot be used together"]
    assert search(people, pageLimit=500, page=20).status_code == 200
    too_deep = search(people, pageLimit=500, page=21)
    assert too_deep.status_code == 400 and "10000" in too_deep.json()["message"]
    for bad in ([1], ["x", "y"], [None, 5], [True, "a" * 20]):
        assert search(people, searchAfter=bad).status_code == 422, bad
    zero = search(people, pageLimit=0)
    assert zero.status_code == 422


# --- indexing lag --------------------------------------------------------------------------------
def test_writes_show_in_search_only_after_the_lag(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clock = FakeClock()
    sandbox = contacts_sandbox_factory(rate_limit=100_000, clock=clock, search_lag=5)
    api = Api(sandbox)

    def visible(**body: Any) -> list[dict[str, Any]]:
        return found(
            api, filters=[{"field": "lastNameLowerCase", "operator": "eq", "value": "lag"}], **body
        )

    created = api.create(lastName="Lag", firstName="Before", email="lag@example.com")
    assert api("GET", f"/contacts/{created['id']}").status_code == 200  # direct reads: at once
    duplicate = api(
        "GET",
        "/contacts/search/duplicate",
        params={"locationId": LOCATION, "email": "lag@example.com"},
    )
    assert duplicate.json()["contact"]["id"] == created["id"]
    assert visible() == [] and search(api).json()["total"] == 0
    clock.advance(4.999)
    assert visible() == []
    clock.advance(0.001)
    assert [c["firstName"] for c in visible()] == ["Before"]

    clock.advance(60)
    updated = api("PUT", f"/contacts/{created['id']}", json={"firstName": "After"}).json()[
        "contact"
    ]
    assert updated["dateUpdated"] > created["dateUpdated"]
    stale = visible()
    assert stale[0]["firstName"] == "Before" and stale[0]["dateUpdated"] == created["dateUpdated"]
    # the old version also still sorts and filters by its old dateUpdated
    since = {"field": "dateUpdated", "operator": "range", "value": {"gte": updated["dateUpdated"]}}
    assert found(api, filters=[since]) == []
    clock.advance(5)
    fresh = visible()
    assert fresh[0]["firstName"] == "After" and fresh[0]["dateUpdated"] == updated["dateUpdated"]
    assert ids(found(api, filters=[since])) == [created["id"]]

    assert api("DELETE", f"/contacts/{created['id']}").status_code == 200
    assert api("GET", f"/contacts/{created['id']}").status_code == 400
    assert [c["firstName"] for c in visible()] == ["After"]  # lingers in search
    clock.advance(5)
    assert visible() == []


def test_lag_is_configurable_at_run_time(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clock = FakeClock()
    sandbox = contacts_sandbox_factory(rate_limit=100_000, clock=clock)
    api = Api(sandbox)
    api.create(email="now@example.com")
    assert search(api).json()["total"] == 1  # default: no lag
    assert configure(sandbox, search_lag=2.5).status_code == 200
    api.create(email="later@example.com")
    assert search(api).json()["total"] == 1
    clock.advance(2.5)
    assert search(api).json()["total"] == 2
    assert configure(sandbox, search_lag=-1).status_code == 422
    # a seed is visible at once whatever the lag
    seed(sandbox, contacts=[{"email": "seeded@example.com"}])
    assert search(api).json()["total"] == 3


# --- dateUpdated ---------------------------------------------------------------------------------
def test_every_contact_write_bumps_date_updated(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clock = FakeClock()
    api = Api(contacts_sandbox_factory(rate_limit=100_000, clock=clock))
    contact = api.create(email="bump@example.com")
    assert contact["dateUpdated"] == contact["dateAdded"]
    writes = [
        ("PUT", f"/contacts/{contact['id']}", {"city": "Köln"}),
        ("POST", "/contacts/upsert", {"locationId": LOCATION, "email": "bump@example.com"}),
        ("POST", f"/contacts/{contact['id']}/tags", {"tags": ["neu"]}),
        ("DELETE", f"/contacts/{contact['id']}/tags", {"tags": ["neu"]}),
    ]
    seen = [contact["dateUpdated"]]
    for method, path, body in writes:
        clock.advance(1.5)
        assert api(method, path, json=body).status_code in (200, 201)
        now = api("GET", f"/contacts/{contact['id']}").json()["contact"]["dateUpdated"]
        assert now > seen[-1], (method, path)
        seen.append(now)
    assert seen[-1] == "2023-11-14T22:13:26.000Z"  # the sandbox clock's time, 6 s on


def child_writes(
    api: Api, sandbox: RunningSandbox, cid: str
) -> list[tuple[str, Callable[[], Any]]]:
    """Each kind of task, note and appointment write on contact ``cid``, as a callable."""
    state: dict[str, str] = {}

    def create_task() -> None:
        state["task"] = api(
            "POST",
            f"/contacts/{cid}/tasks",
            json={"title": "T", "dueDate": "2030-01-01T00:00:00Z", "completed": False},
        ).json()["task"]["id"]

    def create_note() -> None:
        state["note"] = api("POST", f"/contacts/{cid}/notes", json={"body": "N"}).json()["note"][
            "id"
        ]

    def create_appointment() -> None:
        answer = requests.post(
            f"{sandbox.url}/_sandbox/appointments", json={"contactId": cid, "title": "A"}, timeout=5
        )
        state["appointment"] = answer.json()["appointment"]["id"]

    return [
        ("task create", create_task),
        (
            "task update",
            lambda: api("PUT", f"/contacts/{cid}/tasks/{state['task']}", json={"title": "U"}),
        ),
        (
            "task complete",
            lambda: api(
                "PUT", f"/contacts/{cid}/tasks/{state['task']}/completed", json={"completed": True}
            ),
        ),
        ("task delete", lambda: api("DELETE", f"/contacts/{cid}/tasks/{state['task']}")),
        ("note create", create_note),
        (
            "note update",
            lambda: api("PUT", f"/contacts/{cid}/notes/{state['note']}", json={"body": "M"}),
        ),
        ("note delete", lambda: api("DELETE", f"/contacts/{cid}/notes/{state['note']}")),
        ("appointment create", create_appointment),
        (
            "appointment update",
            lambda: requests.put(
                f"{sandbox.url}/_sandbox/appointments/{state['appointment']}",
                json={"appointmentStatus": "cancelled"},
                timeout=5,
            ),
        ),
        (
            "appointment delete",
            lambda: requests.delete(
                f"{sandbox.url}/_sandbox/appointments/{state['appointment']}", timeout=5
            ),
        ),
    ]


@pytest.mark.parametrize("bump", [False, True])
def test_child_writes_bump_the_contact_only_when_configured(
    contacts_sandbox_factory: Callable[..., RunningSandbox], *, bump: bool
) -> None:
    clock = FakeClock()
    sandbox = contacts_sandbox_factory(rate_limit=100_000, clock=clock)
    if bump:
        assert configure(sandbox, child_writes_bump_contact=True).status_code == 200
    api = Api(sandbox)
    contact = api.create(email="child@example.com")
    last = contact["dateUpdated"]
    for name, write in child_writes(api, sandbox, contact["id"]):
        clock.advance(1)
        write()
        now = api("GET", f"/contacts/{contact['id']}").json()["contact"]["dateUpdated"]
        assert (now > last) if bump else (now == contact["dateUpdated"]), name
        last = now


def test_command_line_options(tmp_path: Any) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "contacts",
            "--port",
            "0",
            "--search-lag",
            "0",
            "--token-scopes",
            "contacts.readonly,contacts.write",
            "--option",
            "child_writes_bump_contact=true",
            "--option",
            "search_page_limit_max=100",
            "--generate",
            "40",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        headers = {"Authorization": "Bearer sandbox-token", "Version": VERSION}
        body = {"locationId": LOCATION, "pageLimit": 100}
        answer = requests.post(f"{url}/contacts/search", json=body, headers=headers, timeout=5)
        assert answer.json()["total"] == 40
        too_many = requests.post(
            f"{url}/contacts/search", json={**body, "pageLimit": 101}, headers=headers, timeout=5
        )
        assert too_many.status_code == 422
        tasks = requests.post(
            f"{url}/locations/{LOCATION}/tasks/search", json={}, headers=headers, timeout=5
        )
        assert tasks.status_code == 401  # the token lacks locations/tasks.readonly
        cid = answer.json()["contacts"][0]["id"]
        before = requests.get(f"{url}/contacts/{cid}", headers=headers, timeout=5).json()
        time.sleep(0.01)  # the real clock: a later millisecond
        requests.post(f"{url}/contacts/{cid}/notes", json={"body": "x"}, headers=headers, timeout=5)
        after = requests.get(f"{url}/contacts/{cid}", headers=headers, timeout=5).json()
        assert after["contact"]["dateUpdated"] > before["contact"]["dateUpdated"]
    finally:
        process.kill()
        process.wait(timeout=5)
    bad = subprocess.run(
        [sys.executable, "-m", "sandbox", "contacts", "--option", "nonsense=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode != 0 and "unknown settings" in bad.stderr
