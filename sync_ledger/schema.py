"""Bringing a ledger database to the current schema with Alembic, safely from many processes.

:func:`upgrade` runs every migration the database lacks (``sync_ledger/migrations/versions``)
under a lock, so two runs that start together never migrate at once: SQLite takes an exclusive
write transaction (``BEGIN IMMEDIATE``), PostgreSQL a transaction-scoped advisory lock. A ledger
made before migrations existed (release 0.1.0: its tables but no ``alembic_version``) is stamped
with the first revision and upgraded from there, so nothing in it is lost.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.engine import Connection

#: The revision a pre-migration ledger (release 0.1.0) is at.
BASELINE = "0001"
# Any fixed number: the key of PostgreSQL's advisory lock around migrations.
_PG_LOCK_KEY = 0x5C1ED6E7


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "sync_ledger:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head() -> str:
    """The newest schema revision this release knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    if revision is None:  # pragma: no cover - the package always ships its migrations
        msg = "sync_ledger ships no migrations"
        raise RuntimeError(msg)
    return revision


def current(connection: Connection) -> str | None:
    """The revision the database is at (None: not under migrations yet)."""
    return MigrationContext.configure(connection).get_current_revision()


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def upgrade(engine: Engine) -> None:
    """Migrate the ledger behind ``engine`` to :func:`head` (a no-op when it is there)."""
    with engine.connect() as connection:
        if current(connection) == head():
            return
        connection.rollback()
        _lock(connection)
        revision = current(connection)  # again, under the lock: another run may have migrated
        if revision != head():
            config = _config(connection)
            if revision is None and inspect(connection).has_table("id_map"):
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")
        connection.commit()
