"""Secrets stay out of every text: database errors, the ledger URL, token-endpoint answers, and
plain-text token storage is never silent."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from contacts_api.auth import OAuthAuth, exchange_code
from contacts_api.errors import AuthError, ConfigError
from sync_ledger.db import make_engine, redact_url
from sync_ledger.tokens import StoredToken, TokenStore
from target_contacts.admin import main as admin_main
from target_contacts.target import TargetContacts
from target_contacts.wiring import build_sync

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[2]
REFRESH = "rt-4f0c2b9e-secret-refresh-token"
SECRET = "cs-very-secret-client-secret"
CODE = "auth-code-8d7e6f5a"


def test_database_errors_never_show_bound_parameters(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table WHERE token = :t"), {"t": REFRESH})
    assert REFRESH not in str(caught.value)
    assert "hidden" in str(caught.value)


def test_ledger_url_is_secret_everywhere_it_is_declared() -> None:
    assert TargetContacts.config_jsonschema["properties"]["ledger_url"]["secret"] is True
    project = yaml.safe_load((REPO / "meltano.yml").read_text(encoding="utf-8"))
    for kind in ("extractors", "loaders"):
        for plugin in project["plugins"].get(kind, []):
            for setting in plugin.get("settings", []):
                if setting["name"] == "ledger_url":
                    assert setting.get("sensitive") is True, plugin["name"]


def test_ledger_url_passwords_are_redacted_when_printed(tmp_path: Path) -> None:
    url = "postgresql+psycopg://sync:pg-pass-123@db.internal:5432/ledger"
    assert "pg-pass-123" not in redact_url(url)
    assert "db.internal" in redact_url(url)
    store = TokenStore(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    assert "ledger.db" in repr(store)


class _EchoingTokenEndpoint(BaseHTTPRequestHandler):
    """A token endpoint that refuses every grant and echoes the form back, as some servers do."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        body = json.dumps(
            {
                "error": "invalid_grant",
                "message": (
                    f"invalid grant: {json.dumps(form)} auth={self.headers.get('Authorization')}"
                ),
            }
        ).encode()
        status = 400 if self.path == "/oauth/token" else 401
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingTokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_token_endpoint_errors_never_repeat_the_secrets(echo_server: str, tmp_path: Path) -> None:
    store = TokenStore(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    with pytest.raises(AuthError) as caught:
        exchange_code(
            store,
            base_url=echo_server,
            client_id="client",
            client_secret=SECRET,
            code=CODE,
            redirect_uri="http://127.0.0.1:9/callback",
        )
    texts = [str(caught.value), repr(caught.value), *caught.value.messages]

    now = datetime.now(timezone.utc)
    store.save(
        StoredToken(
            location_id="loc",
            access_token="at-expired-access-token",
            refresh_token=REFRESH,
            expires_at=now - timedelta(minutes=1),
            updated_at=now - timedelta(hours=24),
        )
    )
    auth = OAuthAuth(
        store,
        base_url=echo_server,
        location_id="loc",
        client_id="client",
        client_secret=SECRET,
        agency_token="agency-token-0123456789",
        company_id="company",
    )
    with pytest.raises(AuthError) as refreshing:
        auth.token()
    texts += [str(refreshing.value), repr(refreshing.value), *refreshing.value.messages]
    for secret in (REFRESH, SECRET, CODE, "agency-token-0123456789"):
        assert all(secret not in t for t in texts), secret
    assert any("invalid grant" in t for t in texts)  # the server's words still reach the user


def oauth_config(tmp_path: Path, **extra: object) -> dict[str, object]:
    return {
        "base_url": "http://127.0.0.1:9",
        "location_id": "loc",
        "client_id": "client",
        "client_secret": SECRET,
        "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}",
        **extra,
    }


def test_plain_text_tokens_are_announced_loudly(tmp_path: Path, capsys) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(oauth_config(tmp_path)))
    admin_main(["--config", str(config_path), "status"])
    err = capsys.readouterr().err
    assert "WARNING" in err
    assert "PLAIN TEXT" in err


def test_require_token_encryption_refuses_plain_text(tmp_path: Path, capsys) -> None:
    config = oauth_config(tmp_path, require_token_encryption=True)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    assert admin_main(["--config", str(config_path), "login", "--no-browser"]) == 2
    assert "token_encryption_key" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="require_token_encryption"):
        build_sync(config)


def test_the_prod_environment_requires_encrypted_tokens() -> None:
    project = yaml.safe_load((REPO / "meltano.yml").read_text(encoding="utf-8"))
    prod = next(e for e in project["environments"] if e["name"] == "prod")
    loader = next(p for p in prod["config"]["plugins"]["loaders"] if p["name"] == "target-contacts")
    assert loader["config"]["require_token_encryption"] is True
