"""bench/run keeps the results of items measured by other runs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from bench.__main__ import main

if TYPE_CHECKING:
    from pathlib import Path


def test_a_run_of_other_items_without_merge_stops_before_measuring_anything(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results.json"
    report = tmp_path / "benchmarks.md"
    earlier = {"items": [4, 8], "overhead": {"sizes": {}}}
    results.write_text(json.dumps(earlier))

    with pytest.raises(SystemExit) as stopped:
        main(["--items", "7", "--results", str(results), "--report", str(report)])

    message = str(stopped.value)
    assert "items [4, 8], which this run would drop" in message
    assert "--merge" in message
    assert json.loads(results.read_text()) == earlier
    assert not report.exists()
