"""`sync-listener register-moco-webhooks` subscribes the listener to MOCO's events, idempotently."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from sandbox.server import RunningSandbox

BIN = Path(sys.executable).parent
HOOK = "https://sync.example.test/webhooks/moco"


def _register(moco: RunningSandbox) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "sync-listener"),
            "register-moco-webhooks",
            "--url",
            HOOK,
            "--moco-base-url",
            moco.url,
            "--moco-api-key",
            "sandbox-key",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _hooks(moco: RunningSandbox) -> list[dict[str, object]]:
    return requests.get(
        f"{moco.url}/api/v1/account/web_hooks",
        headers={"Authorization": "Token token=sandbox-key"},
        timeout=10,
    ).json()


def test_registration_is_idempotent_and_enables_disabled_hooks(moco_sandbox):
    first = _register(moco_sandbox)
    assert first.returncode == 0, first.stderr
    hooks = _hooks(moco_sandbox)
    assert sorted((h["target"], h["event"]) for h in hooks) == sorted(
        (t, e) for t in ("Contact", "Comment") for e in ("create", "update", "delete")
    )
    assert {h["hook"] for h in hooks} == {HOOK}
    assert "sandbox-key" not in first.stdout + first.stderr

    second = _register(moco_sandbox)
    assert second.returncode == 0
    assert "nothing registered" in second.stdout
    assert len(_hooks(moco_sandbox)) == 6

    contact_delete = next(h for h in hooks if (h["target"], h["event"]) == ("Contact", "delete"))
    requests.put(
        f"{moco_sandbox.url}/api/v1/account/web_hooks/{contact_delete['id']}/disable",
        headers={"Authorization": "Token token=sandbox-key"},
        timeout=10,
    ).raise_for_status()
    third = _register(moco_sandbox)
    assert "enabled Contact delete" in third.stdout
    assert all(not h["disabled"] for h in _hooks(moco_sandbox))
    assert len(_hooks(moco_sandbox)) == 6


def test_a_refused_key_fails_without_printing_it(moco_sandbox):
    proc = subprocess.run(
        [
            str(BIN / "sync-listener"),
            "register-moco-webhooks",
            "--url",
            HOOK,
            "--moco-base-url",
            moco_sandbox.url,
            "--moco-api-key",
            "wrong-key-123456",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "401" in proc.stderr
    assert "wrong-key-123456" not in proc.stdout + proc.stderr
