"""The reliability harness: real ``tap-moco | target-contacts`` processes against the sandboxes.

What the tests build on:

- :class:`World`: a MOCO sandbox and a Contacts sandbox (served in this process on 127.0.0.1), a
  work folder with the ledger, and the state Meltano would have saved (the last STATE line the
  target printed). :meth:`World.run` runs the pipeline as two real processes in one process
  group, with the field mappings (stream maps) of meltano.yml; :meth:`World.run_target` feeds
  the target alone with hand-made Singer messages.
- :class:`KillSwitch`: installed on the Contacts sandbox, it SIGKILLs the pipeline's process
  group when the k-th write request arrives, either before the write is applied (the request is
  lost) or after it was committed (the answer is lost).
- :func:`fingerprint` / :func:`compare`: the CRM's content as a user would check it (contacts by
  e-mail/phone with names, company and tags; tasks by contact, title, due date and completion;
  notes by contact and body), and what is missing or there twice against an expected CRM.
- :class:`Evidence`: everything a run printed or stored, and every secret the run used or the
  sandbox issued, for the final "no secret anywhere" scan.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from sandbox.server import Request, Response, RunningSandbox
from tests.hooks import SandboxHook
from tests.target.singer import messages, note, person, task  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# Unusual values, so that a leak found by the scan cannot be a coincidence.
LOCATION = "rel-location-01"
PIT = "pit-7Qm2xZr9Lk4vB8nT"
MOCO_KEY = "moco-key-Hs83Kd02mQpw"
CLIENT_ID = "rel-client-id"
CLIENT_SECRET = "client-secret-Vb61Nx0pRt5e"
AGENCY_TOKEN = "agency-token-Jc27Wq8sLm4y"
COMPANY_ID = "rel-company-01"
ENCRYPTION_KEY = "uC3lEj3qzGZmHtGzZt9o0yyn3yJf8bI4bI2Bm5iW7zE="  # a Fernet key used only here

WRITE_METHODS = ("POST", "PUT", "DELETE")


def is_write(method: str, path: str) -> bool:
    """A request that changes CRM data (not a read, a search or an OAuth call)."""
    return (
        method in WRITE_METHODS
        and path != "/contacts/search"
        and not path.startswith(("/oauth", "/v2/oauth", "/_sandbox"))
    )


@functools.cache
def meltano_mapping() -> dict[str, Any]:
    """target-contacts settings from meltano.yml: the stream maps (the field mappings), their
    config and the sandbox environment's default_phone_region, as ``meltano run`` passes them."""
    import yaml

    data = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    loader = next(p for p in data["plugins"]["loaders"] if p["name"] == "target-contacts")
    env = next(e for e in data["environments"] if e["name"] == "sandbox")
    env_loader = next(
        p for p in env["config"]["plugins"]["loaders"] if p["name"] == "target-contacts"
    )
    return {
        "stream_maps": loader["config"]["stream_maps"],
        "stream_map_config": loader["config"]["stream_map_config"],
        "default_phone_region": env_loader["config"]["default_phone_region"],
    }


