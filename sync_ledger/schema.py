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

from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Engine
    from sqlalchemy.engine import Connection

#: The revision a pre-migration ledger (release 0.1.0) is at.
BASELINE = "0001"
#: The newest revision, known without loading Alembic (every process opens the ledger, and a
#: ledger at this revision needs no migration); a test checks it against the migrations.
HEAD = "0004"
# Any fixed number: the key of PostgreSQL's advisory lock around migrations.
_PG_LOCK_KEY = 0x5C1ED6E7


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config  # noqa: PLC0415  loaded only when a migration runs

    config = Config()
    config.set_main_option("script_location", "sync_ledger:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head() -> str:
    """The newest schema revision this release knows."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415  loaded only when needed

    revision = ScriptDirectory.from_config(_config()).get_current_head()
    if revision is None:  # pragma: no cover - the package always ships its migrations
        msg = "sync_ledger ships no migrations"
        raise RuntimeError(msg)
    return revision


def current(connection: Connection) -> str | None:
    """The revision the database is at (None: not under migrations yet)."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415  loaded when needed

    return MigrationContext.configure(connection).get_current_revision()


def _at_head(connection: Connection) -> bool:
    """Whether the database is at :data:`HEAD`, asked with plain SQL (no Alembic import)."""
    try:
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return False  # no alembic_version table yet
    finally:
        connection.rollback()
    return [row[0] for row in rows] == [HEAD]


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def upgrade(engine: Engine) -> None:
    """Migrate the ledger behind ``engine`` to :func:`head` (a no-op when it is there)."""
    with engine.connect() as connection:
        if _at_head(connection):
            return
        from alembic import command  # noqa: PLC0415  loaded only when a migration runs

        _lock(connection)
        revision = current(connection)  # again, under the lock: another run may have migrated
        if revision != head():
            config = _config(connection)
            if revision is None and inspect(connection).has_table("id_map"):
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")
        connection.commit()
