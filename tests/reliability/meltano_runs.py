"""``meltano run`` against a reliability world: the repository's Meltano project installed once
in a scratch folder, pointed at the world's sandboxes and ledger through the plugins' environment
variables, run in a process group of its own (so that a :class:`KillSwitch` can kill it whole)."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import TYPE_CHECKING

from tests.reliability.harness import BIN, LOCATION, MOCO_KEY, PIT, ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from tests.reliability.harness import KillSwitch, World

PLUGIN_PREFIXES = ("TAP_MOCO_", "TARGET_CONTACTS_", "TAP_CONTACTS_", "TARGET_MOCO_", "MELTANO_")


def install_project(folder: Path) -> Path:
    """The repository's meltano.yml in ``folder``, its plugins installed from this checkout."""
    text = (ROOT / "meltano.yml").read_text(encoding="utf-8")
    text = text.replace("pip_url: -e .", f"pip_url: -e {ROOT}")
    text = text.replace("catalog: catalogs/", f"catalog: {ROOT}/catalogs/")
    (folder / "meltano.yml").write_text(text)
    result = subprocess.run(
        [str(BIN / "meltano"), "install"],
        cwd=folder,
        text=True,
        capture_output=True,
        env=meltano_env(),
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


def meltano_env(world: World | None = None) -> dict[str, str]:
    """The environment of a ``meltano`` command: none of the caller's plugin settings; with a
    world, all four plugins pointed at its sandboxes and ledger (the sandboxes' limits are high,
    so are the plugins')."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PLUGIN_PREFIXES)}
    env["MELTANO_ENVIRONMENT"] = "sandbox"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if world is not None:
        ledger = f"sqlite:///{world.ledger_path}"
        env.update(
            {
                "TAP_MOCO_BASE_URL": world.moco.url,
                "TAP_MOCO_API_KEY": MOCO_KEY,
                "TARGET_CONTACTS_BASE_URL": world.contacts.url,
                "TARGET_CONTACTS_LOCATION_ID": LOCATION,
                "TARGET_CONTACTS_PRIVATE_INTEGRATION_TOKEN": PIT,
                "TARGET_CONTACTS_LEDGER_URL": ledger,
                "TAP_CONTACTS_BASE_URL": world.contacts.url,
                "TAP_CONTACTS_LOCATION_ID": LOCATION,
                "TAP_CONTACTS_PRIVATE_INTEGRATION_TOKEN": PIT,
                "TAP_CONTACTS_LEDGER_URL": ledger,
                "TAP_CONTACTS_RATE_LIMIT_REQUESTS": "100000",
                "TAP_CONTACTS_RATE_LIMIT_WINDOW_SECONDS": "1",
                "TARGET_MOCO_BASE_URL": world.moco.url,
                "TARGET_MOCO_API_KEY": MOCO_KEY,
                "TARGET_MOCO_LOCATION_ID": LOCATION,
                "TARGET_MOCO_LEDGER_URL": ledger,
                "TARGET_MOCO_RATE_LIMIT_REQUESTS": "100000",
                "TARGET_MOCO_RATE_LIMIT_WINDOW_SECONDS": "1",
            }
        )
    return env


def meltano_run(
    project: Path,
    world: World,
    *args: str,
    blocks: tuple[str, ...] = ("tap-moco", "target-contacts"),
    kill: KillSwitch | None = None,
) -> subprocess.CompletedProcess[str]:
    """``meltano run [args] BLOCKS`` (a tap and a target, or a job) in its own process group;
    its output goes to the evidence."""
    proc = subprocess.Popen(
        [str(BIN / "meltano"), "run", *args, *blocks],
        cwd=project,
        env=meltano_env(world),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    if kill is not None:
        kill.arm(proc.pid)
    try:
        out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"meltano run did not finish:\n{err[-3000:]}") from None
    world.evidence.text("meltano run stdout", out)
    world.evidence.text("meltano run stderr", err)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
