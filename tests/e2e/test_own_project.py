"""The plugins in a user's own Meltano project, beside widely used plugins of the ecosystem.

A scratch project stands for a data stack a user already has: MeltanoLabs' tap-postgres and
target-postgres (the versions pinned below, from PyPI). Our plugins come in the way the README
tells users to add them, ``meltano add --from-ref plugins/<type>/<name>.yml``, with the pip URL
pointing at this checkout instead of the repository on GitHub. One ``meltano install`` for the
whole module; then, against the sandboxes and the test PostgreSQL cluster (tests/postgres.py):

- tap-moco into target-postgres: MOCO's people, to-dos and comments become warehouse tables;
- tap-moco into target-contacts with nothing but the definition's defaults (its field mappings);
- tap-postgres into target-contacts: a warehouse table becomes CRM contacts through a stream
  map that renames (``__alias__``) the table's stream to ``contacts``, as the README shows; an
  identical rerun writes nothing, a changed row is one update.

sync-listener is added too (a utility: ``--plugin-type utility``) but not installed; the other
two definitions differ from these only in their data, which tests/test_plugin_definitions.py
checks without a project.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import requests
import yaml

from sandbox.contacts import ContactsSandbox
from sandbox.moco import MocoSandbox
from sandbox.server import RunningSandbox
from scripts.plugin_definitions import REPOSITORY_URL
from sync_ledger.db import make_engine
from sync_ledger.ledger import IdLedger
from tests import postgres as throwaway
from tests.e2e import test_meltano_run as on_sqlite
from tests.e2e.conftest import BIN, ROOT, _base_env

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.postgres import PostgresCluster

postgres = throwaway.postgres

#: The ecosystem's plugins, pinned so that a new release cannot change what this test checks.
TAP_POSTGRES = "meltanolabs-tap-postgres==0.10.0"
TARGET_POSTGRES = "meltanolabs-target-postgres==0.8.1"
_CONNECTION = [
    {"name": "host", "kind": "string"},
    {"name": "port", "kind": "integer"},
    {"name": "user", "kind": "string"},
    {"name": "password", "kind": "string", "sensitive": True},
    {"name": "database", "kind": "string"},
]
#: The user's project before our plugins arrive: what `meltano add` puts there from Meltano Hub
#: for the two MeltanoLabs plugins (written out here: the tests reach no Hub).
USER_PROJECT: dict[str, Any] = {
    "requires_meltano": ">=4.4,<5",
    "send_anonymous_usage_stats": False,
    "project_id": "0c3e4f5a-6b7c-4d8e-9f01-23456789abcd",
    "default_environment": "dev",
    "environments": [{"name": "dev"}],
    # uv installs the plugins' venvs in seconds instead of a minute (pip works the same way).
    "venv": {"backend": "uv"},
    "plugins": {
        "extractors": [
            {
                "name": "tap-postgres",
                "namespace": "tap_postgres",
                "pip_url": TAP_POSTGRES,
                "executable": "tap-postgres",
                "capabilities": ["catalog", "discover", "state", "about", "stream-maps"],
                "settings": [*_CONNECTION, {"name": "filter_schemas", "kind": "array"}],
                "config": {"filter_schemas": ["public"]},
                "select": ["public-crm_leads.*"],
            }
        ],
        "loaders": [
            {
                "name": "target-postgres",
                "namespace": "target_postgres",
                "pip_url": TARGET_POSTGRES,
                "executable": "target-postgres",
                "capabilities": ["about", "stream-maps", "activate-version"],
                "settings": [*_CONNECTION, {"name": "default_target_schema", "kind": "string"}],
                "config": {"default_target_schema": "moco"},
            }
        ],
    },
}


def readme_leads_loader() -> dict[str, Any]:
    """The README's second target-contacts for the warehouse's leads, as it stands there."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Use in your own Meltano project") :]
    (block,) = [
        b for b in re.findall(r"```yaml\n(.*?)```", section, re.DOTALL) if "inherit_from" in b
    ]
    (loader,) = yaml.safe_load(block)["loaders"]
    return loader


