"""End-to-end fixtures: the Meltano project (``meltano_project``, installed once per test process
in tests/conftest.py) run against the sandboxes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from sandbox.contacts import ContactsSandbox
from sandbox.moco import MocoSandbox
from sandbox.server import RunningSandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("TAP_MOCO_", "TARGET_CONTACTS_", "TAP_CONTACTS_", "TARGET_MOCO_", "MELTANO_")
        )
    }
    env["MELTANO_ENVIRONMENT"] = "sandbox"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class Pipeline:
    """One Meltano project wired to a fresh pair of sandboxes."""

    project: Path
    moco: RunningSandbox
    contacts: RunningSandbox
    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        ledger = f"sqlite:///{self.workdir / 'ledger.db'}"
        return {
            **_base_env(),
            # A system database of this pipeline's own (Meltano makes it on first use): no state
            # and no runs from the tests before, without a `meltano state clear` per state id.
            "MELTANO_DATABASE_URI": f"sqlite:///{self.workdir / 'meltano-system.db'}",
            "TAP_MOCO_BASE_URL": self.moco.url,
            "TARGET_CONTACTS_BASE_URL": self.contacts.url,
            "TARGET_CONTACTS_LEDGER_URL": ledger,
            "TAP_CONTACTS_BASE_URL": self.contacts.url,
            "TAP_CONTACTS_LEDGER_URL": ledger,
            "TARGET_MOCO_BASE_URL": self.moco.url,
            "TARGET_MOCO_LEDGER_URL": ledger,
            # The sandboxes answer at once and allow plenty: no waiting in tests.
            "TARGET_MOCO_RATE_LIMIT_REQUESTS": "100000",
            "TARGET_MOCO_RATE_LIMIT_WINDOW_SECONDS": "1",
            "TAP_MOCO_RATE_LIMIT_REQUESTS": "100000",
            "TAP_MOCO_RATE_LIMIT_WINDOW_SECONDS": "1",
        }

    def meltano(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BIN / "meltano"), *args],
            cwd=self.project,
            text=True,
            capture_output=True,
            env={**self.env, **(env or {})},
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"meltano {' '.join(args)} failed:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
            )
        return result

    def run(self, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        """``meltano run tap-moco target-contacts``; returns the target's summary."""
        summary = self.workdir / "summary.json"
        summary.unlink(missing_ok=True)
        self.meltano(
            "run",
            *extra,
            "tap-moco",
            "target-contacts",
            env={"TARGET_CONTACTS_SUMMARY_PATH": str(summary), **(env or {})},
        )
        return json.loads(summary.read_text())

    def moco_state(self) -> dict[str, Any]:
        return requests.get(f"{self.moco.url}/_sandbox/state", timeout=10).json()

    def contacts_state(self) -> dict[str, Any]:
        return requests.get(f"{self.contacts.url}/_sandbox/state", timeout=10).json()

    def contacts_writes(self) -> list[dict[str, Any]]:
        log = requests.get(f"{self.contacts.url}/_sandbox/requests", timeout=10).json()
        return [
            r
            for r in log
            if r["method"] in ("POST", "PUT", "DELETE")
            and not r["path"].startswith(("/oauth", "/contacts/search"))
            and not r["path"].endswith("/tasks/search")  # reads, sent as POST
        ]

    def moco_writes(self) -> list[dict[str, Any]]:
        log = requests.get(f"{self.moco.url}/_sandbox/requests", timeout=10).json()
        return [r for r in log if r["method"] in ("POST", "PUT", "PATCH", "DELETE")]

    def contacts_api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(
            method,
            f"{self.contacts.url}{path}",
            timeout=10,
            headers={"Authorization": "Bearer sandbox-token", "Version": "2021-07-28"},
            **kwargs,
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def run_job(self, job: str) -> dict[str, dict[str, Any]]:
        """``meltano run JOB``; returns each target's summary by name."""
        paths = {
            "target-contacts": self.workdir / "contacts-summary.json",
            "target-moco": self.workdir / "moco-summary.json",
        }
        for path in paths.values():
            path.unlink(missing_ok=True)
        self.meltano(
            "run",
            job,
            env={
                "TARGET_CONTACTS_SUMMARY_PATH": str(paths["target-contacts"]),
                "TARGET_MOCO_SUMMARY_PATH": str(paths["target-moco"]),
            },
        )
        return {name: json.loads(p.read_text()) for name, p in paths.items() if p.exists()}

    def clear_logs(self) -> None:
        requests.delete(f"{self.contacts.url}/_sandbox/requests", timeout=10)
        requests.delete(f"{self.moco.url}/_sandbox/requests", timeout=10)

    def moco_api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(
            method,
            f"{self.moco.url}/api/v1{path}",
            timeout=10,
            headers={"Authorization": "Token token=sandbox-key"},
            **kwargs,
        )
        response.raise_for_status()
        return response.json() if response.content else None


@pytest.fixture
def pipeline(meltano_project: Path, tmp_path: Path) -> Iterator[Pipeline]:
    """Both sandboxes (MOCO seeded with 40 generated contacts) and a clean Meltano state (a
    system database of its own)."""
    with (
        RunningSandbox(MocoSandbox(rate_limit=100_000)) as moco,
        RunningSandbox(ContactsSandbox(rate_limit=100_000)) as contacts,
    ):
        requests.post(
            f"{moco.url}/_sandbox/seed", timeout=30, json={"generate": {"contacts": 40, "seed": 11}}
        ).raise_for_status()
        yield Pipeline(meltano_project, moco, contacts, tmp_path)
