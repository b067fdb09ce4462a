"""OAuth 2.0 against the sandbox: login over a real loopback redirect, refresh, rotation, locking
across processes, lost tokens, the encrypted store, and secrets kept out of every output."""

from __future__ import annotations

import logging
import multiprocessing
import os
import stat
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
from cryptography.fernet import Fernet

from contacts_api.auth import (
    OAuthAuth,
    StaticTokenAuth,
    auth_from_config,
    exchange_code,
)
from contacts_api.client import ContactsClient
from contacts_api.errors import AuthError, TokenLostError
from contacts_api.ratelimit import ContactsRateLimiter
from sync_ledger.db import make_engine
from sync_ledger.tokens import StoredToken, TokenStore, TokenStoreError
from target_contacts.admin import main as admin_main
from tests.sandbox.clock import FakeClock

from .conftest import LOCATION, request_log, seed
from .oauth_worker import list_contacts_in_a_process

CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"
AGENCY_TOKEN = "sandbox-agency-token"
COMPANY_ID = "sandbox-company"
REPO = Path(__file__).resolve().parents[2]


def ledger_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def authorization_code(sandbox, redirect_uri: str = "http://127.0.0.1:9/callback") -> str:
    """What a browser gets from the consent page: the code in the redirect."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": "contacts.readonly contacts.write",
            "state": "s",
        }
    )
    answer = requests.get(
        f"{sandbox.url}/v2/oauth/chooselocation?{query}", allow_redirects=False, timeout=10
    )
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


def logged_in(sandbox, store: TokenStore) -> StoredToken:
    redirect_uri = "http://127.0.0.1:9/callback"
    code = authorization_code(sandbox, redirect_uri)
    return exchange_code(
        store,
        base_url=sandbox.url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        code=code,
        redirect_uri=redirect_uri,
        location_id=LOCATION,
    )


def oauth(sandbox, store: TokenStore, **kwargs) -> OAuthAuth:
    return OAuthAuth(
        store,
        base_url=sandbox.url,
        location_id=LOCATION,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        **kwargs,
    )


def client_for(sandbox, auth) -> ContactsClient:
    return ContactsClient(
        sandbox.url,
        LOCATION,
        auth,
        limiter=ContactsRateLimiter(1000, 10.0),
        retry_base_seconds=0.01,
    )


def refresh_grants(sandbox) -> list[dict]:
    return [
        e
        for e in request_log(sandbox)
        if e["path"] == "/oauth/token"
        and (e.get("body") or {}).get("grant_type") == "refresh_token"
    ]


def expire(store: TokenStore, token: StoredToken) -> StoredToken:
    """Make the stored access token look expired (the sandbox's copy may still be valid)."""
    now = datetime.now(timezone.utc)
    old = replace(token, expires_at=now - timedelta(seconds=1), updated_at=now - timedelta(days=1))
    store.save(old)
    return old


def spend(sandbox, refresh_token: str) -> requests.Response:
    """Use a refresh token the way another machine would."""
    return requests.post(
        f"{sandbox.url}/oauth/token",
        timeout=10,
        data={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": refresh_token,
            "user_type": "Location",
        },
    )


def cli_env(sandbox, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARGET_CONTACTS_")}
    env.update(
        {
            "TARGET_CONTACTS_BASE_URL": sandbox.url,
            "TARGET_CONTACTS_AUTHORIZE_URL": f"{sandbox.url}/v2/oauth/chooselocation",
            "TARGET_CONTACTS_CLIENT_ID": CLIENT_ID,
            "TARGET_CONTACTS_CLIENT_SECRET": CLIENT_SECRET,
            "TARGET_CONTACTS_LOCATION_ID": LOCATION,
            "TARGET_CONTACTS_LEDGER_URL": ledger_url(tmp_path),
            **extra,
        }
    )
    return env


def admin(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "target_contacts.admin", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_login(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """``contacts-admin login --no-browser`` in a process; returns it and the printed URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "target_contacts.admin", "login", "--no-browser", "--timeout", "30"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip().startswith("http"):
            return proc, line.strip()
    proc.kill()
    raise AssertionError(f"login printed no URL: {proc.stderr.read() if proc.stderr else ''}")


def test_login_end_to_end_over_a_real_redirect(contacts_sandbox_factory, tmp_path):
    sandbox = contacts_sandbox_factory(rate_limit=100_000)
    key = Fernet.generate_key().decode()
    env = cli_env(sandbox, tmp_path, TARGET_CONTACTS_TOKEN_ENCRYPTION_KEY=key)
    proc, url = start_login(env)
    consent = urlsplit(url)
    params = parse_qs(consent.query)
    assert consent.path == "/v2/oauth/chooselocation"
    assert params["response_type"] == ["code"] and params["client_id"] == [CLIENT_ID]
    assert params["scope"] == ["contacts.readonly contacts.write"]
    assert params["redirect_uri"][0].startswith("http://127.0.0.1:")
    assert len(params["state"][0]) >= 32

    page = requests.get(url, timeout=10)  # the "browser": consent, then the loopback redirect
    assert page.status_code == 200 and "Authorised" in page.text
    code = parse_qs(urlsplit(page.history[0].headers["Location"]).query)["code"][0]
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"Logged in to location {LOCATION}" in out
    assert "contacts.readonly contacts.write" in out and "encrypted:     yes" in out

    engine = make_engine(ledger_url(tmp_path))
    stored = TokenStore(engine, encryption_key=key).load(LOCATION)
    assert stored is not None and stored.user_type == "Location"
    exchange = [e for e in request_log(sandbox) if e["path"] == "/oauth/token"]
    assert exchange[0]["body"]["grant_type"] == "authorization_code"
    assert exchange[0]["body"]["redirect_uri"] == params["redirect_uri"][0]
    # the stored token works
    assert list(client_for(sandbox, StaticTokenAuth(stored.access_token)).list_contacts()) == []

    status = admin("status", env=env)
    assert status.returncode == 0, status.stderr
    assert "scopes:        contacts.readonly contacts.write" in status.stdout
    assert "user type:     Location" in status.stdout and "(in 23 h" in status.stdout
    secrets_ = (stored.access_token, stored.refresh_token, code, CLIENT_SECRET, key)
    for text in (out, err, status.stdout, status.stderr):
        assert not any(s in text for s in secrets_)

    assert admin("logout", env=env).returncode == 0
    assert TokenStore(engine).info(LOCATION) is None
    after = admin("status", env=env)
    assert after.returncode == 1 and "contacts-admin login" in after.stdout


def test_login_refuses_a_redirect_with_another_state(contacts_sandbox_factory, tmp_path):
    sandbox = contacts_sandbox_factory(rate_limit=100_000)
    env = cli_env(sandbox, tmp_path)
    proc, url = start_login(env)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    query["state"] = ["forged-state"]
    forged = urlunsplit(parts._replace(query=urlencode({k: v[0] for k, v in query.items()})))
    requests.get(forged, timeout=10)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "state does not match" in err and "nothing was stored" in err
    assert TokenStore(make_engine(ledger_url(tmp_path))).info(LOCATION) is None
    assert not [e for e in request_log(sandbox) if e["path"] == "/oauth/token"]


def test_login_without_client_credentials_fails_before_the_browser(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARGET_CONTACTS_")}
    env["TARGET_CONTACTS_LEDGER_URL"] = ledger_url(tmp_path)
    result = admin("login", "--no-browser", env=env)
    assert result.returncode == 2
    assert "client_id (TARGET_CONTACTS_CLIENT_ID)" in result.stderr


def test_access_token_is_refreshed_before_it_expires(contacts_sandbox_factory, tmp_path):
    sandbox = contacts_sandbox_factory(rate_limit=100_000, access_token_ttl=2)
    store = TokenStore(make_engine(ledger_url(tmp_path)))
    first = logged_in(sandbox, store)
    client = client_for(sandbox, oauth(sandbox, store))
    list(client.list_contacts())
    time.sleep(1.2)  # within a second of expiry: refreshed before the call
    list(client.list_contacts())
    assert len(refresh_grants(sandbox)) == 1
    assert [e["status"] for e in request_log(sandbox) if e["path"] == "/contacts/"] == [200, 200]
    second = store.load(LOCATION)
    assert second is not None and second.access_token != first.access_token
    # rotation persisted: the old refresh token is spent, the stored one works
    assert (
        spend(sandbox, first.refresh_token).json()["message"]
        == "Invalid grant: refresh token is invalid"
    )
    assert spend(sandbox, second.refresh_token).status_code == 200


def test_a_401_triggers_one_refresh_and_one_retry(contacts_sandbox_factory, tmp_path):
    clock = FakeClock()  # the API's clock: the token expires when the test says, not before
    sandbox = contacts_sandbox_factory(rate_limit=100_000, access_token_ttl=1, clock=clock)
    store = TokenStore(make_engine(ledger_url(tmp_path)))
    token = logged_in(sandbox, store)
    # the store believes the token is good for an hour; the API has expired it
    store.save(replace(token, expires_at=datetime.now(timezone.utc) + timedelta(hours=1)))
    clock.advance(1.1)
    contact_id = seed(sandbox, contacts=[{"firstName": "A"}])["contacts"][0]
    client = client_for(sandbox, oauth(sandbox, store))
    assert client.get_contact(contact_id)["id"] == contact_id
    statuses = [(e["path"], e["status"]) for e in request_log(sandbox)]
    assert statuses[-3:] == [
        (f"/contacts/{contact_id}", 401),
        ("/oauth/token", 200),
        (f"/contacts/{contact_id}", 200),
    ]
    assert client.calls["GET /contacts/{id}"] == 2


def test_two_processes_refreshing_at_once_make_one_refresh(contacts_sandbox_factory, tmp_path):
    sandbox = contacts_sandbox_factory(rate_limit=100_000, latency=0.3)
    url = ledger_url(tmp_path)
    store = TokenStore(make_engine(url))
    expire(store, logged_in(sandbox, store))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=list_contacts_in_a_process,
            kwargs={
                "ledger_url": url,
                "base_url": sandbox.url,
                "location_id": LOCATION,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "barrier": barrier,
                "results": results,
            },
        )
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert outcomes == [("ok", 0), ("ok", 0)]
    assert len(refresh_grants(sandbox)) == 1
    assert [e["status"] for e in request_log(sandbox) if e["path"] == "/contacts/"] == [200, 200]


def test_a_lost_refresh_token_says_to_log_in_again(contacts_sandbox_factory, tmp_path, caplog):
    sandbox = contacts_sandbox_factory(rate_limit=100_000)
    store = TokenStore(make_engine(ledger_url(tmp_path)))
    token = logged_in(sandbox, store)
    assert spend(sandbox, token.refresh_token).status_code == 200  # someone else rotated it
    expire(store, token)
    client = client_for(sandbox, oauth(sandbox, store))
    with pytest.raises(TokenLostError) as lost:
        client.get_contact("x")
    message = str(lost.value)
    assert "refresh token" in message and "no longer valid" in message
    assert "contacts-admin login" in message
    assert isinstance(lost.value, AuthError)
    assert not [e for e in request_log(sandbox) if e["path"].startswith("/contacts")]


def test_a_lost_refresh_token_is_recovered_with_the_agency_token(
    contacts_sandbox_factory, tmp_path
):
    sandbox = contacts_sandbox_factory(
        rate_limit=100_000, agency_token=AGENCY_TOKEN, company_id=COMPANY_ID
    )
    store = TokenStore(make_engine(ledger_url(tmp_path)))
    token = logged_in(sandbox, store)
    spend(sandbox, token.refresh_token)
    expire(store, token)
    auth = oauth(sandbox, store, agency_token=AGENCY_TOKEN, company_id=COMPANY_ID)
    assert list(client_for(sandbox, auth).list_contacts()) == []
    recovered = store.load(LOCATION)
    assert recovered is not None and recovered.access_token != token.access_token
    assert recovered.company_id == COMPANY_ID
    minted = [e["status"] for e in request_log(sandbox) if e["path"] == "/oauth/locationToken"]
    assert minted == [200]


def test_encrypted_store_is_private_and_unreadable_without_the_key(
    contacts_sandbox_factory, tmp_path
):
    sandbox = contacts_sandbox_factory(rate_limit=100_000)
    key = Fernet.generate_key().decode()
    engine = make_engine(ledger_url(tmp_path))
    token = logged_in(sandbox, TokenStore(engine, encryption_key=key))
    db = tmp_path / "ledger.db"
    files = [p for p in (db, Path(f"{db}-wal")) if p.exists()]
    raw = b"".join(p.read_bytes() for p in files)
    assert token.access_token.encode() not in raw and token.refresh_token.encode() not in raw
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    with pytest.raises(TokenStoreError) as no_key:
        TokenStore(engine).load(LOCATION)
    assert "token_encryption_key" in str(no_key.value)
    with pytest.raises(TokenStoreError) as wrong_key:
        TokenStore(engine, encryption_key=Fernet.generate_key().decode()).load(LOCATION)
    assert "cannot be decrypted" in str(wrong_key.value)
    with pytest.raises(TokenStoreError) as bad_key:
        TokenStore(engine, encryption_key="not-a-key")
    assert "Fernet" in str(bad_key.value)
    info = TokenStore(engine).info(LOCATION)  # metadata stays readable without the key
    assert info is not None and info.encrypted and info.scope == "contacts.readonly contacts.write"
    assert TokenStore(engine, encryption_key=key).load(LOCATION) == token


def test_no_secret_reaches_logs_output_errors_or_reprs(
    contacts_sandbox_factory, tmp_path, caplog, capsys, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    sandbox = contacts_sandbox_factory(rate_limit=100_000, access_token_ttl=2)
    key = Fernet.generate_key().decode()
    config = {
        "location_id": LOCATION,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "base_url": sandbox.url,
        "ledger_url": ledger_url(tmp_path),
        "token_encryption_key": key,
    }
    engine = make_engine(config["ledger_url"])
    store = TokenStore(engine, encryption_key=key)
    first = logged_in(sandbox, store)
    auth = auth_from_config(config, engine)
    client = client_for(sandbox, auth)
    list(client.list_contacts())
    time.sleep(1.1)
    list(client.list_contacts())  # refreshed
    second = store.load(LOCATION)
    spend(sandbox, second.refresh_token)
    expire(store, second)
    lost_client = client_for(sandbox, auth_from_config(config, engine))
    errors = []
    for call in (
        lambda: lost_client.get_contact("x"),
        lambda: client_for(sandbox, StaticTokenAuth("pit-very-secret")).get_contact("x"),
    ):
        with pytest.raises(AuthError) as failed:
            call()
        errors.append(failed.value)
    assert isinstance(errors[0], TokenLostError)
    for name, value in config.items():
        monkeypatch.setenv(f"TARGET_CONTACTS_{name.upper()}", value)
    assert admin_main(["status"]) == 0

    out = capsys.readouterr()
    secrets_ = [
        first.access_token,
        first.refresh_token,
        second.access_token,
        second.refresh_token,
        CLIENT_SECRET,
        key,
        "pit-very-secret",
    ]
    texts = [
        caplog.text,
        out.out,
        out.err,
        repr(auth),
        repr(store),
        repr(first),
        repr(StaticTokenAuth("pit-very-secret")),
        repr(client),
        *(str(e) for e in errors),
        *(repr(e) for e in errors),
        *(" ".join(e.messages) for e in errors),
    ]
    leaks = [(s[:6], t[:80]) for s in secrets_ for t in texts if s in t]
    assert not leaks
    assert "Refreshed the OAuth access token" in caplog.text