# --- evidence --------------------------------------------------------------------------------
class Evidence:
    """Every text the suite captured and every secret it used or saw issued (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.texts: list[tuple[str, str]] = []
        self.secrets: set[str] = set()

    def text(self, label: str, value: Any) -> None:
        if value is None or value in ("", b""):  # a tuple: value may be unhashable (a dict)
            return
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            value = json.dumps(value, default=str, ensure_ascii=False)
        with self._lock:
            self.texts.append((label, value))

    def file(self, label: str, path: Path) -> None:
        if path.exists() and path.is_file():
            self.text(f"{label} ({path.name})", path.read_bytes())

    def secret(self, *values: str | None) -> None:
        with self._lock:
            self.secrets.update(v for v in values if isinstance(v, str) and len(v) >= 8)

    def leaks(self) -> list[tuple[str, str]]:
        """(where, which secret) for every secret found in a captured text."""
        with self._lock:
            texts, secrets = list(self.texts), sorted(self.secrets)
        return [
            (label, f"{s[:4]}...({len(s)} chars)")
            for label, text in texts
            for s in secrets
            if s in text
        ]

    @property
    def size(self) -> int:
        with self._lock:
            return sum(len(t) for _, t in self.texts)


def watch_oauth(contacts: RunningSandbox, evidence: Evidence) -> list[dict[str, Any]]:
    """Register every access and refresh token the Contacts sandbox issues as a secret; returns
    the list the issued token answers are appended to, oldest first."""
    oauth = contacts.app.oauth  # type: ignore[attr-defined]
    original = oauth._tokens_for
    issued: list[dict[str, Any]] = []

    def issuing(grant: Any) -> dict[str, Any]:
        tokens = original(grant)
        evidence.secret(tokens.get("access_token"), tokens.get("refresh_token"))
        issued.append(dict(tokens))
        return tokens

    oauth._tokens_for = issuing
    return issued


# --- the CRM as a user checks it -----------------------------------------------------------------
def _contact_key(contact: dict[str, Any] | None) -> str:
    if contact is None:
        return "<no such contact>"
    return (
        contact.get("email")
        or contact.get("phone")
        or f"{contact.get('firstName')} {contact.get('lastName')}"
    )


@dataclass
class Fingerprint:
    """Identity and content counters of one CRM state."""

    identity: dict[str, Counter[Any]]
    content: dict[str, Counter[Any]]
    ids_unique: bool


def fingerprint(state: dict[str, Any]) -> Fingerprint:
    contacts = {c["id"]: c for c in state["contacts"]}
    ids_unique = len(contacts) == len(state["contacts"])
    identity: dict[str, Counter[Any]] = {
        "contacts": Counter(_contact_key(c) for c in state["contacts"]),
        "tasks": Counter(
            (
                _contact_key(contacts.get(t["contactId"])),
                t.get("title"),
                str(t.get("dueDate") or "")[:19],
            )
            for t in state["tasks"]
        ),
        "notes": Counter(
            (_contact_key(contacts.get(n["contactId"])), n.get("body")) for n in state["notes"]
        ),
    }
    content: dict[str, Counter[Any]] = {
        "contacts": Counter(
            (
                _contact_key(c),
                c.get("email"),
                c.get("phone"),
                c.get("firstName"),
                c.get("lastName"),
                c.get("companyName"),
                tuple(sorted(c.get("tags") or [])),
            )
            for c in state["contacts"]
        ),
        "tasks": Counter(
            (
                _contact_key(contacts.get(t["contactId"])),
                t.get("title"),
                str(t.get("dueDate") or "")[:19],
                bool(t.get("completed")),
                t.get("body"),
            )
            for t in state["tasks"]
        ),
        "notes": identity["notes"],
    }
    for kind in ("tasks", "notes"):
        ids = [x["id"] for x in state[kind]]
        ids_unique = ids_unique and len(ids) == len(set(ids))
    return Fingerprint(identity, content, ids_unique)


@dataclass
class Comparison:
    """What is missing, there twice, or different in the CRM against the expected CRM."""

    lost: dict[str, int]
    duplicates: dict[str, int]
    differing: dict[str, list[Any]]
    ids_unique: bool

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())

    @property
    def total_duplicates(self) -> int:
        return sum(self.duplicates.values())

    @property
    def exact(self) -> bool:
        return (
            self.total_lost == 0
            and self.total_duplicates == 0
            and self.ids_unique
            and not any(self.differing.values())
        )

    def explain(self) -> str:
        return (
            f"lost {self.lost}, duplicates {self.duplicates}, ids unique {self.ids_unique}, "
            f"differing {json.dumps(self.differing, default=str)[:3000]}"
        )


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> Comparison:
    """Compare two CRM states (``GET /_sandbox/state``) by content; ids are the CRM's own."""
    want, have = fingerprint(expected), fingerprint(actual)
    lost, duplicates, differing = {}, {}, {}
    for kind in ("contacts", "tasks", "notes"):
        lost[kind] = sum((want.identity[kind] - have.identity[kind]).values())
        duplicates[kind] = sum((have.identity[kind] - want.identity[kind]).values())
        differing[kind] = sorted(map(repr, (have.content[kind] - want.content[kind]).elements()))
    return Comparison(lost, duplicates, differing, have.ids_unique)


