"""The Contacts sandbox's data generator, and the search staying fast as the data grows."""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import requests

from sandbox.contacts import normalize_phone
from sandbox.contacts_data import APPOINTMENT_STATUSES, USER_IDS, generate
from tests.sandbox.test_contacts_sandbox import LOCATION, Api, seed, state

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import RunningSandbox

ID = re.compile(r"^[A-Za-z0-9]{20}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
WALL = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def test_same_seed_same_data_other_seed_other_data() -> None:
    assert generate(200, 7) == generate(200, 7)
    assert generate(200, 7) != generate(200, 8)
    assert generate(0, 1) == {"contacts": [], "tasks": [], "notes": [], "appointments": []}


def test_counts_and_ids() -> None:
    data = generate(400, 3)
    assert [len(data[k]) for k in ("contacts", "tasks", "notes", "appointments")] == [
        400,
        200,
        200,
        100,
    ]
    small = generate(2, 3, tasks=1, notes=0)
    assert [len(small[k]) for k in ("contacts", "tasks", "notes", "appointments")] == [2, 1, 0, 16]
    every_id = [r["id"] for kind in data.values() for r in kind]
    assert all(ID.match(i) for i in every_id) and len(set(every_id)) == len(every_id)
    contact_ids = {c["id"] for c in data["contacts"]}
    for kind in ("tasks", "notes", "appointments"):
        assert {r["contactId"] for r in data[kind]} <= contact_ids


def test_contacts_are_realistic_and_complete() -> None:
    contacts = generate(2000, 11)["contacts"]
    first = contacts[:4]
    assert [c.get("name") for c in first] == [
        "Jürgen Müßig",
        "Zoë Lefèvre",
        "Łukasz Wójcik",
        "O'Brien",
    ]
    assert "email" not in first[1] and "phone" not in first[2] and "firstName" not in first[3]
    names = " ".join(c.get("name", "") for c in contacts)
    for letter in "äöüßéèëłśżøåñçşı":
        assert letter in names.lower(), letter
    assert any(not c.get("companyName") for c in contacts)
    assert any("é" in c.get("companyName", "") or "ü" in c.get("companyName", "") for c in contacts)
    assert {t for c in contacts for t in c["tags"]} >= {"vip", "übernahme", "événement"}
    emails = [c["email"] for c in contacts if "email" in c]
    phones = [c["phone"] for c in contacts if "phone" in c]
    assert len(set(emails)) == len(emails) > 1500 and len(set(phones)) == len(phones) > 1500
    assert all(normalize_phone(p) == p for p in phones)  # stored E.164, as the API keeps them
    assert [c["dateAdded"] for c in contacts] == sorted(c["dateAdded"] for c in contacts)
    assert all(ISO.match(c["dateAdded"]) and c["dateUpdated"] >= c["dateAdded"] for c in contacts)
    updates = Counter(c["dateUpdated"] for c in contacts)
    assert max(updates.values()) > 1  # batch imports: ties for the id tie-break
    assert any(c["dnd"] for c in contacts) and any(c["customFields"] for c in contacts)
    assert {c.get("assignedTo") for c in contacts} == {None, *USER_IDS}


def test_generated_contacts_are_what_the_sandbox_stores(
    contacts_sandbox: RunningSandbox,
) -> None:
    """A generated contact seeded the ordinary way (normalised field by field) stays the same."""
    data = generate(60, 5)
    seed(contacts_sandbox, contacts=data["contacts"])
    assert state(contacts_sandbox)["contacts"] == data["contacts"]


def test_tasks_notes_and_appointments_cover_the_hard_cases() -> None:
    data = generate(500, 2)
    tasks = data["tasks"]
    assert {t["completed"] for t in tasks} == {True, False}
    assert any(t["dueDate"] >= "2027" for t in tasks) and any(t["dueDate"] < "2026" for t in tasks)
    assert all(ISO.match(t["dueDate"]) and t["dateUpdated"] >= t["dateAdded"] for t in tasks)
    assert any("body" not in t for t in tasks) and any("assignedTo" not in t for t in tasks)
    bodies = [n["body"] for n in data["notes"]]
    assert any("<script>" in b for b in bodies) and any("&amp;" in b for b in bodies)
    assert any("🎉" in b for b in bodies) and any("<p>" in b for b in bodies)
    events = data["appointments"]
    assert all(WALL.match(e["startTime"]) and e["endTime"] > e["startTime"] for e in events)
    for status in APPOINTMENT_STATUSES:
        starts = [e["startTime"] for e in events if e["appointmentStatus"] == status]
        assert any(s < "2023" for s in starts) and any(s >= "2028" for s in starts), status
    assert all(e["dateUpdated"] >= e["dateAdded"] for e in events)


def test_generator_is_fast() -> None:
    started = time.perf_counter()
    generate(10_000, 1)
    # ~0.6 s on a small shared 2-core machine; a quadratic generator would take minutes
    assert time.perf_counter() - started < 10


def _seconds_per_page(sandbox: RunningSandbox, api: Api, contacts: int) -> float:
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=30).raise_for_status()
    seed(sandbox, generate={"contacts": contacts, "seed": 1, "tasks": 0, "notes": 0})
    body: dict[str, Any] = {
        "locationId": LOCATION,
        "pageLimit": 50,
        "sort": [{"field": "dateUpdated", "direction": "asc"}],
        "filters": [
            {"field": "dateUpdated", "operator": "range", "value": {"gte": "2020-01-01T00:00:00Z"}}
        ],
    }
    first = api("POST", "/contacts/search", json=body).json()  # builds the sorted view
    after = first["contacts"][-1]["searchAfter"]
    started = time.perf_counter()
    pages = 20
    for _ in range(pages):
        page = api("POST", "/contacts/search", json={**body, "searchAfter": after}).json()
        assert len(page["contacts"]) == 50 and page["total"] == contacts
        after = page["contacts"][-1]["searchAfter"]
    return (time.perf_counter() - started) / pages


def test_search_after_pages_cost_the_same_at_any_size(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    """A page of 50 out of 20,000 contacts costs about what it costs out of 2,000: the search
    reads a sorted view kept on writes, never sorting or filtering all contacts per request."""
    sandbox = contacts_sandbox_factory(rate_limit=100_000)
    api = Api(sandbox)
    small = min(_seconds_per_page(sandbox, api, 2_000) for _ in range(2))
    large = min(_seconds_per_page(sandbox, api, 20_000) for _ in range(2))
    # a per-request sort or scan of every contact would make this ratio ~10 or more
    assert large < small * 3 + 0.005, (small, large)
