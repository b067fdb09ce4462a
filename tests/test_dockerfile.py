"""The Dockerfile runs the listener (via the project's meltano.yml) as a non-root user, with a
health check on /healthz; its command line is one the listener accepts. (No Docker engine runs
here, so the image itself is not built in the suite.)"""

from __future__ import annotations

import json
from pathlib import Path

import tomllib
import yaml

from sync_listener.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_runs_the_listener_as_a_user_with_a_health_check() -> None:
    steps = _instructions()
    users = [arg for op, arg in steps if op == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    cmd = json.loads(next(arg for op, arg in steps if op == "CMD"))
    assert cmd[:3] == ["meltano", "invoke", "sync-listener"]
    settings = load_settings(cmd[3:], {"SYNC_LISTENER_LOCATION_ID": "loc"})
    exposed = {int(arg) for op, arg in steps if op == "EXPOSE"}
    assert settings.port in exposed
    health = next(arg for op, arg in steps if op == "HEALTHCHECK")
    assert f"127.0.0.1:{settings.port}/healthz" in health
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    assert any(p["name"] == "sync-listener" for p in project["plugins"]["utilities"])
    installs = " ".join(arg for op, arg in steps if op == "RUN")
    assert "meltano install" in installs
    assert '".[postgres]"' in installs  # a PostgreSQL ledger and state work in the image
    # PYTHONDONTWRITEBYTECODE is set: the plugins' modules are compiled when the image is built.
    assert "UV_COMPILE_BYTECODE=1 meltano install" in installs
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"
    ]["wheel"]["packages"]
    compiled = installs.split("compileall", 1)[1].split()
    assert set(packages) <= set(compiled)


def test_the_build_context_leaves_local_state_and_secrets_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".meltano", ".env", "*.db"):
        assert path in ignored
