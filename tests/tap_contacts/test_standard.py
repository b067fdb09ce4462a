"""singer-sdk's standard tap tests, run against a seeded Contacts sandbox over real HTTP.

The SDK builds the test class at import time from a config dict, and its test runner keeps that
very dict: the sandbox is started in a module fixture, which fills in the sandbox's URL before
the first test runs (nothing listens while the module is merely imported or collected).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from sandbox.contacts import ContactsSandbox
from sandbox.server import RunningSandbox
from tap_contacts.tap import TapContacts
from tests.tap_contacts.support import LOCATION, PIT, contact, contact_id, seed, stamp

if TYPE_CHECKING:
    from collections.abc import Iterator

# The soft-delete marker is set only on tombstones, which a single first run never emits
# (tests/tap_contacts/test_tombstones.py covers them): its absence from these records is expected.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Fields in transformed catalog but not in records. \(\{'_sdc_deleted_at'\}\)"
)

# Filled in by the fixture below; port 9 (discard) on loopback is never contacted.
CONFIG: dict[str, Any] = {
    "base_url": "http://127.0.0.1:9",
    "location_id": LOCATION,
    "private_integration_token": PIT,
    "ledger_url": "sqlite:///:memory:",
    "rate_limit_requests": 100_000,
    "rate_limit_window_seconds": 1,
    "page_size": 10,
}

# Records that carry every optional field at least once, so that the schema tests see them.
_FULL_CONTACT = contact(
    0,
    phone="+4930555100",
    companyName="ACME GmbH",
    tags=["vip"],
    dnd=False,
    dndSettings={"Email": {"status": "active", "message": "", "code": ""}},
    customFields=[{"id": "cf00000000000000001", "value": "Agency"}],
    validEmail=True,
    address="Hauptstr. 1",
    state="BE",
    businessId="biz00000000000000001",
    businessName="ACME GmbH",
    phoneLabel="work",
    visitorId="visitor0000000000001",
    ssn="",
    keyword="fair",
    lastActivity=stamp(60),
    attributionSource={"url": "https://example.com/form", "utmSource": "fair"},
    lastAttributionSource={"url": "https://example.com/form"},
    attributions=[{"url": "https://example.com/form"}],
)
_CHILDREN = {
    "tasks": [
        {
            "id": "t0000000000000000000",
            "contactId": contact_id(0),
            "title": "Call",
            "body": "About the offer",
            "assignedTo": "sbxUser0000000000001",
            "dueDate": stamp(3600),
            "completed": False,
        }
    ],
    "notes": [
        {
            "id": "n0000000000000000000",
            "contactId": contact_id(0),
            "body": "<p>Met at the fair</p>",
            "userId": "sbxUser0000000000001",
            "title": "Fair",
            "color": "#FFAA00",
            "pinned": True,
        }
    ],
    "appointments": [
        {
            "id": "a0000000000000000000",
            "contactId": contact_id(0),
            "calendarId": "cal00000000000000001",
            "title": "Kick-off",
            "status": "booked",
            "appointmentStatus": "confirmed",
            "assignedUserId": "sbxUser0000000000001",
            "startTime": "2025-04-01 10:00:00",
            "endTime": "2025-04-01 11:00:00",
            "users": ["sbxUser0000000000001"],
        }
    ],
}


@pytest.fixture(scope="module", autouse=True)
def _sandbox_for_the_module() -> Iterator[RunningSandbox]:
    sandbox = RunningSandbox(ContactsSandbox(rate_limit=100_000)).start()
    try:
        seed(sandbox, contacts=[_FULL_CONTACT], **_CHILDREN)
        seed(sandbox, generate={"contacts": 30, "seed": 11})
        CONFIG["base_url"] = sandbox.url
        yield sandbox
    finally:
        sandbox.stop()


TestTapContacts = get_tap_test_class(
    TapContacts,
    config=CONFIG,
    suite_config=SuiteConfig(max_records_limit=40),
)
