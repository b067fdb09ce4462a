"""The Contacts sandbox over real HTTP: routes, strict bodies, auth, duplicates, OAuth, limits."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox import openapi
from tests.sandbox.clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import RunningSandbox

LOCATION = "sandbox-location"
VERSION = "2021-07-28"
ID = re.compile(r"^[A-Za-z0-9]{20}$")
REPO = Path(__file__).resolve().parents[2]


class Api:
    """A tiny client: base URL, bearer token and the Version header on every call."""

    def __init__(
        self, sandbox: RunningSandbox, token: str = "sandbox-token", version: str | None = VERSION
    ) -> None:
        self.url = sandbox.url
        self.headers = {"Authorization": f"Bearer {token}"}
        if version:
            self.headers["Version"] = version

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=5, **kwargs)

    def create(self, **fields: Any) -> dict[str, Any]:
        response = self("POST", "/contacts/", json={"locationId": LOCATION, **fields})
        assert response.status_code == 201, response.text
        return response.json()["contact"]


def state(sandbox: RunningSandbox) -> dict[str, Any]:
    return requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()


def seed(sandbox: RunningSandbox, **data: Any) -> dict[str, list[str]]:
    # Generating thousands of contacts is the sandbox's heaviest request: a loaded machine may
    # take seconds over it, and how long it takes is not what any test checks.
    response = requests.post(f"{sandbox.url}/_sandbox/seed", json=data, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def configure(sandbox: RunningSandbox, **settings: Any) -> requests.Response:
    return requests.post(f"{sandbox.url}/_sandbox/config", json=settings, timeout=5)


@pytest.fixture
def api(contacts_sandbox: RunningSandbox) -> Api:
    return Api(contacts_sandbox)


# --- contacts -------------------------------------------------------------------------------
def test_create_get_update_delete_round_trip(contacts_sandbox: RunningSandbox, api: Api) -> None:
    created = api.create(
        firstName="Ada",
        lastName="Lovelace",
        email="Ada@Example.com",
        phone="+1 888-888-8888",
        companyName="Engines Ltd",
        source="moco",
        tags=["VIP", "vip", " Client "],
        dateOfBirth="1815-12-10",
        customFields=[{"id": "cf1", "field_value": "x"}, {"key": "moco_id", "fieldValue": 42}],
    )
    assert ID.match(created["id"])
    assert created["name"] == "Ada Lovelace"
    assert created["firstNameLowerCase"] == "ada" and created["emailLowerCase"] == "ada@example.com"
    assert created["phone"] == "+18888888888"
    assert created["tags"] == ["vip", "client"]
    assert created["dateOfBirth"] == "1815-12-10T00:00:00.000Z"
    assert created["deleted"] is False
    assert created["customFields"][0] == {"id": "cf1", "value": "x"}
    assert created["customFields"][1]["value"] == 42 and ID.match(created["customFields"][1]["id"])
    assert created["dateAdded"].endswith("Z") and created["locationId"] == LOCATION

    got = api("GET", f"/contacts/{created['id']}")
    assert got.status_code == 200
    assert got.json()["contact"]["email"] == "Ada@Example.com"

    updated = api(
        "PUT",
        f"/contacts/{created['id']}",
        json={"lastName": "King", "tags": ["new"], "city": "London"},
    )
    assert updated.status_code == 200
    assert updated.json()["succeded"] is True
    contact = updated.json()["contact"]
    assert (contact["name"], contact["tags"], contact["city"]) == ("Ada King", ["new"], "London")
    assert state(contacts_sandbox)["contacts"][0]["lastName"] == "King"

    deleted = api("DELETE", f"/contacts/{created['id']}")
    assert (deleted.status_code, deleted.json()) == (200, {"succeded": True})
    assert state(contacts_sandbox)["contacts"] == []
    gone = api("GET", f"/contacts/{created['id']}")
    assert gone.status_code == 400
    assert gone.json() == {
        "statusCode": 400,
        "message": f"Contact with id {created['id']} not found",
    }


def test_unknown_property_is_422_with_class_validator_message(api: Api) -> None:
    response = api("POST", "/contacts/", json={"locationId": LOCATION, "firstname": "x"})
    assert response.status_code == 422
    assert response.json() == {
        "statusCode": 422,
        "message": ["property firstname should not exist"],
        "error": "Unprocessable Entity",
    }
    wrong_type = api("POST", "/contacts/", json={"locationId": LOCATION, "tags": "vip"})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["message"] == ["tags must be an array"]


def test_put_refuses_location_id_gender_and_company_name(api: Api) -> None:
    cid = api.create(email="a@example.com")["id"]
    response = api(
        "PUT", f"/contacts/{cid}", json={"locationId": LOCATION, "gender": "f", "companyName": "X"}
    )
    assert response.status_code == 422
    assert set(response.json()["message"]) == {
        "property locationId should not exist",
        "property gender should not exist",
        "property companyName should not exist",
    }


def test_invalid_email_and_date_of_birth_are_422(api: Api) -> None:
    response = api(
        "POST",
        "/contacts/",
        json={"locationId": LOCATION, "email": "nope", "dateOfBirth": "10th Dec"},
    )
    assert response.status_code == 422
    messages = response.json()["message"]
    assert "email must be an email" in messages
    assert any(m.startswith("dateOfBirth must be a date") for m in messages)


def test_list_pages_return_each_contact_once(contacts_sandbox: RunningSandbox, api: Api) -> None:
    seed(
        contacts_sandbox,
        contacts=[
            # three contacts share each millisecond: the id breaks the tie in the cursor
            {
                "firstName": f"p{i}",
                "email": f"p{i}@example.com",
                "dateAdded": 1_700_000_000_000 + i // 3,
            }
            for i in range(47)
        ],
    )
    seen: list[str] = []
    params: dict[str, Any] = {"locationId": LOCATION, "limit": 10}
    pages = 0
    while True:
        response = api("GET", "/contacts/", params=params)
        assert response.status_code == 200
        body = response.json()
        pages += 1
        seen += [c["id"] for c in body["contacts"]]
        meta = body["meta"]
        assert meta["total"] == 47 and meta["currentPage"] == pages
        if not meta["nextPageUrl"]:
            break
        assert meta["nextPage"] == pages + 1
        params = {
            "locationId": LOCATION,
            "limit": 10,
            "startAfter": meta["startAfter"],
            "startAfterId": meta["startAfterId"],
        }
    assert pages == 5 and len(seen) == 47 and len(set(seen)) == 47
    assert meta["prevPage"] == 4 and meta["nextPage"] is None
    assert api("GET", "/contacts/", params={"locationId": LOCATION}).json()["meta"]["nextPage"] == 2
    assert len(api("GET", "/contacts/", params={"locationId": LOCATION}).json()["contacts"]) == 20
    too_many = api("GET", "/contacts/", params={"locationId": LOCATION, "limit": 101})
    assert too_many.status_code == 422
    assert api("GET", "/contacts/").status_code == 422


def test_next_page_url_is_followable(contacts_sandbox: RunningSandbox, api: Api) -> None:
    seed(contacts_sandbox, contacts=[{"email": f"n{i}@example.com"} for i in range(25)])
    first = api("GET", "/contacts/", params={"locationId": LOCATION}).json()
    url = first["meta"]["nextPageUrl"]
    assert url.startswith(contacts_sandbox.url + "/contacts/?locationId=")
    second = requests.get(url, headers=api.headers, timeout=5).json()
    assert len(second["contacts"]) == 5
    assert not {c["id"] for c in first["contacts"]} & {c["id"] for c in second["contacts"]}


def test_search_filters_query_and_paging(contacts_sandbox: RunningSandbox, api: Api) -> None:
    seed(
        contacts_sandbox,
        contacts=[
            {"firstName": "Grace", "email": "grace@navy.mil", "tags": ["navy"]},
            {"firstName": "Alan", "email": "alan@bletchley.uk", "phone": "+44 20 7946 0000"},
            {"firstName": "Ada", "email": "ada@example.com", "tags": ["navy", "math"]},
        ],
    )
    by_email = api(
        "POST",
        "/contacts/search",
        json={
            "locationId": LOCATION,
            "pageLimit": 10,
            "filters": [{"field": "email", "operator": "eq", "value": "GRACE@navy.mil"}],
        },
    )
    assert by_email.status_code == 200
    assert [c["firstName"] for c in by_email.json()["contacts"]] == ["Grace"]
    assert by_email.json()["total"] == 1
    by_tag = api(
        "POST",
        "/contacts/search",
        json={
            "locationId": LOCATION,
            "pageLimit": 10,
            "filters": [{"field": "tags", "operator": "eq", "value": "navy"}],
        },
    ).json()
    assert {c["firstName"] for c in by_tag["contacts"]} == {"Grace", "Ada"}
    by_phone = api(
        "POST",
        "/contacts/search",
        json={
            "locationId": LOCATION,
            "pageLimit": 10,
            "filters": [{"field": "phone", "operator": "eq", "value": "+442079460000"}],
        },
    ).json()
    assert [c["firstName"] for c in by_phone["contacts"]] == ["Alan"]
    free = api(
        "POST",
        "/contacts/search",
        json={"locationId": LOCATION, "pageLimit": 10, "query": "bletchley"},
    ).json()
    assert [c["firstName"] for c in free["contacts"]] == ["Alan"]
    page1 = api(
        "POST", "/contacts/search", json={"locationId": LOCATION, "pageLimit": 2, "page": 1}
    ).json()
    page2 = api(
        "POST", "/contacts/search", json={"locationId": LOCATION, "pageLimit": 2, "page": 2}
    ).json()
    assert page1["total"] == 3 and len(page1["contacts"]) == 2 and len(page2["contacts"]) == 1
    after = api(
        "POST",
        "/contacts/search",
        json={
            "locationId": LOCATION,
            "pageLimit": 2,
            "searchAfter": page1["contacts"][-1]["searchAfter"],
        },
    ).json()
    assert [c["id"] for c in after["contacts"]] == [c["id"] for c in page2["contacts"]]
    bad = api("POST", "/contacts/search", json={"locationId": LOCATION, "pageLimit": 5, "x": 1})
    assert bad.status_code == 422 and bad.json()["message"] == ["property x should not exist"]


def test_duplicate_search_and_business(contacts_sandbox: RunningSandbox, api: Api) -> None:
    seed(
        contacts_sandbox,
        contacts=[
            {"id": "a" * 20, "email": "dup@example.com", "businessId": "biz1"},
            {"id": "b" * 20, "phone": "+18005550100"},
        ],
    )
    found = api(
        "GET",
        "/contacts/search/duplicate",
        params={"locationId": LOCATION, "email": "DUP@example.com"},
    )
    assert found.status_code == 200 and found.json()["contact"]["id"] == "a" * 20
    by_number = api(
        "GET",
        "/contacts/search/duplicate",
        params={"locationId": LOCATION, "number": "+1 800 555 0100"},
    ).json()
    assert by_number["contact"]["id"] == "b" * 20
    none = api(
        "GET",
        "/contacts/search/duplicate",
        params={"locationId": LOCATION, "email": "none@example.com"},
    ).json()
    assert none == {"contact": None}
    business = api("GET", "/contacts/business/biz1", params={"locationId": LOCATION})
    assert business.status_code == 200
    assert [c["id"] for c in business.json()["contacts"]] == ["a" * 20]
    assert business.json()["count"] == 1


# --- duplicates and upsert ---------------------------------------------------------------------
def test_duplicate_create_is_400_with_meta(contacts_sandbox: RunningSandbox, api: Api) -> None:
    first = api.create(email="jo@example.com", phone="+18005550101")
    again = api("POST", "/contacts/", json={"locationId": LOCATION, "email": "JO@example.com"})
    assert again.status_code == 400
    assert again.json() == {
        "statusCode": 400,
        "message": "This location does not allow duplicated contacts.",
        "meta": {"contactId": first["id"], "matchingField": "email"},
    }
    by_phone = api(
        "POST",
        "/contacts/",
        json={"locationId": LOCATION, "email": "other@example.com", "phone": "+1 800 555 0101"},
    )
    assert by_phone.status_code == 400
    assert by_phone.json()["meta"] == {"contactId": first["id"], "matchingField": "phone"}
    assert len(state(contacts_sandbox)["contacts"]) == 1
    configure(contacts_sandbox, allow_duplicates=True)
    assert (
        api(
            "POST", "/contacts/", json={"locationId": LOCATION, "email": "jo@example.com"}
        ).status_code
        == 201
    )


def test_duplicate_match_order_is_configurable(contacts_sandbox: RunningSandbox, api: Api) -> None:
    api.create(email="x@example.com", phone="+18005550102")
    configure(contacts_sandbox, duplicate_match=["phone"])
    assert (
        api(
            "POST", "/contacts/", json={"locationId": LOCATION, "email": "x@example.com"}
        ).status_code
        == 201
    )
    assert configure(contacts_sandbox, duplicate_match=["fax"]).status_code == 422


def test_upsert_creates_then_updates(api: Api) -> None:
    created = api(
        "POST",
        "/contacts/upsert",
        json={
            "locationId": LOCATION,
            "email": "u@example.com",
            "firstName": "U",
            "gender": "female",
        },
    )
    assert created.status_code == 200
    body = created.json()
    assert body["new"] is True and body["traceId"] and body["contact"]["gender"] == "female"
    updated = api(
        "POST",
        "/contacts/upsert",
        json={
            "locationId": LOCATION,
            "email": "U@example.com",
            "lastName": "Pdated",
            "gender": "male",
        },
    ).json()
    assert updated["new"] is False and updated["contact"]["id"] == body["contact"]["id"]
    assert updated["contact"]["name"] == "U Pdated"
    assert updated["contact"]["gender"] == "female"  # ignored on update (issue #313)


def test_upsert_email_and_phone_of_two_contacts_updates_email_match(
    contacts_sandbox: RunningSandbox, api: Api
) -> None:
    by_email = api.create(email="e@example.com")
    by_phone = api.create(phone="+18005550103")
    response = api(
        "POST",
        "/contacts/upsert",
        json={
            "locationId": LOCATION,
            "email": "e@example.com",
            "phone": "+18005550103",
            "city": "Berlin",
        },
    ).json()
    assert response["new"] is False and response["contact"]["id"] == by_email["id"]
    assert response["contact"]["city"] == "Berlin"
    assert "phone" not in response["contact"]  # the conflicting phone is not applied
    phones = {c["id"]: c.get("phone") for c in state(contacts_sandbox)["contacts"]}
    assert phones == {by_email["id"]: None, by_phone["id"]: "+18005550103"}


def test_upsert_create_new_if_duplicate_allowed(contacts_sandbox: RunningSandbox, api: Api) -> None:
    api.create(email="d@example.com")
    body = {"locationId": LOCATION, "email": "d@example.com", "createNewIfDuplicateAllowed": True}
    assert api("POST", "/contacts/upsert", json=body).json()["new"] is False  # not allowed: ignored
    configure(contacts_sandbox, allow_duplicates=True)
    assert api("POST", "/contacts/upsert", json=body).json()["new"] is True
    assert (
        api("POST", "/contacts/upsert", json={**body, "createNewIfDuplicateAllowed": False}).json()[
            "new"
        ]
        is False
    )
    assert len(state(contacts_sandbox)["contacts"]) == 2


# --- tags, tasks, notes, appointments ------------------------------------------------------------
def test_tags_add_and_remove(api: Api) -> None:
    cid = api.create(email="t@example.com", tags=["a"])["id"]
    added = api("POST", f"/contacts/{cid}/tags", json={"tags": ["b", "A", "c"]})
    assert added.status_code == 201 and added.json() == {"tags": ["a", "b", "c"]}
    removed = api("DELETE", f"/contacts/{cid}/tags", json={"tags": ["b", "zzz"]})
    assert removed.status_code == 200 and removed.json() == {"tags": ["a", "c"]}
    assert api("GET", f"/contacts/{cid}").json()["contact"]["tags"] == ["a", "c"]
    refused = api("POST", f"/contacts/{cid}/tags", json={"tags": ["x"], "locationId": LOCATION})
    assert refused.status_code == 422
    assert refused.json()["message"] == ["property locationId should not exist"]


def test_task_lifecycle(contacts_sandbox: RunningSandbox, api: Api) -> None:
    cid = api.create(email="task@example.com")["id"]
    missing = api("POST", f"/contacts/{cid}/tasks", json={"title": "Call"})
    assert missing.status_code == 422
    assert set(missing.json()["message"]) == {
        "dueDate must be a string",
        "completed must be a boolean value",
    }
    created = api(
        "POST",
        f"/contacts/{cid}/tasks",
        json={"title": "Call", "dueDate": "2020-10-25T11:00:00Z", "completed": False},
    )
    assert created.status_code == 201
    task = created.json()["task"]
    assert ID.match(task["id"]) and task["contactId"] == cid
    assert task["dueDate"] == "2020-10-25T11:00:00.000Z"
    tid = task["id"]
    assert api("GET", f"/contacts/{cid}/tasks").json() == {"tasks": [task]}
    assert api("GET", f"/contacts/{cid}/tasks/{tid}").json() == {"task": task}
    updated = api("PUT", f"/contacts/{cid}/tasks/{tid}", json={"title": "Call back"})
    assert updated.status_code == 200 and updated.json()["task"]["title"] == "Call back"
    done = api("PUT", f"/contacts/{cid}/tasks/{tid}/completed", json={"completed": True})
    assert done.status_code == 200 and done.json()["task"]["completed"] is True
    assert state(contacts_sandbox)["tasks"][0]["completed"] is True
    unknown = api("GET", f"/contacts/{cid}/tasks/{'z' * 20}")
    assert unknown.status_code == 404
    deleted = api("DELETE", f"/contacts/{cid}/tasks/{tid}")
    assert (deleted.status_code, deleted.json()) == (200, {"succeded": True})
    assert state(contacts_sandbox)["tasks"] == []


def test_note_lifecycle(contacts_sandbox: RunningSandbox, api: Api) -> None:
    cid = api.create(email="note@example.com")["id"]
    created = api("POST", f"/contacts/{cid}/notes", json={"body": "first"})
    assert created.status_code == 201
    note = created.json()["note"]
    assert ID.match(note["id"]) and note["contactId"] == cid and note["dateAdded"]
    nid = note["id"]
    updated = api("PUT", f"/contacts/{cid}/notes/{nid}", json={"body": "edited"})
    assert updated.status_code == 200 and updated.json()["note"]["body"] == "edited"
    assert api("GET", f"/contacts/{cid}/notes/{nid}").json()["note"]["body"] == "edited"
    assert [n["body"] for n in api("GET", f"/contacts/{cid}/notes").json()["notes"]] == ["edited"]
    assert [n["body"] for n in state(contacts_sandbox)["notes"]] == ["edited"]
    with_location = api(
        "POST", f"/contacts/{cid}/notes", json={"body": "x", "locationId": LOCATION}
    )
    assert with_location.status_code == 422
    assert api("DELETE", f"/contacts/{cid}/notes/{nid}").json() == {"succeded": True}
    assert api("GET", f"/contacts/{cid}/notes/{nid}").status_code == 404


def test_seeded_appointments_are_listed(contacts_sandbox: RunningSandbox, api: Api) -> None:
    ids = seed(
        contacts_sandbox,
        contacts=[{"id": "c" * 20, "email": "ap@example.com"}],
        appointments=[
            {
                "contactId": "c" * 20,
                "title": "Kick-off",
                "status": "booked",
                "startTime": "2021-07-16 11:00:00",
                "endTime": "2021-07-16 12:00:00",
                "calendarId": "cal1",
            }
        ],
    )
    response = api("GET", f"/contacts/{'c' * 20}/appointments")
    assert response.status_code == 200
    events = response.json()["events"]
    assert [e["title"] for e in events] == ["Kick-off"]
    assert events[0]["id"] == ids["appointments"][0] and events[0]["locationId"] == LOCATION
    assert state(contacts_sandbox)["appointments"][0]["contactId"] == "c" * 20


def test_seed_and_state_shapes(contacts_sandbox: RunningSandbox) -> None:
    ids = seed(
        contacts_sandbox,
        contacts=[
            {
                "id": "s" * 20,
                "firstName": "Seed",
                "tags": ["x"],
                "customFields": [{"id": "f", "value": "v"}],
            }
        ],
        tasks=[{"contactId": "s" * 20, "title": "T", "dueDate": "2024-01-01T00:00:00Z"}],
        notes=[{"contactId": "s" * 20, "body": "N"}],
    )
    assert ids["contacts"] == ["s" * 20] and len(ids["tasks"]) == 1 and len(ids["notes"]) == 1
    data = state(contacts_sandbox)
    assert set(data) == {"contacts", "tasks", "notes", "appointments"}
    assert data["contacts"][0]["customFields"] == [{"id": "f", "value": "v"}]
    assert data["tasks"][0]["contactId"] == "s" * 20 and data["tasks"][0]["completed"] is False
    assert data["notes"][0]["contactId"] == "s" * 20
    bad = requests.post(
        f"{contacts_sandbox.url}/_sandbox/seed",
        timeout=5,
        json={"tasks": [{"contactId": "nobody", "title": "x"}]},
    )
    assert bad.status_code == 422
    requests.post(f"{contacts_sandbox.url}/_sandbox/reset", timeout=5)
    assert state(contacts_sandbox) == {"contacts": [], "tasks": [], "notes": [], "appointments": []}


# --- headers and tokens ------------------------------------------------------------------------
def test_version_header_is_required(contacts_sandbox: RunningSandbox) -> None:
    missing = Api(contacts_sandbox, version=None)(
        "GET", "/contacts/", params={"locationId": LOCATION}
    )
    assert missing.status_code == 401
    assert missing.json()["message"] == "version header was not found."
    wrong = Api(contacts_sandbox, version="2099-01-01")(
        "GET", "/contacts/", params={"locationId": LOCATION}
    )
    assert wrong.status_code == 401 and wrong.json()["message"] == "version header is invalid"


def test_bad_token_is_401(contacts_sandbox: RunningSandbox) -> None:
    response = Api(contacts_sandbox, token="nope")(
        "GET", "/contacts/", params={"locationId": LOCATION}
    )
    assert response.status_code == 401
    assert response.json() == {
        "statusCode": 401,
        "message": "Invalid token: access token is invalid",
        "error": "Unauthorized",
    }
    no_auth = requests.get(
        f"{contacts_sandbox.url}/contacts/",
        params={"locationId": LOCATION},
        headers={"Version": VERSION},
        timeout=5,
    )
    assert no_auth.status_code == 401


def test_other_location_token_is_403(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    sandbox = contacts_sandbox_factory(extra_locations=("other-location",))
    mine, theirs = Api(sandbox), Api(sandbox, token="sandbox-token-other-location")
    cid = mine.create(email="mine@example.com")["id"]
    forbidden = {"statusCode": 403, "message": "The token does not have access to this location"}
    for response in (
        theirs("GET", f"/contacts/{cid}"),
        theirs("PUT", f"/contacts/{cid}", json={"city": "X"}),
        theirs("POST", f"/contacts/{cid}/notes", json={"body": "x"}),
        theirs("GET", "/contacts/", params={"locationId": LOCATION}),
        theirs("POST", "/contacts/", json={"locationId": LOCATION, "email": "t@example.com"}),
    ):
        assert (response.status_code, response.json()) == (403, forbidden)
    own = theirs(
        "POST", "/contacts/", json={"locationId": "other-location", "email": "mine@example.com"}
    )
    assert own.status_code == 201  # duplicates are per location
    log = requests.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()
    assert {e["location_id"] for e in log} == {LOCATION, "other-location"}


# --- OAuth ----------------------------------------------------------------------------------------
def _authorize(sandbox: RunningSandbox, state_value: str = "xyz") -> str:
    response = requests.get(
        f"{sandbox.url}/v2/oauth/chooselocation",
        allow_redirects=False,
        timeout=5,
        params={
            "response_type": "code",
            "client_id": "sandbox-client-id",
            "redirect_uri": "http://127.0.0.1:9/callback",
            "scope": "contacts.readonly contacts.write",
            "state": state_value,
        },
    )
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert (target.netloc, target.path) == ("127.0.0.1:9", "/callback")
    query = parse_qs(target.query)
    assert query["state"] == [state_value]
    return query["code"][0]


def _token(sandbox: RunningSandbox, **form: str) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/oauth/token",
        timeout=5,
        data={"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret", **form},
    )


def test_oauth_code_exchange_and_refresh_rotation(contacts_sandbox: RunningSandbox) -> None:
    bad_client = requests.get(
        f"{contacts_sandbox.url}/v2/oauth/chooselocation",
        timeout=5,
        allow_redirects=False,
        params={
            "response_type": "code",
            "client_id": "nope",
            "redirect_uri": "http://127.0.0.1:9/cb",
        },
    )
    assert bad_client.status_code == 400
    code = _authorize(contacts_sandbox)
    exchanged = _token(contacts_sandbox, grant_type="authorization_code", code=code)
    assert exchanged.status_code == 200
    tokens = exchanged.json()
    assert set(tokens) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "userType",
        "locationId",
        "companyId",
        "userId",
    }
    assert (
        tokens["token_type"],
        tokens["expires_in"],
        tokens["userType"],
        tokens["locationId"],
        tokens["companyId"],
    ) == ("Bearer", 86399, "Location", LOCATION, "sandbox-company")
    again = _token(contacts_sandbox, grant_type="authorization_code", code=code)
    assert again.status_code == 400  # codes are single-use

    api = Api(contacts_sandbox, token=tokens["access_token"])
    assert api("GET", "/contacts/", params={"locationId": LOCATION}).status_code == 200

    refreshed = _token(
        contacts_sandbox, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert refreshed.status_code == 200
    assert refreshed.json()["refresh_token"] != tokens["refresh_token"]
    reused = _token(
        contacts_sandbox, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert reused.status_code == 400
    assert reused.json() == {
        "statusCode": 400,
        "message": "Invalid grant: refresh token is invalid",
    }
    rotated = _token(
        contacts_sandbox,
        grant_type="refresh_token",
        refresh_token=refreshed.json()["refresh_token"],
    )
    assert rotated.status_code == 200

    wrong_secret = _token(
        contacts_sandbox,
        grant_type="refresh_token",
        client_secret="x",
        refresh_token=rotated.json()["refresh_token"],
    )
    assert wrong_secret.status_code == 401
    unknown_field = _token(
        contacts_sandbox,
        grant_type="refresh_token",
        extra="1",
        refresh_token=rotated.json()["refresh_token"],
    )
    assert unknown_field.status_code == 422
    assert unknown_field.json()["message"] == ["property extra should not exist"]


def test_expired_access_token_is_refused(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clock = FakeClock()  # the token lives exactly as long as the test says
    sandbox = contacts_sandbox_factory(access_token_ttl=1, clock=clock)
    tokens = _token(sandbox, grant_type="authorization_code", code=_authorize(sandbox)).json()
    assert tokens["expires_in"] == 1
    api = Api(sandbox, token=tokens["access_token"])
    clock.advance(0.999)
    assert api("GET", "/contacts/", params={"locationId": LOCATION}).status_code == 200
    clock.advance(0.001)
    expired = api("GET", "/contacts/", params={"locationId": LOCATION})
    assert expired.status_code == 401
    assert expired.json()["message"] == "Invalid token: access token is invalid"


def test_location_token_with_agency_token(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    sandbox = contacts_sandbox_factory(agency_token="agency-secret", extra_locations=("loc-2",))
    url = f"{sandbox.url}/oauth/locationToken"
    headers = {"Authorization": "Bearer agency-secret", "Version": VERSION}
    response = requests.post(
        url,
        headers=headers,
        timeout=5,
        data={"companyId": "sandbox-company", "locationId": "loc-2"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["locationId"] == "loc-2" and body["token_type"] == "Bearer"
    assert body["userId"] and body["refresh_token"]
    api = Api(sandbox, token=body["access_token"])
    assert api("GET", "/contacts/", params={"locationId": "loc-2"}).status_code == 200
    assert api("GET", "/contacts/", params={"locationId": LOCATION}).status_code == 403
    no_version = requests.post(
        url,
        headers={"Authorization": "Bearer agency-secret"},
        timeout=5,
        data={"companyId": "sandbox-company", "locationId": "loc-2"},
    )
    assert no_version.status_code == 401
    location_pit = requests.post(
        url,
        headers={**headers, "Authorization": "Bearer sandbox-token"},
        timeout=5,
        data={"companyId": "sandbox-company", "locationId": "loc-2"},
    )
    assert location_pit.status_code == 401
    agency_on_contacts = Api(sandbox, token="agency-secret")(
        "GET", "/contacts/", params={"locationId": LOCATION}
    )
    assert agency_on_contacts.status_code == 401


# --- rate limits -----------------------------------------------------------------------------
RATE_HEADERS = (
    "X-RateLimit-Limit-Daily",
    "X-RateLimit-Daily-Remaining",
    "X-RateLimit-Interval-Milliseconds",
    "X-RateLimit-Max",
    "X-RateLimit-Remaining",
)


def test_burst_limit_answers_429_with_headers(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clock = FakeClock()  # the burst stays inside the window however slow the machine is
    sandbox = contacts_sandbox_factory(rate_limit=5, rate_window=1, clock=clock)
    api = Api(sandbox)
    responses = [api("GET", "/contacts/", params={"locationId": LOCATION}) for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    first, last = responses[0].headers, responses[-1].headers
    assert all(first[h].isdigit() for h in RATE_HEADERS)
    assert (
        first["X-RateLimit-Max"],
        first["X-RateLimit-Remaining"],
        first["X-RateLimit-Interval-Milliseconds"],
    ) == ("5", "4", "1000")
    assert last["X-RateLimit-Remaining"] == "0"
    assert responses[-1].json() == {"statusCode": 429, "message": "Too Many Requests"}
    # the token endpoint is not counted against the location
    assert (
        _token(sandbox, grant_type="authorization_code", code=_authorize(sandbox)).status_code
        == 200
    )
    log = requests.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()
    assert [e.get("rate_limited", False) for e in log[:6]] == [False] * 5 + [True]
    clock.advance(1.0)
    assert api("GET", "/contacts/", params={"locationId": LOCATION}).status_code == 200


def test_daily_limit(contacts_sandbox: RunningSandbox, api: Api) -> None:
    assert configure(contacts_sandbox, daily_limit=10, daily_used=8).status_code == 200
    ok = api("GET", "/contacts/", params={"locationId": LOCATION})
    assert ok.status_code == 200
    assert (ok.headers["X-RateLimit-Limit-Daily"], ok.headers["X-RateLimit-Daily-Remaining"]) == (
        "10",
        "1",
    )
    assert api("GET", "/contacts/", params={"locationId": LOCATION}).status_code == 200
    over = api("GET", "/contacts/", params={"locationId": LOCATION})
    assert over.status_code == 429 and over.headers["X-RateLimit-Daily-Remaining"] == "0"
    assert int(over.headers["X-RateLimit-Remaining"]) > 0  # a daily 429, not a burst one
    assert configure(contacts_sandbox, nonsense=1).status_code == 422


# --- the validator ---------------------------------------------------------------------------
def test_validate_request_against_the_official_spec() -> None:
    headers = {"Authorization": "Bearer x", "Version": VERSION, "Content-Type": "application/json"}
    good = {
        "locationId": LOCATION,
        "firstName": "A",
        "email": "a@example.com",
        "tags": ["t"],
        "customFields": [{"id": "f1", "field_value": "v"}],
        "dateOfBirth": "1990-09-25",
    }
    assert openapi.validate_request("POST", "/contacts/", headers, good) == []
    problems = openapi.validate_request(
        "POST", "/contacts/", {"Version": "1"}, {"firstName": 1, "foo": "bar"}
    )
    assert "POST /contacts/: missing header Authorization" in problems
    assert any("header Version" in p for p in problems)
    assert "POST /contacts/: property foo should not exist" in problems
    assert "POST /contacts/: firstName must be a string" in problems
    assert "POST /contacts/: locationId must be a string" in problems
    assert openapi.validate_request("PUT", "/contacts/abc", headers, {"locationId": "x"}) == [
        "PUT /contacts/{contactId}: property locationId should not exist"
    ]
    assert openapi.validate_request("GET", "/contacts/?limit=10", headers, None) == [
        "GET /contacts/: missing required query locationId"
    ]
    assert openapi.validate_request("GET", "/nowhere", headers, None)
    form = "client_id=a&client_secret=b&grant_type=refresh_token&refresh_token=r"
    assert (
        openapi.validate_request(
            "POST", "/oauth/token", {"Content-Type": "application/x-www-form-urlencoded"}, form
        )
        == []
    )


def test_every_request_of_a_session_conforms(contacts_sandbox: RunningSandbox, api: Api) -> None:
    cid = api.create(email="conform@example.com")["id"]
    api("POST", f"/contacts/{cid}/tags", json={"tags": ["a"]})
    api("GET", "/contacts/", params={"locationId": LOCATION, "limit": 5})
    log = requests.get(f"{contacts_sandbox.url}/_sandbox/requests", timeout=5).json()
    for entry in log:
        assert (
            openapi.validate_request(
                entry["method"],
                entry["path"],
                entry["headers"],
                entry["body"],
                query=entry["query"],
            )
            == []
        )


# --- command line ---------------------------------------------------------------------------------
def test_python_m_sandbox_contacts_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "contacts", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        response = requests.get(
            f"{match.group(0)}/contacts/",
            params={"locationId": LOCATION},
            headers={"Authorization": "Bearer sandbox-token", "Version": VERSION},
            timeout=5,
        )
        assert response.status_code == 200 and response.json()["contacts"] == []
    finally:
        process.kill()
        process.wait(timeout=5)
