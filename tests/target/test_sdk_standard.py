"""singer-sdk's standard target tests that fit an API target (as target-salesforce keeps them).

The other standard suites write streams such as ``test_camelcase`` into the destination, which a
Contacts API target refuses by design (it accepts contacts, tasks and notes only).
"""

from __future__ import annotations

from singer_sdk.testing import get_target_test_class
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.target_tests import (
    TargetCliPrintsTest,
    TargetInvalidSchemaTest,
    TargetRecordBeforeSchemaTest,
)

from target_contacts.target import TargetContacts

# None of these tests reaches the API: port 9 on loopback (discard) is never contacted.
CONFIG = {
    "base_url": "http://127.0.0.1:9",
    "location_id": "sandbox-location",
    "private_integration_token": "sandbox-token",
    "ledger_url": "sqlite:///:memory:",
}

TestTargetContacts = get_target_test_class(
    TargetContacts,
    config=CONFIG,
    include_target_tests=False,
    custom_suites=[
        SingerTestSuite(
            kind="target",
            tests=[TargetCliPrintsTest, TargetInvalidSchemaTest, TargetRecordBeforeSchemaTest],
        )
    ],
)
