"""Ledger tests run on both databases the ledger supports.

A test that takes ``ledger_url`` runs twice: on a SQLite file and on a fresh database of the
session's throwaway PostgreSQL cluster (tests/postgres.py). ``postgres_url`` alone is PostgreSQL
only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests import postgres as throwaway

if TYPE_CHECKING:
    from pathlib import Path

# The session's PostgreSQL cluster and a database per test (tests/postgres.py).
postgres = throwaway.postgres
postgres_url = throwaway.postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty ledger database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url"))
