"""The ledger database: one SQLAlchemy engine and metadata shared by the id ledger and the token store.

Default is a SQLite file (created with mode 0600, since it holds OAuth tokens); any SQLAlchemy URL,
PostgreSQL above all, works when several machines or CI runners share one sync.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, event

metadata = MetaData()

DEFAULT_LEDGER_URL = "sqlite:///.target-contacts/ledger.db"


def sqlite_path(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL, or None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def make_engine(url: str = DEFAULT_LEDGER_URL) -> Engine:
    """An engine for ``url`` with every table created; a SQLite file is made private (0600)."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Create the file ourselves so it is never world-readable, not even for a moment.
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        os.chmod(path, 0o600)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    # Import the modules that define tables so that create_all knows them all.
    from target_contacts import auth, ledger  # noqa: F401

    metadata.create_all(engine)
    if path is not None:
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.chmod(side, 0o600)
    return engine
