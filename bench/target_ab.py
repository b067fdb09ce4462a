"""target-contacts' CPU per record, A/B: this checkout in variants, and optionally another commit.

Every variant reads the same captured tap-moco output (one read of a generated MOCO sandbox) and
writes into its own empty Contacts sandbox with limits and latency off, one after another, so
they meet the same machine. The target runs alone (no Meltano), with this project's sandbox
configuration (``meltano config print`` of the ``sandbox`` environment: the stream maps and
settings a user gets) and a fresh SQLite ledger per variant::

    python -m bench.target_ab --contacts 2000 --streams contacts --ref 27599f1

Variants (comma-separated): ``current`` (as configured), ``no-budget`` (the in-process limiter
alone: the ledger's shared rate budget off), ``one-way`` (``two_way: false``),
``no-budget+one-way``; ``+breakdown`` on any of them also prints where the target's CPU went,
step by step (:mod:`bench.cpu_breakdown`); a variant named twice runs twice, each into an empty
ledger. ``--ref``
adds the target of another commit (a git worktree, run with this checkout's virtualenv, so its
dependencies must match): the variant ``ref`` places its runs among the others (e.g.
``current,ref,current,ref``, so both meet the same moments of the machine), else it runs once,
last. ``--other-python PATH`` adds the variant ``other-python``: this checkout's target run by
another interpreter with its own packages (a virtualenv made with another CPython build), placed
like ``ref``. ``--latency 0.1,0.2`` makes the sandbox answer each call after a random delay in that
range (seconds), as a real API does; ``--concurrency N`` sets ``max_concurrency``. Prints CPU
per record (user + system of the target process, start-up included: it is one process per run)
and records per second of wall time. CPU seconds of the
same work move with the machine's load (±30 % between two runs here), so compare variants of
one invocation, repeated, not numbers of different days.

``--instructions`` counts what the machine's hour cannot move: each run goes under valgrind's
callgrind, and the report gives the user-space instructions per record (a second run of each
variant on the tap's output without its records gives the start-up's, which is taken off). The
runs take ~40 times as long, so use ~1,000 contacts; without ``--concurrency`` they write with
``max_concurrency`` 1, since the writer threads' interleaving moves the count by a few per cent
(the kernel's work, such as system calls, is not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from bench import cpu_breakdown
from bench.harness import NO_LIMIT, ROOT, Sandbox, base_env, say

_RUN = "import sys; sys.path.insert(0, {root!r})\n{patch}from {module} import {cls}; {cls}.cli()\n"
_NO_BUDGET = "import contacts_api.ratelimit as r; r._shared_database = lambda engine: False\n"
_BREAKDOWN = "import bench.cpu_breakdown as b; b.install({path!r})\n"


def sandbox_config(workdir: Path) -> dict[str, Any]:
    """target-contacts' settings in the project's ``sandbox`` environment.

    Secrets come redacted: the variants set their own token and ledger.
    """
    env = base_env(workdir)
    result = subprocess.run(  # noqa: S603  the project's own meltano
        [
            str(Path(sys.executable).parent / "meltano"),
            "--environment",
            "sandbox",
            "config",
            "print",
            "target-contacts",
            "--format",
            "json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def capture(contacts: int, streams: str, out: Path) -> int:
    """tap-moco's output for a generated account of ``contacts`` people; returns its records."""
    with Sandbox("moco", rate_limit=0, rate_window=1, generate=contacts) as moco:
        config = out.with_suffix(".tap.json")
        config.write_text(
            json.dumps(
                {
                    "api_key": "sandbox-key",
                    "base_url": moco.url,
                    "start_date": "2000-01-01T00:00:00Z",
                }
            )
        )
        raw = subprocess.run(  # noqa: S603
            [str(Path(sys.executable).parent / "tap-moco"), "--config", str(config)],
            capture_output=True,
            check=True,
        ).stdout.decode()
    messages = [json.loads(line) for line in raw.splitlines() if line.strip()]
    kept = [m for m in messages if streams == "all" or m.get("stream") in (None, "contacts")]
    out.write_text("".join(json.dumps(m) + "\n" for m in kept))
    return sum(1 for m in kept if m.get("type") == "RECORD")


class RunOptions(NamedTuple):
    """How a variant runs: the sandbox's latency, the interpreter, under callgrind or not."""

    latency: tuple[float, float] = (0.0, 0.0)
    python: str = sys.executable
    instructions: bool = False


