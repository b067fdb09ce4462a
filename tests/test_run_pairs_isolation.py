"""``scripts/run-pairs``: pairs running at once never see each other's generated plugin files.

Meltano writes a plugin's catalog and the state it hands the tap to
``$MELTANO_SYS_DIR_ROOT/run/<plugin>/`` (``.meltano/run/<plugin>/`` by default): one folder per
plugin name, which pairs of one project would share. The stand-in for ``meltano`` below does with
its system folder what Meltano does: migrates the system database in it, writes the pair's catalog
to ``run/tap-moco/``, and, while the other pairs write theirs, reads it back; it also uses the
installed plugin and the system database that must stay the project's. The real Meltano runs the
same way in ``tests/e2e/test_many_locations.py``.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from scripts.run_pairs import SYSTEM_DIR, main, pair_system_dir

FAKE_MELTANO = """\
import json, os, sys, time
from pathlib import Path

args = sys.argv[1:]
sys_dir = Path(os.environ.get("MELTANO_SYS_DIR_ROOT", ".meltano")).resolve()
if args[:2] == ["upgrade", "database"]:
    (sys_dir / "meltano.db").touch()
    sys.exit(0)
pair = os.environ["TAP_MOCO_SUBDOMAIN"]
# The plugin as `meltano install` put it, and the project's system database.
installed = (sys_dir / "extractors" / "tap-moco" / "venv" / "installed").read_text()
with (sys_dir / "meltano.db").open("a") as db:
    db.write(pair + "\\n")
catalog = sys_dir / "run" / "tap-moco" / "tap.properties.json"
catalog.parent.mkdir(parents=True, exist_ok=True)
for _ in range(20):
    catalog.write_text(json.dumps({"pair": pair}))
    time.sleep(0.02)
    seen = json.loads(catalog.read_text())["pair"]
    if seen != pair:
        print(f"RuntimeError: {pair} read the catalog of {seen}")
        sys.exit(1)
print("ran", pair, installed)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose `.meltano` holds an installed plugin, as after `meltano install`."""
    root = tmp_path / "project"
    venv = root / ".meltano" / "extractors" / "tap-moco" / "venv"
    venv.mkdir(parents=True)
    (venv / "installed").write_text("tap-moco 1.0")
    (root / ".meltano" / "run" / "tap-moco").mkdir(parents=True)
    (root / "meltano.yml").write_text(
        "plugins:\n  extractors: [{name: tap-moco}]\n  loaders: [{name: target-contacts}]\n"
    )
    return root


def _fake_meltano(tmp_path: Path) -> Path:
    script = tmp_path / "meltano"
    script.write_text(f"#!{sys.executable}\n{FAKE_MELTANO}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_pairs_at_once_each_write_their_own_run_folder_and_share_the_rest(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["acme", "globex", "initech", "umbrella"]
    pairs_file = tmp_path / "pairs.yml"
    pairs_file.write_text(
        "pairs:\n"
        + "".join(
            f"  {n}: {{TAP_MOCO_SUBDOMAIN: {n}, TARGET_CONTACTS_LOCATION_ID: loc-{n}}}\n"
            for n in names
        )
    )
    monkeypatch.delenv("MELTANO_SYS_DIR_ROOT", raising=False)
    code = main(
        [
            str(pairs_file),
            "--parallel",
            "4",
            "--project-root",
            str(project),
            "--meltano",
            str(_fake_meltano(tmp_path)),
            "--summary-json",
            str(tmp_path / "results.json"),
        ]
    )
    results = {r["pair"]: r for r in json.loads((tmp_path / "results.json").read_text())}
    assert {n: (r["ok"], r["error"]) for n, r in results.items()} == dict.fromkeys(
        names, (True, None)
    )
    assert code == 0
    logs = project / ".meltano" / "run-pairs"
    for name in names:
        assert "ran " + name + " tap-moco 1.0" in (logs / name / "run.log").read_text()
        own = logs / name / SYSTEM_DIR / "run" / "tap-moco" / "tap.properties.json"
        assert json.loads(own.read_text()) == {"pair": name}
    # Nothing went to the project's run folder; every pair wrote to the project's database.
    assert list((project / ".meltano" / "run" / "tap-moco").iterdir()) == []
    assert sorted((project / ".meltano" / "meltano.db").read_text().split()) == sorted(names)


def test_a_pairs_system_folder_links_the_projects_entries_and_is_kept_up_to_date(
    tmp_path: Path,
) -> None:
    meltano = tmp_path / ".meltano"
    (meltano / "loaders").mkdir(parents=True)
    (meltano / "meltano.db").write_text("db")
    folder = meltano / "run-pairs" / "acme"  # the default log folder is in .meltano itself
    own = pair_system_dir(meltano, folder)
    assert sorted(p.name for p in own.iterdir()) == ["loaders", "meltano.db", "run"]
    assert (own / "loaders").resolve() == (meltano / "loaders").resolve()
    assert not (own / "run").is_symlink()
    # An entry the project gained since (a plugin type installed later) is linked next time.
    (meltano / "mappers").mkdir()
    pair_system_dir(meltano, folder)
    assert (own / "mappers").readlink() == meltano / "mappers"
    # A real file where a link belongs would split the pair from the project's: refused.
    (own / "meltano.db").unlink()
    (own / "meltano.db").write_text("a database of its own")
    with pytest.raises(FileExistsError, match="is not a link to"):
        pair_system_dir(meltano, folder)


def test_two_runs_of_one_pair_setting_up_its_folder_at_once_both_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meltano = tmp_path / ".meltano"
    (meltano / "extractors").mkdir(parents=True)
    folder = tmp_path / "logs" / "acme"
    real_symlink_to = Path.symlink_to

    def the_other_run_came_first(self: Path, target: Path, **kwargs: bool) -> None:
        real_symlink_to(self, target, **kwargs)  # the overlapping run's link
        real_symlink_to(self, target, **kwargs)  # ours: FileExistsError

    monkeypatch.setattr(Path, "symlink_to", the_other_run_came_first)
    own = pair_system_dir(meltano, folder)
    assert (own / "extractors").readlink() == meltano / "extractors"
