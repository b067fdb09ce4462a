"""`meltano run tap-moco target-contacts` end to end: real Meltano, real plugins, both sandboxes."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import phonenumbers

if TYPE_CHECKING:
    from tests.e2e.conftest import Pipeline


def e164(number: str) -> str:
    return phonenumbers.format_number(
        phonenumbers.parse(number, "DE"), phonenumbers.PhoneNumberFormat.E164
    )


def expected_contacts(moco: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the mapping in meltano.yml promises for each MOCO person, keyed by email or phone."""
    out = {}
    for p in moco["contacts"]:
        email = (p["work_email"] or p["home_email"] or "").lower() or None
        phone = p["work_phone"] or p["mobile_phone"] or None
        if not email and not phone:
            continue  # the documented filter: neither email nor phone, not sent
        out[str(p["id"])] = {
            "email": email,
            "phone": e164(phone) if phone else None,
            "firstName": p["firstname"] or None,
            "lastName": p["lastname"],
            "companyName": p["company"]["name"] if p["company"] else None,
            "tags": {t.lower() for t in p["tags"]} | {"moco"},
        }
    return out


def match(crm: list[dict[str, Any]], want: dict[str, Any]) -> dict[str, Any]:
    key = "email" if want["email"] else "phone"
    found = [c for c in crm if c.get(key) == want[key]]
    assert len(found) == 1, f"expected exactly one CRM contact with {key} {want[key]}: {found}"
    return found[0]


def test_full_sync_then_identical_rerun_then_incremental_change(pipeline: Pipeline):
    first = pipeline.run()
    moco = pipeline.moco_state()
    crm = pipeline.contacts_state()
    want = expected_contacts(moco)
    assert len(crm["contacts"]) == len(want) == first["streams"]["contacts"]["created"]
    crm_id = {}
    for source_id, w in want.items():
        c = match(crm["contacts"], w)
        crm_id[source_id] = c["id"]
        assert c.get("phone") == w["phone"]
        assert c.get("firstName") == w["firstName"] and c.get("lastName") == w["lastName"]
        assert c.get("companyName") == w["companyName"]
        assert set(c["tags"]) == w["tags"]
    # Tasks: every to-do on a synced contact, on the right contact, completion included.
    todos = [
        t
        for t in moco["todos"]
        if t["todoable_type"] == "Contact" and str(t["todoable_id"]) in want
    ]
    assert Counter(
        (crm_id[str(t["todoable_id"])], t["title"], t["completed"]) for t in todos
    ) == Counter((t["contactId"], t["title"], t["completed"]) for t in crm["tasks"])
    # Notes: one per MOCO comment on a synced contact, as plain text.
    comments = [
        c
        for c in moco["comments"]
        if c["commentable_type"] == "Contact" and str(c["commentable_id"]) in want
    ]
    assert Counter(crm_id[str(c["commentable_id"])] for c in comments) == Counter(
        n["contactId"] for n in crm["notes"]
    )
    assert not any("<div>" in n["body"] or "<br" in n["body"] for n in crm["notes"])
    assert first["adds_up"]

    # The same sync again: nothing to write.
    pipeline.clear_logs()
    second = pipeline.run()
    assert pipeline.contacts_writes() == []
    assert all(s["created"] == s["updated"] == 0 for s in second["streams"].values())

    # A change in MOCO shows up after the next run, and only that change is written.
    person = moco["contacts"][0]
    pipeline.moco_api("PUT", f"/contacts/people/{person['id']}", json={"lastname": "Umbenannt"})
    pipeline.clear_logs()
    third = pipeline.run()
    crm_after = {c["id"]: c for c in pipeline.contacts_state()["contacts"]}
    assert crm_after[crm_id[str(person["id"])]]["lastName"] == "Umbenannt"
    assert [(w["method"], w["path"]) for w in pipeline.contacts_writes()] == [
        ("PUT", f"/contacts/{crm_id[str(person['id'])]}")
    ]
    assert third["streams"]["contacts"] == {
        "read": 1,
        "created": 0,
        "updated": 1,
        "unchanged": 0,
        "rejected": 0,
    }


def test_changing_a_mapping_with_meltano_config_changes_what_lands(pipeline: Pipeline):
    yml = pipeline.project / "meltano.yml"
    original = yml.read_text()
    try:
        pipeline.meltano(
            "config", "set", "target-contacts", "stream_maps.contacts.lastName", "lastname.upper()"
        )
        pipeline.run()
    finally:
        yml.write_text(original)
    moco = pipeline.moco_state()
    crm = pipeline.contacts_state()["contacts"]
    want = expected_contacts(moco)
    for w in want.values():
        assert match(crm, w)["lastName"] == w["lastName"].upper()


def test_filter_and_tag_switch_and_due_date_fallback(pipeline: Pipeline):
    no_contact_data = pipeline.moco_api(
        "POST",
        "/contacts/people",
        json={"lastname": "Ohnekontakt", "firstname": "Otto", "gender": "M"},
    )
    pipeline.moco_api(
        "POST",
        "/comments",
        json={
            "commentable_type": "Contact",
            "commentable_id": no_contact_data["id"],
            "text": "<div>Nur per Post erreichbar</div>",
        },
    )
    summary = pipeline.run(
        env={
            "TARGET_CONTACTS_STREAM_MAP_CONFIG": json.dumps(
                {"only_contacts_tagged": ["VIP"], "sync_tag": "moco"}
            )
        }
    )
    moco = pipeline.moco_state()
    crm = pipeline.contacts_state()
    vip = [
        p
        for p in moco["contacts"]
        if "VIP" in p["tags"]
        and (p["work_email"] or p["home_email"] or p["work_phone"] or p["mobile_phone"])
    ]
    assert vip, "the seed must hold VIP contacts for this test to mean anything"
    assert len(crm["contacts"]) == len(vip)
    assert all("vip" in c["tags"] for c in crm["contacts"])
    assert not any(c.get("lastName") == "Ohnekontakt" for c in crm["contacts"])
    # The note on the filtered-out contact is kept as a reject with a reason, not lost.
    assert summary["streams"]["notes"]["rejected"] >= 1
    rejects = pipeline.meltano("invoke", "target-contacts:rejects-list").stdout
    assert str(no_contact_data["id"]) in rejects and "unknown" in rejects

    # The fallback: a to-do without a due date lands with its creation time as due date.
    vip_ids = {str(p["id"]) for p in vip}
    undated = [
        t
        for t in moco["todos"]
        if t["todoable_type"] == "Contact"
        and str(t["todoable_id"]) in vip_ids
        and not t["due_date"]
    ]
    for todo in undated:
        task = next(t for t in crm["tasks"] if t["title"] == todo["title"])
        assert task["dueDate"][:19] == todo["created_at"][:19]
