"""Run one sync per (MOCO account, HighLevel location) pair, each under its own state id.

``scripts/run-pairs pairs.yml`` runs ``meltano run --state-id-suffix PAIR <run>`` once per pair of
the pairs file, with the pair's settings as the plugins' environment variables, up to
``--parallel`` pairs at a time. A pair that fails does not stop the others; at the end a table
says, per pair, its state id, the result, the time and the target's counts (or the error), and
the exit status is 1 when any pair failed.

The pairs file (YAML)::

    # What each pair runs: plugins or a job, as `meltano run` takes them (default below).
    run: tap-moco target-contacts
    # Settings every pair shares. ${NAME} is read from this script's environment (secrets).
    env:
      TARGET_CONTACTS_LEDGER_URL: ${CONTACTS_LEDGER_URL}
    pairs:
      acme:                                # the pair's name: its state id suffix
        TAP_MOCO_SUBDOMAIN: acme
        TAP_MOCO_API_KEY: ${ACME_MOCO_API_KEY}
        TARGET_CONTACTS_LOCATION_ID: ve9EPM428h8vShlRW1KT
        TARGET_CONTACTS_PRIVATE_INTEGRATION_TOKEN: ${ACME_HL_TOKEN}

Every pair's links live in the shared ledger under its location id, so two pairs may not name
the same location (their MOCO ids would collide): the file is refused before anything runs.
Each pair's Meltano gets a system folder of its own (``<log dir>/<pair>/meltano-system``) whose
``run/`` folder is the pair's and whose other entries link to the project's ``.meltano``: Meltano
writes a plugin's generated files (the tap's catalog, the state it hands the tap) to
``.meltano/run/<plugin>/``, one folder per plugin name, which pairs running at once would share.
Only the Python that runs Meltano is needed (PyYAML comes with Meltano).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_RUN = "tap-moco target-contacts"
#: The settings that name a pair's location, per loader (two pairs may not share one).
LOCATION_SETTINGS = ("TARGET_CONTACTS_LOCATION_ID", "TARGET_MOCO_LOCATION_ID")
#: Where each loader writes its run summary (a setting both targets have).
SUMMARY_SETTINGS = {
    "target-contacts": "TARGET_CONTACTS_SUMMARY_PATH",
    "target-moco": "TARGET_MOCO_SUMMARY_PATH",
}
COUNTS = ("created", "updated", "unchanged", "rejected")
#: The pair's own Meltano system folder, in the pair's log folder (see :func:`pair_system_dir`).
SYSTEM_DIR = "meltano-system"
#: The entry of a Meltano system folder that holds the plugins' generated files, per plugin name.
RUN_DIR = "run"
_TEXT_COLUMNS = 3
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# An exception line of a plugin or of Meltano: "contacts_api.errors.AuthError: POST ... 401".
_EXCEPTION = re.compile(r"\b([A-Za-z_][\w.]*(?:Error|Exception|Busy|Lost)): (.+)")


class PairsFileError(ValueError):
    """The pairs file cannot be used as it is; the message names the pair and the key."""


@dataclass
class Pair:
    """One (MOCO account, location) pair: its name (the state id suffix) and its environment."""

    name: str
    env: dict[str, str]


@dataclass
class PairResult:
    """How one pair's run went."""

    pair: str
    state_ids: list[str]
    returncode: int
    seconds: float
    log: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the pair's run succeeded."""
        return self.returncode == 0