#: The definitions added to the project, as the README tells users to.
ADDED = [
    ("extractors", "tap-moco"),
    ("loaders", "target-contacts"),
    ("utilities", "sync-listener"),
]
#: What the tests run; one `meltano install` for all of them.
INSTALLED = ["tap-moco", "target-contacts", "tap-postgres", "target-postgres"]


def local_pip_url(pip_url: str) -> str:
    """The definition's pip URL with this checkout for the repository (editable, extras kept)."""
    match = re.fullmatch(
        r"(?:moco-contacts-sync(\[[a-z,]+\])@)?" + re.escape(REPOSITORY_URL), pip_url
    )
    assert match, f"unexpected pip_url {pip_url!r}"
    return f"-e {ROOT}{match.group(1) or ''}"


@dataclass
class OwnProject:
    """The scratch project, installed, and what it takes to run it."""

    path: Path
    postgres: PostgresCluster
    #: Seconds `meltano add` (3 plugins) and `meltano install` (4) took.
    add_seconds: float
    install_seconds: float

    def env(self, **extra: str) -> dict[str, str]:
        """The e2e environment (none of our plugins' settings) for the user's `dev`."""
        ecosystem = ("TAP_POSTGRES_", "TARGET_POSTGRES_", "SYNC_LISTENER_")
        env = {k: v for k, v in _base_env().items() if not k.startswith(ecosystem)}
        return {**env, "MELTANO_ENVIRONMENT": "dev", **extra}

    def meltano(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BIN / "meltano"), *args],
            cwd=self.path,
            text=True,
            capture_output=True,
            env=self.env(**env),
            timeout=600,
        )
        assert result.returncode == 0, (
            f"meltano {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
        return result

    def connection(self, plugin: str, url: str) -> dict[str, str]:
        """Environment variables for a ``host/port/user/password/database`` plugin to ``url``."""
        found = re.fullmatch(r"[^:]+://([^:]+):([^@]+)@([^:]+):(\d+)/(.+)", url)
        assert found
        user, password, host, port, database = found.groups()
        prefix = plugin.upper().replace("-", "_")
        return {
            f"{prefix}_HOST": host,
            f"{prefix}_PORT": port,
            f"{prefix}_USER": user,
            f"{prefix}_PASSWORD": password,
            f"{prefix}_DATABASE": database,
        }


@pytest.fixture(scope="module")
def own_project(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresCluster) -> OwnProject:
    path = tmp_path_factory.mktemp("own-project")
    (path / "meltano.yml").write_text(yaml.safe_dump(USER_PROJECT, sort_keys=False))
    project = OwnProject(path, postgres, 0.0, 0.0)
    started = time.monotonic()
    for plugin_type, name in ADDED:
        definition = yaml.safe_load((ROOT / "plugins" / plugin_type / f"{name}.yml").read_text())
        definition["pip_url"] = local_pip_url(definition["pip_url"])
        ref = path / f"{name}.yml"
        ref.write_text(yaml.safe_dump(definition, sort_keys=False))
        kind = ["--plugin-type", "utility"] if plugin_type == "utilities" else []
        project.meltano("add", "--no-install", *kind, "--from-ref", str(ref), name)
    project.add_seconds = time.monotonic() - started
    # The user's second target-contacts, for the warehouse (README).
    meltano_yml = yaml.safe_load((path / "meltano.yml").read_text())
    meltano_yml["plugins"]["loaders"].append(readme_leads_loader())
    (path / "meltano.yml").write_text(yaml.safe_dump(meltano_yml, sort_keys=False))
    started = time.monotonic()
    project.meltano("install", *INSTALLED)
    project.install_seconds = time.monotonic() - started
    print(f"own project: add {project.add_seconds:.0f} s, install {project.install_seconds:.0f} s")
    return project


@pytest.fixture
def moco() -> Iterator[RunningSandbox]:
    """The MOCO sandbox with 40 generated people (as in test_meltano_run.py)."""
    with RunningSandbox(MocoSandbox(rate_limit=100_000)) as sandbox:
        requests.post(
            f"{sandbox.url}/_sandbox/seed",
            timeout=30,
            json={"generate": {"contacts": 40, "seed": 11}},
        ).raise_for_status()
        yield sandbox


@pytest.fixture
def contacts() -> Iterator[RunningSandbox]:
    with RunningSandbox(ContactsSandbox(rate_limit=100_000)) as sandbox:
        yield sandbox


def tap_moco_env(moco: RunningSandbox) -> dict[str, str]:
    return {
        "TAP_MOCO_BASE_URL": moco.url,
        "TAP_MOCO_API_KEY": "sandbox-key",
        "TAP_MOCO_RATE_LIMIT_REQUESTS": "100000",
        "TAP_MOCO_RATE_LIMIT_WINDOW_SECONDS": "1",
    }


def contacts_env(
    prefix: str, contacts: RunningSandbox, ledger: str, summary: Path
) -> dict[str, str]:
    return {
        f"{prefix}_BASE_URL": contacts.url,
        f"{prefix}_LOCATION_ID": "sandbox-location",
        f"{prefix}_PRIVATE_INTEGRATION_TOKEN": "sandbox-token",
        f"{prefix}_DEFAULT_PHONE_REGION": "DE",
        f"{prefix}_LEDGER_URL": ledger,
        f"{prefix}_SUMMARY_PATH": str(summary),
    }


def crm(contacts: RunningSandbox) -> dict[str, Any]:
    return requests.get(f"{contacts.url}/_sandbox/state", timeout=10).json()


def crm_writes(contacts: RunningSandbox) -> list[dict[str, Any]]:
    log = requests.get(f"{contacts.url}/_sandbox/requests", timeout=10).json()
    return [
        r
        for r in log
        if r["method"] in ("POST", "PUT", "DELETE") and not r["path"].startswith("/contacts/search")
    ]


def test_tap_moco_into_target_postgres(own_project: OwnProject, moco: RunningSandbox) -> None:
    warehouse = own_project.postgres.database("warehouse")
    own_project.meltano(
        "run",
        "tap-moco",
        "target-postgres",
        **tap_moco_env(moco),
        **own_project.connection("target-postgres", warehouse),
    )
    state = requests.get(f"{moco.url}/_sandbox/state", timeout=10).json()
    with psycopg.connect(warehouse.replace("postgresql+psycopg://", "postgresql://")) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'moco'"
            )
        }
        people = {
            row[0]: row[1:]
            for row in conn.execute("SELECT id, firstname, lastname, work_email FROM moco.contacts")
        }
        todos = {row[0] for row in conn.execute("SELECT id FROM moco.tasks")}
        comments = {row[0] for row in conn.execute("SELECT id FROM moco.notes")}
    assert tables >= {"contacts", "tasks", "notes", "companies"}
    # Every MOCO person is a row, with MOCO's own field names and values.
    assert people == {
        p["id"]: (p["firstname"], p["lastname"], p["work_email"]) for p in state["contacts"]
    }
    assert len(people) == 40
    assert todos == {t["id"] for t in state["todos"] if t["todoable_type"] == "Contact"}
    assert comments == {c["id"] for c in state["comments"] if c["commentable_type"] == "Contact"}


