"""Input records to Contacts API bodies: normalisation and the reasons a record is rejected."""

from __future__ import annotations

import datetime as dt

import pytest

from target_contacts.payloads import (
    RecordRejected,
    contact_payload,
    note_payload,
    stable_hash,
    task_payload,
)


def test_contact_email_trimmed_lowercased_phone_e164_tags_sorted():
    p = contact_payload(
        {
            "id": 7,
            "firstName": " Jürgen ",
            "lastName": "Müßig",
            "email": "  Juergen.Muessig@Example.COM ",
            "phone": "030 1234567",
            "tags": ["VIP", "Lead", "VIP", " "],
        },
        default_phone_region="DE",
    )
    assert p.source_id == "7"
    assert p.fields == {
        "firstName": "Jürgen",
        "lastName": "Müßig",
        "email": "juergen.muessig@example.com",
        "phone": "+49301234567",
    }
    assert p.tags == ["Lead", "VIP"]


def test_blank_values_are_left_out_not_sent_as_empty_strings():
    p = contact_payload({"id": "1", "lastName": "Doe", "email": "", "phone": None, "city": "  "})
    assert p.fields == {"lastName": "Doe"}


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"id": 1, "email": "not-an-email"}, "email"),
        ({"id": 1, "phone": "call me maybe"}, "phone"),
        ({"id": 1, "country": "Germany"}, "country"),
        ({"id": 1, "dateOfBirth": "31.02.1990"}, "dateOfBirth"),
        ({"id": 1, "firstName": "x" * 300}, "firstName"),
        ({"firstName": "no id"}, "id"),
        ({"id": 1, "tags": "VIP"}, "tags"),
    ],
)
def test_bad_contact_fields_are_rejected_naming_the_field(record, field):
    with pytest.raises(RecordRejected) as info:
        contact_payload(record)
    assert info.value.field == field
    assert info.value.reason


def test_phone_without_region_says_how_to_fix_it():
    with pytest.raises(RecordRejected) as info:
        contact_payload({"id": 1, "phone": "030 1234567"})
    assert "default_phone_region" in info.value.reason


def test_custom_fields_are_mapped_to_ids_and_values_become_strings():
    p = contact_payload(
        {"id": 1, "custom_properties": {"UID": 123, "Branche": ["A", "B"], "Unmapped": "x"}},
        custom_field_map={"UID": "fid1", "Branche": "fid2"},
    )
    assert p.fields["customFields"] == [
        {"id": "fid2", "field_value": ["A", "B"]},
        {"id": "fid1", "field_value": "123"},
    ]


def test_payload_hash_ignores_key_order_and_sees_tag_changes():
    a = contact_payload({"id": 1, "firstName": "A", "lastName": "B", "tags": ["x"]})
    b = contact_payload({"lastName": "B", "firstName": "A", "id": 1, "tags": ["x"]})
    c = contact_payload({"id": 1, "firstName": "A", "lastName": "B", "tags": ["x", "y"]})
    assert a.payload_hash == b.payload_hash
    assert a.fields_hash == c.fields_hash and a.payload_hash != c.payload_hash
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})


def test_stable_hash_keeps_the_digests_that_ledgers_hold():
    # Ledgers keep these digests between runs: a new digest for the same record would make
    # every pair look changed and rewrite a whole CRM after an upgrade.
    value = {"fields": {"firstName": "Zoë", "email": "zoe@example.com", "n": 1.5, "when": None}}
    value["tags"] = ["b", "a"]
    assert stable_hash(value) == (
        "46c8fa373669bb8f25806eeadb653c5e5e0631bc19a7204578f582b6cfca3600"
    )
    assert stable_hash({"at": dt.date(2026, 1, 2)}) == (
        "e88213a5a64c87d5e83afd69c922012c4360b0ce6baf2794818f4df5359da023"
    )


def test_task_due_date_normalised_and_status_completed():
    t = task_payload(
        {
            "taskId": 5,
            "contactId": 7,
            "title": "Call back",
            "dueDate": "2026-02-15T00:00:00.000+01:00",
            "status": "completed",
        }
    )
    assert t.fields == {"title": "Call back", "dueDate": "2026-02-14T23:00:00Z"}
    assert t.completed is True and t.contact_source_id == "7"
    plain = task_payload({"taskId": 5, "contactId": 7, "title": "x", "dueDate": "2026-02-15"})
    assert plain.fields["dueDate"] == "2026-02-15T00:00:00Z" and plain.completed is False
    aware = task_payload(
        {
            "taskId": 5,
            "contactId": 7,
            "title": "x",
            "dueDate": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        }
    )
    assert aware.fields["dueDate"] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"taskId": 1, "contactId": 2, "title": "t"}, "dueDate"),
        ({"taskId": 1, "contactId": 2, "title": "t", "dueDate": "soon"}, "dueDate"),
        (
            {"taskId": 1, "contactId": 2, "title": "t", "dueDate": "2026-01-01", "status": "done"},
            "status",
        ),
        ({"taskId": 1, "title": "t", "dueDate": "2026-01-01"}, "contactId"),
    ],
)
def test_bad_tasks_are_rejected_naming_the_field(record, field):
    with pytest.raises(RecordRejected) as info:
        task_payload(record)
    assert info.value.field == field


def test_note_keeps_html_and_script_as_text_and_limits_length():
    n = note_payload({"notesId": 1, "contactId": 2, "content": "<script>alert(1)</script> 🎉"})
    assert n.body == "<script>alert(1)</script> 🎉"
    with pytest.raises(RecordRejected) as info:
        note_payload({"notesId": 1, "contactId": 2, "content": "x" * 60_000})
    assert info.value.field == "content"
    with pytest.raises(RecordRejected) as info:
        note_payload({"notesId": 1, "contactId": 2, "content": "   "})
    assert info.value.field == "content"