# --- the pairs file ----------------------------------------------------------------------
def _value(value: Any, where: str, environ: dict[str, str]) -> str:  # noqa: ANN401  YAML
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value)
    elif value is None:
        raise PairsFileError(f"{where} has no value")
    else:
        text = str(value)

    def expand(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise PairsFileError(f"{where} names ${{{name}}}, which is not set in the environment")
        return environ[name]

    return _REFERENCE.sub(expand, text)


def _settings(block: Any, where: str, environ: dict[str, str]) -> dict[str, str]:  # noqa: ANN401
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise PairsFileError(f"{where} must map environment variable names to values")
    out = {}
    for key, value in block.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise PairsFileError(
                f"{where}: {key!r} is not an environment variable name such as "
                "TARGET_CONTACTS_LOCATION_ID"
            )
        out[key] = _value(value, f"{where}.{key}", environ)
    return out


def load_pairs(path: Path, environ: dict[str, str]) -> tuple[list[str], list[Pair]]:
    """The ``run`` tokens and the pairs of a pairs file; :class:`PairsFileError` if unusable."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PairsFileError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), dict) or not data["pairs"]:
        raise PairsFileError(f"{path} has no `pairs:` mapping of pair names to settings")
    run = str(data.get("run") or DEFAULT_RUN).split()
    shared = _settings(data.get("env"), "env", environ)
    pairs = []
    for name, block in data["pairs"].items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise PairsFileError(
                f"pair name {name!r} must be letters, digits, '-' or '_' (it becomes the state id "
                "suffix)"
            )
        pairs.append(Pair(name, {**shared, **_settings(block, f"pairs.{name}", environ)}))
    for setting in LOCATION_SETTINGS:
        owners: dict[str, str] = {}
        for pair in pairs:
            location = pair.env.get(setting)
            if location is None:
                continue
            if location in owners:
                raise PairsFileError(
                    f"pairs {owners[location]} and {pair.name} both set {setting}={location}: "
                    "one location syncs with one MOCO account (the ledger keeps a location's "
                    "links by MOCO id), so give each pair its own location"
                )
            owners[location] = pair.name
    return run, pairs


# --- state ids -------------------------------------------------------------------------------
def state_ids(
    run: list[str], project: dict[str, Any], environment: str | None, suffix: str
) -> list[str]:
    """The state ids ``meltano run --state-id-suffix SUFFIX RUN`` uses, one per tap and target."""
    jobs = {j["name"]: j.get("tasks", []) for j in project.get("jobs") or []}
    plugins = project.get("plugins") or {}
    extractors = {p["name"] for p in plugins.get("extractors") or []}
    loaders = {p["name"] for p in plugins.get("loaders") or []}
    blocks: list[str] = []
    for token in run:
        tasks = jobs.get(token)
        if tasks is None:
            blocks.append(token)
            continue
        for task in tasks if isinstance(tasks, list) else [tasks]:
            blocks.extend(task if isinstance(task, list) else str(task).split())
    out, tap = [], None
    for block in blocks:
        if block in extractors:
            tap = block
        elif block in loaders and tap is not None:
            out.append(f"{environment + ':' if environment else ''}{tap}-to-{block}:{suffix}")
            tap = None
    return out


def _environment(project: dict[str, Any], env: dict[str, str], option: str | None) -> str | None:
    return option or env.get("MELTANO_ENVIRONMENT") or project.get("default_environment")


# --- the pair's own Meltano system folder ---------------------------------------------------
def project_system_dir(root: Path, environ: dict[str, str]) -> Path:
    """The project's Meltano system folder: ``MELTANO_SYS_DIR_ROOT``, else ``<root>/.meltano``."""
    return (root / environ.get("MELTANO_SYS_DIR_ROOT", ".meltano")).resolve()


def pair_system_dir(project_dir: Path, folder: Path) -> Path:
    """A Meltano system folder for one pair: its own ``run/``, every other entry the project's.

    Meltano writes each plugin's generated files (the tap's catalog, the state file it hands the
    tap, logging set-ups) to ``<system folder>/run/<plugin name>/``: one folder per plugin name,
    not per run. Pairs run the same plugins at once with different settings, so without this one
    pair's tap could read another pair's catalog or state. Everything else (the plugins'
    virtualenvs, the SQLite system database and its state) stays the project's, through links;
    SQLite follows the link, so its journal and locks are the project database's.
    """
    own = folder / SYSTEM_DIR
    (own / RUN_DIR).mkdir(parents=True, exist_ok=True)
    for entry in sorted(project_dir.iterdir()):
        # The default log folder is .meltano/run-pairs: never link a folder into itself.
        if entry.name == RUN_DIR or own.is_relative_to(entry):
            continue
        link = own / entry.name
        if link.is_symlink():
            if link.readlink() == entry:
                continue
            link.unlink(missing_ok=True)
        elif link.exists():
            raise FileExistsError(
                f"{link} is not a link to {entry}: the pair would not use the project's "
                f"{entry.name}; move it away and run again"
            )
        try:
            link.symlink_to(entry, target_is_directory=entry.is_dir())
        except FileExistsError:
            # Another run of the same pair (an overlapping schedule) made it a moment ago.
            if not (link.is_symlink() and link.readlink() == entry):
                raise
    return own


# --- running ---------------------------------------------------------------------------------
def _error_line(log: str) -> str | None:
    """What a failed run's log says went wrong: its last exception, else Meltano's last error."""
    lines = log.splitlines()
    for line in reversed(lines):
        found = _EXCEPTION.search(line)
        if found:
            return f"{found.group(1).rsplit('.', 1)[-1]}: {found.group(2).strip()}"[:400]
    for line in reversed(lines):
        if "[error" in line and "Block run completed" not in line:
            return re.sub(r"\s+", " ", line.split("]", 1)[-1]).strip()[:400]
    return None


def _counts(summary_path: Path) -> dict[str, int] | None:
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    totals = dict.fromkeys(COUNTS, 0)
    for stream in summary.get("streams", {}).values():
        for key in COUNTS:
            totals[key] += int(stream.get(key, 0))
    return totals


@dataclass
class Runner:
    """Runs the pairs' ``meltano run`` commands and collects their results."""

    meltano: list[str]
    run: list[str]
    project_root: Path
    log_dir: Path
    environment: str | None
    extra_args: list[str]
    project: dict[str, Any]
    system_dir: Path
    _running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def command(self, pair: Pair) -> list[str]:
        """The ``meltano run`` command line of ``pair``."""
        env_option = ["--environment", self.environment] if self.environment else []
        return [
            *self.meltano,
            *env_option,
            "run",
            "--state-id-suffix",
            pair.name,
            *self.extra_args,
            *self.run,
        ]

    def migrate_system_database(self) -> bool:
        """``meltano upgrade database`` once, before any pair starts.

        Meltano migrates its system database at the start of a command, and two commands that
        find a new database at the same moment both try (one fails: "table job already exists").
        It also makes the default SQLite database exist before the pairs' system folders link
        to it (a pair would otherwise start a database of its own, and its state with it).
        """
        done = subprocess.run(  # noqa: S603  meltano, fixed arguments
            [*self.meltano, "upgrade", "database"],
            cwd=self.project_root,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.stderr.write(
                "run-pairs: `meltano upgrade database` failed, so no pair was started:\n"
                + (done.stdout + done.stderr)[-3000:]
                + "\n"
            )
        return done.returncode == 0

    def run_pair(self, pair: Pair) -> PairResult:
        """Run one pair to its end; never raises for the pair's own failure."""
        folder = self.log_dir / pair.name
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / "run.log"
        try:
            system_dir = pair_system_dir(self.system_dir, folder)
        except OSError as exc:
            return PairResult(
                pair.name, [], 2, 0.0, str(log_path), error=f"no system folder of its own: {exc}"
            )
        summaries = {name: folder / f"{name}-summary.json" for name in SUMMARY_SETTINGS}
        for path in summaries.values():
            path.unlink(missing_ok=True)
        env = {
            **os.environ,
            **pair.env,
            **{SUMMARY_SETTINGS[name]: str(path) for name, path in summaries.items()},
            "MELTANO_SYS_DIR_ROOT": str(system_dir),
        }
        environment = _environment(self.project, env, self.environment)
        started = time.monotonic()
        with log_path.open("wb") as log:
            try:
                proc = subprocess.Popen(  # noqa: S603  meltano with the pairs file's arguments
                    self.command(pair),
                    cwd=self.project_root,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C here stops every pair's run (below)
                )
            except OSError as exc:
                return PairResult(
                    pair.name, [], 127, 0.0, str(log_path), error=f"cannot start meltano: {exc}"
                )
            with self._lock:
                self._running[pair.name] = proc
            try:
                code = proc.wait()
            finally:
                with self._lock:
                    self._running.pop(pair.name, None)
        result = PairResult(
            pair.name,
            state_ids(self.run, self.project, environment, pair.name),
            code,
            round(time.monotonic() - started, 1),
            str(log_path),
        )
        for name, path in summaries.items():
            counts = _counts(path)
            if counts is not None:
                result.counts[name] = counts
        if code != 0:
            result.error = _error_line(log_path.read_text(encoding="utf-8", errors="replace"))
        return result

    def stop_all(self) -> None:
        """Terminate every pair's run still going (Ctrl-C)."""
        with self._lock:
            running = list(self._running.values())
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)


def table(results: list[PairResult]) -> str:
    """The per-pair summary for people."""
    rows: list[tuple[str, ...]] = [
        ("pair", "state id", "result", "seconds", "created", "updated", "unchanged", "rejected")
    ]
    for r in results:
        totals = dict.fromkeys(COUNTS, 0)
        for counts in r.counts.values():
            for key in COUNTS:
                totals[key] += counts[key]
        numbers = [str(totals[k]) for k in COUNTS] if r.counts else ["-"] * len(COUNTS)
        rows.append(
            (
                r.pair,
                ", ".join(r.state_ids) or "-",
                "ok" if r.ok else f"FAILED ({r.returncode})",
                f"{r.seconds:.1f}",
                *numbers,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    # Names and results to the left, numbers to the right.
    lines = [
        "  ".join(
            cell.ljust(w) if i < _TEXT_COLUMNS else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines += [f"{r.pair}: {r.error or 'failed'} (log: {r.log})" for r in results if not r.ok]
    ok = sum(r.ok for r in results)
    lines.append(f"{ok} of {len(results)} pairs ok")
    return "\n".join(lines)


def _only(pairs: list[Pair], only: str | None) -> list[Pair]:
    """The pairs ``--only`` names (all without it)."""
    if not only:
        return pairs
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    unknown = sorted(set(wanted) - {p.name for p in pairs})
    if unknown:
        raise PairsFileError(f"--only names pairs the file does not have: {unknown}")
    return [p for p in pairs if p.name in wanted]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of ``scripts/run-pairs``."""
    p = argparse.ArgumentParser(
        prog="run-pairs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pairs_file", type=Path, help="the pairs file (YAML, see above)")
    p.add_argument("--only", help="run only these pairs (comma-separated names)")
    p.add_argument(
        "--parallel", type=int, default=4, help="pairs running at once (default 4; 1: in turn)"
    )
    p.add_argument(
        "--environment",
        help="Meltano environment (default MELTANO_ENVIRONMENT, else meltano.yml's)",
    )
    p.add_argument("--project-root", type=Path, default=Path(), help="the Meltano project (.)")
    p.add_argument(
        "--log-dir",
        type=Path,
        help="one folder per pair with its log and summaries (default .meltano/run-pairs)",
    )
    p.add_argument("--summary-json", type=Path, help="also write the results as JSON here")
    p.add_argument("--meltano", default="meltano", help="the meltano command (default: meltano)")
    p.add_argument(
        "meltano_args",
        nargs="*",
        help="after --: more `meltano run` options for every pair, e.g. -- --full-refresh",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every pair; 0 when all succeeded, 1 when any failed, 2 for an unusable pairs file."""
    args = parse_args(argv)
    try:
        run, pairs = load_pairs(args.pairs_file, dict(os.environ))
        pairs = _only(pairs, args.only)
    except PairsFileError as exc:
        sys.stderr.write(f"run-pairs: {exc}\n")
        return 2
    root = args.project_root.resolve()
    project = yaml.safe_load((root / "meltano.yml").read_text(encoding="utf-8")) or {}
    meltano = shutil.which(args.meltano) or args.meltano
    runner = Runner(
        meltano=[meltano],
        run=run,
        project_root=root,
        log_dir=(args.log_dir or root / ".meltano" / "run-pairs").resolve(),
        environment=args.environment,
        extra_args=list(args.meltano_args),
        project=project,
        system_dir=project_system_dir(root, dict(os.environ)),
    )
    parallel = max(1, min(args.parallel, len(pairs)))
    sys.stdout.write(f"run-pairs: {len(pairs)} pair(s), {parallel} at a time\n")
    sys.stdout.flush()
    if not runner.migrate_system_database():
        return 2
    results: list[PairResult] = []
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(runner.run_pair, pair) for pair in pairs]
        try:
            for future in futures:
                result = future.result()
                results.append(result)
                word = "ok" if result.ok else "FAILED"
                sys.stdout.write(f"run-pairs: {result.pair} {word} in {result.seconds:.1f} s\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            runner.stop_all()
            raise
    sys.stdout.write(table(results) + "\n")
    if args.summary_json:
        args.summary_json.write_text(
            json.dumps([{**asdict(r), "ok": r.ok} for r in results], indent=2) + "\n",
            encoding="utf-8",
        )
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
