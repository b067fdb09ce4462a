"""Many (MOCO account, HighLevel location) pairs from one Meltano project: ``scripts/run-pairs``.

Three pairs, each its own MOCO sandbox and its own location of one Contacts sandbox, run at once
with one shared ledger: the pair with a wrong token fails, the other two complete; each pair has
its own state id; the ledger keeps each location's links apart; the summary has a line per pair.
"""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING

import pytest
import requests
import yaml

from sandbox.contacts import ContactsSandbox
from sandbox.moco import MocoSandbox
from sandbox.server import RunningSandbox
from scripts.run_pairs import SYSTEM_DIR, PairsFileError, _only, load_pairs, state_ids
from sync_ledger.db import make_engine
from sync_ledger.ledger import IdLedger
from tests.e2e import test_meltano_run as on_sqlite
from tests.e2e.conftest import BIN, ROOT, _base_env

if TYPE_CHECKING:
    from pathlib import Path

PAIRS = {"pair-a": "loc-a", "pair-b": "loc-b", "pair-c": "loc-c"}
STATE_ID = "sandbox:tap-moco-to-target-contacts:{}"


def test_every_pair_runs_under_its_own_state_id_and_a_failing_one_stops_no_other(
    meltano_project: Path, tmp_path: Path
) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    with (
        RunningSandbox(
            ContactsSandbox(
                location_id="loc-a", extra_locations=["loc-b", "loc-c"], rate_limit=100_000
            )
        ) as contacts,
        RunningSandbox(MocoSandbox(rate_limit=100_000)) as moco_a,
        RunningSandbox(MocoSandbox(rate_limit=100_000)) as moco_b,
        RunningSandbox(MocoSandbox(rate_limit=100_000)) as moco_c,
    ):
        mocos = {"pair-a": moco_a, "pair-b": moco_b, "pair-c": moco_c}
        for seed, moco in enumerate(mocos.values(), start=21):
            requests.post(
                f"{moco.url}/_sandbox/seed",
                timeout=30,
                json={"generate": {"contacts": 12, "seed": seed}},
            ).raise_for_status()
        tokens = {"pair-a": "sandbox-token", "pair-b": "sandbox-token-loc-b", "pair-c": "wrong"}
        pairs_file = tmp_path / "pairs.yml"
        pairs_file.write_text(
            yaml.safe_dump(
                {
                    "run": "tap-moco target-contacts",
                    "env": {
                        "TARGET_CONTACTS_BASE_URL": contacts.url,
                        "TARGET_CONTACTS_LEDGER_URL": "${SHARED_LEDGER}",
                        "TAP_MOCO_RATE_LIMIT_REQUESTS": 100_000,
                        "TAP_MOCO_RATE_LIMIT_WINDOW_SECONDS": 1,
                    },
                    "pairs": {
                        name: {
                            "TAP_MOCO_BASE_URL": mocos[name].url,
                            "TAP_MOCO_API_KEY": "sandbox-key",
                            "TARGET_CONTACTS_LOCATION_ID": location,
                            "TARGET_CONTACTS_PRIVATE_INTEGRATION_TOKEN": tokens[name],
                        }
                        for name, location in PAIRS.items()
                    },
                }
            )
        )
        # Meltano's default system database, the project's .meltano/meltano.db: each pair's
        # own system folder links to it, so the states below land in the project's database.
        env = {**_base_env(), "SHARED_LEDGER": ledger}
        result = subprocess.run(
            [
                str(ROOT / "scripts" / "run-pairs"),
                str(pairs_file),
                "--parallel",
                "3",
                "--project-root",
                str(meltano_project),
                "--log-dir",
                str(tmp_path / "logs"),
                "--summary-json",
                str(tmp_path / "results.json"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        crm = requests.get(f"{contacts.url}/_sandbox/state", timeout=10).json()
        moco_states = {
            name: requests.get(f"{m.url}/_sandbox/state", timeout=10).json()
            for name, m in mocos.items()
        }

    assert result.returncode == 1, result.stdout + result.stderr
    results = {r["pair"]: r for r in json.loads((tmp_path / "results.json").read_text())}
    assert {name: r["ok"] for name, r in results.items()} == {
        "pair-a": True,
        "pair-b": True,
        "pair-c": False,
    }
    # The summary: a line per pair with its state id and counts, then why the failing one failed.
    table = result.stdout
    for name in ("pair-a", "pair-b"):
        line = next(x for x in table.splitlines() if x.startswith(name + " "))
        assert STATE_ID.format(name) in line and " ok " in line
    failed = next(x for x in table.splitlines() if x.startswith("pair-c "))
    assert "FAILED" in failed
    reason = next(x for x in table.splitlines() if x.startswith("pair-c: "))
    assert "401" in reason or "token" in reason.lower(), reason
    assert "2 of 3 pairs ok" in table
    # Each pair's Meltano wrote its tap's catalog to a run folder of its own, not to the
    # project's `.meltano/run/tap-moco/` that pairs running at once would share.
    for name in PAIRS:
        run_dir = tmp_path / "logs" / name / SYSTEM_DIR / "run" / "tap-moco"
        assert json.loads((run_dir / "tap.properties.json").read_text())["streams"]

    # Each completed pair wrote its MOCO account into its own location, and nothing else.
    engine = make_engine(ledger)
    for name in ("pair-a", "pair-b"):
        location = PAIRS[name]
        want = on_sqlite.expected_contacts(moco_states[name])
        mine = [c for c in crm["contacts"] if c["locationId"] == location]
        assert len(mine) == len(want)
        for person in want.values():
            on_sqlite.match(mine, person)
        ids = {c["id"] for c in mine}
        written = (
            len(mine)
            + sum(t["contactId"] in ids for t in crm["tasks"])
            + sum(n["contactId"] in ids for n in crm["notes"])
        )
        assert results[name]["counts"]["target-contacts"]["created"] == written
        # The ledger keeps this location's links apart from the other pairs' (same MOCO ids).
        assert IdLedger(engine, location).link_count() == written
    # The failed pair wrote nothing; its ledger partition holds only intents to create, which
    # its next run looks up before it creates anything.
    assert [c for c in crm["contacts"] if c["locationId"] == "loc-c"] == []
    people = [str(p["id"]) for p in moco_states["pair-c"]["contacts"]]
    assert not any(e.written for e in IdLedger(engine, "loc-c").lookup("contacts", people).values())

    # Each completed pair has its own state id in Meltano; the failed one passed no state.
    listed = subprocess.run(
        [str(BIN / "meltano"), "state", "list"],
        cwd=meltano_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert STATE_ID.format("pair-a") in listed and STATE_ID.format("pair-b") in listed
    assert STATE_ID.format("pair-c") not in listed


INHERITED = """
  - name: tap-moco--pair-d
    inherit_from: tap-moco
    config:
      base_url: {moco}
      api_key: sandbox-key
"""
INHERITED_LOADER = """
  - name: target-contacts--pair-d
    inherit_from: target-contacts
    config:
      base_url: {contacts}
      location_id: loc-d
      private_integration_token: sandbox-token-loc-d
"""


def test_a_pair_as_inherited_plugins_has_its_settings_and_state_id_in_meltano_yml(
    meltano_project: Path, tmp_path: Path
) -> None:
    """The other Meltano way: a pair's plugins inherit the project's, with the pair's settings."""
    yml = meltano_project / "meltano.yml"
    original = yml.read_text()
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    with (
        RunningSandbox(
            ContactsSandbox(location_id="loc-main", extra_locations=["loc-d"], rate_limit=100_000)
        ) as contacts,
        RunningSandbox(MocoSandbox(rate_limit=100_000)) as moco,
    ):
        requests.post(
            f"{moco.url}/_sandbox/seed", timeout=30, json={"generate": {"contacts": 8, "seed": 31}}
        ).raise_for_status()
        text = original.replace(
            "\n  loaders:\n", INHERITED.format(moco=moco.url) + "\n  loaders:\n", 1
        ).replace(
            "\n  utilities:\n",
            INHERITED_LOADER.format(contacts=contacts.url) + "\n  utilities:\n",
            1,
        )
        assert text.count("inherit_from:") == 2
        env = {
            **_base_env(),
            "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
            "TARGET_CONTACTS__PAIR_D_LEDGER_URL": ledger,
            "TAP_MOCO__PAIR_D_RATE_LIMIT_REQUESTS": "100000",
            "TAP_MOCO__PAIR_D_RATE_LIMIT_WINDOW_SECONDS": "1",
        }
        try:
            yml.write_text(text)
            result = subprocess.run(
                [str(BIN / "meltano"), "run", "tap-moco--pair-d", "target-contacts--pair-d"],
                cwd=meltano_project,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            listed = subprocess.run(
                [str(BIN / "meltano"), "state", "list"],
                cwd=meltano_project,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            ).stdout
        finally:
            yml.write_text(original)
        crm = requests.get(f"{contacts.url}/_sandbox/state", timeout=10).json()
        moco_state = requests.get(f"{moco.url}/_sandbox/state", timeout=10).json()
    assert result.returncode == 0, result.stderr[-4000:]
    # Its own state id, from its plugins' names; its records in its own location.
    assert "sandbox:tap-moco--pair-d-to-target-contacts--pair-d" in listed
    want = on_sqlite.expected_contacts(moco_state)
    assert len(crm["contacts"]) == len(want)
    assert {c["locationId"] for c in crm["contacts"]} == {"loc-d"}
    assert IdLedger(make_engine(ledger), "loc-d").link_count() == (
        len(crm["contacts"]) + len(crm["tasks"]) + len(crm["notes"])
    )


def test_a_pairs_file_is_checked_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "pairs.yml"
    path.write_text(
        "env: {TARGET_CONTACTS_LEDGER_URL: '${LEDGER}'}\n"
        "pairs:\n"
        "  acme: {TARGET_CONTACTS_LOCATION_ID: loc-1, TAP_MOCO_API_KEY: '${ACME_KEY}'}\n"
        "  globex: {TARGET_CONTACTS_LOCATION_ID: loc-2, TARGET_CONTACTS_DRY_RUN: true}\n"
    )
    run, pairs = load_pairs(path, {"LEDGER": "sqlite:///l.db", "ACME_KEY": "k"})
    assert run == ["tap-moco", "target-contacts"]
    assert pairs[0].env == {
        "TARGET_CONTACTS_LEDGER_URL": "sqlite:///l.db",
        "TARGET_CONTACTS_LOCATION_ID": "loc-1",
        "TAP_MOCO_API_KEY": "k",
    }
    assert pairs[1].env["TARGET_CONTACTS_DRY_RUN"] == "true"
    # --only PAIR: what a CI matrix job or an orchestrator's task runs.
    assert _only(pairs, "globex") == [pairs[1]]
    with pytest.raises(PairsFileError, match="--only names pairs the file does not have"):
        _only(pairs, "acme,initech")
    with pytest.raises(PairsFileError, match=r"pairs.acme.TAP_MOCO_API_KEY names \$\{ACME_KEY\}"):
        load_pairs(path, {"LEDGER": "x"})
    path.write_text(
        "pairs:\n"
        "  acme: {TARGET_CONTACTS_LOCATION_ID: loc-1}\n"
        "  globex: {TARGET_CONTACTS_LOCATION_ID: loc-1}\n"
    )
    with pytest.raises(PairsFileError, match="pairs acme and globex both set"):
        load_pairs(path, {})
    path.write_text("pairs:\n  'a b': {}\n")
    with pytest.raises(PairsFileError, match="pair name 'a b'"):
        load_pairs(path, {})
    # A job's state ids: one per tap and target it runs, each with the pair's suffix.
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    assert state_ids(["two-way-sync"], project, "prod", "acme") == [
        "prod:tap-contacts-to-target-moco:acme",
        "prod:tap-moco-to-target-contacts:acme",
    ]
