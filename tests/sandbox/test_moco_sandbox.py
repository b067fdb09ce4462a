"""The MOCO sandbox over real HTTP: what a client of mocoapp.com's API v1 would check."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from sandbox.moco_data import generate
from tests.sandbox.clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import RunningSandbox

AUTH = {"Authorization": "Token token=sandbox-key"}
REPO_ROOT = Path(__file__).resolve().parents[2]
CONTACT_KEYS = [
    "id",
    "gender",
    "firstname",
    "lastname",
    "title",
    "job_position",
    "mobile_phone",
    "work_fax",
    "work_phone",
    "work_email",
    "work_address",
    "home_email",
    "home_address",
    "birthday",
    "salutation",
    "info",
    "avatar_url",
    "tags",
    "custom_properties",
    "company",
    "user",
    "created_at",
    "updated_at",
]
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def api(sandbox: RunningSandbox, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {**AUTH, **kwargs.pop("headers", {})}
    return requests.request(
        method, f"{sandbox.url}/api/v1{path}", headers=headers, timeout=10, **kwargs
    )


def seed(sandbox: RunningSandbox, **data: Any) -> dict[str, int]:
    response = requests.post(f"{sandbox.url}/_sandbox/seed", json=data, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def state(sandbox: RunningSandbox) -> dict[str, list[dict[str, Any]]]:
    return requests.get(f"{sandbox.url}/_sandbox/state", timeout=30).json()


def read_all(sandbox: RunningSandbox, path: str, **params: Any) -> list[dict[str, Any]]:
    """Follow rel="next" links from the first page, as a client does."""
    records: list[dict[str, Any]] = []
    response = api(sandbox, "GET", path, params=params)
    while True:
        assert response.status_code == 200, response.text
        records += response.json()
        if "next" not in response.links:
            return records
        response = requests.get(response.links["next"]["url"], headers=AUTH, timeout=10)


# --- auth ----------------------------------------------------------------------------------------


def test_both_auth_schemes_work_and_anything_else_is_401(moco_sandbox: RunningSandbox) -> None:
    ok = [
        {"Authorization": "Token token=sandbox-key"},
        {"Authorization": 'Token token="sandbox-key"'},
        {"Authorization": "Bearer sandbox-key"},
    ]
    for headers in ok:
        response = requests.get(f"{moco_sandbox.url}/api/v1/session", headers=headers, timeout=5)
        assert response.status_code == 200
        assert response.json() == {"id": 933662266, "uuid": "aec324a2-4832-11eb-b378-0242ac130002"}
    bad = [
        {},
        {"Authorization": "Token token=wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic c2FuZGJveC1rZXk="},
        {"Authorization": "Token sandbox-key"},
    ]
    for headers in bad:
        response = requests.get(
            f"{moco_sandbox.url}/api/v1/contacts/people", headers=headers, timeout=5
        )
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthorized"}
    log = requests.get(f"{moco_sandbox.url}/_sandbox/requests", timeout=5).json()
    assert "sandbox-key" not in str(log)


# --- paging --------------------------------------------------------------------------------------


def test_paging_returns_every_record_once_with_moco_headers(moco_sandbox: RunningSandbox) -> None:
    seed(moco_sandbox, generate={"contacts": 230, "seed": 4})
    first = api(moco_sandbox, "GET", "/contacts/people", params={"per_page": 50})
    assert first.headers["X-Page"] == "1"
    assert first.headers["X-Per-Page"] == "50"
    assert first.headers["X-Total"] == "230"
    assert isinstance(first.json(), list) and len(first.json()) == 50
    link = first.headers["Link"]
    assert re.fullmatch(
        r'<http://127\.0\.0\.1:\d+/api/v1/contacts/people\?[^>]*>; rel="next"', link
    )
    assert "page=2" in link and "per_page=50" in link

    seen, pages, url = [], [], f"{moco_sandbox.url}/api/v1/contacts/people?per_page=50"
    while url:
        response = requests.get(url, headers=AUTH, timeout=5)
        pages.append(response.headers["X-Page"])
        assert all(response.headers[h].isdigit() for h in ("X-Page", "X-Per-Page", "X-Total"))
        seen += [c["id"] for c in response.json()]
        url = response.links.get("next", {}).get("url")
        if url is None:
            assert "Link" not in response.headers
    assert pages == ["1", "2", "3", "4", "5"]
    assert len(seen) == len(set(seen)) == 230
    assert set(seen) == {c["id"] for c in state(moco_sandbox)["contacts"]}


def test_next_link_keeps_the_other_query_parameters(moco_sandbox: RunningSandbox) -> None:
    seed(moco_sandbox, generate={"contacts": 120, "seed": 2})
    everything = state(moco_sandbox)["comments"]
    on_contacts = [c for c in everything if c["commentable_type"] == "Contact"]
    assert len(on_contacts) > 10
    listed = read_all(moco_sandbox, "/comments", commentable_type="Contact", per_page=7)
    assert sorted(c["id"] for c in listed) == sorted(c["id"] for c in on_contacts)


def test_single_page_has_no_link_and_pages_past_the_end_are_empty(
    moco_sandbox: RunningSandbox,
) -> None:
    seed(moco_sandbox, contacts=[{"lastname": f"Person {i}"} for i in range(3)])
    response = api(moco_sandbox, "GET", "/contacts/people")
    assert response.headers["X-Per-Page"] == "100" and response.headers["X-Total"] == "3"
    assert "Link" not in response.headers
    beyond = api(moco_sandbox, "GET", "/contacts/people", params={"page": 9})
    assert beyond.status_code == 200 and beyond.json() == []
    assert beyond.headers["X-Page"] == "9" and beyond.headers["X-Total"] == "3"


def test_per_page_above_100_is_clamped(moco_sandbox: RunningSandbox) -> None:
    seed(moco_sandbox, contacts=[{"lastname": f"P{i:03d}"} for i in range(150)])
    response = api(moco_sandbox, "GET", "/contacts/people", params={"per_page": 1000})
    assert response.headers["X-Per-Page"] == "100"
    assert len(response.json()) == 100
    assert "page=2" in response.headers["Link"]


# --- filters -------------------------------------------------------------------------------------


def test_updated_after_is_strict_and_ids_filter_by_id(moco_sandbox: RunningSandbox) -> None:
    seed(
        moco_sandbox,
        contacts=[
            {"id": 11, "lastname": "Alt", "updated_at": "2024-01-01T00:00:00Z"},
            {"id": 12, "lastname": "Mittel", "updated_at": "2024-01-01T00:00:01Z"},
            {"id": 13, "lastname": "Neu", "updated_at": "2024-06-01T12:00:00Z"},
        ],
        companies=[
            {
                "id": 21,
                "name": "Old AG",
                "type": "organization",
                "updated_at": "2023-01-01T00:00:00Z",
            },
            {
                "id": 22,
                "name": "New AG",
                "type": "organization",
                "updated_at": "2025-01-01T00:00:00Z",
            },
        ],
        comments=[
            {
                "id": 31,
                "commentable_type": "Contact",
                "commentable_id": 11,
                "text": "a",
                "created_at": "2023-01-01T00:00:00Z",
            },
            {
                "id": 32,
                "commentable_type": "Contact",
                "commentable_id": 11,
                "text": "b",
                "created_at": "2025-01-01T00:00:00Z",
            },
        ],
    )

    def ids(path: str, **params: Any) -> list[int]:
        response = api(moco_sandbox, "GET", path, params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()]

    assert ids("/contacts/people", updated_after="2024-01-01T00:00:00Z") == [12, 13]
    assert ids("/contacts/people", updated_after="2024-01-01T02:00:00+02:00") == [12, 13]
    assert ids("/contacts/people", updated_after="2024-06-01T12:00:00Z") == []
    assert ids("/contacts/people", ids="13,11,999") == [11, 13]
    assert ids("/contacts/people", ids="11,13", updated_after="2024-01-01T00:00:00Z") == [13]
    assert ids("/companies", updated_after="2024-01-01T00:00:00Z") == [22]
    assert ids("/companies", ids="21") == [21]
    assert ids("/comments", updated_after="2024-01-01T00:00:00Z") == [32]
    assert ids("/comments", ids="31,32") == [32, 31]
    bad = api(moco_sandbox, "GET", "/contacts/people", params={"updated_after": "yesterday"})
    assert bad.status_code == 400


def test_contact_tags_and_term_filters(moco_sandbox: RunningSandbox) -> None:
    seed(
        moco_sandbox,
        companies=[{"id": 5, "name": "Nordlicht Media GmbH"}],
        contacts=[
            {
                "id": 1,
                "firstname": "Jürgen",
                "lastname": "Müßig",
                "tags": ["VIP", "Newsletter"],
                "work_email": "juergen@example.com",
                "company_id": 5,
            },
            {"id": 2, "firstname": "Zoë", "lastname": "Lefèvre", "tags": ["VIP"]},
            {"id": 3, "firstname": "Łukasz", "lastname": "Wójcik"},
        ],
    )

    def ids(**params: Any) -> list[int]:
        return [c["id"] for c in api(moco_sandbox, "GET", "/contacts/people", params=params).json()]

    assert ids(tags="VIP") == [2, 1]
    assert ids(tags="VIP, Newsletter") == [1]
    assert ids(term="zoë") == [2]
    assert ids(term="nordlicht") == [1]
    assert ids(term="juergen@") == [1]


# --- orderings -----------------------------------------------------------------------------------


def test_default_orderings_match_the_recordings(moco_sandbox: RunningSandbox) -> None:
    # Company names in the order the recorded GET /companies returned them (case, spaces and
    # punctuation ignored), with the recorded tie on an equal name broken by id.
    recorded = [
        "Beispiel GmbH",
        "company create customer",
        "customer with vat",
        "dummy company, update iban",
        "Muster AG",
        "supplier with iban",
        "testabcd",
        "TestActivity.get_customer",
        "TestComment.get_other_customer",
        "test company updated name",
        "TestDeal.get_company",
        "updated company with  prop set",
    ]
    companies = [
        {"id": 100 + i, "name": name, "type": "organization"} for i, name in enumerate(recorded)
    ]
    companies.append({"id": 99, "name": "Muster AG", "type": "organization"})
    contacts = [
        {"id": 7, "lastname": "smith"},
        {"id": 3, "lastname": "smith"},
        {"id": 1, "lastname": "Zürcher"},
        {"id": 2, "lastname": "Müßig"},
        {"id": 4, "lastname": "müller"},
        {"id": 5, "lastname": "Łoś"},
        {"id": 6, "lastname": "TestContact.test_create"},
        {"id": 8, "lastname": "van der Berg"},
    ]
    comments = [
        {
            "id": 10 + i,
            "commentable_type": "Company",
            "commentable_id": 100,
            "text": "x",
            "created_at": created,
        }
        for i, created in enumerate(
            [
                "2022-01-01T00:00:00Z",
                "2024-01-01T00:00:00Z",
                "2022-01-01T00:00:00Z",
                "2023-01-01T00:00:00Z",
            ]
        )
    ]
    todos = [
        {"id": i, "todoable_type": "Contact", "todoable_id": 1, "title": t}
        for i, t in [(30, "c"), (10, "a"), (20, "b")]
    ]
    seed(
        moco_sandbox,
        companies=list(reversed(companies)),
        contacts=contacts,
        comments=comments,
        todos=todos,
    )

    names = [(c["name"], c["id"]) for c in read_all(moco_sandbox, "/companies")]
    expected = [(name, 100 + i) for i, name in enumerate(recorded)]
    expected.insert(4, ("Muster AG", 99))
    assert names == expected
    lastnames = [(c["lastname"], c["id"]) for c in read_all(moco_sandbox, "/contacts/people")]
    assert lastnames == [
        ("Łoś", 5),
        ("müller", 4),
        ("Müßig", 2),
        ("smith", 3),
        ("smith", 7),
        ("TestContact.test_create", 6),
        ("van der Berg", 8),
        ("Zürcher", 1),
    ]
    assert [c["id"] for c in read_all(moco_sandbox, "/comments")] == [11, 13, 12, 10]
    assert [t["id"] for t in read_all(moco_sandbox, "/todos")] == [10, 20, 30]


# --- writes --------------------------------------------------------------------------------------


def test_contact_create_update_delete_bump_updated_at_and_show_in_lists(
    moco_sandbox: RunningSandbox,
) -> None:
    seed(
        moco_sandbox,
        companies=[{"id": 761263106, "name": "Beispiel GmbH", "type": "customer"}],
        contacts=[{"id": 677502, "lastname": "Alt", "created_at": "2022-04-17T06:49:40Z"}],
    )
    created = api(
        moco_sandbox,
        "POST",
        "/contacts/people",
        json={
            "firstname": "Zoë",
            "lastname": "Müßig",
            "gender": "F",
            "company_id": 761263106,
            "work_email": "zoe@example.com",
            "tags": ["VIP", "Early Adopter"],
            "custom_properties": {"Quelle": "Messe"},
        },
    )
    assert created.status_code == 200  # MOCO answers 200, not 201
    contact = created.json()
    assert list(contact) == CONTACT_KEYS
    assert contact["id"] > 677502
    assert contact["company"] == {"id": 761263106, "type": "customer", "name": "Beispiel GmbH"}
    assert contact["tags"] == ["Early Adopter", "VIP"]
    assert contact["title"] == "" and contact["birthday"] is None
    assert TS.match(contact["created_at"]) and contact["created_at"] == contact["updated_at"]
    assert api(moco_sandbox, "GET", f"/contacts/people/{contact['id']}").json() == contact

    updated = api(
        moco_sandbox,
        "PUT",
        "/contacts/people/677502",
        json={"work_phone": "+49 30 1234567", "custom_properties": {"A": "1"}},
    ).json()
    assert updated["work_phone"] == "+49 30 1234567"
    assert updated["updated_at"] > "2022-04-17T06:49:40Z"
    assert updated["created_at"] == "2022-04-17T06:49:40Z"
    changed = read_all(moco_sandbox, "/contacts/people", updated_after="2022-04-17T06:49:40Z")
    assert {c["id"] for c in changed} == {677502, contact["id"]}
    patched = api(
        moco_sandbox, "PATCH", "/contacts/people/677502", json={"custom_properties": {"B": "2"}}
    ).json()
    assert patched["custom_properties"] == {"A": "1", "B": "2"}  # merged, as MOCO does

    same = api(
        moco_sandbox, "PUT", "/contacts/people/677502", json={"work_phone": "+49 30 1234567"}
    ).json()
    assert same["updated_at"] == patched["updated_at"]

    deleted = api(moco_sandbox, "DELETE", f"/contacts/people/{contact['id']}")
    assert deleted.status_code == 200
    assert api(moco_sandbox, "GET", f"/contacts/people/{contact['id']}").status_code == 404
    assert [c["id"] for c in read_all(moco_sandbox, "/contacts/people")] == [677502]


def test_contact_validation_errors_are_422(moco_sandbox: RunningSandbox) -> None:
    no_lastname = api(moco_sandbox, "POST", "/contacts/people", json={"firstname": "Ana"})
    assert no_lastname.status_code == 422
    assert "lastname" in no_lastname.json()["errors"]
    no_company = api(
        moco_sandbox, "POST", "/contacts/people", json={"lastname": "X", "company_id": 42}
    )
    assert no_company.status_code == 422
    assert api(moco_sandbox, "PUT", "/contacts/people/424242", json={}).status_code == 404
    assert state(moco_sandbox)["contacts"] == []


def test_contacts_embed_the_current_company(moco_sandbox: RunningSandbox) -> None:
    seed(
        moco_sandbox,
        companies=[{"id": 5, "name": "Alt GmbH", "type": "supplier"}],
        contacts=[
            {"id": 1, "lastname": "Keller", "company_id": 5, "updated_at": "2023-01-01T00:00:00Z"}
        ],
    )
    assert api(moco_sandbox, "PUT", "/companies/5", json={"name": "Neu GmbH"}).status_code == 200
    contact = api(moco_sandbox, "GET", "/contacts/people/1").json()
    assert contact["company"] == {"id": 5, "type": "supplier", "name": "Neu GmbH"}
    assert contact["updated_at"] == "2023-01-01T00:00:00Z"


def test_company_shapes_archive_and_delete(moco_sandbox: RunningSandbox) -> None:
    shapes = {}
    for ctype in ("customer", "supplier", "organization"):
        response = api(
            moco_sandbox, "POST", "/companies", json={"name": f"A {ctype}", "type": ctype}
        )
        assert response.status_code == 200
        shapes[ctype] = response.json()
    assert shapes["customer"]["identifier"] and shapes["customer"]["currency"] == "EUR"
    assert shapes["supplier"]["iban"] is None and "identifier" not in shapes["supplier"]
    assert "identifier" not in shapes["organization"] and "iban" not in shapes["organization"]
    assert shapes["organization"]["email"] is None and shapes["organization"]["phone"] == ""
    assert api(moco_sandbox, "POST", "/companies", json={"name": "X"}).status_code == 422

    cid = shapes["supplier"]["id"]
    seed(moco_sandbox, companies=[{**shapes["supplier"], "updated_at": "2020-01-01T00:00:00Z"}])
    archived = api(moco_sandbox, "PUT", f"/companies/{cid}/archive").json()
    assert archived["active"] is False and TS.match(archived["archived_on"])
    assert archived["updated_at"] > "2020-01-01T00:00:00Z"
    default_ids = {c["id"] for c in read_all(moco_sandbox, "/companies")}
    all_ids = {c["id"] for c in read_all(moco_sandbox, "/companies", include_archived="true")}
    assert cid not in default_ids and cid in all_ids and len(all_ids) == 3
    suppliers = read_all(moco_sandbox, "/companies", include_archived="true", type="supplier")
    assert [c["id"] for c in suppliers] == [cid]
    restored = api(moco_sandbox, "PUT", f"/companies/{cid}/unarchive").json()
    assert restored["active"] is True and restored["archived_on"] is None

    deleted = api(moco_sandbox, "DELETE", f"/companies/{cid}")
    assert deleted.status_code == 200 and deleted.content == b""
    assert deleted.headers["Content-Type"].startswith("application/json")
    assert api(moco_sandbox, "GET", f"/companies/{cid}").status_code == 404


def test_comments_filters_html_and_204_delete(moco_sandbox: RunningSandbox) -> None:
    seed(
        moco_sandbox,
        contacts=[{"id": 1, "lastname": "A"}, {"id": 2, "lastname": "B"}],
        companies=[{"id": 9, "name": "C AG"}],
        comments=[
            {
                "id": 50,
                "commentable_type": "Company",
                "commentable_id": 9,
                "text": "Firma angelegt.",
                "manual": False,
            }
        ],
    )
    note = api(
        moco_sandbox,
        "POST",
        "/comments",
        json={
            "commentable_type": "Contact",
            "commentable_id": 1,
            "text": '<div class="x">Hallo <strong>Zoë</strong><br><script>alert(1)</script>'
            "<ul><li>eins</li></ul><span>zwei</span></div>",
        },
    )
    assert note.status_code == 200
    body = note.json()
    assert list(body) == [
        "id",
        "commentable_id",
        "commentable_type",
        "text",
        "manual",
        "created_at",
        "updated_at",
        "user",
    ]
    assert body["text"] == "<div>Hallo <strong>Zoë</strong><br><ul><li>eins</li></ul>zwei</div>"
    assert body["manual"] is True
    other = api(
        moco_sandbox,
        "POST",
        "/comments",
        json={"commentable_type": "Contact", "commentable_id": 2, "text": "<div>B</div>"},
    ).json()
    missing = api(
        moco_sandbox,
        "POST",
        "/comments",
        json={"commentable_type": "Contact", "commentable_id": 3, "text": "x"},
    )
    assert missing.status_code == 422

    def ids(**params: Any) -> list[int]:
        return [c["id"] for c in read_all(moco_sandbox, "/comments", **params)]

    assert set(ids(commentable_type="Contact")) == {body["id"], other["id"]}
    assert ids(commentable_type="Contact", commentable_id=2) == [other["id"]]
    assert ids(commentable_type="Customer") == [50]  # deprecated alias of Company
    assert ids(manual="false") == [50]
    assert set(ids(manual="true")) == {body["id"], other["id"]}

    edited = api(moco_sandbox, "PUT", f"/comments/{other['id']}", json={"text": "<div>B2</div>"})
    assert edited.json()["text"] == "<div>B2</div>"
    assert api(moco_sandbox, "DELETE", "/comments/50").status_code == 403  # system comment
    deleted = api(moco_sandbox, "DELETE", f"/comments/{other['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert api(moco_sandbox, "GET", f"/comments/{other['id']}").status_code == 404


# --- to-dos --------------------------------------------------------------------------------------


def test_todos_are_read_only_and_ignore_updated_after_and_ids(moco_sandbox: RunningSandbox) -> None:
    seed(
        moco_sandbox,
        contacts=[{"id": 1, "firstname": "Zoë", "lastname": "Lefèvre"}],
        todos=[
            {
                "id": 1,
                "title": "Angebot nachfassen",
                "todoable_type": "Contact",
                "todoable_id": 1,
                "updated_at": "2022-01-01T00:00:00Z",
            },
            {
                "id": 2,
                "title": "Send contract",
                "todoable_type": "Deal",
                "todoable_id": 77,
                "todoable_description": "Website Relaunch",
                "completed": True,
                "completed_at": "2023-01-01T00:00:00Z",
                "updated_at": "2023-01-01T00:00:00Z",
            },
        ],
    )
    assert api(moco_sandbox, "POST", "/todos", json={"title": "x"}).status_code in (404, 405)
    assert api(moco_sandbox, "PUT", "/todos/1", json={"title": "x"}).status_code in (404, 405)
    assert api(moco_sandbox, "DELETE", "/todos/1").status_code in (404, 405)

    everything = read_all(moco_sandbox, "/todos")
    assert [t["id"] for t in everything] == [1, 2]
    assert everything[0]["todoable_description"] == "Zoë Lefèvre"
    assert list(everything[1]) == [
        "id",
        "title",
        "due_date",
        "completed_at",
        "completed",
        "personal",
        "todoable_id",
        "todoable_type",
        "todoable_description",
        "created_by",
        "assigned_to",
        "created_at",
        "updated_at",
    ]
    filtered = api(
        moco_sandbox, "GET", "/todos", params={"updated_after": "2030-01-01T00:00:00Z", "ids": "2"}
    )
    assert filtered.headers["X-Total"] == "2"
    assert [t["id"] for t in read_all(moco_sandbox, "/todos", completed="true")] == [2]
    assert [t["id"] for t in read_all(moco_sandbox, "/todos", term="angebot")] == [1]
    assert api(moco_sandbox, "GET", "/todos/2").json()["completed_at"] == "2023-01-01T00:00:00Z"


def test_sandbox_todo_routes_change_todos_and_bump_updated_at(moco_sandbox: RunningSandbox) -> None:
    seed(moco_sandbox, contacts=[{"id": 1, "lastname": "Keller"}])
    base = f"{moco_sandbox.url}/_sandbox/todos"
    created = requests.post(
        base,
        json={
            "title": "Rückruf",
            "todoable_type": "Contact",
            "todoable_id": 1,
            "due_date": "2026-02-15",
        },
        timeout=5,
    )
    assert created.status_code == 200
    todo = created.json()
    assert todo["due_date"] == "2026-02-15T00:00:00Z" and todo["completed"] is False
    assert todo["todoable_description"] == "Keller"
    seed(moco_sandbox, todos=[{**todo, "updated_at": "2021-01-01T00:00:00Z"}])

    done = requests.put(f"{base}/{todo['id']}", json={"completed": True}, timeout=5).json()
    assert done["completed"] is True and TS.match(done["completed_at"])
    assert done["updated_at"] > "2021-01-01T00:00:00Z"
    assert api(moco_sandbox, "GET", f"/todos/{todo['id']}").json() == done
    assert (
        requests.put(f"{base}/{todo['id']}", json={"colour": "red"}, timeout=5).status_code == 422
    )
    assert requests.delete(f"{base}/{todo['id']}", timeout=5).status_code == 204
    assert api(moco_sandbox, "GET", f"/todos/{todo['id']}").status_code == 404


# --- rate limit ----------------------------------------------------------------------------------


def test_rate_limit_answers_429_and_recovers_after_the_window(
    moco_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clock = FakeClock()  # the burst stays inside the window however slow the machine is
    sandbox = moco_sandbox_factory(rate_limit=5, rate_window=1.0, clock=clock)
    codes = [api(sandbox, "GET", "/session").status_code for _ in range(5)]
    limited = api(sandbox, "GET", "/session")
    assert codes == [200] * 5
    assert limited.status_code == 429
    assert limited.json() == {"message": "Too many requests"}
    assert "Retry-After" not in limited.headers
    other_key = requests.get(
        f"{sandbox.url}/api/v1/session", timeout=5, headers={"Authorization": "Bearer other"}
    )
    assert other_key.status_code == 401  # counted per key: another key is not limited
    assert requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).status_code == 200
    clock.advance(0.999)
    assert api(sandbox, "GET", "/session").status_code == 429  # not before the window is over
    clock.advance(0.001)
    assert api(sandbox, "GET", "/session").status_code == 200


def test_config_changes_rate_limit_and_key_and_refuses_unknown_settings(
    moco_sandbox: RunningSandbox,
) -> None:
    config = f"{moco_sandbox.url}/_sandbox/config"
    assert (
        requests.post(config, json={"api_key": "new-key", "rate_limit": 1}, timeout=5).status_code
        == 200
    )
    assert api(moco_sandbox, "GET", "/session").status_code == 401
    assert (
        requests.get(
            f"{moco_sandbox.url}/api/v1/session",
            timeout=5,
            headers={"Authorization": "Bearer new-key"},
        ).status_code
        == 200
    )
    assert (
        requests.get(
            f"{moco_sandbox.url}/api/v1/session",
            timeout=5,
            headers={"Authorization": "Bearer new-key"},
        ).status_code
        == 429
    )
    refused = requests.post(config, json={"rate_limit": 9, "colour": "red"}, timeout=5)
    assert refused.status_code == 422


# --- seed and state ------------------------------------------------------------------------------


def test_seed_fills_moco_defaults_and_state_round_trips(
    moco_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    first = moco_sandbox_factory(rate_limit=0)
    counts = seed(
        first,
        companies=[{"id": 7, "name": "Zürcher Bau AG", "type": "customer"}],
        contacts=[
            {
                "id": 3,
                "firstname": "Jürgen",
                "lastname": "Müßig",
                "company": {"id": 7, "type": "customer", "name": "stale"},
            },
            {"lastname": "Ohne Firma", "tags": ["b", "a"]},
        ],
        todos=[{"todoable_type": "Company", "todoable_id": 7, "title": "Anrufen"}],
        comments=[
            {
                "commentable_type": "Contact",
                "commentable_id": 3,
                "text": "<div>Hi</div>",
                "created_at": "2024-05-01T10:00:00Z",
            }
        ],
    )
    assert counts == {"companies": 1, "contacts": 2, "todos": 1, "comments": 1}
    stored = state(first)
    assert set(stored) == {"companies", "contacts", "todos", "comments"}
    jurgen = next(c for c in stored["contacts"] if c["id"] == 3)
    assert list(jurgen) == CONTACT_KEYS
    assert jurgen["company"] == {"id": 7, "type": "customer", "name": "Zürcher Bau AG"}
    assert jurgen["work_email"] == "" and jurgen["birthday"] is None
    assert stored["companies"][0]["identifier"] and stored["companies"][0]["active"] is True
    assert stored["todos"][0]["todoable_description"] == "Zürcher Bau AG"
    assert stored["comments"][0]["updated_at"] == "2024-05-01T10:00:00Z"
    assert all(TS.match(r["updated_at"]) for kind in stored.values() for r in kind)

    second = moco_sandbox_factory(rate_limit=0)
    seed(second, **stored)
    assert state(second) == stored

    assert requests.post(f"{second.url}/_sandbox/reset", timeout=5).status_code == 200
    assert state(second) == {"companies": [], "contacts": [], "todos": [], "comments": []}


def test_seed_refuses_what_moco_could_not_hold(moco_sandbox: RunningSandbox) -> None:
    url = f"{moco_sandbox.url}/_sandbox/seed"
    for bad in (
        {"people": []},
        {"contacts": [{"firstname": "no lastname"}]},
        {"contacts": [{"lastname": "X", "email": "typo@example.com"}]},
        {"todos": [{"title": "no target"}]},
        {"contacts": [{"lastname": "X", "updated_at": "last tuesday"}]},
        {"companies": [{"name": "Valid AG"}], "contacts": [{"lastname": ""}]},
        {"generate": {"contacts": -1}},
    ):
        response = requests.post(url, json=bad, timeout=5)
        assert response.status_code == 422, bad
        assert response.json()["message"]
    assert state(moco_sandbox) == {"companies": [], "contacts": [], "todos": [], "comments": []}


# --- generated data ------------------------------------------------------------------------------


def test_generate_is_deterministic_and_realistic() -> None:
    data = generate(400, seed=5)
    assert data == generate(400, seed=5)
    assert data != generate(400, seed=6)
    contacts, companies = data["contacts"], data["companies"]
    assert len(contacts) == 400 and len(companies) == 80
    assert all(list(c) == CONTACT_KEYS for c in contacts)
    names = {f"{c['firstname']} {c['lastname']}" for c in contacts}
    assert {"Jürgen Müßig", "Zoë Lefèvre", "Łukasz Wójcik"} <= names
    assert sum(not c["work_email"] for c in contacts) > 10
    assert sum(not c["work_phone"] and not c["mobile_phone"] for c in contacts) > 10
    assert sum(c["company"] is None for c in contacts) > 10
    emails = [c["work_email"] for c in contacts if c["work_email"]]
    assert len(emails) == len(set(emails))
    phones = [p for c in contacts for p in (c["work_phone"], c["mobile_phone"]) if p]
    assert len(phones) == len(set(phones))
    assert {t for c in contacts for t in c["tags"]} <= {
        "Christmas Card",
        "Early Adopter",
        "Influencer",
        "Key Account",
        "Lead",
        "Newsletter",
        "Partner",
        "VIP",
    }
    assert any(c["custom_properties"] for c in contacts)
    assert {c["type"] for c in companies} == {"customer", "supplier", "organization"}
    assert any(not c["active"] for c in companies)
    todo_types = {t["todoable_type"] for t in data["todos"]}
    assert {"Contact", "Company", "Deal", "Assignment"} <= todo_types
    assert {True, False} == {t["completed"] for t in data["todos"]}
    assert all((t["completed_at"] is not None) == t["completed"] for t in data["todos"])
    contact_notes = [c["text"] for c in data["comments"] if c["commentable_type"] == "Contact"]
    assert any("<strong>" in t for t in contact_notes)
    assert any("<ul><li>" in t for t in contact_notes)
    assert {c["commentable_type"] for c in data["comments"]} - {"Contact"}
    for kind in data.values():
        ids = [r["id"] for r in kind]
        assert len(ids) == len(set(ids))
        assert all(TS.match(r["created_at"]) and r["updated_at"] >= r["created_at"] for r in kind)


def test_generated_data_through_seed_pages_fast(
    moco_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    """Paging 20,000 generated contacts is about as fast as paging 100: each page is timed
    against a page of a tiny sandbox, in turns, so that a loaded machine slows both alike."""
    sandbox = moco_sandbox_factory(rate_limit=0)
    tiny = moco_sandbox_factory(rate_limit=0)
    counts = seed(sandbox, generate={"contacts": 20_000, "seed": 1})
    assert counts["contacts"] == 20_000
    seed(tiny, generate={"contacts": 100, "seed": 1})
    session = requests.Session()
    session.headers.update(AUTH)
    query = "updated_after=2021-01-01T00:00:00Z"
    url: str | None = f"{sandbox.url}/api/v1/contacts/people?{query}"
    records, times, tiny_times = 0, [], []
    for _ in range(30):
        assert url is not None
        started = time.perf_counter()
        response = session.get(url, timeout=10)
        times.append(time.perf_counter() - started)
        records += len(response.json())
        url = response.links.get("next", {}).get("url")
        started = time.perf_counter()
        tiny_page = session.get(f"{tiny.url}/api/v1/contacts/people?{query}", timeout=10)
        tiny_times.append(time.perf_counter() - started)
        assert len(tiny_page.json()) == 100
    assert records == 3000
    # Measured: about 1x with the list cache, about 10x when every page filters 20,000 records.
    ratio = statistics.median(times) / statistics.median(tiny_times)
    assert ratio < 4, f"a page of 20,000 records costs {ratio:.1f}x a page of 100"


# --- command line --------------------------------------------------------------------------------


def test_command_line_serves_on_a_free_port() -> None:
    command = [sys.executable, "-m", "sandbox", "moco", "--port", "0", "--generate", "25"]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        url = match.group(0)
        assert int(match.group(1)) > 0
        session = requests.get(f"{url}/api/v1/session", headers=AUTH, timeout=5)
        assert session.status_code == 200 and session.json()["id"] == 933662266
        listed = requests.get(f"{url}/api/v1/contacts/people", headers=AUTH, timeout=5)
        assert listed.headers["X-Total"] == "25"
    finally:
        process.kill()
        process.wait(timeout=5)
