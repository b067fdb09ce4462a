"""ContactsClient against the Contacts sandbox over HTTP: every method, paging, errors, retries."""

from __future__ import annotations

import re
import socket
import time

import pytest

from contacts_api.client import DEFAULT_USER_AGENT, ContactsClient
from contacts_api.errors import (
    AuthError,
    ContactsAPIError,
    DailyQuotaExhausted,
    DuplicateContactError,
    NotFoundError,
    RateLimitError,
    TransientError,
    ValidationError,
)
from contacts_api.ratelimit import ContactsRateLimiter
from tests.timing import wait_for

from .conftest import LOCATION, configure, request_log, seed, set_faults, state

DUE = "2030-01-02T10:00:00Z"


def api_calls(sandbox, method: str | None = None, path_regex: str = "") -> list[dict]:
    return [
        e
        for e in request_log(sandbox)
        if (method is None or e["method"] == method) and re.search(path_regex, e["path"])
    ]


def test_contact_lifecycle_and_required_headers(sandbox, make_client):
    client = make_client(sandbox)
    created = client.create_contact(
        {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com", "tags": ["vip"]}
    )
    assert created["id"] and created["locationId"] == LOCATION
    assert client.get_contact(created["id"])["email"] == "ada@example.com"
    # locationId is refused on PUT by the API: the client leaves it out
    updated = client.update_contact(created["id"], {"locationId": LOCATION, "city": "London"})
    assert updated["city"] == "London"
    new, same = client.upsert_contact({"email": "ada@example.com", "lastName": "King"})
    assert (new, same["id"], same["lastName"]) == (False, created["id"], "King")
    new, other = client.upsert_contact({"email": "bob@example.com", "firstName": "Bob"})
    assert new is True and other["id"] != created["id"]
    client.delete_contact(other["id"])
    with pytest.raises(NotFoundError):
        client.get_contact(other["id"])

    for entry in request_log(sandbox):
        headers = entry["headers"]
        assert headers["version"] == "2021-07-28"
        assert headers["accept"] == "application/json"
        assert headers["user-agent"] == DEFAULT_USER_AGENT
        assert headers["authorization"] == "Bearer <redacted>"
    assert client.calls["POST /contacts/"] == 1
    assert client.calls["POST /contacts/upsert"] == 2
    assert client.calls["GET /contacts/{id}"] == 2


def test_list_contacts_follows_the_cursor_through_every_page(sandbox, make_client):
    people = [
        {
            "firstName": f"P{i}",
            "email": f"p{i}@example.com",
            "dateAdded": 1_700_000_000_000 + i * 1000,
        }
        for i in range(230)
    ]
    ids = seed(sandbox, contacts=people)["contacts"]
    client = make_client(sandbox)
    listed = [c["id"] for c in client.list_contacts(limit=100)]
    assert listed == ids  # all of them, once, in the API's order
    pages = api_calls(sandbox, "GET", "^/contacts/$")
    assert len(pages) == 3
    assert all(p["query"]["locationId"] == LOCATION for p in pages)
    assert "startAfterId" not in pages[0]["query"]
    assert pages[1]["query"]["startAfterId"] == ids[99]
    assert pages[2]["query"]["startAfterId"] == ids[199]
    assert [c["id"] for c in client.list_contacts(limit=10, query="p22")] == [
        ids[22],
        *ids[220:230],
    ]


def test_business_search_and_duplicate_lookup(sandbox, make_client):
    ids = seed(
        sandbox,
        contacts=[
            {
                "firstName": "A",
                "email": "a@example.com",
                "phone": "+14155550100",
                "businessId": "biz1",
            },
            {"firstName": "B", "email": "b@example.com", "businessId": "biz1"},
            {"firstName": "C", "email": "c@example.com"},
        ],
    )["contacts"]
    client = make_client(sandbox)
    assert {c["id"] for c in client.contacts_by_business("biz1")} == set(ids[:2])
    assert client.contacts_by_business("biz1", limit=1, skip=1)[0]["id"] in ids[:2]
    found = client.search_contacts({"pageLimit": 10, "query": "c@example.com"})
    assert found["total"] == 1 and found["contacts"][0]["id"] == ids[2]
    assert client.search_duplicate(email="A@example.com")["id"] == ids[0]
    assert client.search_duplicate(phone="+14155550100")["id"] == ids[0]
    assert client.search_duplicate(email="nobody@example.com") is None
    with pytest.raises(ValueError, match="needs an email or a phone"):
        client.search_duplicate()


def test_tasks_notes_tags_and_appointments(sandbox, make_client):
    contact_id = seed(sandbox, contacts=[{"firstName": "T"}])["contacts"][0]
    seed(
        sandbox,
        appointments=[
            {
                "contactId": contact_id,
                "title": "Kick-off",
                "calendarId": "cal1",
                "startTime": "2030-01-02 10:00:00",
            }
        ],
    )
    client = make_client(sandbox)

    task = client.create_task(contact_id, {"title": "Call", "dueDate": DUE, "completed": False})
    assert client.list_tasks(contact_id)[0]["id"] == task["id"]
    assert client.get_task(contact_id, task["id"])["title"] == "Call"
    renamed = client.update_task(contact_id, task["id"], {"title": "Call back"})
    assert renamed["title"] == "Call back"
    assert client.set_task_completed(contact_id, task["id"])["completed"] is True
    assert client.set_task_completed(contact_id, task["id"], False)["completed"] is False
    client.delete_task(contact_id, task["id"])
    with pytest.raises(NotFoundError):
        client.get_task(contact_id, task["id"])

    note = client.create_note(contact_id, {"body": "Met at the fair"})
    assert client.list_notes(contact_id)[0]["id"] == note["id"]
    assert client.get_note(contact_id, note["id"])["body"] == "Met at the fair"
    assert client.update_note(contact_id, note["id"], {"body": "Met twice"})["body"] == "Met twice"
    client.delete_note(contact_id, note["id"])
    assert client.list_notes(contact_id) == []
    with pytest.raises(NotFoundError):
        client.get_note(contact_id, note["id"])

    assert set(client.add_tags(contact_id, ["alpha", "beta"])) == {"alpha", "beta"}
    assert client.remove_tags(contact_id, ["alpha"]) == ["beta"]
    assert [e["title"] for e in client.list_appointments(contact_id)] == ["Kick-off"]
    assert client.calls["POST /contacts/{id}/notes"] == 1
    assert client.calls["PUT /contacts/{id}/tasks/{taskId}/completed"] == 2


def test_ids_are_quoted_and_empty_ids_refused_before_sending(sandbox, make_client):
    client = make_client(sandbox)
    with pytest.raises(NotFoundError):
        client.get_contact("a/b")
    assert api_calls(sandbox)[-1]["path"] == "/contacts/a%2Fb"
    before = len(request_log(sandbox))
    with pytest.raises(ValueError, match="must be a non-empty string"):
        client.get_contact("")
    assert len(request_log(sandbox)) == before


def test_typed_errors_not_found_duplicate_validation(sandbox, make_client):
    client = make_client(sandbox)
    with pytest.raises(NotFoundError) as missing:
        client.get_contact("doesNotExist00000000")
    assert missing.value.status == 400 and "not found" in str(missing.value)

    first = client.create_contact({"email": "dup@example.com", "firstName": "One"})
    with pytest.raises(DuplicateContactError) as dup:
        client.create_contact({"email": "DUP@example.com", "firstName": "Two"})
    assert dup.value.contact_id == first["id"]
    assert dup.value.matching_field == "email"
    assert (dup.value.method, dup.value.path, dup.value.status) == ("POST", "/contacts/", 400)

    with pytest.raises(ValidationError) as invalid:
        client.create_contact({"email": "not-an-email", "dateOfBirth": "31st of May"})
    assert invalid.value.status == 422
    assert "email must be an email" in invalid.value.messages
    assert any(m.startswith("dateOfBirth") for m in invalid.value.messages)
    assert len(invalid.value.messages) == 2


def test_auth_errors_say_what_to_do(contacts_sandbox_factory, make_client):
    sandbox = contacts_sandbox_factory(rate_limit=100_000, extra_locations=("other-location",))
    with pytest.raises(AuthError) as refused:
        make_client(sandbox, token="wrong-token").get_contact("x")
    assert refused.value.status == 401
    assert "Private Integrations" in str(refused.value)
    assert "wrong-token" not in str(refused.value)
    # the main location's token used for another location: 403
    with pytest.raises(AuthError) as forbidden:
        list(make_client(sandbox, location_id="other-location").list_contacts())
    assert forbidden.value.status == 403
    assert "location_id" in str(forbidden.value)


def test_rate_limit_error_after_the_retries(sandbox, make_client):
    set_faults(sandbox, {"kind": "status", "status": 429, "path": "^/contacts/x1$", "times": -1})
    client = make_client(sandbox, max_tries=3)
    with pytest.raises(RateLimitError) as limited:
        client.get_contact("x1")
    assert limited.value.status == 429 and "3 tries" in str(limited.value)
    assert len(api_calls(sandbox, "GET", "^/contacts/x1$")) == 3


def test_retry_after_is_honoured(sandbox, make_client):
    contact_id = seed(sandbox, contacts=[{"firstName": "R"}])["contacts"][0]
    set_faults(sandbox, {"kind": "status", "status": 429, "headers": {"Retry-After": "1"}})
    client = make_client(sandbox)
    started = time.monotonic()
    assert client.get_contact(contact_id)["id"] == contact_id
    assert time.monotonic() - started >= 0.95
    assert [e["status"] for e in api_calls(sandbox)] == [429, 200]


def test_safe_calls_retry_5xx_reset_and_timeouts(sandbox, make_client):
    contact_id = seed(sandbox, contacts=[{"firstName": "S"}])["contacts"][0]
    client = make_client(sandbox, timeout=0.5)
    set_faults(sandbox, {"kind": "status", "status": 503, "times": 2})
    assert client.get_contact(contact_id)["id"] == contact_id
    set_faults(sandbox, {"kind": "reset", "times": 1})
    assert client.update_contact(contact_id, {"city": "Oslo"})["city"] == "Oslo"
    set_faults(sandbox, {"kind": "slow", "delay": 1.5, "times": 1})
    assert client.add_tags(contact_id, ["t"]) == ["t"]
    set_faults(sandbox, {"kind": "status", "status": 500, "times": -1})
    with pytest.raises(TransientError) as failing:
        client.get_contact(contact_id)
    assert failing.value.ambiguous is False and failing.value.status == 500


@pytest.mark.parametrize("kind", ["commit_then_status", "commit_then_slow", "reset"])
def test_create_is_not_repeated_after_it_may_have_been_sent(sandbox, make_client, kind):
    client = make_client(sandbox, timeout=0.5)
    set_faults(
        sandbox,
        {"kind": kind, "method": "POST", "path": "^/contacts/$", "status": 502, "delay": 1.5},
    )
    with pytest.raises(TransientError) as lost:
        client.create_contact({"email": "maybe@example.com"})
    assert lost.value.ambiguous is True
    assert "look for the object" in str(lost.value)
    assert client.calls["POST /contacts/"] == 1  # never sent twice
    if kind == "commit_then_slow":
        # The sandbox logs the stalled request once its answer is finally sent; wait for that,
        # so that the spec check of the sandbox's log after the test sees it too.
        assert wait_for(lambda: len(api_calls(sandbox, "POST", "^/contacts/$")) == 1)
    stored = [c for c in state(sandbox)["contacts"] if c.get("email") == "maybe@example.com"]
    assert len(stored) == (0 if kind == "reset" else 1)


def test_task_and_note_creates_are_ambiguous_on_5xx(sandbox, make_client):
    contact_id = seed(sandbox, contacts=[{"firstName": "N"}])["contacts"][0]
    client = make_client(sandbox)
    set_faults(sandbox, {"kind": "commit_then_status", "method": "POST", "status": 500, "times": 2})
    with pytest.raises(TransientError) as task_lost:
        client.create_task(contact_id, {"title": "x", "dueDate": DUE, "completed": False})
    with pytest.raises(TransientError) as note_lost:
        client.create_note(contact_id, {"body": "x"})
    assert task_lost.value.ambiguous and note_lost.value.ambiguous
    assert len(api_calls(sandbox, "POST")) == 2


def test_create_is_retried_on_429(sandbox, make_client):
    client = make_client(sandbox)
    set_faults(sandbox, {"kind": "status", "status": 429, "method": "POST", "times": 2})
    created = client.create_contact({"email": "once@example.com"})
    assert [c["id"] for c in state(sandbox)["contacts"]] == [created["id"]]
    assert [e["status"] for e in api_calls(sandbox, "POST")] == [429, 429, 201]


def test_connection_refused_is_retried_even_for_creates(make_client, sandbox):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    client = ContactsClient(
        f"http://127.0.0.1:{port}",
        LOCATION,
        make_client(sandbox).auth,
        limiter=ContactsRateLimiter(1000, 10.0),
        max_tries=3,
        retry_base_seconds=0.01,
    )
    with pytest.raises(TransientError) as refused:
        client.create_contact({"email": "x@example.com"})
    assert refused.value.ambiguous is False
    assert client.calls["POST /contacts/"] == 3
    assert "could not connect" in str(refused.value)


def test_daily_quota_stops_before_sending(sandbox, make_client):
    contact_id = seed(sandbox, contacts=[{"firstName": "D"}])["contacts"][0]
    configure(sandbox, daily_limit=1000, daily_used=1000 - 101)
    client = make_client(sandbox, limiter=ContactsRateLimiter(100, 10.0, daily_reserve=100))
    client.get_contact(contact_id)  # answers Daily-Remaining: 100, the reserve
    sent = len(request_log(sandbox))
    with pytest.raises(DailyQuotaExhausted) as exhausted:
        client.get_contact(contact_id)
    assert exhausted.value.daily_remaining == 100
    assert "Nothing was sent" in str(exhausted.value)
    assert len(request_log(sandbox)) == sent


def test_daily_quota_used_up_server_side_is_not_retried(sandbox, make_client):
    configure(sandbox, daily_limit=10, daily_used=10)
    client = make_client(sandbox, limiter=ContactsRateLimiter(100, 10.0, daily_reserve=0))
    with pytest.raises(DailyQuotaExhausted):
        client.get_contact("x")
    assert len(request_log(sandbox)) == 1


def test_unexpected_answers_are_errors(sandbox, make_client):
    client = make_client(sandbox)
    set_faults(sandbox, {"kind": "status", "status": 409, "body": {"message": "Conflict"}})
    with pytest.raises(ContactsAPIError) as conflict:
        client.get_contact("x")
    assert type(conflict.value) is ContactsAPIError and conflict.value.messages == ["Conflict"]


def test_a_retried_delete_that_finds_its_own_earlier_success_is_done(sandbox, make_client):
    ids = seed(sandbox, contacts=[{"firstName": "G"}, {"firstName": "H"}])["contacts"]
    client = make_client(sandbox)
    set_faults(sandbox, {"kind": "commit_then_status", "method": "DELETE", "status": 503})
    client.delete_contact(ids[0])  # committed, answer lost, retried: "not found" means done
    assert [e["status"] for e in api_calls(sandbox, "DELETE")] == [503, 400]
    assert [c["id"] for c in state(sandbox)["contacts"]] == [ids[1]]
    with pytest.raises(NotFoundError):
        client.delete_contact(ids[0])  # a first try that finds nothing is still an error
