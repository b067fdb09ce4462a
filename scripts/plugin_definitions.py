"""Plugin definitions for users' own Meltano projects, made from this repository's meltano.yml.

``plugins/<type>/<name>.yml`` holds what ``meltano add --from-ref`` takes for each plugin of
meltano.yml: its settings with their descriptions and defaults, its commands and capabilities,
with the plugin's ``config`` (the field mappings) as the defaults of those settings, and a pip URL
that installs from the repository. meltano.yml stays the one place to change a plugin;
``scripts/refresh-plugin-definitions`` writes the files again, and
tests/test_plugin_definitions.py fails until they match.
"""

from __future__ import annotations

import copy
import io
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

ROOT = Path(__file__).resolve().parents[1]
#: Where users install from. YOUR-ORG is a placeholder the README tells them to replace.
REPOSITORY = "https://github.com/YOUR-ORG/moco-contacts-sync"
REPOSITORY_URL = f"git+{REPOSITORY}.git"
#: The distribution with its PostgreSQL driver, for plugins that keep a ledger (Meltano splits
#: pip_url on blanks, so the requirement is written without any).
WITH_POSTGRES = f"moco-contacts-sync[postgres]@{REPOSITORY_URL}"
#: What a definition says of a plugin beyond meltano.yml: its one-line description.
DESCRIPTIONS = {
    "tap-moco": "MOCO people, companies, to-dos and comments as Singer streams, with MOCO's own "
    "field names.",
    "tap-contacts": "HighLevel Contacts API contacts, tasks, notes and appointments as Singer "
    "streams.",
    "target-contacts": "Writes contacts, tasks and notes to a HighLevel Contacts API location, "
    "idempotently, through a ledger.",
    "target-moco": "Writes Contacts API contacts, notes, tasks and appointments to MOCO people "
    "and comments, through the ledger target-contacts uses.",
    "sync-listener": "Receives MOCO and HighLevel webhooks and starts an incremental sync run "
    "for them.",
}
#: The keys of a meltano.yml plugin that a definition carries, in this order.
KEPT = (
    "name",
    "namespace",
    "pip_url",
    "executable",
    "capabilities",
    "settings_group_validation",
    "settings",
    "commands",
)


def _yaml() -> YAML:
    yaml = YAML()
    yaml.indent(mapping=2, sequence=2, offset=0)
    yaml.width = 4096  # long descriptions stay on one line, as in meltano.yml
    return yaml


def _header(plugin_type: str, name: str) -> str:
    path = f"plugins/{plugin_type}/{name}.yml"
    kind = " --plugin-type utility" if plugin_type == "utilities" else ""
    return (
        f'# {name} for your own Meltano project (README: "Use in your own Meltano project"):\n'
        f"#   meltano add{kind} --from-ref {path} {name}\n"
        "# from a checkout, or with this file's raw URL. Replace YOUR-ORG in pip_url and repo "
        "with the\n"
        "# owner of the repository you install from, and pin a release: "
        "...moco-contacts-sync.git@<tag>.\n"
        "# Made from meltano.yml by scripts/refresh-plugin-definitions: change it there.\n"
    )


def definition(plugin: CommentedMap) -> CommentedMap:
    """The definition of one meltano.yml plugin; its ``config`` becomes settings' defaults."""
    out = CommentedMap()
    for key in KEPT:
        if key in plugin:
            out[key] = copy.deepcopy(plugin[key])
    name = str(plugin["name"])
    out.insert(2, "label", name)
    out.insert(3, "description", DESCRIPTIONS[name])
    out.insert(4, "repo", REPOSITORY)
    settings: list[Any] = out.get("settings", [])
    uses_ledger = any(s["name"] == "ledger_url" for s in settings)
    out["pip_url"] = WITH_POSTGRES if uses_ledger else REPOSITORY_URL
    config = plugin.get("config") or {}
    for setting in settings:
        if setting["name"] in config:
            at = list(setting).index("description") if "description" in setting else len(setting)
            setting.insert(at, "value", copy.deepcopy(config[setting["name"]]))
    return out


def _reindent_comments(text: str) -> str:
    """Comments moved with their values keep their old column: align each with the next line."""
    lines = text.splitlines()
    out = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            following = next(
                (x for x in lines[index + 1 :] if x.strip() and not x.lstrip().startswith("#")), ""
            )
            out.append(" " * (len(following) - len(following.lstrip())) + line.strip())
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def render(meltano_yml: str | None = None) -> dict[Path, str]:
    """Each definition file's path and text, from meltano.yml (its text, or the file's)."""
    yaml = _yaml()
    project = yaml.load(meltano_yml or (ROOT / "meltano.yml").read_text())
    files = {}
    for plugin_type, plugins in project["plugins"].items():
        for plugin in plugins:
            buffer = io.StringIO()
            yaml.dump(definition(plugin), buffer)
            path = ROOT / "plugins" / plugin_type / f"{plugin['name']}.yml"
            files[path] = _header(plugin_type, plugin["name"]) + _reindent_comments(
                buffer.getvalue()
            )
    return files


def main() -> None:
    """Write every definition file; remove those of plugins meltano.yml no longer has."""
    files = render()
    for path in (ROOT / "plugins").glob("*/*.yml"):
        if path not in files:
            path.unlink()
            sys.stdout.write(f"removed {path.relative_to(ROOT)}\n")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        sys.stdout.write(f"{path.relative_to(ROOT)}\n")


if __name__ == "__main__":
    main()
