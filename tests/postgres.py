"""A throwaway PostgreSQL cluster for the tests: one per test session, one database per test.

How it runs:

- The server binaries (``initdb``, ``postgres``) come from ``$PG_BINDIR``, ``pg_config --bindir``
  or ``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql`` package); without them the fixture
  fails and says how to install them. ``.ci/run`` installs the package when they are missing.
- PostgreSQL refuses to run as root. Under root the cluster belongs to ``$PG_TEST_USER``, else
  the system user ``postgres`` (Debian's package makes it) or, where there is none, to
  ``moco-pg-test``, created once with ``useradd``; ``setpriv`` switches to it. Otherwise it runs
  as the current user.
- Everything lives in a fresh temporary directory owned by that user: the data directory, the
  unix socket and the server log. The server listens on 127.0.0.1 only, on a free port, with
  ``fsync`` off (nothing here needs to survive a power cut). Clients log in over TCP as the
  non-superuser ``ledger`` with a password, as a shared runner would; each test's database is
  owned by that role.
- At the end of the session the server gets a fast shutdown (SIGKILL for it and its backends
  if that takes over 30 s) and the directory is deleted. Should the test process die without
  cleaning up, the kernel sends the server SIGQUIT (``setpriv --pdeathsig``), so no server
  outlives the tests; the next session deletes such a directory once it is an hour old.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

INSTALL_HINT = (
    "install the PostgreSQL server: `apt-get install -y postgresql` on Debian or Ubuntu (.ci/run "
    "does this), or set PG_BINDIR to a directory holding initdb and postgres"
)
#: The user a root test run starts the server as when the system has no ``postgres`` user.
DEDICATED_USER = "moco-pg-test"
USERADD_OPTIONS = ("--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent")
#: Server settings: loopback only; durability off (nothing here has to survive a power cut).
SERVER_SETTINGS = (
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
)
#: The login role of every test database (not a superuser, like a shared runner's).
ROLE = "ledger"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
COMMAND_TIMEOUT_SECONDS = 120.0
#: A cluster directory this old without a live server was left by a killed test run.
STALE_SECONDS = 3600.0
# The kernel refuses a unix socket path over 107 bytes: <parent>/moco-pg-XXXXXXXX/socket/.s.PGSQL.N
# must fit, so a longer temporary directory is not used.
_MAX_TEMP_PARENT = 60


class PostgresUnavailableError(RuntimeError):
    """The cluster cannot be started: no server binaries, no user to run it as, or it failed."""


def server_bindir() -> Path:
    """The directory with ``initdb`` and ``postgres``; PostgresUnavailableError when none has."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        # Debian's /usr/bin/pg_config may come with libpq-dev alone: its bindir can lack initdb.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            answer = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True
            )
            candidates.append(Path(answer.stdout.strip()))
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in ("initdb", "postgres")):
            return directory
    looked = ", ".join(str(c) for c in candidates) or "no pg_config, no /usr/lib/postgresql"
    raise PostgresUnavailableError(f"no initdb and postgres in {looked}: {INSTALL_HINT}")


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None for the current user, or an unprivileged user under root."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("PG_TEST_USER")
    for name in [wanted] if wanted else ["postgres", DEDICATED_USER]:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    if wanted:
        raise PostgresUnavailableError(f"PG_TEST_USER={wanted} names no user on this system")
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    created = subprocess.run(
        [useradd, *USERADD_OPTIONS, DEDICATED_USER],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )
    try:
        return pwd.getpwnam(DEDICATED_USER)  # made now, or by a test run racing this one
    except KeyError:
        raise PostgresUnavailableError(
            f"PostgreSQL refuses to run as root and there is no user to run it as: `useradd "
            f"{DEDICATED_USER}` failed ({created.stderr.strip()}); create an unprivileged user "
            "and name it in PG_TEST_USER"
        ) from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresCluster:
    """A running throwaway cluster; :meth:`database` makes a database and returns its URL."""

    root: Path
    port: int
    password: str
    process: subprocess.Popen[bytes]
    _names: itertools.count[int]

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str, *, driver: str = "postgresql+psycopg") -> str:
        """The SQLAlchemy URL of ``database`` for the ``ledger`` role over 127.0.0.1."""
        return f"{driver}://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    def admin(self, *statements: str) -> None:
        """Run ``statements`` as the superuser over the unix socket, each in autocommit."""
        import psycopg

        with psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]  fixed test SQL

    def database(self, hint: str = "test") -> str:
        """A new empty database owned by ``ledger``; its SQLAlchemy URL."""
        stem = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:40] or "test"
        name = f"{stem}_{next(self._names)}"
        self.admin(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop the database of ``url``, closing whatever still connects to it."""
        name = url.rsplit("/", 1)[1]
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL) and delete its directory; idempotent."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown: roll back, disconnect, stop
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                # Each backend is a session of its own: kill them by parent, not by group.
                backends = _children(process.pid)
                process.kill()
                process.wait(STOP_TIMEOUT_SECONDS)
                for pid in backends:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _as_user(argv: list[str], user: pwd.struct_passwd | None, *, die_with_us: bool) -> list[str]:
    """``argv`` run as ``user`` (None: as we are), and killed when this process dies if asked."""
    setpriv = shutil.which("setpriv")
    prefix: list[str] = []
    if user is not None:
        if setpriv is None:
            raise PostgresUnavailableError(
                "running the tests as root needs setpriv (util-linux) to start PostgreSQL as "
                f"{user.pw_name}"
            )
        prefix = [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    if die_with_us and setpriv is not None:
        prefix = [*(prefix or [setpriv]), "--pdeathsig=QUIT"]
    return [*prefix, *argv]


def _server_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}


def start_cluster() -> PostgresCluster:
    """initdb a cluster in a new temporary directory and start it; see the module docstring."""
    bindir = server_bindir()
    user = _server_user()
    parent = Path(tempfile.gettempdir())
    # The socket path must be short, and the server's user must reach the directory.
    if len(str(parent)) > _MAX_TEMP_PARENT or (user is not None and not _reachable(parent)):
        parent = Path("/tmp")  # noqa: S108  mkdtemp makes a private directory in it
    _remove_stale_clusters(parent)
    root = Path(tempfile.mkdtemp(prefix="moco-pg-", dir=parent))
    try:
        (root / "socket").mkdir()
        password = secrets.token_hex(16)
        (root / "pwfile").touch(mode=0o600)
        (root / "pwfile").write_text(password + "\n")
        if user is not None:
            for path in (root, root / "socket", root / "pwfile"):
                os.chown(path, user.pw_uid, user.pw_gid)
        init = subprocess.run(
            _as_user(
                [
                    str(bindir / "initdb"),
                    f"--pgdata={root / 'data'}",
                    "--username=postgres",
                    f"--pwfile={root / 'pwfile'}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                user,
                die_with_us=False,
            ),
            capture_output=True,
            text=True,
            env=_server_env(),
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        (root / "pwfile").unlink()
        if init.returncode != 0:
            _initdb_failed(init)
        cluster = _serve(bindir, user, root, password)
        cluster.admin(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster


def _reachable(directory: Path) -> bool:
    """Whether any user may pass through ``directory`` and every directory above it."""
    return all(d.stat().st_mode & 0o001 for d in (directory, *directory.parents))


def _remove_stale_clusters(parent: Path) -> None:
    """Delete what killed test runs left behind: directories over an hour old with no server."""
    for root in parent.glob("moco-pg-*"):
        with contextlib.suppress(OSError, ValueError):
            if time.time() - root.stat().st_mtime < STALE_SECONDS:
                continue
            pid_file = root / "data" / "postmaster.pid"
            if pid_file.exists():
                pid = int(pid_file.read_text().split()[0])
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    pass  # its server is gone
                except PermissionError:
                    continue  # a live server of another user
                else:
                    continue  # a live server (a long session)
            shutil.rmtree(root, ignore_errors=True)


def _initdb_failed(init: subprocess.CompletedProcess[str]) -> None:
    raise PostgresUnavailableError(f"initdb failed:\n{init.stdout}\n{init.stderr}")


def _serve(
    bindir: Path, user: pwd.struct_passwd | None, root: Path, password: str
) -> PostgresCluster:
    """Start the server on a free port (another if that one was taken meanwhile); wait for it."""
    for _attempt in range(3):
        port = _free_port()
        with (root / "server.log").open("ab") as log:
            process = subprocess.Popen(
                _as_user(
                    [
                        str(bindir / "postgres"),
                        f"-D{root / 'data'}",
                        f"-p{port}",
                        f"-cunix_socket_directories={root / 'socket'}",
                        *(f"-c{setting}" for setting in SERVER_SETTINGS),
                    ],
                    user,
                    die_with_us=True,
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_server_env(),
                start_new_session=True,  # a Ctrl-C in the terminal is for pytest, not the server
            )
        cluster = PostgresCluster(root, port, password, process, itertools.count(1))
        try:
            if _wait_ready(cluster):
                return cluster
        except BaseException:
            cluster.stop()
            raise
        # It exited: the port was taken between choosing and binding it; try another.
    raise PostgresUnavailableError(f"PostgreSQL did not start:\n{_tail(root / 'server.log')}")


def _wait_ready(cluster: PostgresCluster) -> bool:
    """True once the server accepts connections; False when it exited on a taken port."""
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if cluster.process.poll() is not None:
            if "could not bind" in _tail(cluster.log) or "in use" in _tail(cluster.log):
                return False
            raise PostgresUnavailableError(
                f"PostgreSQL exited with {cluster.process.returncode}:\n{_tail(cluster.log)}"
            )
        try:
            cluster.admin("SELECT 1")
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise PostgresUnavailableError(
                    f"PostgreSQL did not accept connections within {START_TIMEOUT_SECONDS:.0f} "
                    f"s:\n{_tail(cluster.log)}"
                ) from None
            time.sleep(0.05)
        else:
            return True


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# One cluster per process, whichever modules import the fixtures below.
_cluster: PostgresCluster | None = None


def shared_cluster() -> PostgresCluster:
    """The session's cluster, started on first use and stopped at exit at the latest."""
    global _cluster  # noqa: PLW0603  one cluster per test process
    if _cluster is None or _cluster.process.poll() is not None:
        _cluster = start_cluster()
        atexit.register(_cluster.stop)
    return _cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster (started on first use, stopped at session end)."""
    cluster = shared_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres: PostgresCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test; its SQLAlchemy URL (psycopg 3)."""
    url = postgres.database(request.node.name)
    yield url
    postgres.drop(url)
