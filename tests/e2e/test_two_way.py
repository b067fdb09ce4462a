"""`meltano run two-way-sync` against both sandboxes: first matching, no echo, no ping-pong,
conflicts by the most recent change, and the follow-up recipe of the reverse stream maps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import requests

from sandbox.contacts import ContactsSandbox
from sandbox.moco import MocoSandbox
from sandbox.server import RunningSandbox
from tests.e2e.conftest import Pipeline

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

LOCATION = "sandbox-location"


@pytest.fixture
def two_way(meltano_project: Path, tmp_path: Path) -> Iterator[Pipeline]:
    """Both sandboxes with people on both sides, one of them on both (same e-mail)."""
    with (
        RunningSandbox(MocoSandbox(rate_limit=100_000)) as moco,
        RunningSandbox(ContactsSandbox(rate_limit=100_000)) as contacts,
    ):
        requests.post(
            f"{moco.url}/_sandbox/seed",
            timeout=30,
            json={
                "contacts": [
                    {
                        "id": 7001,
                        "firstname": "Maria",
                        "lastname": "Müller",
                        "gender": "F",
                        "work_email": "maria@agentur.example",
                        "work_phone": "+49 30 1234567",
                        "tags": ["Kunde"],
                    },
                    {
                        "id": 7002,
                        "firstname": "Jörg",
                        "lastname": "Groß",
                        "gender": "M",
                        "work_email": "joerg@shared.example",
                        "tags": [],
                    },
                ],
                "comments": [
                    {
                        "id": 9001,
                        "commentable_type": "Contact",
                        "commentable_id": 7001,
                        "text": "<div>Erstgespräch <strong>gut</strong></div>",
                        "manual": True,
                    },
                ],
            },
        ).raise_for_status()
        requests.post(
            f"{contacts.url}/_sandbox/seed",
            timeout=30,
            json={
                "contacts": [
                    {
                        "id": "crm-a",
                        "locationId": LOCATION,
                        "firstName": "Jörg",
                        "lastName": "Groß",
                        "email": "joerg@shared.example",
                        "tags": ["lead"],
                    },
                    {
                        "id": "crm-b",
                        "locationId": LOCATION,
                        "firstName": "Lena",
                        "lastName": "Łukasz",
                        "email": "lena@kunde.example",
                        "tags": ["hot"],
                    },
                ],
                "notes": [
                    {
                        "id": "note-b1",
                        "contactId": "crm-b",
                        "body": "Rückruf <script>alert(1)</script> erbeten",
                    },
                ],
                "appointments": [
                    {
                        "id": "appt-b1",
                        "contactId": "crm-b",
                        "calendarId": "cal-1",
                        "title": "Demo",
                        "appointmentStatus": "confirmed",
                        "startTime": "2026-12-03 10:00:00",
                        "endTime": "2026-12-03 10:30:00",
                    },
                ],
            },
        ).raise_for_status()
        # A Meltano system database of its own: no state from the tests before.
        yield Pipeline(meltano_project, moco, contacts, tmp_path)


def _people(pipe: Pipeline) -> dict[str, dict[str, Any]]:
    return {p["work_email"]: p for p in pipe.moco_state()["contacts"]}


def _crm(pipe: Pipeline) -> dict[str, dict[str, Any]]:
    return {c["email"]: c for c in pipe.contacts_state()["contacts"]}


def _cycle_writes(pipe: Pipeline) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pipe.clear_logs()
    pipe.run_job("two-way-sync")
    return pipe.moco_writes(), pipe.contacts_writes()


def test_two_way_sync_links_crosses_over_and_then_writes_nothing(two_way: Pipeline):
    pipe = two_way
    summaries = pipe.run_job("two-way-sync")
    assert summaries["target-moco"]["adds_up"] is True
    assert summaries["target-contacts"]["adds_up"] is True

    people, crm = _people(pipe), _crm(pipe)
    # First matching: the person both sides held is linked, not duplicated on either side.
    assert sorted(people) == [
        "joerg@shared.example",
        "lena@kunde.example",
        "maria@agentur.example",
    ]
    assert sorted(crm) == sorted(people)
    assert people["joerg@shared.example"]["id"] == 7002
    # A CRM tag reaches MOCO, MOCO's tags reach the CRM; the sync tag stays in the CRM.
    assert "lead" in people["joerg@shared.example"]["tags"]
    assert "kunde" in crm["maria@agentur.example"]["tags"]
    assert "moco" not in {t.lower() for p in people.values() for t in p["tags"]}
    # The CRM note and appointment arrive in MOCO as comments, the note's markup as text.
    lena = people["lena@kunde.example"]
    texts = [
        c["text"]
        for c in pipe.moco_state()["comments"]
        if c["commentable_type"] == "Contact" and c["commentable_id"] == lena["id"]
    ]
    assert "Rückruf &lt;script&gt;alert(1)&lt;/script&gt; erbeten" in texts
    assert any("Appointment (from the CRM): Demo" in t for t in texts)
    # The MOCO comment reaches the CRM as a note, once.
    maria_notes = [
        n["body"]
        for n in pipe.contacts_state()["notes"]
        if n["contactId"] == crm["maria@agentur.example"]["id"]
    ]
    assert maria_notes == ["Erstgespräch gut"]
    counts_before = (len(pipe.moco_state()["comments"]), len(pipe.contacts_state()["notes"]))

    # No echo: a second cycle with no human change writes nothing on either side.
    moco_writes, crm_writes = _cycle_writes(pipe)
    assert moco_writes == []
    assert crm_writes == []
    assert (len(pipe.moco_state()["comments"]), len(pipe.contacts_state()["notes"])) == (
        counts_before
    )

    # No ping-pong: a person's change in MOCO costs writes in the CRM only, then nothing.
    pipe.clear_logs()
    requests.put(
        f"{pipe.moco.url}/_sandbox/people/7001",
        json={"lastname": "Müller-Lüdenscheidt"},
        timeout=10,
    ).raise_for_status()
    moco_writes, crm_writes = _cycle_writes(pipe)
    assert moco_writes == []
    assert len(crm_writes) == 1
    assert _crm(pipe)["maria@agentur.example"]["lastName"] == "Müller-Lüdenscheidt"
    assert _cycle_writes(pipe) == ([], [])

    # ... and a change in the CRM costs writes in MOCO only, then nothing.
    pipe.contacts_api(
        "PUT", f"/contacts/{crm['lena@kunde.example']['id']}", json={"firstName": "Helena"}
    )
    moco_writes, crm_writes = _cycle_writes(pipe)
    assert crm_writes == []
    assert len(moco_writes) == 1
    assert _people(pipe)["lena@kunde.example"]["firstname"] == "Helena"
    assert _cycle_writes(pipe) == ([], [])


def test_a_field_changed_on_both_sides_goes_to_the_most_recent_change(two_way: Pipeline):
    pipe = two_way
    pipe.run_job("two-way-sync")
    crm_id = _crm(pipe)["maria@agentur.example"]["id"]
    # MOCO first, then the CRM a moment later: the CRM's value is the more recent one.
    requests.put(
        f"{pipe.moco.url}/_sandbox/people/7001", json={"firstname": "Marie"}, timeout=10
    ).raise_for_status()
    pipe.contacts_api("PUT", f"/contacts/{crm_id}", json={"firstName": "Mia"})
    summaries = pipe.run_job("two-way-sync")
    assert _people(pipe)["maria@agentur.example"]["firstname"] == "Mia"
    assert _crm(pipe)["maria@agentur.example"]["firstName"] == "Mia"
    # The reverse direction runs first and meets both changes: the CRM's newer value wins,
    # counted as a conflict; the forward direction then finds both sides equal.
    assert summaries["target-moco"]["conflicts"]["contacts"] == {"source": 1, "target": 0}
    assert "conflicts" not in summaries["target-contacts"]
    assert _cycle_writes(pipe) == ([], [])


def test_the_follow_up_recipe_makes_a_todo_comment_for_tagged_contacts(two_way: Pipeline):
    pipe = two_way
    yml = pipe.project / "meltano.yml"
    original = yml.read_text()  # the project is the session's: put its meltano.yml back after
    try:
        pipe.meltano("config", "set", "target-moco", "stream_map_config.followup_tag", "hot")
        pipe.run_job("contacts-to-moco")
    finally:
        yml.write_text(original)
    lena = _people(pipe)["lena@kunde.example"]
    texts = [c["text"] for c in pipe.moco_state()["comments"] if c["commentable_id"] == lena["id"]]
    assert any(t.startswith("To-do (from the CRM): Follow up with Lena Łukasz") for t in texts)
    joerg = _people(pipe)["joerg@shared.example"]
    assert not any(
        "Follow up" in c["text"]
        for c in pipe.moco_state()["comments"]
        if c["commentable_id"] == joerg["id"]
    )
