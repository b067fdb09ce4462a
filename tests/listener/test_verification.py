"""What the listener takes and what it refuses: signatures, freshness, replays, sizes, types.

Every refusal is checked the way a user would: the HTTP answer, and no row in the ledger.
"""

from __future__ import annotations

import hmac
import json
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from sync_listener.keys import CONTACTS_ED25519_PUBLIC_KEY
from sync_listener.settings import load_settings
from sync_listener.verify import moco_signature as listener_moco_signature
from tests.listener.conftest import (
    LOCATION,
    MOCO_SECRET,
    ROOT,
    Keys,
    Listener,
    World,
    contacts_payload,
    iso_now,
    moco_body,
    moco_signature,
    now_ms,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import requests

MAX_BODY = 4096
DOC_BODY = b'{"id":111,"description":"a description"}'
DOC_SIGNATURE = "bf027a86207ef1ca1cb76f5a536b41a14287ab1a0fd5b33bfe86924bc2f48fd1"


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Iterator[World]:
    """One listener for the whole module (its runs are instant fakes)."""
    world = World(tmp_path_factory.mktemp("verify"), keys)
    world.control.mkdir()
    world.start(max_body_bytes=MAX_BODY)
    yield world
    world.stop_all()


@pytest.fixture
def listener(checked: World) -> Listener:
    return checked.listeners[0]


def test_moco_signature_matches_the_documented_test_vector() -> None:
    assert listener_moco_signature(MOCO_SECRET, DOC_BODY) == DOC_SIGNATURE


def test_published_highlevel_keys_are_the_defaults() -> None:
    import hashlib

    from cryptography.hazmat.primitives import serialization

    settings = load_settings([], {"SYNC_LISTENER_LOCATION_ID": LOCATION})
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = settings.contacts_public_key.public_bytes(serialization.Encoding.PEM, spki).decode()
    assert pem == CONTACTS_ED25519_PUBLIC_KEY
    legacy = settings.contacts_legacy_public_key
    assert legacy.key_size == 4096
    der = legacy.public_bytes(serialization.Encoding.DER, spki)
    assert (
        hashlib.sha256(der).hexdigest()
        == "2f62045d413b1b7747e26770ce7f57840cbf86288cd20ceb90d299a62501fd25"
    )


def test_documented_moco_delivery_is_stored_before_the_202(
    checked: World, listener: Listener
) -> None:
    answer = listener.post_moco(DOC_BODY, signature=DOC_SIGNATURE)
    assert answer.status_code == 202, answer.text
    stored = [e for e in checked.events() if e["id"] == answer.json()["event"]]
    assert len(stored) == 1
    row = stored[0]
    assert row["source"] == "moco"
    assert row["event_type"] == "Contact.update"
    assert row["record_id"] == "111"
    assert row["location_id"] == LOCATION
    assert row["payload"] == DOC_BODY.decode()
    assert row["status"] in ("pending", "handled")


def test_contacts_delivery_signed_either_way_is_accepted(
    checked: World, listener: Listener
) -> None:
    current = listener.post_contacts(contacts_payload(), scheme="ed25519")
    legacy = listener.post_contacts(contacts_payload("NoteCreate"), scheme="rsa")
    assert (current.status_code, legacy.status_code) == (202, 202), (current.text, legacy.text)
    types = {e["id"]: e["event_type"] for e in checked.events()}
    assert types[current.json()["event"]] == "ContactUpdate"
    assert types[legacy.json()["event"]] == "NoteCreate"


def _other_keys() -> Keys:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    return Keys(ed25519.Ed25519PrivateKey.generate(), rsa.generate_private_key(65537, 2048))


def _contacts_body(**changes: Any) -> bytes:
    payload = contacts_payload()
    payload.update(changes)
    return json.dumps({k: v for k, v in payload.items() if v is not None}).encode()


def _signed_by_stranger(
    listener: Listener, stranger: Keys, header: str, scheme: str
) -> requests.Response:
    """A Contacts delivery whose ``header`` is signed by a key that is not HighLevel's."""
    body = _contacts_body()
    sign = stranger.sign_ed25519 if header == "x-ghl-signature" else stranger.sign_rsa
    return listener.post_contacts(body, scheme=scheme, headers={header: sign(body)})


def _refusals() -> dict[str, tuple[int, Callable[[Listener], requests.Response]]]:
    body = moco_body(7)
    stranger = _other_keys()
    return {
        "moco unsigned": (401, lambda li: li.post_moco(body, omit=("X-Moco-Signature",))),
        "moco signed with another key": (
            401,
            lambda li: li.post_moco(body, signature=moco_signature(body, "f" * 32)),
        ),
        "moco key hex-decoded instead of ASCII": (
            401,
            lambda li: li.post_moco(
                body,
                signature=hmac.new(bytes.fromhex(MOCO_SECRET), body, "sha256").hexdigest(),
            ),
        ),
        "moco signature of another body": (
            401,
            lambda li: li.post_moco(body, signature=moco_signature(moco_body(8))),
        ),
        "moco stale timestamp": (
            401,
            lambda li: li.post_moco(body, timestamp_ms=now_ms() - 600_000),
        ),
        "moco timestamp from the future": (
            401,
            lambda li: li.post_moco(body, timestamp_ms=now_ms() + 600_000),
        ),
        "moco without target": (400, lambda li: li.post_moco(body, omit=("X-Moco-Target",))),
        "moco without timestamp": (
            400,
            lambda li: li.post_moco(body, omit=("X-Moco-Timestamp",)),
        ),
        "moco wrong content type": (400, lambda li: li.post_moco(body, content_type="text/plain")),
        "moco garbage json": (400, lambda li: li.post_moco(b"{not json")),
        "moco json that is no object": (400, lambda li: li.post_moco(b"[1, 2]")),
        "moco json not in utf-8": (
            400,
            lambda li: li.post_moco(json.dumps({"id": 3}).encode("utf-16")),
        ),
        "moco oversized": (413, lambda li: li.post_moco(moco_body(9, notes="x" * MAX_BODY))),
        "contacts unsigned": (401, lambda li: li.post_contacts(contacts_payload(), scheme="none")),
        "contacts ed25519 by another key": (
            401,
            lambda li: _signed_by_stranger(li, stranger, "x-ghl-signature", "none"),
        ),
        "contacts bad ed25519 with a good legacy signature (no fallback)": (
            401,
            lambda li: _signed_by_stranger(li, stranger, "x-ghl-signature", "rsa"),
        ),
        "contacts legacy rsa by another key": (
            401,
            lambda li: _signed_by_stranger(li, stranger, "x-wh-signature", "none"),
        ),
        "contacts signature not base64": (
            401,
            lambda li: li.post_contacts(
                _contacts_body(), scheme="none", headers={"x-ghl-signature": "%%%not base64%%%"}
            ),
        ),
        "contacts stale timestamp": (
            401,
            lambda li: li.post_contacts(_contacts_body(timestamp=iso_now(-600))),
        ),
        "contacts other location": (
            403,
            lambda li: li.post_contacts(_contacts_body(locationId="someone-else")),
        ),
        "contacts without webhookId": (
            400,
            lambda li: li.post_contacts(_contacts_body(webhookId=None)),
        ),
        "contacts garbage json": (400, lambda li: li.post_contacts(b"\xff{garbage")),
        "contacts wrong content type": (
            400,
            lambda li: li.post_contacts(
                contacts_payload(), headers={"Content-Type": "application/x-www-form-urlencoded"}
            ),
        ),
        "contacts oversized": (
            413,
            lambda li: li.post_contacts(contacts_payload(notes="x" * MAX_BODY)),
        ),
    }


REFUSALS = _refusals()


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_delivery_stores_nothing(checked: World, listener: Listener, case: str) -> None:
    status, send = REFUSALS[case]
    before = len(checked.events())
    answer = send(listener)
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error"}
    assert len(checked.events()) == before


def test_replays_are_refused_and_stored_once(checked: World, listener: Listener) -> None:
    body = moco_body(31, lastname="Lovelace")
    stamp = now_ms()
    first = listener.post_moco(body, timestamp_ms=stamp)
    again = listener.post_moco(body, timestamp_ms=stamp + 5_000)  # a fresh header changes nothing
    payload = contacts_payload()
    contacts_first = listener.post_contacts(payload)
    contacts_again = listener.post_contacts({**payload, "firstName": "Eve"})  # same webhookId
    assert [first.status_code, again.status_code] == [202, 409]
    assert [contacts_first.status_code, contacts_again.status_code] == [202, 409]
    events = checked.events()
    assert sum(1 for e in events if e["payload"] == body.decode()) == 1
    assert sum(1 for e in events if payload["webhookId"] in e["dedupe_key"]) == 1


def _raw_exchange(url: str, head: bytes, body: bytes) -> bytes:
    """Send ``head`` and ``body`` as they are and read the answer's status line."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def test_oversized_body_is_refused_before_it_is_read(checked: World, listener: Listener) -> None:
    before = len(checked.events())
    # Declared too large: the answer comes although not one byte of the body was sent.
    declared = (
        b"POST /webhooks/moco HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 50000000\r\n\r\n"
    )
    assert _raw_exchange(listener.url, declared, b"") == b"HTTP/1.1 413 Request Entity Too Large"
    # Chunked, no length: refused once the limit is passed, before the body's end ever comes.
    chunked = (
        b"POST /webhooks/contacts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (MAX_BODY + 1, b"x" * (MAX_BODY + 1))
    assert _raw_exchange(listener.url, chunked, chunk) == b"HTTP/1.1 413 Request Entity Too Large"
    assert len(checked.events()) == before


def test_healthz_reports_pending_and_runs(listener: Listener) -> None:
    health = listener.healthz()
    assert health["ok"] is True
    assert isinstance(health["pending"], int)
    assert isinstance(health["runs_in_flight"], int)


def test_no_secret_in_answers_or_logs(checked: World, listener: Listener) -> None:
    body = moco_body(55)
    good = listener.post_moco(body)
    bad = listener.post_moco(body, signature=moco_signature(body, "0" * 32))
    assert good.status_code == 202
    assert bad.status_code == 401
    for answer in (good, bad):
        assert MOCO_SECRET not in answer.text
        assert moco_signature(body) not in answer.text
    listener.wait_settled()
    logs = "".join(path.read_text() for path in checked.stderr_paths)
    assert "stored as pending" in logs  # the log is there, and says what happened
    assert MOCO_SECRET not in logs
    assert moco_signature(body) not in logs
    assert "Ada" not in logs  # no payload value
    for run in checked.runs():
        assert run["leaked"] == []
        assert run["meltano_run_id"] == run["run_id"]


def _run_cli(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync_listener", "--port", "0"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_settings_fail_before_listening_and_echo_no_secret(tmp_path: Path) -> None:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_LISTENER_")}
    missing = _run_cli(tmp_path, base)
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert "location_id" in missing.stderr
    secret = "0123456789abcdef0123456789abcdef "
    bad = _run_cli(
        tmp_path,
        {
            **base,
            "SYNC_LISTENER_LOCATION_ID": LOCATION,
            "SYNC_LISTENER_MOCO_WEBHOOK_SECRET": secret,
            "SYNC_LISTENER_CONTACTS_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nnope\n",
        },
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert secret.strip() not in bad.stderr


def test_moco_window_can_be_widened_for_late_retries(world: World) -> None:
    listener = world.start(moco_timestamp_tolerance_seconds=3600)
    late = listener.post_moco(moco_body(77), timestamp_ms=now_ms() - 600_000)
    assert late.status_code == 202, late.text
    # HighLevel's window is its own and stays at the default.
    stale = listener.post_contacts(contacts_payload(timestamp=iso_now(-600)))
    assert stale.status_code == 401
