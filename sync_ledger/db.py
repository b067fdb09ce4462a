"""The ledger database: one engine and metadata shared by the id ledger and the token store.

Default is a SQLite file (created with mode 0600, since it holds OAuth tokens); any SQLAlchemy URL,
PostgreSQL above all, works when several machines or CI runners share one sync.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, make_url
from sqlalchemy.pool import StaticPool

from sync_ledger.schema import upgrade

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from contextlib import AbstractContextManager

    from sqlalchemy import ClauseElement, Dialect
    from sqlalchemy.engine import Connection
    from sqlalchemy.engine.interfaces import DBAPIConnection, DBAPICursor
    from sqlalchemy.sql.compiler import SQLCompiler
    from sqlalchemy.sql.expression import Executable

metadata = MetaData()

T = TypeVar("T")

DEFAULT_LEDGER_URL = "sqlite:///.target-contacts/ledger.db"


class LedgerDriverMissingError(ImportError):
    """``ledger_url`` names a database whose Python driver is not installed in this environment."""


def sqlite_path(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL, or None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def is_in_memory(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite database (gone when the process ends)."""
    try:
        parsed = make_url(url)
    except ValueError:
        return False
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def redact_url(url: str) -> str:
    """``url`` fit to print: its password (a ``ledger_url`` may hold one) is hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ValueError:
        return "<unparsable ledger_url>"


def make_engine(url: str = DEFAULT_LEDGER_URL) -> Engine:
    """An engine for ``url`` with every table created; a SQLite file is made private (0600).

    Errors never show bound parameters (token values, customer data): the engine is created with
    ``hide_parameters``. An in-memory SQLite URL gets one connection that every thread shares (the
    database lives in it), so callers must not use it from several threads at once. A URL whose
    driver is not installed raises :class:`LedgerDriverMissingError`, which says how to install it.
    """
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Create the file ourselves so it is never world-readable, not even for a moment.
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        path.chmod(0o600)
        engine = create_engine(
            url,
            connect_args={"timeout": 60, "check_same_thread": False},
            hide_parameters=True,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: object) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=60000")
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
    elif is_in_memory(url):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            poolclass=StaticPool,
            hide_parameters=True,
        )
    else:
        try:
            engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
        except ModuleNotFoundError as missing:
            raise _driver_missing(url, missing) from missing
    upgrade(engine)
    if path is not None:
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.chmod(0o600)
    return engine


#: How long runs that open a new SQLite ledger together retry its switch to WAL.
_WAL_SWITCH_SECONDS = 30.0


def _switch_to_wal(cursor: DBAPICursor) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another process holds the file's lock.

    Switching a new file's journal mode needs the file to itself, and SQLite answers "database
    is locked" at once, without its busy timeout, when several runs open the ledger together.
    The mode is kept in the file: once one run has switched it, the others find it done.
    """
    deadline = time.monotonic() + _WAL_SWITCH_SECONDS
    while not _tried_wal(cursor, last_try=time.monotonic() > deadline):
        time.sleep(0.05)


def _tried_wal(cursor: DBAPICursor, *, last_try: bool) -> bool:
    """Whether the switch to WAL went through (False: the file was locked; try again)."""
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as error:
        if "locked" not in str(error) or last_try:
            raise
        return False
    return True


#: A statement compiled for the driver: its SQL text, the function that takes its parameters'
#: values in order, and the values it has of its own.
_Compiled = tuple[str, "Callable[[Mapping[str, Any]], tuple[Any, ...]]", dict[str, Any]]


