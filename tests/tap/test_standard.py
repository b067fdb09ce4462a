"""singer-sdk's standard tap tests, run against a seeded MOCO sandbox over real HTTP.

The SDK builds the test class at import time from a fixed config, so the sandbox is started (and
seeded) when this module is imported and stopped when the module's tests are done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from sandbox.moco import MocoSandbox
from sandbox.server import RunningSandbox
from tap_moco.tap import TapMoco
from tests.tap.support import sandbox_call, tap_config

if TYPE_CHECKING:
    from collections.abc import Iterator

# Besides generated data, records carrying the optional fields MOCO sends only for some types or
# situations, so that the schema tests see every property at least once.
_OPTIONAL_FIELD_RECORDS = {
    "companies": [
        {
            "id": 761_399_001,
            "type": "supplier",
            "name": "Aachener Druck GmbH",
            "iban": None,
            "bank_bic": "AACSDE33",
            "bank_owner": "Aachener Druck GmbH",
            "credit_number": 70001,
            "alternative_correspondence_language": False,
            "default_payment_means": "credit_transfer",
            "supplier_vat": {
                "id": 1,
                "tax": 19.0,
                "description": "Vorsteuer 19 %",
                "reverse_charge": False,
                "intra_eu": False,
                "active": True,
                "code": "VSt19",
            },
            "updated_at": "2025-03-01T10:00:00Z",
        },
        {
            "id": 761_399_002,
            "type": "customer",
            "name": "Aare Consulting AG",
            "currency": "CHF",
            "invoice_format": "x_invoice",
            "debit_number": 10001,
            "updated_at": "2025-03-02T10:00:00Z",
        },
    ],
    "comments": [
        {
            "id": 15_399_001,
            "commentable_type": "Contact",
            "commentable_id": 677_600_001,
            "text": "<div>Im Auftrag angelegt</div>",
            "manual": True,
            "impersonating_user": {"id": 933662267, "firstname": "Sabine", "lastname": "Größer"},
            "created_at": "2025-03-03T10:00:00Z",
            "updated_at": "2025-03-03T10:00:00Z",
        },
    ],
}

# The soft-delete marker is set only on tombstones, which a single first run never emits
# (tests/tap/test_tombstones.py covers them): its absence from these records is expected.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Fields in transformed catalog but not in records. \(\{'_sdc_deleted_at'\}\)"
)


def _seeded_sandbox() -> RunningSandbox:
    sandbox = RunningSandbox(MocoSandbox(rate_limit=100_000)).start()
    sandbox_call(
        sandbox,
        "POST",
        "/_sandbox/seed",
        {"generate": {"contacts": 40, "seed": 11}, **_OPTIONAL_FIELD_RECORDS},
    )
    return sandbox


# The SDK builds the test class at import time: a sandbox runs from then on.
_AT_IMPORT: list[RunningSandbox] = [_seeded_sandbox()]
CONFIG = tap_config(_AT_IMPORT[0], page_size=10)


@pytest.fixture(scope="module", autouse=True)
def _sandbox_for_the_module() -> Iterator[RunningSandbox]:
    # pytest-xdist's worksteal may hand a worker more of this module's tests after it has run
    # the module's teardown (and stopped its sandbox): each setup gets a running sandbox, and
    # the tests' config (the dict the test class holds) its URL.
    sandbox = _AT_IMPORT.pop() if _AT_IMPORT else _seeded_sandbox()
    CONFIG["base_url"] = sandbox.url
    try:
        yield sandbox
    finally:
        sandbox.stop()


TestTapMoco = get_tap_test_class(
    TapMoco,
    config=CONFIG,
    suite_config=SuiteConfig(max_records_limit=30),
)
