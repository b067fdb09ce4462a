"""Bringing a ledger database to the current schema with Alembic, safely from many processes.

:func:`upgrade` runs every migration the database lacks (``sync_ledger/migrations/versions``)
under a lock, so two runs that start together never migrate at once: SQLite takes an exclusive
write transaction (``BEGIN IMMEDIATE``), PostgreSQL a transaction-scoped advisory lock. A ledger
made before migrations existed (release 0.1.0: its tables but no ``alembic_version``) is stamped
with the first revision and upgraded from there, so nothing in it is lost. A database that holds
no ledger yet gets the tables as the code defines them, stamped with the head revision, without
loading Alembic (a test checks that this is what the migrations build).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    column,
    inspect,
    select,
    table,
    text,
)
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Engine
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql.expression import TableClause

#: The revision a pre-migration ledger (release 0.1.0) is at.
BASELINE = "0001"
#: The newest revision, known without loading Alembic (every process opens the ledger, and a
#: ledger at this revision needs no migration); a test checks it against the migrations.
HEAD = "0004"
#: Where the ledger keeps its revision: not Alembic's default ``alembic_version``, so that the
#: ledger and Meltano's system database (which has its own) may share one PostgreSQL database.
VERSION_TABLE = "sync_ledger_version"
# Ledgers of this release's development kept it in Alembic's default table.
_OLD_VERSION_TABLE = "alembic_version"
# Any fixed number: the key of PostgreSQL's advisory lock around migrations.
_PG_LOCK_KEY = 0x5C1ED6E7


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config  # noqa: PLC0415  loaded only when a migration runs

    config = Config()
    config.set_main_option("script_location", "sync_ledger:migrations")
    config.attributes["version_table"] = VERSION_TABLE
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

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _at_head(connection: Connection) -> bool:
    """Whether the database is at :data:`HEAD`, asked with plain SQL (no Alembic import)."""
    try:
        rows = connection.execute(select(_version_table(VERSION_TABLE).c.version_num)).all()
    except DBAPIError:
        return False  # no version table yet
    finally:
        connection.rollback()
    return [row[0] for row in rows] == [HEAD]


def _revision_before_migrations(connection: Connection) -> str | None:
    """The revision of a ledger not yet under :data:`VERSION_TABLE`, None for an empty one.

    A release-0.1.0 ledger (its ``id_map``, no version) is at :data:`BASELINE`; a ledger that kept
    one of this package's revisions in Alembic's default table is at that one. A default table
    holding another revision (Meltano's, in a shared database) says nothing about the ledger.
    """
    tables = inspect(connection)
    if tables.has_table(_OLD_VERSION_TABLE) and tables.has_table("links"):
        rows = connection.execute(select(_version_table(_OLD_VERSION_TABLE).c.version_num)).all()
        ours = {str(row[0]) for row in rows} & _revisions()
        if ours:
            return max(ours)
    return BASELINE if tables.has_table("id_map") else None


def _revisions() -> set[str]:
    from alembic.script import ScriptDirectory  # noqa: PLC0415  loaded only when needed

    script = ScriptDirectory.from_config(_config())
    return {rev.revision for rev in script.walk_revisions()}


def _version_table(name: str) -> TableClause:
    return table(name, column("version_num"))


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def _holds_no_ledger(connection: Connection) -> bool:
    """Whether the database holds none of the ledger's tables, of any release (a new ledger)."""
    from sync_ledger.db import metadata  # noqa: PLC0415  db imports this module

    ours = {*_ledger_tables(metadata), VERSION_TABLE, "id_map"}
    return not ours & set(inspect(connection).get_table_names())


def _ledger_tables(metadata: MetaData) -> list[str]:
    """The names of every table of the ledger, as the code defines them."""
    # Their modules add them to the metadata when they are imported.
    from sync_ledger import budget, events, ledger, runlock, tokens  # noqa: F401, PLC0415

    return list(metadata.tables)


def _create_at_head(connection: Connection) -> None:
    """Make a new ledger's tables as the code defines them, at :data:`HEAD`.

    What the migrations from an empty database build (a test compares both, on SQLite and on
    PostgreSQL), without loading Alembic and running them one by one: ~0.4 s of CPU less for
    every run that opens a new ledger.
    """
    from sync_ledger.db import metadata  # noqa: PLC0415  db imports this module

    _ledger_tables(metadata)
    metadata.create_all(connection)
    # Alembic's own version table, as it would make it.
    version = Table(
        VERSION_TABLE,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
    )
    version.create(connection)
    connection.execute(version.insert().values(version_num=HEAD))


def upgrade(engine: Engine) -> None:
    """Migrate the ledger behind ``engine`` to :func:`head` (a no-op when it is there).

    A database that holds no ledger yet gets the tables at :data:`HEAD` directly.
    """
    with engine.connect() as connection:
        if _at_head(connection):
            return
        _lock(connection)
        if _holds_no_ledger(connection):
            _create_at_head(connection)
            connection.commit()
            return
        from alembic import command  # noqa: PLC0415  loaded only when a migration runs

        revision = current(connection)  # again, under the lock: another run may have migrated
        if revision != head():
            config = _config(connection)
            if revision is None:
                found = _revision_before_migrations(connection)
                if found is not None:
                    command.stamp(config, found)
            command.upgrade(config, "head")
        connection.commit()
