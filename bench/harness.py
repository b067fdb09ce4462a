"""The bench's machinery, talking to nothing but 127.0.0.1.

Sandboxes as subprocesses, ``meltano run`` with peak-memory sampling, request-log analysis, the
1 % change, and the machine description.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib import metadata
from pathlib import Path
from typing import Any

import requests
from typing_extensions import Self

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MELTANO = BIN / "meltano"
STATE_ID = "sandbox:tap-moco-to-target-contacts"
MOCO_KEY_HEADER = {"Authorization": "Token token=sandbox-key"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Added to every meltano call's environment (e.g. MELTANO_ELT_BUFFER_SIZE from --elt-buffer-size).
EXTRA_MELTANO_ENV: dict[str, str] = {}


def say(text: str) -> None:
    """Write one line of the bench's output for the person running it (stdout, flushed)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    """Say ``message`` with the time of day, as the bench's progress lines do."""
    say(f"[bench {time.strftime('%H:%M:%S')}] {message}")


# --- machine ------------------------------------------------------------------------------------
def _proc_field(path: str, prefix: str) -> str | None:
    """The text after ``prefix`` on the first line of ``/proc`` file ``path`` starting with it."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    return next((line[len(prefix) :] for line in lines if line.startswith(prefix)), None)


def _git(*args: str) -> str:
    """``git ARGS`` in the checkout, its output; "" when git is missing or fails."""
    git = shutil.which("git")
    if git is None:
        return ""
    try:
        return subprocess.run(  # noqa: S603  git from PATH with the bench's own arguments
            [git, *args], cwd=ROOT, text=True, capture_output=True, timeout=10, check=False
        ).stdout.rstrip()  # rstrip: `git status --short` starts lines with a blank
    except (OSError, subprocess.SubprocessError):
        return ""


def _meltano_version() -> str:
    try:  # imported here: Meltano is large, and only its version is wanted
        import meltano  # noqa: PLC0415

        version = getattr(meltano, "__version__", "")
    except ImportError:
        version = ""
    if version:
        return version
    try:
        return metadata.version("meltano")
    except metadata.PackageNotFoundError:
        return "unknown"


def machine_info() -> dict[str, Any]:
    """What results.json records about the machine and the checkout the bench ran on."""
    cpu = _proc_field("/proc/cpuinfo", "model name")
    mem = _proc_field("/proc/meminfo", "MemTotal:")
    mem_kb = int(mem.split()[0]) if mem else None
    dirty = [
        line
        for line in _git("status", "--short", "--untracked-files=no").splitlines()
        if line.strip()
    ]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu.split(":", 1)[1].strip() if cpu else "unknown",
        "memory_gb": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "meltano": _meltano_version(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_head": _git("rev-parse", "--short", "HEAD"),
        "git_modified_files": dirty,
        "load_average_start": list(os.getloadavg()),
    }


# --- processes ------------------------------------------------------------------------------------
def proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds user+system) of a live process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2 :].split()
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (from /proc/stat), to see other jobs' load."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    values = [int(x) for x in fields]
    idle = sum(values[3:5])  # idle + iowait (when the kernel reports it)
    return (sum(values[:8]) - idle) / CLK_TCK


def proc_hwm_kb(pid: int) -> int | None:
    """The peak resident memory (VmHWM) of a live process in kB, None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cmdline(pid: int) -> str:
    """The command line of a live process, "" when it is gone."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode("utf-8", "replace")
        )
    except OSError:
        return ""


