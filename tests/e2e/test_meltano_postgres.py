"""`meltano run tap-moco target-contacts` with Meltano's system database (runs, state) and the
ledger on PostgreSQL, as a shared runner has them: a full sync as test_meltano_run.py checks it on
SQLite, an identical rerun that writes nothing, the state kept in PostgreSQL.

The plugins are installed with ``pip_url: -e .[postgres]``: a PostgreSQL ledger needs psycopg in
target-contacts' own venv (the project's ``postgres`` extra).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
import pytest
import requests

from sandbox.contacts import ContactsSandbox
from sandbox.moco import MocoSandbox
from sandbox.server import RunningSandbox
from sync_ledger.db import make_engine
from sync_ledger.ledger import IdLedger
from tests import postgres as throwaway
from tests.e2e import test_meltano_run as on_sqlite
from tests.e2e.conftest import BIN, ROOT, Pipeline, _base_env

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.postgres import PostgresCluster

# The session's PostgreSQL cluster and a database per test (tests/postgres.py).
postgres = throwaway.postgres
postgres_url = throwaway.postgres_url
STATE_ID = "sandbox:tap-moco-to-target-contacts"
LOCATION = "sandbox-location"


@dataclass
class PostgresPipeline(Pipeline):
    """A Pipeline whose Meltano system database and ledger are PostgreSQL databases."""

    system_database: str = ""
    ledger: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {
            **super().env,
            "MELTANO_DATABASE_URI": self.system_database,
            "TARGET_CONTACTS_LEDGER_URL": self.ledger,
            "TAP_CONTACTS_LEDGER_URL": self.ledger,
            "TARGET_MOCO_LEDGER_URL": self.ledger,
        }


@pytest.fixture(scope="module")
def postgres_project(
    tmp_path_factory: pytest.TempPathFactory, meltano_project: Path, postgres: PostgresCluster
) -> tuple[Path, str]:
    """The e2e project with ``-e .[postgres]`` plugins, installed; and its system database."""
    project = tmp_path_factory.mktemp("meltano-postgres")
    text = (meltano_project / "meltano.yml").read_text()
    assert f"pip_url: -e {ROOT}\n" in text
    (project / "meltano.yml").write_text(
        text.replace(f"pip_url: -e {ROOT}\n", f"pip_url: -e {ROOT}[postgres]\n")
    )
    system_database = postgres.database("meltano_system")
    result = subprocess.run(
        [str(BIN / "meltano"), "install", "tap-moco", "target-contacts"],
        cwd=project,
        text=True,
        capture_output=True,
        env={**_base_env(), "MELTANO_DATABASE_URI": system_database},
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project, system_database


@pytest.fixture
def postgres_pipeline(
    postgres_project: tuple[Path, str], postgres_url: str, tmp_path: Path
) -> Iterator[PostgresPipeline]:
    """Both sandboxes (MOCO seeded as for the SQLite runs), a fresh PostgreSQL ledger."""
    project, system_database = postgres_project
    with (
        RunningSandbox(MocoSandbox(rate_limit=100_000)) as moco,
        RunningSandbox(ContactsSandbox(rate_limit=100_000)) as contacts,
    ):
        requests.post(
            f"{moco.url}/_sandbox/seed", timeout=30, json={"generate": {"contacts": 40, "seed": 11}}
        ).raise_for_status()
        yield PostgresPipeline(project, moco, contacts, tmp_path, system_database, postgres_url)


def test_meltano_run_keeps_its_state_and_the_ledger_in_postgres(
    postgres_pipeline: PostgresPipeline,
) -> None:
    pipeline = postgres_pipeline
    first = pipeline.run()
    crm = pipeline.contacts_state()
    want = on_sqlite.expected_contacts(pipeline.moco_state())
    assert len(crm["contacts"]) == len(want) == first["streams"]["contacts"]["created"]
    for person in want.values():
        on_sqlite.match(crm["contacts"], person)
    assert first["adds_up"]
    # The same sync again: the state and the ledger in PostgreSQL leave nothing to write.
    pipeline.clear_logs()
    second = pipeline.run()
    assert pipeline.contacts_writes() == []
    assert all(s["created"] == s["updated"] == 0 for s in second["streams"].values())

    # Meltano's state is in its PostgreSQL system database, and Meltano reads it back ...
    state = json.loads(pipeline.meltano("state", "get", STATE_ID).stdout)
    assert set(state["singer_state"]["bookmarks"]) >= {"contacts", "tasks", "notes"}
    url = pipeline.system_database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT state_id FROM state").fetchall()
        runs = conn.execute("SELECT state FROM runs WHERE job_name = %s", (STATE_ID,)).fetchall()
    assert (STATE_ID,) in stored
    assert [r[0] for r in runs] == ["SUCCESS"] * 2
    assert not (pipeline.project / ".meltano" / "meltano.db").exists()

    # ... and the ledger holds one link per record written, as on SQLite.
    written = len(crm["contacts"]) + len(crm["tasks"]) + len(crm["notes"])
    assert IdLedger(make_engine(pipeline.ledger), LOCATION).link_count() == written
    listed = pipeline.meltano("invoke", "target-contacts:rejects-list")
    assert listed.returncode == 0
