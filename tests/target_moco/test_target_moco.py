"""target-moco as a real process on Singer input, against the MOCO sandbox over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.target_moco.singer import (
    appointment,
    clear_log,
    contact,
    messages,
    moco_faults,
    moco_seed,
    moco_state,
    moco_writes,
    note,
    run_target_moco,
    task,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def moco(moco_sandbox_factory):
    return moco_sandbox_factory(rate_limit=100_000)


def base_config(moco, tmp_path: Path) -> dict[str, Any]:
    return {
        "api_key": "sandbox-key",
        "base_url": moco.url,
        "location_id": "sandbox-location",
        "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}",
        "request_timeout": 2,
        "rate_limit_requests": 100_000,
        "rate_limit_window_seconds": 1,
        "timezone": "Europe/Berlin",
    }


@pytest.fixture(params=["never", "always"])
def config(moco, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    # Every rule holds whether new contacts are matched by search or by the people directory.
    return {**base_config(moco, tmp_path), "people_directory": request.param}


#: People in MOCO before the CRM's contacts 1 and 2 arrive: one by e-mail, one by phone.
KNOWN_PEOPLE = [
    {
        "id": 501,
        # MOCO's term search skips home_email: such a person is found by name.
        "firstname": "Vorname1",
        "lastname": "Nachname1",
        "gender": "F",
        "home_email": "CRM1@example.com",
        "tags": ["Bestand"],
    },
    {
        "id": 502,
        "firstname": "P",
        "lastname": "Q",
        "gender": "M",
        "mobile_phone": "040 777 2002",
    },
]


def people_by_email(url: str) -> dict[str, dict[str, Any]]:
    return {p["work_email"] or p["home_email"]: p for p in moco_state(url)["contacts"]}


def comments_of(url: str, person_id: int) -> list[str]:
    return [
        c["text"]
        for c in moco_state(url)["comments"]
        if c["commentable_type"] == "Contact" and c["commentable_id"] == person_id
    ]


def test_contacts_notes_tasks_and_appointments_land_and_a_rerun_writes_nothing(
    config, moco, tmp_path
):
    records = [
        contact(1, tags=["vip", "lead"]),
        contact(2, lastname=None, firstname="Ana"),
        note(1, 1, "Call <script>alert(1)</script>\nthen <b>write</b>"),
        task(1, 1),
        appointment(1, 1),
    ]
    first = run_target_moco(config, messages(records, state={"x": 1}), tmp_path)
    people = people_by_email(moco.url)
    assert set(people) == {"crm1@example.com", "crm2@example.com"}
    one = people["crm1@example.com"]
    assert (one["firstname"], one["lastname"], one["gender"]) == ("Vorname1", "Nachname1", "U")
    assert sorted(one["tags"]) == ["lead", "vip"]
    # MOCO needs a last name: the first name moves there.
    assert (people["crm2@example.com"]["lastname"], people["crm2@example.com"]["firstname"]) == (
        "Ana",
        "",
    )
    texts = comments_of(moco.url, one["id"])
    assert "Call &lt;script&gt;alert(1)&lt;/script&gt;<br>then &lt;b&gt;write&lt;/b&gt;" in texts
    assert any(t.startswith("To-do (from the CRM): Task 1") and "Status: open" in t for t in texts)
    assert any(
        "Appointment (from the CRM): Meeting 1" in t
        and "2026-12-03 10:00 to 10:30 (Europe/Berlin)" in t
        and "Status: confirmed" in t
        for t in texts
    )
    # One write per new person (tags ride in the create body), one per comment.
    assert first.summary["api_calls"].get("POST /contacts/people") == 2
    assert "PATCH /taggings/{entity}/{id}" not in first.summary["api_calls"]
    assert first.summary["adds_up"] is True
    assert first.states[-1] == {"x": 1}

    clear_log(moco.url)
    again = run_target_moco(config, messages(records), tmp_path)
    assert moco_writes(moco.url) == []
    assert again.summary["api_calls"] == {}
    assert all(c["unchanged"] == c["read"] for c in again.summary["streams"].values())


def test_people_already_in_moco_are_linked_not_duplicated(config, moco, tmp_path):
    moco_seed(moco.url, {"contacts": KNOWN_PEOPLE})
    run_target_moco(config, messages([contact(1), contact(2, work_email=None)]), tmp_path)
    state = moco_state(moco.url)
    assert sorted(p["id"] for p in state["contacts"]) == [501, 502]
    by_id = {p["id"]: p for p in state["contacts"]}
    assert sorted(by_id[501]["tags"]) == ["Bestand", "crm"]  # tags are added, never removed
    assert by_id[501]["gender"] == "F"  # not a mapped field: left alone


def test_an_edit_updates_the_same_comment_and_a_completed_task_too(config, moco, tmp_path):
    base = [contact(1), note(1, 1, "first text"), task(1, 1), appointment(1, 1)]
    run_target_moco(config, messages(base), tmp_path)
    person = people_by_email(moco.url)["crm1@example.com"]
    before = len(moco_state(moco.url)["comments"])
    edited = [
        contact(1),
        note(1, 1, "second text"),
        task(1, 1, completed=True),
        appointment(
            1, 1, status="cancelled", startTime="2026-12-04 14:00:00", endTime="2026-12-04 15:00:00"
        ),
    ]
    clear_log(moco.url)
    run = run_target_moco(config, messages(edited), tmp_path)
    assert len(moco_state(moco.url)["comments"]) == before  # updated in place
    texts = comments_of(moco.url, person["id"])
    assert "second text" in texts
    assert any("Status: completed" in t for t in texts)
    assert any("2026-12-04 14:00 to 15:00" in t and "Status: cancelled" in t for t in texts)
    assert {(w["method"], w["path"].rsplit("/", 1)[0]) for w in moco_writes(moco.url)} == {
        ("PUT", "/api/v1/comments")
    }
    assert run.counts("notes")["updated"] == 1


def test_a_shared_email_is_not_merged_into_another_contacts_person(config, moco, tmp_path):
    shared = "office@firma.example"
    run = run_target_moco(
        config,
        messages([contact(1, work_email=shared), contact(2, work_email=shared), note(2, 2)]),
        tmp_path,
    )
    people = moco_state(moco.url)["contacts"]
    assert [p["firstname"] for p in people] == ["Vorname1"]
    assert run.counts("contacts")["rejected"] == 1
    assert run.summary["rejects_by_kind"]["shared_identity"] == 1
    assert moco_state(moco.url)["comments"] == []  # the second contact's note waits


def test_a_lost_create_answer_leaves_no_duplicate(config, moco, tmp_path):
    moco_faults(
        moco.url,
        [
            {
                "kind": "commit_then_status",
                "method": "POST",
                "path": "^/api/v1/contacts/people$",
                "status": 502,
            }
        ],
    )
    first = run_target_moco(config, messages([contact(1), note(1, 1)]), tmp_path)
    assert first.counts("contacts")["created"] == 1
    assert len(moco_state(moco.url)["contacts"]) == 1
    run_target_moco(config, messages([contact(1), note(1, 1)]), tmp_path)
    state = moco_state(moco.url)
    assert len(state["contacts"]) == 1
    assert len(state["comments"]) == 1


def test_a_dry_run_plans_and_writes_nothing(config, moco, tmp_path):
    config["dry_run"] = True
    config["dry_run_plan_path"] = str(tmp_path / "plan.jsonl")
    run = run_target_moco(config, messages([contact(1), note(1, 1)], state={"x": 1}), tmp_path)
    assert moco_writes(moco.url) == []
    assert moco_state(moco.url)["contacts"] == []
    assert run.states == []
    plan = (tmp_path / "plan.jsonl").read_text().splitlines()
    assert len(plan) == 2
    assert run.summary["planned_calls"] == {"POST /contacts/people": 1, "POST /comments": 1}


def test_bad_input_names_stream_record_and_field(config, moco, tmp_path):
    run = run_target_moco(
        config,
        messages(
            [
                contact(1, work_email="not-an-email"),
                contact(2, lastname=None, firstname=None, work_email=None),
            ]
        ),
        tmp_path,
    )
    examples = run.summary["reject_examples"]["contacts"]
    assert any("contacts record c1, field work_email" in e for e in examples)
    assert any("contacts record c2, field lastname" in e for e in examples)
    assert moco_state(moco.url)["contacts"] == []


def test_a_big_first_import_reads_mocos_people_once_instead_of_searching(moco, tmp_path):
    moco_seed(moco.url, {"contacts": KNOWN_PEOPLE})
    config = base_config(moco, tmp_path)  # people_directory: auto, its default
    records = [contact(i) for i in range(1, 26)]
    records[1] = contact(2, work_email=None)
    # Same e-mail as contact 5, whose person this run creates: found at once, not made twice.
    records.append(contact(26, work_email="crm5@example.com", work_phone="+49 30 1234567"))
    clear_log(moco.url)
    run = run_target_moco(config, messages(records), tmp_path)

    people = moco_state(moco.url)["contacts"]
    assert len(people) == 25  # 501 and 502 linked, 23 created
    assert {p["id"] for p in people} >= {501, 502}
    assert (run.counts("contacts")["created"], run.counts("contacts")["updated"]) == (23, 2)
    assert run.summary["rejects_by_kind"]["shared_identity"] == 1
    log = requests.get(f"{moco.url}/_sandbox/requests", timeout=10).json()
    lists = [r for r in log if r["method"] == "GET" and r["path"] == "/api/v1/contacts/people"]
    assert not [r for r in lists if {"term", "phone"} & set(r["query"])]  # no search at all
    assert len(lists) == 2  # how many people there are, then one page of them


def test_a_few_new_contacts_are_searched_for_not_listed(moco, config, tmp_path):
    if config["people_directory"] != "never":
        config["people_directory"] = "auto"
    clear_log(moco.url)
    run_target_moco(config, messages([contact(1), contact(2)]), tmp_path)
    log = requests.get(f"{moco.url}/_sandbox/requests", timeout=10).json()
    lists = [r for r in log if r["method"] == "GET" and r["path"] == "/api/v1/contacts/people"]
    assert lists
    assert all({"term", "phone"} & set(r["query"]) for r in lists)


def test_a_two_way_first_match_reads_the_person_once(config, moco, tmp_path):
    config["two_way"] = True  # a match is merged field by field: MOCO's person is read
    moco_seed(moco.url, {"contacts": KNOWN_PEOPLE})
    clear_log(moco.url)
    run = run_target_moco(config, messages([contact(1), contact(2, work_email=None)]), tmp_path)

    assert sorted(p["id"] for p in moco_state(moco.url)["contacts"]) == [501, 502]
    assert run.counts("contacts")["rejected"] == 0
    log = requests.get(f"{moco.url}/_sandbox/requests", timeout=10).json()
    reads = [
        r["path"]
        for r in log
        if r["method"] == "GET" and r["path"].startswith("/api/v1/contacts/people/")
    ]
    # The directory's confirming read is the merge's read: one per person either way.
    assert sorted(reads) == ["/api/v1/contacts/people/501", "/api/v1/contacts/people/502"]
