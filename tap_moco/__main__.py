"""``python -m tap_moco``: the same command line as ``tap-moco``."""

from __future__ import annotations

from tap_moco.tap import TapMoco

TapMoco.cli()
