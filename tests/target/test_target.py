"""target-contacts as a real process on Singer input, against the Contacts sandbox over HTTP."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from tests.target.singer import (
    BIN,
    clear_requests,
    messages,
    note,
    person,
    run_target,
    sandbox_requests,
    sandbox_state,
    set_faults,
    task,
    write_calls,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def contacts(contacts_sandbox_factory):
    return contacts_sandbox_factory(rate_limit=100_000)


@pytest.fixture
def config(contacts, tmp_path: Path) -> dict[str, Any]:
    return {
        "base_url": contacts.url,
        "location_id": "sandbox-location",
        "private_integration_token": "sandbox-token",
        "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}",
        "default_phone_region": "DE",
        "max_concurrency": 4,
        "request_timeout": 2,
    }


def dataset(n: int = 5) -> list[tuple[str, dict[str, Any]]]:
    records = [person(i) for i in range(1, n + 1)]
    records += [task(100 + i, i) for i in range(1, n + 1)]
    records += [note(200 + i, i) for i in range(1, n + 1)]
    return records


def by_email(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["email"]: c for c in state["contacts"]}


def test_full_sync_lands_everything_and_identical_rerun_writes_nothing(config, contacts, tmp_path):
    msgs = messages(dataset(5), state={"bookmarks": {"contacts": {"replication_key_value": "x"}}})
    first = run_target(config, msgs, tmp_path)
    state = sandbox_state(contacts.url)
    assert len(state["contacts"]) == 5 and len(state["tasks"]) == 5 and len(state["notes"]) == 5
    c1 = by_email(state)["person1@example.com"]
    assert c1["firstName"] == "First1" and c1["phone"] == "+49305551001"
    assert c1["tags"] == ["moco"] and c1["companyName"] == "ACME GmbH"
    assert {t["contactId"] for t in state["tasks"]} == {c["id"] for c in state["contacts"]}
    assert first.counts("contacts") == {
        "read": 5,
        "created": 5,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
    }
    assert first.summary["adds_up"] is True
    # The tap's state is passed on once everything is written.
    assert first.states[-1] == {"bookmarks": {"contacts": {"replication_key_value": "x"}}}

    clear_requests(contacts.url)
    second = run_target(config, msgs, tmp_path)
    assert write_calls(contacts.url) == []
    assert sandbox_requests(contacts.url) == []  # not even a read: the ledger knew everything
    assert second.counts("contacts")["unchanged"] == 5
    assert second.counts("tasks")["unchanged"] == 5 and second.counts("notes")["unchanged"] == 5


def test_update_tags_task_completion_and_note_edit(config, contacts, tmp_path):
    run_target(config, messages(dataset(2)), tmp_path)
    contact_id = by_email(sandbox_state(contacts.url))["person1@example.com"]["id"]
    # Someone adds a tag in the CRM; it must survive the next sync.
    import requests

    r = requests.post(
        f"{contacts.url}/contacts/{contact_id}/tags",
        json={"tags": ["crm-only"]},
        headers={"Authorization": "Bearer sandbox-token", "Version": "2021-07-28"},
        timeout=5,
    )
    assert r.status_code == 201
    clear_requests(contacts.url)
    changed = [
        person(1, lastName="Renamed", tags=["moco", "vip"]),
        person(2),
        task(101, 1, status="completed"),
        task(102, 2, title="New title"),
        note(201, 1, "Edited note"),
        note(202, 2),
    ]
    run = run_target(config, messages(changed), tmp_path)
    state = sandbox_state(contacts.url)
    c1 = by_email(state)["person1@example.com"]
    assert c1["lastName"] == "Renamed"
    assert sorted(c1["tags"]) == ["crm-only", "moco", "vip"]
    tasks = {t["title"]: t for t in state["tasks"]}
    assert tasks["Task 101"]["completed"] is True and "New title" in tasks
    assert {n["body"] for n in state["notes"]} == {"Edited note", "Note 202"}
    routes = Counter(f"{c['method']} {c['path']}" for c in write_calls(contacts.url))
    assert routes[f"PUT /contacts/{contact_id}"] == 1
    assert routes[f"POST /contacts/{contact_id}/tags"] == 1
    assert sum(v for k, v in routes.items() if k.endswith("/completed")) == 1
    assert not any(k.startswith("POST /contacts/ ") or k == "POST /contacts/" for k in routes)
    assert run.counts("contacts") == {
        "read": 2,
        "created": 0,
        "updated": 1,
        "unchanged": 1,
        "rejected": 0,
    }


def test_duplicate_answer_adopts_the_existing_contact(config, contacts, tmp_path):
    import requests

    requests.post(
        f"{contacts.url}/_sandbox/seed",
        timeout=5,
        json={
            "contacts": [
                {
                    "id": "existingContact00001",
                    "email": "person1@example.com",
                    "firstName": "Old",
                    "tags": ["crm"],
                }
            ]
        },
    ).raise_for_status()
    run = run_target(config, messages([person(1)]), tmp_path)
    state = sandbox_state(contacts.url)
    assert len(state["contacts"]) == 1
    adopted = state["contacts"][0]
    assert adopted["id"] == "existingContact00001" and adopted["firstName"] == "First1"
    assert sorted(adopted["tags"]) == ["crm", "moco"]
    assert run.counts("contacts")["updated"] == 1
    clear_requests(contacts.url)
    run_target(config, messages([person(1)]), tmp_path)
    assert write_calls(contacts.url) == []


def test_tasks_and_notes_before_their_contact_land_on_it(config, contacts, tmp_path):
    records = [task(101, 1), note(201, 1), person(1)]
    run = run_target(config, messages(records, order=("tasks", "notes", "contacts")), tmp_path)
    state = sandbox_state(contacts.url)
    contact_id = state["contacts"][0]["id"]
    assert [t["contactId"] for t in state["tasks"]] == [contact_id]
    assert [n["contactId"] for n in state["notes"]] == [contact_id]
    assert run.counts("tasks")["created"] == 1 and run.counts("notes")["created"] == 1
    assert run.summary["adds_up"]


def test_task_for_unknown_contact_is_rejected_with_reason(config, contacts, tmp_path):
    run = run_target(config, messages([person(1), task(101, 999)]), tmp_path)
    assert run.counts("tasks") == {
        "read": 1,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
    }
    assert "contact 999 is unknown" in run.stderr
    listing = subprocess.run(
        [
            str(BIN / "contacts-admin"),
            "rejects",
            "list",
            "--config",
            str(tmp_path / "target-config.json"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert "tasks" in listing.stdout and "101" in listing.stdout and "999" in listing.stdout


@pytest.mark.parametrize(
    ("route", "records"),
    [
        ("^/contacts/$", [person(1)]),
        ("^/contacts/[^/]+/tasks$", [person(1), task(101, 1)]),
        ("^/contacts/[^/]+/notes$", [person(1), note(201, 1)]),
    ],
)
@pytest.mark.parametrize("kind", ["commit_then_status", "commit_then_slow"])
def test_committed_then_failed_create_leaves_no_duplicate(
    config, contacts, tmp_path, route, records, kind
):
    set_faults(
        contacts.url,
        [{"kind": kind, "method": "POST", "path": route, "status": 502, "delay": 3.0, "times": 1}],
    )
    run_target(config, messages(records), tmp_path)
    state = sandbox_state(contacts.url)
    assert len(state["contacts"]) == 1
    assert len(state["tasks"]) == sum(1 for s, _ in records if s == "tasks")
    assert len(state["notes"]) == sum(1 for s, _ in records if s == "notes")
    # And a rerun does not add anything either.
    run_target(config, messages(records), tmp_path)
    again = sandbox_state(contacts.url)
    assert (len(again["contacts"]), len(again["tasks"]), len(again["notes"])) == (
        len(state["contacts"]),
        len(state["tasks"]),
        len(state["notes"]),
    )


def test_dry_run_writes_nothing_and_its_plan_matches_the_live_run(config, contacts, tmp_path):
    import requests

    requests.post(
        f"{contacts.url}/_sandbox/seed",
        timeout=5,
        json={"contacts": [{"id": "existingContact00001", "email": "person1@example.com"}]},
    ).raise_for_status()
    records = dataset(3)
    plan_path = tmp_path / "plan.jsonl"
    dry = run_target(
        {**config, "dry_run": True, "dry_run_plan_path": str(plan_path)},
        messages(records, state={"bookmarks": {}}),
        tmp_path,
    )
    assert write_calls(contacts.url) == []
    assert "DRY RUN" in dry.stderr
    assert dry.states == []  # a dry run passes no state on: the live run must read the same
    plan = [json.loads(line) for line in plan_path.read_text().splitlines()]
    clear_requests(contacts.url)
    live = run_target(config, messages(records), tmp_path)
    live_routes = Counter(live.summary["api_calls"])
    planned = Counter(dry.summary["planned_calls"])
    writes = {
        k: v
        for k, v in live_routes.items()
        if k.split()[0] in ("POST", "PUT", "DELETE") and "search" not in k
    }
    assert planned == writes
    assert len(plan) == sum(planned.values())
    assert dry.summary["streams"] == live.summary["streams"]


def test_bad_record_is_rejected_rest_completes_and_retry_sends_it_after_the_fix(
    config, contacts, tmp_path
):
    no_region = {k: v for k, v in config.items() if k != "default_phone_region"}
    records = [person(1, phone="+49 30 5551001"), person(2, phone="030 5551002")]
    run = run_target(no_region, messages(records), tmp_path)
    assert run.counts("contacts")["created"] == 1 and run.counts("contacts")["rejected"] == 1
    assert "contacts record 2, field phone" in run.stderr
    admin = [str(BIN / "contacts-admin")]
    cfg = str(tmp_path / "target-config.json")
    listing = subprocess.run(
        [*admin, "rejects", "list", "--config", cfg],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert "phone" in listing and "default_phone_region" in listing
    # Fix the cause (the region setting), then retry the rejects.
    (tmp_path / "target-config.json").write_text(json.dumps(config))
    retry = subprocess.run(
        [*admin, "rejects", "retry", "--config", cfg], capture_output=True, text=True, cwd=tmp_path
    )
    assert retry.returncode == 0, retry.stderr
    assert len(sandbox_state(contacts.url)["contacts"]) == 2
    after = subprocess.run(
        [*admin, "rejects", "list", "--config", cfg],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert "No rejected records" in after


def test_summary_adds_up_with_bad_input_and_duplicated_ids(config, contacts, tmp_path):
    records = [
        person(1),
        person(1, lastName="Second copy"),
        ("contacts", {"firstName": "no id"}),
        person(3, email="broken@"),
        task(101, 1),
        task(101, 1, status="completed"),
        note(201, 1, "<script>alert('x')</script> 🎉 Grüße"),
    ]
    run = run_target(config, messages(records), tmp_path)
    assert run.summary["adds_up"] is True
    contacts_counts = run.counts("contacts")
    assert contacts_counts["read"] == 4 and contacts_counts["rejected"] == 2
    state = sandbox_state(contacts.url)
    assert len(state["contacts"]) == 1 and state["contacts"][0]["lastName"] == "Second copy"
    assert len(state["tasks"]) == 1 and state["tasks"][0]["completed"] is True
    assert state["notes"][0]["body"] == "<script>alert('x')</script> 🎉 Grüße"
    assert "field id" in run.stderr and "field email" in run.stderr


def test_bad_config_fails_before_any_write(contacts, tmp_path):
    bad = {
        "base_url": contacts.url,
        "location_id": "sandbox-location",
        "ledger_url": f"sqlite:///{tmp_path / 'l.db'}",
    }
    run = run_target(bad, messages([person(1)]), tmp_path, expect_ok=False)
    assert run.returncode != 0
    assert "private_integration_token" in run.stderr
    assert sandbox_requests(contacts.url) == []


def test_unknown_stream_is_refused_with_what_to_do(config, tmp_path):
    msgs = [
        {
            "type": "SCHEMA",
            "stream": "companies",
            "schema": {"properties": {}},
            "key_properties": [],
        }
    ]
    run = run_target(config, msgs, tmp_path, expect_ok=False)
    assert run.returncode != 0 and "__NULL__" in run.stderr


def test_custom_properties_land_in_the_mapped_custom_fields(config, contacts, tmp_path):
    record = person(
        1,
        custom_properties={"Branche": "Druck", "Interessen": ["Design", "SEO"], "Not mapped": "x"},
    )
    cfg = {
        **config,
        "custom_fields": {"Branche": "cfBranche0000000001", "Interessen": "cfInteressen0000001"},
    }
    run_target(cfg, messages([record]), tmp_path)
    contact = sandbox_state(contacts.url)["contacts"][0]
    values = {f["id"]: f["value"] for f in contact["customFields"]}
    assert values == {"cfBranche0000000001": "Druck", "cfInteressen0000001": ["Design", "SEO"]}


def test_lost_create_answer_for_a_contact_without_email_or_phone_leaves_no_duplicate(
    config, contacts, tmp_path
):
    nameonly = person(1, email=None, phone=None, firstName="Otto", lastName="Ohnekontakt")
    set_faults(
        contacts.url,
        [
            {
                "kind": "commit_then_status",
                "method": "POST",
                "path": "^/contacts/$",
                "status": 502,
                "times": 1,
            }
        ],
    )
    run_target(config, messages([nameonly]), tmp_path)
    run_target(config, messages([nameonly]), tmp_path)
    state = sandbox_state(contacts.url)
    assert [(c["firstName"], c["lastName"]) for c in state["contacts"]] == [("Otto", "Ohnekontakt")]