def assert_like_clean_run(world: World, base: Any) -> Comparison:
    """The CRM, the ledger and the rejects are what a clean run of the same data leaves
    (``base``: a baseline with ``crm`` and ``rejects``); returns the comparison."""
    crm = world.crm()
    comparison = compare(base.crm, crm)
    assert comparison.exact, comparison.explain()
    assert world.ledger_problems(crm) == []
    assert world.rejects() == base.rejects
    return comparison


def crm_counts(state: dict[str, Any]) -> dict[str, int]:
    return {k: len(state[k]) for k in ("contacts", "tasks", "notes")}


# --- killing at a write ------------------------------------------------------------------------
class KillSwitch(SandboxHook):
    """SIGKILL the pipeline's process group when the ``k``-th write request reaches the sandbox.

    ``phase="before"``: the write is not applied (the request dies with the process);
    ``phase="after"``: the write is committed, then the process dies before the answer arrives;
    ``phase="next"``: the write is answered, and the process dies when its next request of any
    kind arrives (unhandled): after the client took the answer in, when one writer thread sends
    one request after the other (its written row committed, or carried to the thread's next
    ledger write: ``IdLedger.carrying``).

    ``counts`` picks the requests counted (default: the Contacts API's writes, :func:`is_write`);
    ``hit`` is the counted request the kill came at, ``answer`` its answer (``after``/``next``).
    """

    def __init__(
        self,
        sandbox: RunningSandbox,
        k: int,
        phase: str,
        counts: Callable[[Request], bool] | None = None,
    ) -> None:
        if phase not in ("before", "after", "next") or k < 1:
            raise ValueError("phase must be 'before', 'after' or 'next' and k >= 1")
        self.k = k
        self.phase = phase
        self.counts = counts or (lambda r: is_write(r.method, r.path))
        self.pgid: int | None = None
        self.writes = 0
        self.hit: Request | None = None
        self.answer: Response | None = None
        self.fired = threading.Event()
        self._armed_next = False
        self._lock = threading.Lock()
        super().__init__(sandbox)

    def arm(self, pgid: int) -> None:
        self.pgid = pgid

    def _kill(self) -> None:
        self.fired.set()
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)

    def _handle(self, request: Request) -> Response:
        with self._lock:
            if self._armed_next and not self.fired.is_set():
                self._kill()
                return Response(503, {"message": "the client was killed before this request"})
        if not self.counts(request):
            return self._original(request)
        with self._lock:
            self.writes += 1
            hit = self.writes == self.k and not self.fired.is_set() and self.hit is None
            if hit:
                self.hit = request
        if not hit:
            return self._original(request)
        if self.phase == "before":
            self._kill()
            return Response(503, {"message": "the client was killed before this write"})
        response = self._original(request)
        self.answer = response
        if self.phase == "after":
            self._kill()
        else:
            with self._lock:
                self._armed_next = True
        return response


# --- runs --------------------------------------------------------------------------------------
@dataclass
class Run:
    """One pipeline (or target) process run and everything it printed."""

    number: int
    target_returncode: int
    tap_returncode: int | None
    stdout: str
    stderr: str
    tap_stderr: str
    killed: bool
    folder: Path

    @property
    def ok(self) -> bool:
        return self.target_returncode == 0 and self.tap_returncode in (0, None) and not self.killed

    @property
    def states(self) -> list[dict[str, Any]]:
        lines = (line.strip() for line in self.stdout.splitlines())
        return [json.loads(line) for line in lines if line.startswith("{")]

    @property
    def summary(self) -> dict[str, Any] | None:
        for line in self.stderr.splitlines():
            if line.startswith("SUMMARY "):
                return json.loads(line[len("SUMMARY ") :])
        return None

    def last_error(self) -> str:
        """The last non-blank stderr line that is not a log line of the SDK's metrics."""
        lines = [ln for ln in self.stderr.splitlines() if ln.strip() and "METRIC" not in ln]
        return lines[-1] if lines else ""

    def describe(self) -> str:
        return (
            f"run {self.number}: target exit {self.target_returncode}, tap exit "
            f"{self.tap_returncode}, killed {self.killed}\n--- target stderr (end) ---\n"
            f"{_tail(self.stderr)}\n--- tap stderr (end) ---\n{_tail(self.tap_stderr)}"
        )


