"""The catalogs meltano.yml hands the taps are what the taps discover themselves.

Meltano uses catalogs/<tap>.catalog.json instead of running discovery on every run; a schema
change must be followed by scripts/refresh-catalogs, or this fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIG = {
    "api_key": "x",
    "base_url": "http://127.0.0.1:9",
    "location_id": "x",
    "private_integration_token": "x",
    "ledger_url": "sqlite://",
}


@pytest.mark.parametrize("tap", ["tap-moco", "tap-contacts"])
def test_the_shipped_catalog_is_the_discovered_one(tap: str, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    discovered = subprocess.run(
        [str(BIN / tap), "--config", str(config), "--discover"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    shipped = (ROOT / "catalogs" / f"{tap}.catalog.json").read_text()
    assert json.loads(discovered.stdout) == json.loads(shipped), (
        f"catalogs/{tap}.catalog.json is out of date: run scripts/refresh-catalogs"
    )
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    plugin = next(p for p in project["plugins"]["extractors"] if p["name"] == tap)
    assert plugin["catalog"] == f"catalogs/{tap}.catalog.json"
