"""Bad answers and refused credentials: tap-contacts as a real process stops with a message that
names the stream and what to do, exits non-zero, passes no new state on, and shows no secret."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.tap_contacts.support import (
    call,
    contact,
    contact_id,
    run_tap_process,
    seed,
    tap_config,
)

if TYPE_CHECKING:
    from pathlib import Path

    from sandbox.server import RunningSandbox

INPUT_STATE = {"bookmarks": {"contacts": {"replication_key": "dateUpdated"}}}


@pytest.fixture
def seeded(sandbox: RunningSandbox) -> RunningSandbox:
    seed(
        sandbox,
        contacts=[contact(i) for i in range(5)],
        notes=[{"id": f"n{i:019d}", "contactId": contact_id(i), "body": "Hi"} for i in range(5)],
    )
    return sandbox


def faults(sandbox: RunningSandbox, *items: dict[str, Any]) -> None:
    call(sandbox, "POST", "/_sandbox/faults", {"faults": list(items)})


def assert_stopped(run: Any, *expected: str) -> None:
    assert run.returncode != 0
    for text in expected:
        assert text in run.stderr, (text, run.stderr[-3000:])
    assert "sandbox-token" not in run.stderr + run.stdout
    # No state but the one given is passed on, and nothing after a bookmark moved.
    assert all(state == INPUT_STATE for state in run.states), run.states


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ("<html><body>Sign in to the proxy</body></html>", "without a JSON object"),
        ({"contacts": "none", "total": 0}, "without a 'contacts' list"),
        ({"total": 0}, "without a 'contacts' list"),
    ],
    ids=["html-text", "contacts-not-a-list", "no-contacts-key"],
)
def test_a_2xx_search_answer_that_is_not_the_expected_json_stops_the_run(
    seeded: RunningSandbox, tmp_path: Path, body: Any, what: str
):
    faults(seeded, {"kind": "status", "status": 200, "path": "^/contacts/search$", "body": body})

    run = run_tap_process(tap_config(seeded), tmp_path, state=INPUT_STATE)

    assert_stopped(run, "stream 'contacts'", what, "base_url")


def test_a_2xx_child_answer_that_is_not_the_expected_json_stops_the_run(
    seeded: RunningSandbox, tmp_path: Path
):
    faults(
        seeded,
        {
            "kind": "status",
            "status": 200,
            "path": f"^/contacts/{contact_id(2)}/notes$",
            "body": {"items": []},
        },
    )

    run = run_tap_process(tap_config(seeded), tmp_path, state=INPUT_STATE)

    assert_stopped(run, "stream 'notes'", f"contact {contact_id(2)}", "without a 'notes' list")


def test_a_refused_token_names_the_stream_and_the_setting(seeded: RunningSandbox, tmp_path: Path):
    config = tap_config(seeded, private_integration_token="sandbox-token-revoked")

    run = run_tap_process(config, tmp_path, state=INPUT_STATE)

    assert_stopped(run, "stream 'contacts'", "401", "private integration token")
    assert "sandbox-token-revoked" not in run.stderr


def test_another_locations_id_is_a_clear_403(seeded: RunningSandbox, tmp_path: Path):
    config = tap_config(seeded, location_id="other-location")

    run = run_tap_process(config, tmp_path, state=INPUT_STATE)

    assert_stopped(run, "stream 'contacts'", "403", "check location_id")


def test_bad_config_fails_before_any_request(sandbox: RunningSandbox, tmp_path: Path):
    config = tap_config(sandbox, base_url="ftp://example.com")
    del config["private_integration_token"]

    run = run_tap_process(config, tmp_path)

    assert run.returncode != 0
    assert "base_url" in run.stderr
    assert "private_integration_token" in run.stderr
    assert call(sandbox, "GET", "/_sandbox/requests") == []


def test_oauth_without_a_login_says_to_log_in(sandbox: RunningSandbox, tmp_path: Path):
    config = tap_config(
        sandbox,
        client_id="sandbox-client-id",
        client_secret="sandbox-client-secret",
        ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
    )
    del config["private_integration_token"]

    run = run_tap_process(config, tmp_path, state=INPUT_STATE)

    assert_stopped(run, "contacts-admin login")
    assert "sandbox-client-secret" not in run.stderr