def _tail(text: str, lines: int = 25) -> str:
    kept = [ln for ln in text.splitlines() if "METRIC" not in ln]
    return "\n".join(kept[-lines:])


class World:
    """Both sandboxes, a ledger, a saved state and the runs made against them."""

    def __init__(
        self, moco: RunningSandbox, contacts: RunningSandbox, workdir: Path, evidence: Evidence
    ) -> None:
        self.moco = moco
        self.contacts = contacts
        self.workdir = workdir
        self.evidence = evidence
        self.state: dict[str, Any] | None = None
        self.runs: list[Run] = []
        self.ledger_path = workdir / "ledger.db"
        self.issued: list[dict[str, Any]] = []  # OAuth token answers the sandbox gave, in order
        evidence.secret(PIT, MOCO_KEY, CLIENT_SECRET, AGENCY_TOKEN, ENCRYPTION_KEY)

    # --- configs --------------------------------------------------------------------------
    def tap_config(self, **overrides: Any) -> dict[str, Any]:
        config = {
            "api_key": MOCO_KEY,
            "base_url": self.moco.url,
            "rate_limit_requests": 100_000,
            "rate_limit_window_seconds": 1,
        }
        return _merged(config, overrides)

    def target_config(self, *, mapped: bool = True, **overrides: Any) -> dict[str, Any]:
        """The target's settings; ``mapped``: with meltano.yml's stream maps (MOCO-shaped input)."""
        mapping = meltano_mapping()
        config = {
            "base_url": self.contacts.url,
            "location_id": LOCATION,
            "private_integration_token": PIT,
            "ledger_url": f"sqlite:///{self.ledger_path}",
            "request_timeout": 5,
            "max_concurrency": 8,
            **(mapping if mapped else {"default_phone_region": mapping["default_phone_region"]}),
        }
        return _merged(config, overrides)

    # --- running ----------------------------------------------------------------------------
    def _folder(self) -> tuple[int, Path]:
        number = len(self.runs) + 1
        folder = self.workdir / f"run{number:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        return number, folder

    def run(
        self,
        *,
        kill: KillSwitch | None = None,
        tap: dict[str, Any] | None = None,
        target: dict[str, Any] | None = None,
        timeout: float = 240,
        save_state: bool = True,
    ) -> Run:
        """``tap-moco [--state] | target-contacts`` as two processes in one process group."""
        number, folder = self._folder()
        tap_config = folder / "tap-config.json"
        target_config = folder / "target-config.json"
        tap_config.write_text(json.dumps(self.tap_config(**(tap or {}))))
        target_config.write_text(json.dumps(self.target_config(**(target or {}))))
        run = self.pipe(
            number,
            folder,
            [str(BIN / "tap-moco"), "--config", str(tap_config)],
            [str(BIN / "target-contacts"), "--config", str(target_config)],
            state=self.state,
            kill=kill,
            timeout=timeout,
        )
        return self._finish(run, (tap_config, target_config), save_state=save_state)

    @staticmethod
    def pipe(
        number: int,
        folder: Path,
        tap_cmd: list[str],
        target_cmd: list[str],
        *,
        state: dict[str, Any] | None,
        kill: KillSwitch | None,
        timeout: float,
    ) -> Run:
        """``TAP [--state] | TARGET`` as two processes in one process group (``kill`` armed with
        it); returns what they printed."""
        if state is not None:
            state_file = folder / "state.json"
            state_file.write_text(json.dumps(state))
            tap_cmd = [*tap_cmd, "--state", str(state_file)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        out_path, err_path, tap_err_path = (
            folder / "target.out",
            folder / "target.err",
            folder / "tap.err",
        )
        with (
            out_path.open("wb") as out,
            err_path.open("wb") as err,
            tap_err_path.open("wb") as tap_err,
        ):
            tap_proc = subprocess.Popen(
                tap_cmd,
                stdout=subprocess.PIPE,
                stderr=tap_err,
                cwd=folder,
                env=env,
                **_process_group(0),
            )
            pgid = tap_proc.pid
            if kill is not None:
                kill.arm(pgid)
            target_proc = subprocess.Popen(
                target_cmd,
                stdin=tap_proc.stdout,
                stdout=out,
                stderr=err,
                cwd=folder,
                env=env,
                **_process_group(pgid),
            )
            assert tap_proc.stdout is not None
            tap_proc.stdout.close()
            try:
                target_proc.wait(timeout=timeout)
                tap_proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                target_proc.wait()
                tap_proc.wait()
                raise AssertionError(
                    f"the pipeline did not finish within {timeout} s:\n"
                    f"{_tail(err_path.read_text(errors='replace'))}"
                ) from None
        return Run(
            number,
            target_proc.returncode,
            tap_proc.returncode,
            out_path.read_text(errors="replace"),
            err_path.read_text(errors="replace"),
            tap_err_path.read_text(errors="replace"),
            bool(kill and kill.fired.is_set()),
            folder,
        )

    def run_target(
        self,
        msgs: Iterable[dict[str, Any] | str],
        *,
        target: dict[str, Any] | None = None,
        timeout: float = 120,
        save_state: bool = True,
    ) -> Run:
        """``target-contacts`` alone on the given Singer messages (strings are sent verbatim)."""
        number, folder = self._folder()
        target_config = folder / "target-config.json"
        target_config.write_text(json.dumps(self.target_config(mapped=False, **(target or {}))))
        stdin = "".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in msgs)
        proc = subprocess.run(
            [str(BIN / "target-contacts"), "--config", str(target_config)],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=folder,
            timeout=timeout,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        run = Run(number, proc.returncode, None, proc.stdout, proc.stderr, "", False, folder)
        return self._finish(run, (target_config,), save_state=save_state)

    def start_target(
        self, msgs: Iterable[dict[str, Any]], *, target: dict[str, Any], name: str
    ) -> tuple[subprocess.Popen[str], Path]:
        """Start ``target-contacts`` without waiting (for runs that must overlap)."""
        folder = self.workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "target-config.json"
        config.write_text(json.dumps(self.target_config(mapped=False, **target)))
        (folder / "input.jsonl").write_text("".join(json.dumps(m) + "\n" for m in msgs))
        proc = subprocess.Popen(
            [str(BIN / "target-contacts"), "--config", str(config)],
            stdin=(folder / "input.jsonl").open("rb"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=folder,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return proc, folder

    def _finish(self, run: Run, configs: tuple[Path, ...], *, save_state: bool) -> Run:
        self.runs.append(run)
        if run.killed:
            self.end_dead_leases()
        for label, text in (
            ("stdout", run.stdout),
            ("stderr", run.stderr),
            ("tap stderr", run.tap_stderr),
        ):
            self.evidence.text(f"run {run.number} {label}", text)
        for path in run.folder.iterdir():
            if (
                path.suffix in (".jsonl", ".json")
                and path not in configs
                and path.name != "input.jsonl"
            ):
                self.evidence.file(f"run {run.number} file", path)
        states = run.states
        if save_state and states:
            self.state = states[-1]
            self.evidence.text(f"run {run.number} saved state", self.state)
        return run

    def admin(
        self,
        *args: str,
        target: dict[str, Any] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``contacts-admin ARGS --config <the target's settings>``; output goes to the evidence."""
        folder = self.workdir / "admin"
        folder.mkdir(exist_ok=True)
        config = folder / "config.json"
        config.write_text(json.dumps(self.target_config(mapped=False, **(target or {}))))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TARGET_CONTACTS_")}
        result = subprocess.run(
            [str(BIN / "contacts-admin"), *args, "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=folder,
            env=env,
            timeout=300,
        )
        self.evidence.text(f"contacts-admin {' '.join(args)} stdout", result.stdout)
        self.evidence.text(f"contacts-admin {' '.join(args)} stderr", result.stderr)
        return result

    def run_until_complete(self, *, max_runs: int = 4, **kwargs: Any) -> list[Run]:
        """Rerun (with the saved state) until a run finishes cleanly; returns the runs made."""
        made = []
        for _ in range(max_runs):
            run = self.run(**kwargs)
            made.append(run)
            if run.ok:
                return made
        raise AssertionError(f"no clean run in {max_runs} tries:\n{made[-1].describe()}")

    # --- sandboxes --------------------------------------------------------------------------
    def crm(self) -> dict[str, Any]:
        return requests.get(f"{self.contacts.url}/_sandbox/state", timeout=30).json()

    def contacts_log(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.contacts.url}/_sandbox/requests", timeout=30).json()

    def moco_log(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.moco.url}/_sandbox/requests", timeout=30).json()

    def writes(self) -> list[dict[str, Any]]:
        return [e for e in self.contacts_log() if is_write(e["method"], e["path"])]

    def clear_logs(self) -> None:
        for sandbox in (self.moco, self.contacts):
            requests.delete(f"{sandbox.url}/_sandbox/requests", timeout=30)

    def contacts_faults(self, *faults: dict[str, Any]) -> None:
        _post(self.contacts, "/_sandbox/faults", {"faults": list(faults)})

    def moco_faults(self, *faults: dict[str, Any]) -> None:
        _post(self.moco, "/_sandbox/faults", {"faults": list(faults)})

    def configure_contacts(self, **settings: Any) -> None:
        _post(self.contacts, "/_sandbox/config", settings)

    def configure_moco(self, **settings: Any) -> None:
        _post(self.moco, "/_sandbox/config", settings)

    def moco_api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(
            method,
            f"{self.moco.url}/api/v1{path}",
            timeout=30,
            headers={"Authorization": f"Token token={MOCO_KEY}"},
            **kwargs,
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def moco_state(self) -> dict[str, Any]:
        return requests.get(f"{self.moco.url}/_sandbox/state", timeout=30).json()

    # --- the ledger ---------------------------------------------------------------------------
    def ledger_rows(self, table: str) -> list[dict[str, Any]]:
        if not self.ledger_path.exists():
            return []
        with sqlite3.connect(self.ledger_path) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(f"SELECT * FROM {table}")]  # noqa: S608

    def forward_links(self) -> list[dict[str, Any]]:
        """target-contacts' pairs as (stream, source_id, target_id, state) rows."""
        kinds = {"person": "contacts", "todo": "tasks", "comment": "notes"}
        return [
            {
                "stream": kinds[r["moco_type"]],
                "source_id": r["moco_id"],
                "target_id": r["crm_id"],
                "state": r["fwd_state"],
            }
            for r in self.ledger_rows("links")
            if r["fwd_state"] is not None
        ]

    def end_dead_leases(self) -> list[str]:
        """End the run locks whose holder process is gone (a SIGKILLed target), as their lease
        would 60 s later: a scheduler's next run comes later than that, a test need not wait.
        Returns the holders."""
        ended = []
        try:
            rows = self.ledger_rows("run_locks")
        except sqlite3.OperationalError:  # killed before the ledger had its tables
            return ended
        for row in rows:
            match = re.search(r"\(pid (\d+) ", row["holder"] or "")
            if row["token"] is None or match is None or _alive(int(match.group(1))):
                continue
            with sqlite3.connect(self.ledger_path) as conn:
                conn.execute(
                    "UPDATE run_locks SET expires_at = 0 WHERE location_id = ? AND lane = ? "
                    "AND token = ?",
                    (row["location_id"], row["lane"], row["token"]),
                )
            ended.append(row["holder"])
        return ended

    def rejects(self) -> set[tuple[str, str, str | None]]:
        return {(r["stream"], r["source_id"], r["field"]) for r in self.ledger_rows("rejects")}

    def ledger_problems(self, crm: dict[str, Any]) -> list[str]:
        """Ledger rows that contradict the CRM: left 'creating', pointing nowhere, or shared."""
        problems = []
        existing = {kind: {x["id"] for x in crm[kind]} for kind in ("contacts", "tasks", "notes")}
        seen: dict[tuple[str, str], str] = {}
        for row in self.forward_links():
            where = f"{row['stream']} {row['source_id']}"
            if row["state"] != "written":
                problems.append(f"{where} is left in state {row['state']}")
                continue
            if row["target_id"] not in existing[row["stream"]]:
                problems.append(f"{where} points at {row['target_id']}, which is not in the CRM")
            other = seen.setdefault((row["stream"], row["target_id"]), row["source_id"])
            if other != row["source_id"]:
                problems.append(f"{where} and {other} share CRM id {row['target_id']}")
        return problems

    def collect(self) -> None:
        """Hand the sandboxes' request logs and the ledger's rejects to the evidence."""
        self.evidence.text("contacts sandbox request log", self.contacts_log())
        self.evidence.text("moco sandbox request log", self.moco_log())
        self.evidence.text("ledger rejects", self.ledger_rows("rejects"))
        registry = getattr(self.contacts.app, "registry", None)
        if registry is not None:
            self.evidence.secret(*registry.issued.keys())


def _process_group(pgid: int) -> dict[str, Any]:
    """Popen arguments that put the child into process group ``pgid`` (0: a new one)."""
    if sys.version_info >= (3, 11):
        return {"process_group": pgid}
    return {"preexec_fn": lambda: os.setpgid(0, pgid)}  # pragma: no cover


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not reaped yet, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _merged(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = {**config, **overrides}
    return {k: v for k, v in out.items() if v is not None}


def _post(sandbox: RunningSandbox, path: str, body: dict[str, Any]) -> None:
    response = requests.post(f"{sandbox.url}{path}", json=body, timeout=30)
    response.raise_for_status()


# --- results for docs/reliability.md --------------------------------------------------------------
def times(count: int, what: int | str) -> str:
    """How the reliability table counts answers of one kind: ``times(25, 429)`` reads 25 times 429
    (with the multiplication sign)."""
    return f"{count} \N{MULTIPLICATION SIGN} {what}"


@dataclass
class Row:
    """One line of the reliability table."""

    case: str
    area: str
    fault: str
    injection: str
    outcome: str
    lost: int
    duplicates: int
    slow: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


# --- OAuth ---------------------------------------------------------------------------------------
def oauth_target(**extra: Any) -> dict[str, Any]:
    """Target settings for OAuth instead of the private integration token."""
    return {
        "private_integration_token": None,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **extra,
    }


def login(world: World, *, encryption_key: str | None = None) -> Any:
    """What `contacts-admin login` does, minus the browser: consent, code exchange, store."""
    from urllib.parse import parse_qs, urlencode, urlsplit

    from contacts_api.auth import exchange_code
    from sync_ledger.db import make_engine
    from sync_ledger.tokens import TokenStore

    redirect_uri = "http://127.0.0.1:9/callback"
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": "contacts.readonly contacts.write",
            "state": "reliability",
        }
    )
    answer = requests.get(
        f"{world.contacts.url}/v2/oauth/chooselocation?{query}", allow_redirects=False, timeout=30
    )
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    world.evidence.secret(code)
    engine = make_engine(f"sqlite:///{world.ledger_path}")
    store = TokenStore(engine, encryption_key=encryption_key)
    token = exchange_code(
        store,
        base_url=world.contacts.url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        code=code,
        redirect_uri=redirect_uri,
        location_id=LOCATION,
    )
    engine.dispose()
    return token


def expire_stored_token(world: World, *, encryption_key: str | None = None) -> None:
    """Make the stored access token look expired, so the next run must refresh first."""
    from dataclasses import replace
    from datetime import datetime, timedelta, timezone

    from sync_ledger.db import make_engine
    from sync_ledger.tokens import TokenStore

    engine = make_engine(f"sqlite:///{world.ledger_path}")
    store = TokenStore(engine, encryption_key=encryption_key)
    token = store.load(LOCATION)
    assert token is not None
    now = datetime.now(timezone.utc)
    store.save(
        replace(token, expires_at=now - timedelta(seconds=1), updated_at=now - timedelta(hours=1))
    )
    engine.dispose()


def token_grants(world: World) -> list[dict[str, Any]]:
    """``POST /oauth/token`` refresh grants in the Contacts sandbox's log."""
    return [
        e
        for e in world.contacts_log()
        if e["path"] == "/oauth/token"
        and (e.get("body") or {}).get("grant_type") == "refresh_token"
    ]


# --- hand-made Singer input for the target alone -------------------------------------------------
def singer(
    records: Iterable[tuple[str, dict[str, Any]]],
    *,
    state: dict[str, Any] | None = None,
    streams: tuple[str, ...] = ("contacts", "tasks", "notes"),
) -> list[dict[str, Any]]:
    """SCHEMA messages, the RECORDs as given, then an optional STATE (as a tap would send)."""
    return messages(list(records), state=state, order=streams)


# --- what the mapping in meltano.yml promises for a MOCO data set ---------------------------------
def expected_crm(moco: dict[str, Any]) -> dict[str, Any]:
    """The CRM a correct sync of ``moco`` (``GET /_sandbox/state`` of MOCO) must produce, computed
    independently of the target from the mapping documented in meltano.yml. Shaped like the
    Contacts sandbox's state so :func:`compare` takes it."""
    import phonenumbers

    from moco_api.html import html_to_text
    from target_contacts.payloads import normalize_datetime

    region = meltano_mapping()["default_phone_region"]
    contacts, tasks, notes = [], [], []
    synced: set[str] = set()
    for p in moco["contacts"]:
        email = (p["work_email"] or p["home_email"] or "").strip().lower() or None
        phone = (p["work_phone"] or p["mobile_phone"] or "").strip() or None
        if not email and not phone:
            continue  # the mapping's filter: neither e-mail nor phone
        if phone:
            phone = phonenumbers.format_number(
                phonenumbers.parse(phone, region), phonenumbers.PhoneNumberFormat.E164
            )
        contact = {
            "id": f"moco-{p['id']}",
            "email": email,
            "phone": phone,
            "firstName": p["firstname"].strip() or None,
            "lastName": p["lastname"].strip() or None,
            "companyName": p["company"]["name"] if p["company"] else None,
            "tags": sorted({t.strip().lower() for t in [*p["tags"], "moco"]}),
        }
        contacts.append({k: v for k, v in contact.items() if v is not None})
        synced.add(str(p["id"]))
    for t in moco["todos"]:
        if t["todoable_type"] != "Contact" or str(t["todoable_id"]) not in synced:
            continue
        tasks.append(
            {
                "id": f"moco-task-{t['id']}",
                "contactId": f"moco-{t['todoable_id']}",
                "title": t["title"],
                "dueDate": normalize_datetime(t["due_date"] or t["created_at"], "dueDate"),
                "completed": bool(t["completed"]),
            }
        )
    for c in moco["comments"]:
        if c["commentable_type"] != "Contact" or str(c["commentable_id"]) not in synced:
            continue
        body = (html_to_text(c["text"]) or "").strip()
        if body:
            notes.append(
                {
                    "id": f"moco-note-{c['id']}",
                    "contactId": f"moco-{c['commentable_id']}",
                    "body": body,
                }
            )
    return {"contacts": contacts, "tasks": tasks, "notes": notes}