class DriverSQL:
    """Hot one-row statements as a database driver takes them.

    SQLAlchemy's own work for each such statement (its compiled cache, parameter processing,
    result objects, a pooled connection's checkout and reset) cost about three times SQLite's:
    a ledger intent took ~340 us through SQLAlchemy and ~90 us through the driver. SQLAlchemy
    still writes the SQL: each statement is compiled once per set of columns it sets, for the
    engine's dialect, and the driver runs the text with the parameters in the compiled order
    (``p_*`` names are bound parameters, other names the columns set; a datetime is converted as
    the dialect stores it).
    """

    def __init__(self, statements: Mapping[str, ClauseElement], dialect: Dialect) -> None:
        self._statements = statements
        self._dialect = dialect
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}
        store = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
        self._time: Callable[[Any], Any] = store or (lambda value: value)

    def __call__(self, name: str, params: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
        """The SQL text of statement ``name`` and its parameters in order."""
        key = (name, tuple(params))  # a caller passes the same names for the same statement
        found = self._compiled.get(key)
        if found is None:
            found = self._compile(name, params)
            self._compiled[key] = found  # the same value whichever thread builds it first
        sql, pick, defaults = found
        values = pick({**defaults, **params} if defaults else params)
        return sql, tuple([self._time(v) if isinstance(v, datetime) else v for v in values])

    def _compile(self, name: str, params: Mapping[str, Any]) -> _Compiled:
        """The statement's text for the columns ``params`` sets, and how to order its values."""
        columns = [k for k in params if not k.startswith("p_")]
        compiled = cast(
            "SQLCompiler",
            self._statements[name].compile(dialect=self._dialect, column_keys=columns),
        )
        order = tuple(compiled.positiontup or ())
        # Values the statement has of its own (e.g. a column's default) where params has none.
        defaults = {n: v for n, v in compiled.params.items() if n in order and n not in params}
        return compiled.string, _picker(order), defaults


def _picker(order: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function that takes the values named by ``order`` from a mapping, as a tuple."""
    if len(order) > 1:
        return itemgetter(*order)
    if order:
        only = order[0]
        return lambda values: (values[only],)
    return lambda _values: ()


class Steps(Protocol):
    """Prebuilt statements run by name in one write transaction (the ledger's, the budget's)."""

    def first(self, name: str, params: dict[str, Any]) -> Any:  # noqa: ANN401  a column value
        """The first column of the first row, or None."""

    def run(self, name: str, params: dict[str, Any]) -> int:
        """Run it; how many rows it changed."""

    def many(self, name: str, rows: list[dict[str, Any]]) -> int:
        """Run it once per row; how many rows they changed."""

    def insert(self, name: str, params: dict[str, Any]) -> int:
        """Insert one row; its key."""


@dataclass(frozen=True)
class EngineSteps:
    """The steps through SQLAlchemy, in the transaction of ``conn``."""

    conn: Connection
    statements: Mapping[str, Executable]

    def first(self, name: str, params: dict[str, Any]) -> Any:  # noqa: ANN401  a column value
        """The first column of the first row, or None."""
        return self.conn.execute(self.statements[name], params).scalar()

    def run(self, name: str, params: dict[str, Any]) -> int:
        """Run it; how many rows it changed."""
        return int(self.conn.execute(self.statements[name], params).rowcount)

    def many(self, name: str, rows: list[dict[str, Any]]) -> int:
        """Run it once per row; how many rows they changed."""
        return int(self.conn.execute(self.statements[name], rows).rowcount)

    def insert(self, name: str, params: dict[str, Any]) -> int:
        """Insert one row; its key."""
        key = self.conn.execute(self.statements[name], params).inserted_primary_key
        if key is None:  # pragma: no cover - a one-row insert always reports its key
            msg = "the database did not report the row it made"
            raise RuntimeError(msg)
        return int(key[0])


@dataclass(frozen=True)
class DriverSteps:
    """The steps through the SQLite driver's ``cursor`` (see :class:`DriverSQL`)."""

    cursor: DBAPICursor
    sql: DriverSQL

    def first(self, name: str, params: dict[str, Any]) -> Any:  # noqa: ANN401  a column value
        """The first column of the first row, or None."""
        row = self.cursor.execute(*self.sql(name, params)).fetchone()
        return None if row is None else row[0]

    def run(self, name: str, params: dict[str, Any]) -> int:
        """Run it; how many rows it changed."""
        return int(self.cursor.execute(*self.sql(name, params)).rowcount)

    def many(self, name: str, rows: list[dict[str, Any]]) -> int:
        """Run it once per row; how many rows they changed."""
        compiled = [self.sql(name, row) for row in rows]
        if not compiled:
            return 0
        self.cursor.executemany(compiled[0][0], [values for _sql, values in compiled])
        return int(self.cursor.rowcount)

    def insert(self, name: str, params: dict[str, Any]) -> int:
        """Insert one row; its key."""
        self.cursor.execute(*self.sql(name, params))
        return int(self.cursor.lastrowid or 0)


#: Each engine's driver connections, one per thread (see :class:`ThreadConnections`).
_THREAD_CONNECTIONS: weakref.WeakKeyDictionary[Engine, threading.local] = (
    weakref.WeakKeyDictionary()
)
_THREAD_CONNECTIONS_LOCK = threading.Lock()


class ThreadConnections:
    """A driver connection of each thread's own to a SQLite file, for :class:`DriverSteps`.

    Taken from the engine's pool once per thread, with its settings, and kept (closed when the
    thread or the engine goes): a checkout and return per transaction cost as much as a short
    transaction's statements. Every ``ThreadConnections`` of one engine (the ledger's, the rate
    budget's) hands a thread the same connection: SQLite drops a connection's page cache when
    another connection wrote the file since its last transaction, so two connections taking
    turns on one thread read the pages they touch from the file again at every turn (~4 reads
    per record written). The transactions of one thread never overlap, so one connection serves
    them all. Not for in-memory SQLite: its one connection is the database.
    """

    def __init__(self, engine: Engine, sql: DriverSQL) -> None:
        self.engine = engine
        self.sql = sql
        with _THREAD_CONNECTIONS_LOCK:
            self._local = _THREAD_CONNECTIONS.setdefault(engine, threading.local())

    @contextmanager
    def transaction(self) -> Iterator[DriverSteps]:
        """One write transaction on this thread's connection; committed when the block ends."""
        raw = self._connection()
        try:
            yield DriverSteps(raw.cursor(), self.sql)
            raw.commit()
        except BaseException:
            raw.rollback()
            raise

    def _connection(self) -> DBAPIConnection:
        raw = getattr(self._local, "connection", None)
        if raw is None:
            pooled = self.engine.raw_connection()
            raw = self._local.connection = pooled.driver_connection
            pooled.detach()  # this thread's for good
        return cast("DBAPIConnection", raw)


class _Pending:
    """One thread's write waiting in :class:`GroupCommit`'s queue."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Steps], Any]) -> None:
        self.work = work
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """Short write transactions of many threads committed together, each durable on return.

    A thread's :meth:`run` queues its statements and returns once a transaction holding them is
    committed (or raises what they raised): the first thread to find no commit under way takes
    every queued write into one transaction, while the threads arriving meanwhile queue up for
    the next. What one write returns, or when it returns, is the same as with a transaction of its
    own (a create's intent is committed before its call is sent, as before); what changes is the
    commits: with eight writer threads a few writes share one, and a commit with its journal writes
    cost a SQLite ledger more CPU than the statements of a write (~120 us against ~50 us here).
    If a transaction of several writes fails, each of them is tried again alone, so a failure
    belongs to the write that caused it. The statements must not depend on Python state changed
    by another queued write: a caller applies its own side effects after :meth:`run` returns.
    """

    def __init__(self, transaction: Callable[[], AbstractContextManager[Steps]]) -> None:
        self._transaction = transaction
        self._committing = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []

    def run(self, work: Callable[[Steps], T]) -> T:
        """Run ``work(steps)`` in a committed transaction; returns what it returned."""
        pending = _Pending(work)
        with self._queue_lock:
            self._queue.append(pending)
        with self._committing:
            if not pending.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._commit(group)
        if pending.error is not None:
            raise pending.error
        return cast("T", pending.result)

    def _commit(self, group: list[_Pending]) -> None:
        try:
            with self._transaction() as steps:
                results = [p.work(steps) for p in group]
        except Exception as error:  # noqa: BLE001  handed to the thread of its write, raised there
            if len(group) == 1:
                group[0].error, group[0].done = error, True
                return
            for pending in group:  # alone, so that the failure is its writer's only
                self._commit([pending])
            return
        except BaseException as error:  # interrupted: none of them is committed
            for pending in group:
                pending.error, pending.done = error, True
            raise
        for pending, result in zip(group, results, strict=True):
            pending.result, pending.done = result, True


def _driver_missing(url: str, missing: ModuleNotFoundError) -> LedgerDriverMissingError:
    # The plugins' venvs hold what `pip_url` installs: `-e .` has no PostgreSQL driver.
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        how = (
            "install the project with its postgres extra: pip_url `-e .[postgres]` in "
            "meltano.yml (then `meltano install`), or pip install 'moco-contacts-sync[postgres]'"
        )
        if parsed.get_driver_name() != "psycopg":
            how += "; that extra is psycopg 3, so write the URL as postgresql+psycopg://..."
    else:
        how = f"install the Python package that provides {missing.name!r} where the sync runs"
    return LedgerDriverMissingError(
        f"ledger_url {redact_url(url)} needs the database driver {missing.name!r}, which is not "
        f"installed in this environment: {how}.",
        name=missing.name,
    )
