"""Secrets: TLS verification never turned off, the token store private
(0600) and encrypted at rest when a key is set, and no secret in --about or operator output. The
scan of everything the suite captured is the last test (test_zz_secrets_scan.py)."""

from __future__ import annotations

import json
import re
import ssl
import stat
import subprocess
from pathlib import Path

from sandbox.contacts import ContactsSandbox
from sandbox.moco import MocoSandbox
from sandbox.server import RunningSandbox
from tests.reliability.harness import (
    BIN,
    CLIENT_SECRET,
    ENCRYPTION_KEY,
    LOCATION,
    MOCO_KEY,
    PIT,
    ROOT,
    login,
    oauth_target,
    person,
    singer,
    token_grants,
)
from tests.tls import self_signed

PROJECT_CODE = ("target_contacts", "tap_moco", "sandbox", "scripts")
TLS_OFF = re.compile(
    r"verify\s*=\s*False|_create_unverified_context|CERT_NONE|"
    r"check_hostname\s*=\s*False|PYTHONHTTPSVERIFY|"
    r"REQUESTS_CA_BUNDLE\s*=\s*['\"]{2}"
)


def test_no_code_turns_tls_verification_off(record):
    files = [
        p
        for folder in PROJECT_CODE
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and p.suffix in (".py", "") and "__pycache__" not in p.parts
    ]
    assert len(files) > 20
    hits = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in files
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if TLS_OFF.search(line)
    ]
    assert hits == []
    record(
        case="secrets-tls-grep",
        area="Secrets",
        fault="TLS verification turned off in code",
        injection=f"grep of {len(files)} project files ({', '.join(PROJECT_CODE)}) for "
        "verify=False, unverified contexts, CERT_NONE",
        outcome="no match",
        lost=0,
        duplicates=0,
    )


def https(app, folder: Path) -> RunningSandbox:
    """A sandbox served over TLS with a self-signed certificate no CA store trusts."""
    cert, key = self_signed(folder)
    sandbox = RunningSandbox(app)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    sandbox.server.socket = context.wrap_socket(sandbox.server.socket, server_side=True)
    return sandbox.start()


def test_tls_verification_stays_on_against_an_untrusted_certificate(
    world_factory, tmp_path, record
):
    world = world_factory(n_contacts=5)
    contacts = https(ContactsSandbox(location_id=LOCATION, token=PIT, rate_limit=100_000), tmp_path)
    moco = https(MocoSandbox(api_key=MOCO_KEY, rate_limit=100_000), tmp_path)
    try:
        target = world.run_target(
            singer([person(1), person(2)]),
            target={"base_url": f"https://127.0.0.1:{contacts.port}"},
        )
        tap = world.run(tap={"base_url": f"https://127.0.0.1:{moco.port}"})
        stored = contacts.app.state()["contacts"]  # type: ignore[attr-defined]
        moco_served = list(moco.app._log)  # type: ignore[attr-defined]
    finally:
        contacts.stop()
        moco.stop()
    assert target.target_returncode != 0
    assert "TLS verification failed (SSLError)" in target.last_error()
    assert "rejected" not in target.stderr  # not blamed on the records
    assert target.states == [] and stored == []
    assert tap.tap_returncode != 0 and tap.states == []
    assert "TLS verification failed for https://127.0.0.1" in tap.tap_stderr
    assert moco_served == []  # no request got through the handshake
    record(
        case="secrets-tls-untrusted",
        area="Secrets",
        fault="server certificate not trusted (self-signed)",
        injection="both sandboxes served over TLS with a self-signed certificate",
        outcome="both stop at once: 'TLS verification failed ... (verification stays "
        "on)'; nothing sent, nothing rejected, no state",
        lost=0,
        duplicates=0,
    )


def ledger_files(path: Path) -> list[Path]:
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


def test_token_store_is_private_and_encrypted_at_rest(world_factory, baseline, record):
    base = baseline(40, 7)
    world = world_factory(n_contacts=40, seed=7, latency=0.02, contacts={"access_token_ttl": 2})
    login(world, encryption_key=ENCRYPTION_KEY)
    run = world.run(target=oauth_target(token_encryption_key=ENCRYPTION_KEY, max_concurrency=2))
    assert run.ok, run.describe()
    assert len(token_grants(world)) >= 1  # tokens were rotated and stored during the run
    files = ledger_files(world.ledger_path)
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o600"}, modes
    raw = b"".join(p.read_bytes() for p in files)
    tokens = [t[k] for t in world.issued for k in ("access_token", "refresh_token")]
    assert len(tokens) >= 4
    assert [t[:6] for t in tokens if t.encode() in raw] == []
    assert CLIENT_SECRET.encode() not in raw and ENCRYPTION_KEY.encode() not in raw
    assert b"gAAAAA" in raw  # Fernet ciphertext is what is stored
    status = world.admin("status", target=oauth_target(token_encryption_key=ENCRYPTION_KEY))
    assert status.returncode == 0 and "encrypted:     yes" in status.stdout
    no_key = world.admin("status", target=oauth_target())
    assert no_key.returncode == 1 and "token_encryption_key" in no_key.stdout
    assert len(world.crm()["contacts"]) == len(base.crm["contacts"])
    record(
        case="secrets-token-store",
        area="Secrets",
        fault="token store at rest",
        injection="OAuth run with token_encryption_key; tokens rotated every second",
        outcome=f"ledger files {', '.join(sorted(modes))} all 0600; none of the "
        f"{len(tokens)} issued tokens readable in their bytes (Fernet ciphertext); "
        "status without the key says which setting is missing",
        lost=0,
        duplicates=0,
    )


def test_about_and_operator_output_hold_no_secret(world_factory):
    world = world_factory(n_contacts=0)
    folder = world.workdir / "about"
    folder.mkdir()
    tap_config = folder / "tap.json"
    tap_config.write_text(json.dumps(world.tap_config()))
    target_config = folder / "target.json"
    target_config.write_text(
        json.dumps(
            world.target_config(
                **oauth_target(token_encryption_key=ENCRYPTION_KEY, private_integration_token=PIT)
            )
        )
    )
    outputs = []
    for command in (
        [str(BIN / "tap-moco"), "--about", "--config", str(tap_config)],
        [str(BIN / "target-contacts"), "--about", "--config", str(target_config)],
        [str(BIN / "tap-moco"), "--about", "--format", "markdown"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=folder)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append(result.stdout + result.stderr)
        world.evidence.text(f"{Path(command[0]).name} --about", result.stdout + result.stderr)
    for args in (("status",), ("rejects", "list")):
        result = world.admin(*args)
        outputs.append(result.stdout + result.stderr)
    joined = "\n".join(outputs)
    assert "appointment" in joined  # it is the real --about text
    for secret in (PIT, MOCO_KEY, CLIENT_SECRET, ENCRYPTION_KEY):
        assert secret not in joined