def test_tap_moco_into_target_contacts_with_the_definitions_defaults(
    own_project: OwnProject, moco: RunningSandbox, contacts: RunningSandbox, tmp_path: Path
) -> None:
    ledger = own_project.postgres.database("ledger")
    summary_path = tmp_path / "summary.json"
    own_project.meltano(
        "run",
        "tap-moco",
        "target-contacts",
        **tap_moco_env(moco),
        **contacts_env("TARGET_CONTACTS", contacts, ledger, summary_path),
    )
    summary = json.loads(summary_path.read_text())
    want = on_sqlite.expected_contacts(
        requests.get(f"{moco.url}/_sandbox/state", timeout=10).json()
    )
    people = crm(contacts)["contacts"]
    # The field mappings came with the definition (its stream_maps default), tag included.
    assert len(people) == len(want) == summary["streams"]["contacts"]["created"]
    for person in want.values():
        found = on_sqlite.match(people, person)
        assert (found.get("firstName"), found.get("lastName")) == (
            person["firstName"],
            person["lastName"],
        )
        assert set(found["tags"]) == person["tags"]
    assert summary["adds_up"]
    assert summary["streams"]["tasks"]["created"] > 0
    assert summary["streams"]["notes"]["created"] > 0


LEADS = [
    (1, "Ada", "Lovelace", "ada@example.com", "+49 30 1234567", "Analytical Engines"),
    (2, "Grace", "Hopper", "grace@example.com", None, "Navy"),
    (3, "Alan", "Turing", None, "+44 20 7946 0018", None),
    (4, "Edsger", "Dijkstra", "edsger@example.com", None, "TU Eindhoven"),
]


