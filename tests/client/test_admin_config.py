"""contacts-admin's settings and the SQL of the token lock, without a sandbox."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from contacts_api.auth import auth_from_config
from contacts_api.errors import ConfigError
from sync_ledger.db import DEFAULT_LEDGER_URL
from sync_ledger.tokens import row_query
from target_contacts.admin import DEFAULT_AUTHORIZE_URL, build_parser, load_config


def test_defaults_then_file_then_environment(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "location_id": "from-file",
                "client_id": "file-client",
                "redirect_port": 8123,
                "dry_run": True,
            }
        )
    )
    config = load_config(
        path,
        environ={
            "TARGET_CONTACTS_CLIENT_ID": "env-client",
            "TARGET_CONTACTS_REDIRECT_PORT": "9000",
            "TARGET_CONTACTS_COMPANY_ID": "",
        },
    )
    assert config["location_id"] == "from-file"
    assert config["client_id"] == "env-client"  # the environment wins
    assert config["redirect_port"] == 9000
    assert config["dry_run"] is True  # the target's other settings are kept
    assert config["base_url"] == "https://services.leadconnectorhq.com"
    assert config["ledger_url"] == DEFAULT_LEDGER_URL
    assert config["authorize_url"] == DEFAULT_AUTHORIZE_URL
    assert config["company_id"] is None  # an empty variable does not count


@pytest.mark.parametrize(
    ("content", "needle"), [("{not json", "cannot read it as JSON"), ("[1, 2]", "JSON object")]
)
def test_a_bad_config_file_is_named(tmp_path, content, needle):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=needle):
        load_config(path, environ={})


def test_redirect_port_must_be_a_number():
    with pytest.raises(ConfigError, match="TARGET_CONTACTS_REDIRECT_PORT"):
        load_config(None, environ={"TARGET_CONTACTS_REDIRECT_PORT": "eighty"})


def test_config_before_or_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["--config", "a.json", "status"]).config == "a.json"
    assert parser.parse_args(["status", "--config", "b.json"]).config == "b.json"
    assert not hasattr(parser.parse_args(["logout"]), "config")


def test_auth_from_config_names_what_is_missing():
    with pytest.raises(ConfigError, match="location_id"):
        auth_from_config({})
    with pytest.raises(ConfigError, match="private_integration_token, or client_id"):
        auth_from_config({"location_id": "loc"})
    assert (
        repr(auth_from_config({"location_id": "loc", "private_integration_token": "pit-x"}))
        == "StaticTokenAuth(<private integration token>)"
    )


def test_the_token_row_is_locked_with_for_update_on_postgresql():
    locked = str(row_query("loc", for_update=True).compile(dialect=postgresql.dialect()))
    assert locked.rstrip().endswith("FOR UPDATE")
    assert "FOR UPDATE" not in str(row_query("loc").compile(dialect=postgresql.dialect()))
    # SQLite has no row locks: TokenStore.locked takes BEGIN IMMEDIATE instead
    on_sqlite = row_query("loc", for_update=True).compile(dialect=sqlite.dialect())
    assert "FOR UPDATE" not in str(on_sqlite)
