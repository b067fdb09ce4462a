"""Deletes are opt-in per stream: a tombstone (_sdc_deleted_at) deletes exactly its linked
counterpart; caps stop a run that would delete too much, deleting nothing; a dry run plans them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.target.singer import messages, note, person, run_target, sandbox_state, write_calls
from tests.target_moco.singer import contact as crm_contact
from tests.target_moco.singer import messages as moco_messages
from tests.target_moco.singer import moco_state, run_target_moco
from tests.target_moco.singer import note as crm_note

if TYPE_CHECKING:
    from pathlib import Path

GONE = "2026-12-01T10:00:00Z"


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
        "request_timeout": 2,
    }


def tombstone(stream: str, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return (stream, {**record, "_sdc_deleted_at": GONE})


def test_a_deleted_note_is_deleted_only_where_deletes_are_on(config, contacts, tmp_path):
    run_target(config, messages([person(1), note(11, 1), note(12, 1)]), tmp_path)
    assert len(sandbox_state(contacts.url)["notes"]) == 2
    gone = messages([tombstone("notes", note(11, 1)[1])])

    off = run_target(config, gone, tmp_path)
    assert len(sandbox_state(contacts.url)["notes"]) == 2
    assert off.counts("notes") == {
        "read": 1,
        "created": 0,
        "updated": 0,
        "unchanged": 1,
        "rejected": 0,
    }

    config["delete_streams"] = ["notes"]
    on = run_target(config, gone, tmp_path)
    notes = sandbox_state(contacts.url)["notes"]
    assert [n["body"] for n in notes] == ["Note 12"]
    assert on.counts("notes")["deleted"] == 1
    assert on.summary["adds_up"] is True
    # The link is gone too: the same tombstone again deletes nothing more.
    again = run_target(config, gone, tmp_path)
    assert again.counts("notes")["unchanged"] == 1
    assert len(sandbox_state(contacts.url)["notes"]) == 1


def test_the_caps_stop_a_run_that_would_delete_too_much(config, contacts, tmp_path):
    people = [person(i) for i in range(1, 13)]
    run_target(config, messages(people), tmp_path)
    config["delete_streams"] = ["contacts"]
    # As if the source had answered an empty list: every contact marked deleted.
    everything = messages(
        [tombstone("contacts", p[1]) for p in people], state={"bookmarks": {"x": 1}}
    )
    run = run_target(config, everything, tmp_path, expect_ok=False)
    assert run.returncode != 0
    assert "nothing was deleted" in run.stderr
    assert run.states == []
    assert len(sandbox_state(contacts.url)["contacts"]) == 12
    # Under the caps it goes through.
    config["max_deletes"] = 1
    one = run_target(config, messages([tombstone("contacts", people[0][1])]), tmp_path)
    assert one.counts("contacts")["deleted"] == 1
    assert len(sandbox_state(contacts.url)["contacts"]) == 11


def test_a_dry_run_plans_the_deletes(config, contacts, tmp_path):
    run_target(config, messages([person(1), note(11, 1)]), tmp_path)
    config.update(
        delete_streams=["notes"], dry_run=True, dry_run_plan_path=str(tmp_path / "plan.jsonl")
    )
    from tests.target.singer import clear_requests

    clear_requests(contacts.url)
    run = run_target(config, messages([tombstone("notes", note(11, 1)[1])]), tmp_path)
    assert write_calls(contacts.url) == []
    assert run.summary["planned_calls"] == {"DELETE /contacts/{id}/notes/{noteId}": 1}
    assert len(sandbox_state(contacts.url)["notes"]) == 1


def test_target_moco_deletes_the_comment_of_a_deleted_crm_note(moco_sandbox, tmp_path):
    config = {
        "api_key": "sandbox-key",
        "base_url": moco_sandbox.url,
        "location_id": "sandbox-location",
        "ledger_url": f"sqlite:///{tmp_path / 'moco-ledger.db'}",
        "rate_limit_requests": 100_000,
        "rate_limit_window_seconds": 1,
    }
    run_target_moco(
        config, moco_messages([crm_contact(1), crm_note(1, 1), crm_note(2, 1)]), tmp_path
    )
    assert len(moco_state(moco_sandbox.url)["comments"]) == 2
    config["delete_streams"] = ["notes"]
    run = run_target_moco(config, moco_messages([tombstone("notes", crm_note(1, 1)[1])]), tmp_path)
    assert [c["text"] for c in moco_state(moco_sandbox.url)["comments"]] == ["Note 2"]
    assert run.counts("notes")["deleted"] == 1
    # Contacts stay unless switched on separately.
    keep = run_target_moco(
        config, moco_messages([tombstone("contacts", crm_contact(1)[1])]), tmp_path
    )
    assert keep.counts("contacts")["unchanged"] == 1
    assert len(moco_state(moco_sandbox.url)["contacts"]) == 1