def descendants(root: int) -> list[int]:
    """The pids of all live descendants of ``root``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = proc_stat(int(entry.name))
        if st:
            children.setdefault(st[0], []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            out.append(child)
            todo.append(child)
    return out


def role_of(cmdline: str) -> str | None:
    """``tap`` or ``target`` for a process of the pipeline, by its command line; else None."""
    if "tap-moco" in cmdline or "tap-contacts" in cmdline:
        return "tap"
    if "target-contacts" in cmdline or "target-moco" in cmdline:
        return "target"
    return None


class ProcessSampler(threading.Thread):
    """Samples a process tree every ``interval`` s: peak RSS (VmHWM) and CPU time per role.

    Roles: ``meltano`` (the root), ``tap`` and ``target`` (found by command line). VmHWM is the
    kernel's own high-water mark, so only growth in the last interval before a process exits can
    be missed.
    """

    def __init__(self, root_pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True, name="bench-sampler")
        self.root_pid = root_pid
        self.interval = interval
        self.peak_kb: dict[str, int] = {}
        self.cpu_s: dict[str, float] = {}
        self._cpu_by_pid: dict[int, tuple[str, float]] = {}
        self._halt = threading.Event()

    def sample(self) -> None:
        """Take one sample of every process of the tree."""
        pids = [(self.root_pid, "meltano")]
        for pid in descendants(self.root_pid):
            role = role_of(proc_cmdline(pid))
            if role:
                pids.append((pid, role))
        for pid, role in pids:
            hwm = proc_hwm_kb(pid)
            if hwm is not None:
                self.peak_kb[role] = max(self.peak_kb.get(role, 0), hwm)
            st = proc_stat(pid)
            if st is not None:
                self._cpu_by_pid[pid] = (role, st[1])
        cpu: dict[str, float] = {}
        for role, seconds in self._cpu_by_pid.values():
            cpu[role] = cpu.get(role, 0.0) + seconds
        self.cpu_s = cpu

    def run(self) -> None:
        """Sample until :meth:`stop`."""
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._halt.set()
        self.join(5)


#: A Contacts sandbox limit far above what the pipeline reaches: "off" without ever answering
#: Remaining: 0.
NO_LIMIT = 10_000_000


# --- sandboxes -----------------------------------------------------------------------------------
class Sandbox:
    """``python -m sandbox API ...`` as a subprocess (its CPU is not ours)."""

    def __init__(
        self,
        api: str,
        *,
        latency: tuple[float, float] = (0.0, 0.0),
        rate_limit: int,
        rate_window: float,
        generate: int = 0,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.api = api
        cmd = [
            sys.executable,
            "-m",
            "sandbox",
            api,
            "--port",
            "0",
            "--latency",
            str(latency[0]),
            "--latency-max",
            str(latency[1]),
            "--rate-limit",
            str(rate_limit),
            "--rate-window",
            str(rate_window),
            *extra,
        ]
        if generate and api == "moco":
            cmd += ["--generate", str(generate)]
        self.settings = {
            "latency_s": list(latency),
            "rate_limit": rate_limit,
            "rate_window_s": rate_window,
            "generate": generate,
        }
        # The sandbox module of this checkout, run by this interpreter.
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"the {api} sandbox did not start: {line!r}")
        self.url = line.strip().rsplit(" ", 1)[-1]
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"unexpected sandbox URL {self.url}")
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only, never a proxy
        self.post("/_sandbox/config", {"log_bodies": False})
        self._log_offset = 0

    def post(self, path: str, body: object, timeout: float = 120) -> Any:  # noqa: ANN401  JSON
        """POST ``body`` as JSON to a sandbox route; returns the JSON answer (None if empty)."""
        r = self.http.post(self.url + path, json=body, timeout=timeout)
        r.raise_for_status()
        return r.json() if r.content else None

    def get(self, path: str, timeout: float = 300, **params: Any) -> Any:  # noqa: ANN401  JSON
        """GET a sandbox route; returns its JSON answer."""
        r = self.http.get(self.url + path, params=params, timeout=timeout)
        r.raise_for_status()
        return r.json()

    def configure(self, **settings: Any) -> None:
        """Change the sandbox's settings (``POST /_sandbox/config``)."""
        self.post("/_sandbox/config", settings)

    def clear_log(self) -> None:
        """Empty the sandbox's request log."""
        self.http.delete(self.url + "/_sandbox/requests", timeout=60).raise_for_status()

    def requests_log(self) -> list[dict[str, Any]]:
        """The sandbox's request log, oldest first."""
        return self.get("/_sandbox/requests")

    def state(self) -> dict[str, Any]:
        """Everything the sandbox stores."""
        return self.get("/_sandbox/state")

    def cpu_seconds(self) -> float:
        """CPU seconds the sandbox process has used so far."""
        st = proc_stat(self.proc.pid)
        return st[1] if st else 0.0

    def stop(self) -> None:
        """Terminate the sandbox process (kill it if it does not stop within 10 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- meltano -----------------------------------------------------------------------------------
def base_env(workdir: Path) -> dict[str, str]:
    """The environment of every meltano call: the sandbox environment, state in ``workdir``.

    Meltano's system database is in ``workdir`` too: nothing of the repository's
    .meltano/meltano.db is read or written.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_MOCO_", "TARGET_CONTACTS_", "MELTANO_"))
    }
    env.update(
        {
            "MELTANO_ENVIRONMENT": "sandbox",
            "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
            "MELTANO_STATE_BACKEND_URI": f"file://{workdir / 'state'}",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "NO_PROXY": "127.0.0.1,localhost",
            **EXTRA_MELTANO_ENV,
        }
    )
    return env


