"""Data integrity: a CRM contact belongs to one source record; the run stops on answers that do
not blame a record; a failing writer thread stops the run. target-contacts runs as a real process
against the Contacts sandbox."""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from tests.target.singer import (
    BIN,
    messages,
    note,
    person,
    run_target,
    sandbox_state,
    set_faults,
    task,
)

if TYPE_CHECKING:
    from pathlib import Path

SHARED = "info@firma.example"


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


def rejects_list(config: dict[str, Any], tmp_path: Path) -> str:
    path = tmp_path / "admin-config.json"
    path.write_text(json.dumps(config))
    proc = subprocess.run(
        [str(BIN / "contacts-admin"), "--config", str(path), "rejects", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout


def two_people_one_email(**extra: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        person(1, email=SHARED, tags=["moco", "first"], **extra),
        person(2, email=SHARED, tags=["moco", "second"], **extra),
        note(201, 1, "Note on the first person"),
        note(202, 2, "Note on the second person"),
        task(101, 2),
    ]


def test_two_people_sharing_an_email_are_not_merged(config, contacts, tmp_path):
    run = run_target(config, messages(two_people_one_email()), tmp_path)

    state = sandbox_state(contacts.url)
    assert len(state["contacts"]) == 1
    (crm,) = state["contacts"]
    # The first person owns the CRM contact, untouched by the second one.
    assert (crm["firstName"], crm["lastName"]) == ("First1", "Last1")
    assert sorted(crm["tags"]) == ["first", "moco"]
    assert [n["body"] for n in state["notes"]] == ["Note on the first person"]
    assert state["tasks"] == []

    assert run.counts("contacts") == {
        "read": 2,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
    }
    assert run.counts("notes")["rejected"] == 1
    assert run.counts("tasks")["rejected"] == 1
    assert run.summary["adds_up"] is True
    assert run.summary["rejects_by_kind"]["shared_identity"] == 1
    example = run.summary["reject_examples"]["contacts"][0]
    assert "contacts record 2" in example
    assert "field email" in example
    assert "source record 1" in example
    assert crm["id"] in example

    listed = rejects_list(config, tmp_path)
    assert "shared_identity" in listed
    assert crm["id"] in listed
    # The second person's note and task wait with the contact's reason, never on person 1.
    note_line = next(line for line in listed.splitlines() if line.startswith("notes    202"))
    assert "waits for contact 2, which was rejected (shared_identity" in note_line
    task_line = next(line for line in listed.splitlines() if line.startswith("tasks    101"))
    assert "missing_contact" in task_line

    # A rerun changes nothing: still one contact, the second person still rejected.
    again = run_target(config, messages(two_people_one_email()), tmp_path)
    assert len(sandbox_state(contacts.url)["contacts"]) == 1
    assert again.counts("contacts")["rejected"] == 1
    assert again.counts("contacts")["unchanged"] == 1


def test_a_shared_phone_is_a_shared_identity_too(config, contacts, tmp_path):
    records = [
        person(1, phone="+49 30 5550000"),
        person(2, phone="+49 30 5550000"),
    ]
    run = run_target(config, messages(records), tmp_path)
    state = sandbox_state(contacts.url)
    assert len(state["contacts"]) == 1
    assert state["contacts"][0]["email"] == "person1@example.com"
    assert run.summary["rejects_by_kind"] == {"shared_identity": 1}
    assert "field phone" in run.summary["reject_examples"]["contacts"][0]


def test_a_later_run_does_not_hand_a_contact_to_a_new_person(config, contacts, tmp_path):
    run_target(config, messages([person(1, email=SHARED)]), tmp_path)
    later = run_target(config, messages([person(2, email=SHARED)]), tmp_path)
    state = sandbox_state(contacts.url)
    assert [c["firstName"] for c in state["contacts"]] == ["First1"]
    assert later.counts("contacts")["rejected"] == 1
    assert "source record 1" in later.summary["reject_examples"]["contacts"][0]


def test_merging_is_a_documented_opt_in(config, contacts, tmp_path):
    config["merge_shared_contacts"] = True
    run = run_target(config, messages(two_people_one_email()), tmp_path)
    state = sandbox_state(contacts.url)
    assert len(state["contacts"]) == 1
    assert sorted(n["body"] for n in state["notes"]) == [
        "Note on the first person",
        "Note on the second person",
    ]
    assert run.counts("contacts")["rejected"] == 0
    assert sorted(state["contacts"][0]["tags"]) == ["first", "moco", "second"]


def test_a_lost_answer_never_adopts_another_persons_contact(contacts_sandbox_factory, tmp_path):
    # A location that allows duplicates: the second person's create is committed, but the
    # answer is lost. The lookup must find the second person's own contact, not the first one's.
    sandbox = contacts_sandbox_factory(rate_limit=100_000, allow_duplicates=True)
    config = {
        "base_url": sandbox.url,
        "location_id": "sandbox-location",
        "private_integration_token": "sandbox-token",
        "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}",
        "default_phone_region": "DE",
        "max_concurrency": 1,
        "request_timeout": 2,
    }
    run_target(config, messages([person(1, email=SHARED)]), tmp_path)
    set_faults(
        sandbox.url,
        [{"kind": "commit_then_status", "method": "POST", "path": "^/contacts/$", "status": 502}],
    )
    run = run_target(config, messages([person(2, email=SHARED, phone=None)]), tmp_path)
    state = sandbox_state(sandbox.url)
    names = sorted(c["firstName"] for c in state["contacts"])
    assert names == ["First1", "First2"]  # adopted its own, created nothing twice
    assert run.counts("contacts")["created"] == 1


@pytest.mark.parametrize(
    ("fault", "what"),
    [
        (
            {
                "kind": "status",
                "status": 200,
                "body": "<html><body>Please log in to the proxy</body></html>",
                "headers": {"Content-Type": "text/html"},
                "times": -1,
            },
            "without a JSON object",
        ),
        (
            {"kind": "status", "status": 200, "body": {"unexpected": True}, "times": -1},
            "answered without",
        ),
        (
            {"kind": "status", "status": 405, "body": "Method Not Allowed", "times": -1},
            "405",
        ),
    ],
)
def test_answers_that_do_not_blame_a_record_stop_the_run(config, contacts, tmp_path, fault, what):
    set_faults(contacts.url, [{**fault, "method": "POST", "path": "^/contacts/$"}])
    msgs = messages(
        [person(i) for i in range(1, 6)],
        state={"bookmarks": {"contacts": {"replication_key_value": "x"}}},
    )
    run = run_target(config, msgs, tmp_path, expect_ok=False)
    assert run.returncode != 0
    assert what in run.stderr
    assert run.states == []  # no state passed on: the next run reads the same records
    assert "rejected contacts record" not in run.stderr
    assert rejects_list(config, tmp_path).count("contacts") == 0


def test_a_failing_writer_thread_stops_the_run(config, contacts, tmp_path):
    # A create answer without an id (a missing key in an answer) in one worker thread.
    set_faults(
        contacts.url,
        [
            {
                "kind": "status",
                "method": "POST",
                "path": "^/contacts/$",
                "status": 201,
                "body": {"contact": {"firstName": "no id"}},
                "after": 2,
                "times": 1,
            }
        ],
    )
    msgs = messages(
        [person(i) for i in range(1, 31)],
        state={"bookmarks": {"contacts": {"replication_key_value": "x"}}},
    )
    run = run_target(config, msgs, tmp_path, expect_ok=False)
    assert run.returncode != 0
    assert run.states == []
    assert "without an id" in run.stderr
    # The pool stopped: far fewer than all 30 were written, and the ledger says which.
    written = sandbox_state(contacts.url)["contacts"]
    assert len(written) < 30
    rerun = run_target(config, msgs, tmp_path)
    final = sandbox_state(contacts.url)["contacts"]
    assert sorted(c["email"] for c in final) == sorted(
        f"person{i}@example.com" for i in range(1, 31)
    )
    assert rerun.summary["adds_up"] is True