def test_a_warehouse_table_becomes_crm_contacts(
    own_project: OwnProject, contacts: RunningSandbox, tmp_path: Path
) -> None:
    warehouse = own_project.postgres.database("leads")
    with psycopg.connect(warehouse.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(
            "CREATE TABLE crm_leads (id integer PRIMARY KEY, first_name text, last_name text, "
            "email text, phone text, company text)"
        )
        for lead in LEADS:
            conn.execute("INSERT INTO crm_leads VALUES (%s, %s, %s, %s, %s, %s)", lead)
    ledger = own_project.postgres.database("leads_ledger")
    summary_path = tmp_path / "summary.json"
    env = {
        **own_project.connection("tap-postgres", warehouse),
        # The inherited loader takes target-contacts' settings; its own variables override.
        **contacts_env(
            "TARGET_CONTACTS", contacts, f"sqlite:///{tmp_path / 'unused.db'}", tmp_path / "no"
        ),
        "TARGET_CONTACTS_LEADS_LEDGER_URL": ledger,
        "TARGET_CONTACTS_LEADS_SUMMARY_PATH": str(summary_path),
    }

    own_project.meltano("run", "tap-postgres", "target-contacts-leads", **env)
    summary = json.loads(summary_path.read_text())
    assert summary["streams"]["contacts"] == {
        "read": 4,
        "created": 4,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
    }
    people = {c.get("email") or c.get("phone"): c for c in crm(contacts)["contacts"]}
    assert set(people) == {
        "ada@example.com",
        "grace@example.com",
        "+442079460018",
        "edsger@example.com",
    }
    ada = people["ada@example.com"]
    assert (ada["firstName"], ada["lastName"], ada["phone"], ada["companyName"]) == (
        "Ada",
        "Lovelace",
        "+49301234567",
        "Analytical Engines",
    )
    assert all(c["tags"] == ["warehouse"] for c in people.values())
    assert IdLedger(make_engine(ledger), "sandbox-location").get("contacts", "crm_leads-1")
    assert not (tmp_path / "unused.db").exists()

    # tap-postgres reads the whole table again; the ledger turns it into no call at all.
    requests.delete(f"{contacts.url}/_sandbox/requests", timeout=10)
    own_project.meltano("run", "tap-postgres", "target-contacts-leads", **env)
    assert crm_writes(contacts) == []
    assert json.loads(summary_path.read_text())["streams"]["contacts"]["unchanged"] == 4

    # A changed row is one update of that contact.
    with psycopg.connect(warehouse.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("UPDATE crm_leads SET company = 'Bletchley Park' WHERE id = 3")
    own_project.meltano("run", "tap-postgres", "target-contacts-leads", **env)
    turing = people["+442079460018"]
    assert len(crm_writes(contacts)) == 1
    after = crm(contacts)["contacts"]
    assert len(after) == 4
    assert next(c for c in after if c["id"] == turing["id"])["companyName"] == "Bletchley Park"


def test_meltano_add_from_ref_writes_each_definition_into_the_project(
    own_project: OwnProject,
) -> None:
    project = yaml.safe_load((own_project.path / "meltano.yml").read_text())
    for plugin_type, name in ADDED:
        definition = yaml.safe_load((ROOT / "plugins" / plugin_type / f"{name}.yml").read_text())
        added = next(p for p in project["plugins"][plugin_type] if p["name"] == name)
        assert added["pip_url"] == local_pip_url(definition["pip_url"])
        for key in ("namespace", "executable", "capabilities", "commands"):
            assert added.get(key) == definition.get(key), (name, key)
        assert [(s["name"], s.get("value")) for s in added["settings"]] == [
            (s["name"], s.get("value")) for s in definition["settings"]
        ]
