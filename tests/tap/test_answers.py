"""A 2xx answer that is not MOCO's JSON list stops the run: no record, no bookmark passed on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from singer_sdk.exceptions import FatalAPIError

from tests.tap.support import run_tap, sandbox_call, tap_config

if TYPE_CHECKING:
    from sandbox.server import RunningSandbox


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ("<html><body>Sign in to the proxy</body></html>", {"Content-Type": "text/html"}),
        ({"contacts": []}, {}),  # JSON, but an object where MOCO sends a list
    ],
    ids=["html-page", "json-object"],
)
def test_a_2xx_that_is_not_a_json_list_is_fatal(
    moco_sandbox: RunningSandbox, body: object, headers: dict[str, str]
) -> None:
    sandbox_call(moco_sandbox, "POST", "/_sandbox/seed", {"generate": {"contacts": 5, "seed": 1}})
    fault = {
        "kind": "status",
        "status": 200,
        "path": "^/api/v1/contacts/people$",
        "body": body,
        "headers": headers,
        "times": -1,
    }
    sandbox_call(moco_sandbox, "POST", "/_sandbox/faults", {"faults": [fault]})
    run = run_tap(tap_config(moco_sandbox))
    assert isinstance(run.error, FatalAPIError)
    assert "stream 'contacts'" in str(run.error)
    assert "not a JSON list" in str(run.error)
    assert run.records("contacts") == []
    assert run.bookmark("contacts") is None
