"""Ledger tests run on both databases the ledger supports.

A test that takes ``ledger_url`` runs twice: on a SQLite file and on a fresh database of the
session's throwaway PostgreSQL cluster (tests/postgres.py). ``postgres_url`` alone is PostgreSQL
only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.postgres import postgres, postgres_url  # noqa: F401  the fixtures, for this directory

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty ledger database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url"))