#: The plugins the bench runs through Meltano: (plugin type folder, name).
MELTANO_PLUGINS = (
    ("extractors", "tap-moco"),
    ("extractors", "tap-contacts"),
    ("loaders", "target-contacts"),
    ("loaders", "target-moco"),
    ("utilities", "sync-listener"),
)


def ensure_meltano_plugins(env: dict[str, str]) -> None:
    """``meltano install``, only when a plugin is missing, its modules compiled as in an image.

    Installing them again would replace them under any other run using this checkout. Meltano's
    uv leaves a plugin's modules uncompiled: the first start of each would compile them (about
    1.4 s of CPU per plugin here) inside the run measured, where the Dockerfile compiles them
    when the image is built (``UV_COMPILE_BYTECODE=1``); so does this.
    """
    if all(
        (ROOT / ".meltano" / kind / name / "venv" / "bin" / name).exists()
        for kind, name in MELTANO_PLUGINS
    ):
        return
    log("meltano install (plugins missing)")
    result = subprocess.run(  # noqa: S603  this venv's meltano
        [str(MELTANO), "install"],
        cwd=ROOT,
        env={**env, "UV_COMPILE_BYTECODE": "1"},
        text=True,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            "meltano install failed:\n" + result.stdout[-3000:] + result.stderr[-3000:]
        )


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class MeltanoResult:
    """What one ``meltano`` call took: time, memory and CPU per process, and its summary."""

    wall_s: float
    started: float
    ended: float
    summary: dict[str, Any] | None
    peak_rss_mb: dict[str, float]
    cpu_s: dict[str, float]
    returncode: int
    log_path: str
    records_out: int | None = None
    machine_busy_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def run_meltano(
    args: list[str],
    env: dict[str, str],
    log_path: Path,
    *,
    summary_path: Path | None = None,
    timeout: float = 3600,
    stdout_counter: bool = False,
) -> MeltanoResult:
    """Run ``meltano ARGS`` from the repository root, sampling the tap's and target's memory."""
    if summary_path is not None:
        summary_path.unlink(missing_ok=True)
        env = {**env, "TARGET_CONTACTS_SUMMARY_PATH": str(summary_path)}
    with log_path.open("w", encoding="utf-8") as err:
        started = time.time()
        t0 = time.monotonic()
        busy0 = machine_busy_seconds()
        # Its own process group, so that a failure or Ctrl-C stops meltano's tap and target too.
        proc = subprocess.Popen(  # noqa: S603  this venv's meltano with the bench's arguments
            [str(MELTANO), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE if stdout_counter else err,
            stderr=err,
            start_new_session=True,
        )
        sampler = ProcessSampler(proc.pid)
        sampler.start()
        records = None
        try:
            if stdout_counter and proc.stdout is not None:
                records = 0
                for line in proc.stdout:
                    if line.startswith((b'{"type":"RECORD"', b'{"type": "RECORD"')):
                        records += 1
            rc = proc.wait(timeout)
        except BaseException:
            _kill_group(proc)
            sampler.stop()
            raise
        wall = time.monotonic() - t0
        busy = machine_busy_seconds() - busy0
        ended = time.time()
        sampler.stop()
    summary = None
    if summary_path is not None and summary_path.exists():
        summary = json.loads(summary_path.read_text())
    if rc != 0:
        tail = Path(log_path).read_text(errors="replace")[-4000:]
        raise RuntimeError(f"meltano {' '.join(args)} failed (exit {rc}); log {log_path}:\n{tail}")
    return MeltanoResult(
        wall_s=round(wall, 3),
        started=started,
        ended=ended,
        summary=summary,
        peak_rss_mb={k: round(v / 1024, 1) for k, v in sampler.peak_kb.items()},
        cpu_s={k: round(v, 2) for k, v in sampler.cpu_s.items()},
        returncode=rc,
        log_path=str(log_path),
        records_out=records,
        machine_busy_s=round(busy, 2),
    )


# --- request logs ------------------------------------------------------------------------------
_FIXED_SEGMENTS = {
    "contacts",
    "tasks",
    "notes",
    "tags",
    "upsert",
    "search",
    "duplicate",
    "business",
    "completed",
    "appointments",
    "",
}


def route_of(path: str) -> str:
    """``/contacts/AbC.../tasks`` -> ``/contacts/{id}/tasks``."""
    parts = path.split("/")
    out = []
    for i, part in enumerate(parts):
        out.append(part if part in _FIXED_SEGMENTS or i == 0 else "{id}")
    return "/".join(out)


def is_write(entry: dict[str, Any]) -> bool:
    """Whether a Contacts request-log entry changed CRM data (not a read, search or OAuth)."""
    return entry["method"] in ("POST", "PUT", "DELETE") and not entry["path"].startswith(
        ("/contacts/search", "/oauth")
    )


def rate_stats(
    times: list[float], *, limit: int, window: float, start: float | None = None
) -> dict[str, Any]:
    """Rates of events (answer times, sorted) against a ``limit`` per ``window`` s ceiling.

    ``whole``: (n - 1) / (last - first). A sliding window lets ``limit`` requests go at once, so
    over a short run this can exceed the long-run ceiling (and a bursty client's figure depends
    on where the run happens to end).

    ``steady``: the window lag. Request k may not be counted within ``window`` s of request
    k - ``limit``, so ``lag_k = t_k - t_(k-limit) >= window`` for a client that never sees a 429,
    and a client that keeps the limit saturated has ``lag_k == window``. ``limit / mean(lag)`` is
    the long-run rate, independent of bursts and of where the run starts or ends;
    ``window / mean(lag)`` is the fraction of the ceiling. Needs more than ``limit`` events; a
    client that never sends ``limit`` requests in a window is not limited by the ceiling, and
    its whole-run rate is its rate.
    """
    ceiling = limit / window
    n = len(times)
    out: dict[str, Any] = {"events": n, "ceiling_per_s": round(ceiling, 3)}
    if n <= 1:  # no rate without two events
        return out
    first = times[0] if start is None else start
    span = times[-1] - first
    out["span_s"] = round(span, 3)
    if span > 0:
        rate = (n - 1) / span
        out["whole_per_s"] = round(rate, 3)
        out["whole_fraction"] = round(rate / ceiling, 4)
    if n > limit:
        lags = [times[k] - times[k - limit] for k in range(limit, n)]
        mean_lag = sum(lags) / len(lags)
        out["steady_events"] = len(lags)
        out["window_lag_mean_s"] = round(mean_lag, 4)
        out["window_lag_min_s"] = round(min(lags), 4)
        ordered = sorted(lags)
        out["window_lag_p90_s"] = round(ordered[int(0.9 * (len(ordered) - 1))], 4)
        out["window_lag_max_s"] = round(ordered[-1], 4)
        out["steady_per_s"] = round(limit / mean_lag, 3)
        out["steady_fraction"] = round(window / mean_lag, 4)
    return out


def contacts_log_stats(
    entries: list[dict[str, Any]], *, limit: int, window: float
) -> dict[str, Any]:
    """Calls, writes, 429s, routes and rates of a Contacts sandbox's request log."""
    api = [e for e in entries if not e["path"].startswith("/oauth")]
    api.sort(key=lambda e: e["time"])
    writes = [e for e in api if is_write(e)]
    by_route = Counter(f"{e['method']} {route_of(e['path'])}" for e in api)
    status = Counter(str(e["status"]) for e in api)
    contact_creates = [
        e["time"]
        for e in writes
        if e["status"] < HTTPStatus.MULTIPLE_CHOICES
        and e["path"] in ("/contacts/", "/contacts/upsert")
    ]
    out: dict[str, Any] = {
        "calls": len(api),
        "writes": len(writes),
        "reads": len(api) - len(writes),
        "status_429": status.get("429", 0),
        "by_route": dict(sorted(by_route.items())),
        "by_status": dict(sorted(status.items())),
    }
    if writes:
        times = [e["time"] for e in api]
        first_write = writes[0]["time"]
        out["write_phase_s"] = round(writes[-1]["time"] - first_write, 3)
        out["calls_rate"] = rate_stats(
            [t for t in times if t >= first_write], limit=limit, window=window
        )
        out["contacts_created"] = len(contact_creates)
        if out["write_phase_s"] > 0:
            out["contacts_per_s"] = round(len(contact_creates) / out["write_phase_s"], 3)
        if len(contact_creates) > 1:
            out["contacts_phase_rate"] = rate_stats(contact_creates, limit=limit, window=window)
        # Per-second histogram of calls (answer times), for the report's timeline.
        base = int(first_write)
        hist = Counter(int(t) - base for t in times if t >= first_write)
        out["calls_per_second_series"] = (
            [hist.get(i, 0) for i in range(max(hist) + 1)] if hist else []
        )
    return out


def moco_log_stats(entries: list[dict[str, Any]], *, limit: int, window: float) -> dict[str, Any]:
    """Requests, 429s, paths, rate and server time of a MOCO sandbox's request log."""
    api = sorted((e for e in entries if e["path"].startswith("/api/v1")), key=lambda e: e["time"])
    status = Counter(str(e["status"]) for e in api)
    times = [e["time"] for e in api]
    by_path = Counter(e["path"] for e in api)
    out: dict[str, Any] = {
        "requests": len(api),
        "status_429": status.get("429", 0),
        "by_path": dict(sorted(by_path.items())),
    }
    if len(times) > 1:
        out["rate"] = rate_stats(times, limit=limit, window=window)
        out["span_s"] = round(times[-1] - times[0], 3)
        durations = sorted(e["duration"] for e in api)
        out["server_time_per_request_ms"] = round(1000 * sum(durations) / len(durations), 1)
    return out


# --- the 1 % change ------------------------------------------------------------------------------
def synced_scope(moco_state: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """MOCO records the sync writes: contacts with an e-mail or phone, their to-dos, comments."""
    contacts = [
        c
        for c in moco_state["contacts"]
        if c.get("work_email")
        or c.get("home_email")
        or c.get("work_phone")
        or c.get("mobile_phone")
    ]
    ids = {c["id"] for c in contacts}
    todos = [
        t
        for t in moco_state["todos"]
        if t.get("todoable_type") == "Contact" and t.get("todoable_id") in ids
    ]
    comments = [
        c
        for c in moco_state["comments"]
        if c.get("commentable_type") == "Contact"
        and c.get("commentable_id") in ids
        and c.get("text")
    ]
    return {"contacts": contacts, "tasks": todos, "notes": comments}


def change_fraction(moco: Sandbox, fraction: float, *, seed: int = 7) -> dict[str, Any]:
    """Edit ``fraction`` of the synced MOCO records (mapped fields only).

    The edits are spread over contacts, to-dos and comments in proportion. MOCO's limit is lifted
    while editing (the sandbox does not count requests while its limit is 0), so the edits do
    not spend the tap's budget.
    """
    scope = synced_scope(moco.state())
    total = sum(len(v) for v in scope.values())
    wanted = max(1, round(total * fraction))
    rng = random.Random(seed)  # noqa: S311  a reproducible sample, not a secret
    counts = {k: round(wanted * len(v) / total) for k, v in scope.items()}
    counts["contacts"] += wanted - sum(counts.values())
    limit = moco.settings["rate_limit"]
    window = moco.settings["rate_window_s"]
    moco.configure(rate_limit=0)
    try:
        session = requests.Session()
        session.trust_env = False
        session.headers.update(MOCO_KEY_HEADER)
        for person in rng.sample(scope["contacts"], counts["contacts"]):
            r = session.put(
                f"{moco.url}/api/v1/contacts/people/{person['id']}",
                timeout=30,
                json={"firstname": (person.get("firstname") or "X") + " B."},
            )
            r.raise_for_status()
        for todo in rng.sample(scope["tasks"], counts["tasks"]):
            r = session.put(
                f"{moco.url}/_sandbox/todos/{todo['id']}",
                timeout=30,
                json={"title": (todo.get("title") or "To-do") + " (moved)"},
            )
            r.raise_for_status()
        for comment in rng.sample(scope["notes"], counts["notes"]):
            r = session.put(
                f"{moco.url}/api/v1/comments/{comment['id']}",
                timeout=30,
                json={"text": comment["text"] + "<p>Update: call back.</p>"},
            )
            r.raise_for_status()
    finally:
        moco.configure(rate_limit=limit, rate_window=window)
    return {
        "scope_records": total,
        "changed": counts,
        "changed_total": sum(counts.values()),
        "fraction": round(sum(counts.values()) / total, 4),
    }


def moco_totals(moco_state: dict[str, Any]) -> dict[str, int]:
    """Records the tap's streams fetch from MOCO on a full read (what the pages hold)."""
    return {
        "companies": len(moco_state["companies"]),
        "contacts": len(moco_state["contacts"]),
        "todos": len(moco_state["todos"]),
        "comments_on_contacts": sum(
            1 for c in moco_state["comments"] if c.get("commentable_type") == "Contact"
        ),
    }
