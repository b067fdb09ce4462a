"""The plugin definitions users add with ``meltano add --from-ref`` (plugins/<type>/<name>.yml).

Each one is made from this repository's meltano.yml (scripts/refresh-plugin-definitions), installs
from the repository by a pip URL, holds nothing Meltano would silently drop, and declares only
settings its plugin knows. tests/e2e/test_own_project.py adds them to a scratch project and runs
them beside MeltanoLabs' tap-postgres and target-postgres.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from meltano.core.plugin import PluginType
from meltano.core.plugin.base import PluginDefinition
from packaging.requirements import Requirement

from scripts.plugin_definitions import REPOSITORY, REPOSITORY_URL, render
from tap_contacts.tap import TapContacts
from tap_moco.tap import TapMoco
from target_contacts.target import TargetContacts
from target_moco.target import TargetMoco

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted((p.parent.name, p.stem) for p in (ROOT / "plugins").glob("*/*.yml"))
IDS = [name for _, name in PLUGINS]
SINGER_PLUGINS = {
    "tap-moco": TapMoco,
    "tap-contacts": TapContacts,
    "target-contacts": TargetContacts,
    "target-moco": TargetMoco,
}


def load_definition(plugin_type: str, name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "plugins" / plugin_type / f"{name}.yml").read_text())


def test_the_definitions_are_made_from_meltano_yml_as_it_is() -> None:
    expected = render()
    written = {p: p.read_text() for p in (ROOT / "plugins").glob("*/*.yml")}
    stale = sorted(
        str(p.relative_to(ROOT))
        for p in expected.keys() | written.keys()
        if expected.get(p) != written.get(p)
    )
    assert not stale, (
        f"{', '.join(stale)} differ from meltano.yml: run scripts/refresh-plugin-definitions"
    )


def test_every_plugin_of_meltano_yml_has_a_definition() -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    in_project = sorted(
        (t, p["name"]) for t, plugins in project["plugins"].items() for p in plugins
    )
    assert in_project == PLUGINS


@pytest.mark.parametrize(("plugin_type", "name"), PLUGINS, ids=IDS)
def test_the_field_mappings_are_the_defaults_of_the_stream_maps_setting(
    plugin_type: str, name: str
) -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    config = next(p for p in project["plugins"][plugin_type] if p["name"] == name).get("config")
    defaults = {s["name"]: s.get("value") for s in load_definition(plugin_type, name)["settings"]}
    for setting, value in (config or {}).items():
        assert defaults[setting] == value


@pytest.mark.parametrize(("plugin_type", "name"), PLUGINS, ids=IDS)
def test_pip_url_installs_from_the_repository(plugin_type: str, name: str) -> None:
    definition = load_definition(plugin_type, name)
    pip_url = definition["pip_url"]
    if any(s["name"] == "ledger_url" for s in definition["settings"]):
        # A ledger on PostgreSQL needs psycopg in the plugin's own venv: the `postgres` extra,
        # as one PEP 508 requirement (Meltano splits pip_url on blanks).
        requirement = Requirement(pip_url)
        assert (requirement.name, requirement.extras) == ("moco-contacts-sync", {"postgres"})
        assert requirement.url == REPOSITORY_URL
    else:
        assert pip_url == REPOSITORY_URL
    assert definition["repo"] == REPOSITORY


@pytest.mark.parametrize(("plugin_type", "name"), PLUGINS, ids=IDS)
def test_meltano_reads_every_key_of_the_definition(plugin_type: str, name: str) -> None:
    """`meltano add --from-ref` drops keys it does not know without a word; there are none."""
    definition = load_definition(plugin_type, name)
    parsed = PluginDefinition.parse({"plugin_type": PluginType(plugin_type), **definition})
    assert parsed.extras == {}
    assert parsed.name == name
    variant = parsed.variants[0]
    assert variant.pip_url == definition["pip_url"]
    assert [s.name for s in variant.settings] == [s["name"] for s in definition["settings"]]


@pytest.mark.parametrize("name", sorted(SINGER_PLUGINS))
def test_every_setting_of_a_definition_is_one_its_plugin_knows(name: str) -> None:
    plugin_type = "extractors" if name.startswith("tap-") else "loaders"
    declared = {s["name"] for s in load_definition(plugin_type, name)["settings"]}
    # What `NAME --about` lists: the plugin's own settings and the SDK's (stream_maps, ...).
    known = set(SINGER_PLUGINS[name]._get_about_info().settings["properties"])
    assert declared <= known, f"{name} does not know {sorted(declared - known)}"
