"""Input records checked against a stream's schema: the compiled check and jsonschema's say."""

from __future__ import annotations

import pytest

from sync_ledger.validation import RecordCheck
from sync_ledger.writer import RecordRejected

SCHEMA = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "string"},
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        "changed": {"type": ["string", "null"], "format": "date-time"},
        "address": {"type": "object", "properties": {"zip": {"type": "string"}}},
    },
}


def test_a_valid_record_passes():
    RecordCheck(SCHEMA).check({"id": "1", "tags": ["a"], "changed": None, "extra": 1})


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({"tags": []}, "id", "is required but missing"),
        ({"id": 1}, "id", "1 is not of type 'string'"),
        ({"id": "1", "tags": ["a", 2]}, "tags.1", "2 is not of type 'string'"),
        ({"id": "1", "address": {"zip": 20095}}, "address.zip", "20095 is not of type 'string'"),
    ],
)
def test_a_bad_record_is_rejected_naming_its_field(record, field, reason):
    with pytest.raises(RecordRejected) as caught:
        RecordCheck(SCHEMA).check(record)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_formats_are_not_asserted_as_before():
    # jsonschema asserts no format without a format checker; the compiled check must not either.
    RecordCheck(SCHEMA).check({"id": "1", "changed": "last Tuesday"})
