"""The contributors' pre-commit hooks run the tools CI runs, from the project's .venv."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_pre_commit_runs_what_ci_lints_with() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    entries = [h["entry"] for repo in config["repos"] for h in repo["hooks"]]
    lint = (ROOT / "scripts" / "lint").read_text()
    for tool in ("ruff check", "ruff format", "mypy"):
        assert tool in lint, tool
        assert any(entry.startswith(f".venv/bin/{tool}") for entry in entries), tool
    for entry in entries:
        # The tools pinned in pyproject.toml, installed into .venv by scripts/test.
        assert (ROOT / entry.split()[0]).is_file(), entry
