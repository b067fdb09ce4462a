"""The MOCO writes target-moco needs: people, person lookups, taggings and comments on people."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

from tests.sandbox.test_moco_sandbox import AUTH, CONTACT_KEYS, api, read_all, seed

if TYPE_CHECKING:
    from sandbox.server import RunningSandbox


def create(sandbox: RunningSandbox, **fields: Any) -> dict[str, Any]:
    response = api(sandbox, "POST", "/contacts/people", json={"gender": "U", **fields})
    assert response.status_code == 200, response.text
    return response.json()


def tagging(sandbox: RunningSandbox, method: str, path: str, body: Any = None) -> Any:
    response = api(sandbox, method, f"/taggings/{path}", json=body)
    assert response.status_code == 200, (method, path, response.text)
    assert not {"X-Page", "X-Per-Page", "X-Total", "Link"} & set(response.headers)
    return response.json()


# --- people ----------------------------------------------------------------------------------


def test_create_needs_lastname_and_gender_and_answers_the_full_contact(
    moco_sandbox: RunningSandbox,
) -> None:
    empty = api(moco_sandbox, "POST", "/contacts/people", json={"firstname": "Ana"})
    assert empty.status_code == 422
    assert empty.json() == {
        "errors": {"lastname": ["can't be blank"], "gender": ["can't be blank"]}
    }
    wrong = api(moco_sandbox, "POST", "/contacts/people", json={"lastname": "X", "gender": "X"})
    assert wrong.status_code == 422
    assert wrong.json() == {"errors": {"gender": ["is not included in the list"]}}
    not_json = api(moco_sandbox, "POST", "/contacts/people", json=["lastname"])
    assert (not_json.status_code, not_json.json()) == (422, {"message": "Invalid payload"})
    assert read_all(moco_sandbox, "/contacts/people") == []

    made = api(moco_sandbox, "POST", "/contacts/people", json={"name": "Alias", "gender": "F"})
    assert made.status_code == 200  # 200, not 201; ``name`` is OA's alias of lastname
    contact = made.json()
    assert list(contact) == CONTACT_KEYS
    assert (contact["lastname"], contact["gender"], contact["firstname"]) == ("Alias", "F", "")
    assert contact["user"]["id"] == 933662266  # the API key's user is responsible by default


def test_updates_are_partial_merge_custom_properties_and_replace_tags(
    moco_sandbox: RunningSandbox,
) -> None:
    contact = create(
        moco_sandbox,
        lastname="Keller",
        work_email="k@example.com",
        tags=["Alt"],
        custom_properties={"Quelle": "Messe", "HL-ID": "abc"},
    )
    put = api(
        moco_sandbox,
        "PUT",
        f"/contacts/people/{contact['id']}",
        json={"tags": ["Neu"], "custom_properties": {"Quelle": "Website"}},
    ).json()
    assert put["tags"] == ["Neu"]  # PUT replaces the tag set (UNCONFIRMED in MOCO)
    assert put["custom_properties"] == {"Quelle": "Website", "HL-ID": "abc"}
    assert put["work_email"] == "k@example.com" and put["lastname"] == "Keller"
    patched = api(
        moco_sandbox, "PATCH", f"/contacts/people/{contact['id']}", json={"title": "Dr."}
    ).json()
    assert patched["title"] == "Dr." and patched["tags"] == ["Neu"]
    too_big = api(
        moco_sandbox,
        "PUT",
        f"/contacts/people/{contact['id']}",
        json={"custom_properties": {"Notiz": "x" * 13_000}},
    )
    assert too_big.status_code == 422
    assert "custom_properties" in too_big.json()["errors"]
    assert api(moco_sandbox, "GET", f"/contacts/people/{contact['id']}").json() == patched


def test_term_searches_names_work_email_and_company_but_not_home_email(
    moco_sandbox: RunningSandbox,
) -> None:
    seed(moco_sandbox, companies=[{"id": 5, "name": "Zürcher Bau AG", "type": "customer"}])
    zoe = create(
        moco_sandbox,
        firstname="Zoë",
        lastname="Lefèvre",
        work_email="zoe@example.com",
        home_email="zoe.privat@example.net",
        company_id=5,
    )
    other = create(moco_sandbox, firstname="Max", lastname="Zoller", work_email="max@other.org")

    def term(value: str) -> set[int]:
        return {c["id"] for c in read_all(moco_sandbox, "/contacts/people", term=value)}

    assert term("ZOE@EXAMPLE.COM") == {zoe["id"]}  # work_email, any case
    assert term("lefèvre") == {zoe["id"]}
    assert term("Zoë Lefèvre") == {zoe["id"]}
    assert term("Lefèvre Zoë") == {zoe["id"]}  # every word, in any order
    assert term("bau") == {zoe["id"]}  # the company's name
    assert term("zo") == {zoe["id"], other["id"]}
    assert term("zoe.privat@example.net") == set()  # home_email is not searched
    assert term("example.net") == set()
    assert term("Zoë Zoller") == set()


def test_phone_looks_up_work_and_mobile_phone_and_ids_filter(
    moco_sandbox: RunningSandbox,
) -> None:
    work = create(moco_sandbox, lastname="Arbeit", work_phone="+41 44 123 45 67")
    mobile = create(moco_sandbox, lastname="Handy", mobile_phone="+41 79 765 43 21")
    create(moco_sandbox, lastname="Fax", work_fax="+41 44 123 45 67")

    def phone(value: str) -> list[int]:
        return [c["id"] for c in read_all(moco_sandbox, "/contacts/people", phone=value)]

    assert phone("+41441234567") == [work["id"]]  # digits compared, the fax is not searched
    assert phone("+41 (79) 765-43-21") == [mobile["id"]]
    assert phone("0000") == []
    ids = read_all(moco_sandbox, "/contacts/people", ids=f"{mobile['id']},{work['id']},1")
    assert [c["id"] for c in ids] == [work["id"], mobile["id"]]  # the list's own order


# --- taggings --------------------------------------------------------------------------------


def test_taggings_add_replace_and_remove_names_and_answer_the_sorted_list(
    moco_sandbox: RunningSandbox,
) -> None:
    seed(
        moco_sandbox,
        contacts=[
            {"id": 7, "lastname": "Keller", "tags": ["VIP"], "updated_at": "2022-01-01T00:00:00Z"}
        ],
    )
    assert tagging(moco_sandbox, "GET", "Contact/7") == ["VIP"]
    added = tagging(moco_sandbox, "PATCH", "Contact/7", {"tags": ["lead", "VIP", "Alpha", "lead"]})
    assert added == ["Alpha", "VIP", "lead"]  # duplicates ignored, unknown names created
    contact = api(moco_sandbox, "GET", "/contacts/people/7").json()
    assert contact["tags"] == added
    assert contact["updated_at"] > "2022-01-01T00:00:00Z"  # a tag change bumps updated_at

    assert tagging(moco_sandbox, "PATCH", "Contact/7", {"tags": "vip, Beta"}) == [
        "Alpha",
        "Beta",
        "VIP",
        "lead",
        "vip",  # names are case-sensitive as stored (UNCONFIRMED in MOCO)
    ]
    assert tagging(moco_sandbox, "DELETE", "Contact/7", {"tags": ["vip", "absent"]}) == [
        "Alpha",
        "Beta",
        "VIP",
        "lead",
    ]
    assert tagging(moco_sandbox, "PUT", "Contact/7", {"tags": ["Neu"]}) == ["Neu"]
    before = api(moco_sandbox, "GET", "/contacts/people/7").json()
    seed(moco_sandbox, contacts=[{**before, "updated_at": "2023-01-01T00:00:00Z"}])
    assert tagging(moco_sandbox, "PATCH", "Contact/7", {"tags": ["Neu"]}) == ["Neu"]
    unchanged = api(moco_sandbox, "GET", "/contacts/people/7").json()
    assert unchanged["updated_at"] == "2023-01-01T00:00:00Z"  # nothing changed, nothing bumped
    assert tagging(moco_sandbox, "PUT", "Contact/7", {"tags": []}) == []
    assert tagging(moco_sandbox, "GET", "Contact/7") == []


def test_taggings_on_companies_and_records_the_sandbox_does_not_store(
    moco_sandbox: RunningSandbox,
) -> None:
    seed(moco_sandbox, companies=[{"id": 9, "name": "Beispiel AG", "type": "organization"}])
    assert tagging(moco_sandbox, "PATCH", "Company/9", {"tags": ["Partner"]}) == ["Partner"]
    company = api(moco_sandbox, "GET", "/companies/9").json()
    assert company["tags"] == company["labels"] == ["Partner"]
    for entity in ("Project", "Deal", "Purchase", "Invoice", "Offer", "User"):
        assert tagging(moco_sandbox, "PATCH", f"{entity}/1", {"tags": ["b", "a"]}) == ["a", "b"]
    assert tagging(moco_sandbox, "GET", "Deal/1") == ["a", "b"]
    assert tagging(moco_sandbox, "GET", "Deal/2") == []


def test_taggings_refuse_unknown_entities_records_and_bodies(moco_sandbox: RunningSandbox) -> None:
    seed(moco_sandbox, contacts=[{"id": 7, "lastname": "Keller"}])
    for entity in ("Todo", "contact", "Tag", "Comment"):
        response = api(moco_sandbox, "GET", f"/taggings/{entity}/7")
        assert response.status_code == 400, entity
        assert "Contact" in response.json()["message"]
    assert api(moco_sandbox, "GET", "/taggings/Contact/8").status_code == 404
    assert api(moco_sandbox, "PATCH", "/taggings/Company/7", json={"tags": []}).status_code == 404
    for body in ({}, {"tags": 5}, {"tags": [1, 2]}, {"labels": ["x"]}):
        response = api(moco_sandbox, "PATCH", "/taggings/Contact/7", json=body)
        assert response.status_code == 400, body
        assert response.json()["message"]
    unauthorized = requests.get(f"{moco_sandbox.url}/api/v1/taggings/Contact/7", timeout=5)
    assert unauthorized.status_code == 401
    assert tagging(moco_sandbox, "GET", "Contact/7") == []


# --- comments on people ----------------------------------------------------------------------


def test_comments_on_people_are_sanitised_dated_edited_and_deleted(
    moco_sandbox: RunningSandbox,
) -> None:
    seed(
        moco_sandbox,
        contacts=[{"id": 7, "lastname": "Keller"}],
        comments=[
            {
                "id": 50,
                "commentable_type": "Contact",
                "commentable_id": 7,
                "text": "Kontakt angelegt.",
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
            "commentable_id": 7,
            "text": '<p>Termin <a href="https://x.org">hier</a></p><h1>Titel</h1>'
            "<div><em>kursiv</em> &amp; <u>unter</u><pre>code</pre><ol><li>1</li></ol></div>",
            "created_at": "2018-05-09T05:40:06",
        },
    )
    assert note.status_code == 200
    body = note.json()
    # Other tags go, their text stays (UNCONFIRMED in MOCO); allowed tags keep no attributes.
    assert body["text"] == (
        "Termin hierTitel<div><em>kursiv</em> &amp; <u>unter</u><pre>code</pre>"
        "<ol><li>1</li></ol></div>"
    )
    assert body["created_at"] == "2018-05-09T05:40:06Z"  # migrated date kept
    assert body["updated_at"] > body["created_at"] and body["manual"] is True
    assert body["user"]["id"] == 933662266

    edited = api(
        moco_sandbox, "PUT", f"/comments/{body['id']}", json={"text": "<span>neu</span><br/>"}
    )
    assert edited.status_code == 200 and edited.json()["text"] == "neu<br>"
    patched = api(moco_sandbox, "PATCH", f"/comments/{body['id']}", json={"text": "<div>z</div>"})
    assert patched.json()["text"] == "<div>z</div>"
    blank = api(moco_sandbox, "PUT", f"/comments/{body['id']}", json={"text": " "})
    assert blank.status_code == 422

    system = api(moco_sandbox, "DELETE", "/comments/50")
    assert system.status_code == 403  # only manual comments can be deleted
    deleted = api(moco_sandbox, "DELETE", f"/comments/{body['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    left = read_all(moco_sandbox, "/comments", commentable_type="Contact", commentable_id=7)
    assert [c["id"] for c in left] == [50]
    assert requests.get(f"{moco_sandbox.url}/api/v1/comments", headers=AUTH, timeout=5).ok