def run_variant(
    name: str,
    root: Path,
    base: dict[str, Any],
    tap_output: Path,
    workdir: Path,
    index: int,
    options: RunOptions | None = None,
) -> dict[str, Any]:
    """One target run on ``tap_output`` into an empty ledger: CPU seconds and wall time.

    With ``options.instructions``, under callgrind: the user-space instructions it ran, too.
    """
    latency, python, instructions = options or RunOptions()
    with Sandbox(
        "contacts",
        rate_limit=NO_LIMIT,
        rate_window=1,
        latency=latency,
        extra=("--daily-limit", str(10**9)),
    ) as crm:
        ledger = workdir / f"ledger-{index}.db"  # a variant named twice is run twice, afresh
        breakdown = workdir / f"breakdown-{index}.json"
        config = {
            **base,
            "base_url": crm.url,
            "private_integration_token": "sandbox-token",
            "ledger_url": f"sqlite:///{ledger}",
            "rate_limit_requests": 1000,
            "rate_limit_window_seconds": 1,
        }
        if "one-way" in name:
            config["two_way"] = False
        config_path = workdir / f"target-{index}.json"
        config_path.write_text(json.dumps(config))
        code = _RUN.format(
            root=str(root),
            patch=(_NO_BUDGET if "no-budget" in name else "")
            + (_BREAKDOWN.format(path=str(breakdown)) if "breakdown" in name else ""),
            module="target_contacts.target",
            cls="TargetContacts",
        )
        command = [python, "-c", code, "--config", str(config_path)]
        counts = workdir / f"callgrind-{index}"
        if instructions:
            counts.mkdir()
            out = f"--callgrind-out-file={counts}/%p"
            command = ["valgrind", "--tool=callgrind", "--dump-instr=no", out, *command]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        with tap_output.open() as stdin:
            subprocess.run(  # noqa: S603
                command,
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=(workdir / f"target-{index}.err").open("w"),
                check=True,
                cwd=workdir,
            )
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result: dict[str, Any] = {"variant": name, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2)}
    if breakdown.exists():
        result["breakdown"] = str(breakdown)
    if instructions:
        result["instructions"] = _callgrind_total(counts)
    return result


def _callgrind_total(folder: Path) -> int:
    """The instructions of every process callgrind followed (its ``summary:`` lines)."""
    total = 0
    for path in folder.iterdir():
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                total += int(line.split()[1])
    return total


def _without_records(tap_output: Path, out: Path) -> Path:
    """The tap's output without its RECORD messages: what a run costs before the first record."""
    with tap_output.open() as lines, out.open("w") as kept:
        kept.writelines(line for line in lines if '"type": "RECORD"' not in line)
    return out


def _compile(roots: tuple[Path, ...]) -> None:
    """Every tree's bytecode compiled first.

    Else a tree's first run compiles its modules (~0.4 G instructions), which would count
    against that variant's records.
    """
    for root in roots:
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "compileall", "-q", "-x", r"/\.(venv|git|meltano)/", str(root)],
            check=False,
            capture_output=True,
        )


def main(argv: list[str] | None = None) -> int:
    """Capture the tap's output once, then run every variant on it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--streams", choices=("contacts", "all"), default="contacts")
    parser.add_argument(
        "--variants", default="current,no-budget,one-way", help="comma-separated, see above"
    )
    parser.add_argument("--ref", help="also run the target of this git commit")
    parser.add_argument(
        "--other-python", help="also run this checkout's target with this interpreter"
    )
    parser.add_argument("--latency", default="0,0", help="LOW,HIGH seconds per sandbox answer")
    parser.add_argument("--concurrency", type=int, help="max_concurrency (default: the project's)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions under callgrind (see above): slow, use ~1,000 contacts",
    )
    args = parser.parse_args(argv)
    low, high = (float(x) for x in args.latency.split(","))
    with tempfile.TemporaryDirectory(prefix="target-ab-") as tmp:
        workdir = Path(tmp)
        base = sandbox_config(workdir)
        if args.concurrency or args.instructions:
            base["max_concurrency"] = args.concurrency or 1
        tap_output = workdir / "tap.jsonl"
        records = capture(args.contacts, args.streams, tap_output)
        names = [v for v in args.variants.split(",") if v]
        if args.ref and "ref" not in names:
            names.append("ref")
        if args.other_python and "other-python" not in names:
            names.append("other-python")
        tree = workdir / "ref"
        if args.ref:
            subprocess.run(  # noqa: S603
                ["git", "worktree", "add", "--detach", str(tree), args.ref],  # noqa: S607
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
        _compile((ROOT, tree) if args.ref else (ROOT,))
        runs = [(f"ref-{args.ref}", tree) if v == "ref" else (v, ROOT) for v in names]
        try:
            say(
                f"{records:,} records ({args.streams}) from {args.contacts:,} MOCO contacts, "
                f"latency {low}-{high} s, max_concurrency {base.get('max_concurrency')}"
            )
            for index, (name, root) in enumerate(runs):
                result = run_variant(
                    name,
                    root,
                    base,
                    tap_output,
                    workdir,
                    index,
                    RunOptions(
                        (low, high),
                        args.other_python if name == "other-python" else sys.executable,
                        args.instructions,
                    ),
                )
                say(
                    f"{name:>24}: {1000 * result['cpu_s'] / records:.2f} ms CPU per record, "
                    f"{records / result['wall_s']:.0f} records/s ({result['cpu_s']} s CPU, "
                    f"{result['wall_s']} s wall)"
                )
                if args.instructions:
                    empty = _without_records(tap_output, workdir / f"start-{index}.jsonl")
                    start = run_variant(
                        name,
                        root,
                        base,
                        empty,
                        workdir,
                        1000 + index,
                        RunOptions(instructions=True),
                    )["instructions"]
                    per_record = (result["instructions"] - start) / records
                    say(
                        f"{'':>24}  {per_record / 1e6:.3f} M instructions per record "
                        f"(start-up {start / 1e9:.2f} G of {result['instructions'] / 1e9:.2f} G)"
                    )
                if "breakdown" in result:
                    for line in cpu_breakdown.render(result["breakdown"], records):
                        say(line)
        finally:
            if args.ref:
                subprocess.run(  # noqa: S603
                    ["git", "worktree", "remove", "--force", str(workdir / "ref")],  # noqa: S607
                    cwd=ROOT,
                    check=False,
                    capture_output=True,
                )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
