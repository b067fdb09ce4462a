"""Write the measured reliability table into docs/reliability.md.

The reliability tests record one row per case (fault, how it is injected, outcome, records lost,
duplicates created) into a JSON file when the pytest session ends. This script renders those rows
between the ``<!-- BEGIN GENERATED -->`` and ``<!-- END GENERATED -->`` markers of
docs/reliability.md and leaves the hand-written text around them alone::

    scripts/test --all tests/reliability          # or the whole suite: scripts/test --all
    .venv/bin/python -m tests.reliability.report  # rewrites the table in docs/reliability.md

Options: ``--results PATH`` (default: ``$RELIABILITY_RESULTS``, else the pytest cache's
``.pytest_cache/d/reliability/results.json``), ``--out PATH`` (default docs/reliability.md),
``--check`` (exit 1 when the results lack the slow cases or show a loss or a duplicate).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"
AREAS = (
    "Contacts API",
    "Contacts API / OAuth",
    "OAuth",
    "MOCO",
    "MOCO writes",
    "Two-way",
    "Crash",
    "Bad input",
    "Secrets",
)
CRASH_KINDS = {
    "pipe": "SIGKILL of `tap-moco | target-contacts` during a full sync",
    "incremental": "SIGKILL of `tap-moco | target-contacts` during an incremental sync "
    "(renames, new tags, completions, an edited note, new records)",
    "meltano": "SIGKILL of `meltano run tap-moco target-contacts` during a full sync",
    "two-way": "SIGKILL of `tap-contacts | target-moco` during the first two-way cycle (people "
    "on both sides, CRM contacts, notes, tasks and appointments to MOCO)",
    "two-way-changed": "SIGKILL of `tap-contacts | target-moco` during a later two-way cycle "
    "(a rename, a new tag, an edited note, a completed task, a rescheduled appointment, a new "
    "contact with a note)",
    "meltano-two-way": "SIGKILL of `meltano run two-way-sync` during its first run",
}
CRASH_OUTCOMES = {
    "pipe": "every point: the rerun(s) completed (at most {reruns}); CRM equal to a clean run; "
    "a full re-sync afterwards wrote nothing",
    "incremental": "every point: the rerun(s) from the saved state completed (at most "
    "{reruns}); every change landed once; a full re-sync afterwards wrote nothing",
    "meltano": "every point: Meltano refused the job while the killed run still counted as "
    "running (stale after 5 min, or `--force`); the rerun completed, CRM equal to a "
    "clean run; the next run wrote nothing",
    "two-way": "every point: the reverse rerun(s) (at most {reruns}) and the forward run "
    "completed; MOCO and the CRM equal to clean cycles; the next cycle wrote nothing on either "
    "API",
    "two-way-changed": "every point: the reverse rerun(s) (at most {reruns}) and the forward "
    "run completed; every change landed once on both sides; the next cycle wrote nothing on "
    "either API",
    "meltano-two-way": "every point: `meltano run two-way-sync --force` completed, MOCO and the "
    "CRM equal to clean cycles; the job's next run wrote nothing on either API",
}
#: How a kill point's moment reads in the tables.
PHASES = {
    "before": "just before a write is applied",
    "after": "just after it was committed",
    "next": "after the answer was taken in (its ledger row committed or carried)",
}


def default_results() -> Path:
    if os.environ.get("RELIABILITY_RESULTS"):
        return Path(os.environ["RELIABILITY_RESULTS"])
    return ROOT / ".pytest_cache" / "d" / "reliability" / "results.json"


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def crash_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary row per crash kind (the points are listed in their own table)."""
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_kind[row["detail"]["kind"]].append(row)
    out = []
    for kind, points in sorted(by_kind.items(), key=lambda item: list(CRASH_KINDS).index(item[0])):
        phases: dict[str, int] = defaultdict(int)
        for p in points:
            phases[p["detail"]["phase"]] += 1
        when = ", ".join(f"{n} {PHASES[phase]}" for phase, n in phases.items())
        reruns = max(p["detail"]["reruns"] for p in points)
        named = sorted({p["detail"]["point"] for p in points if "point" in p["detail"]})
        if named and kind.startswith("two-way"):
            injection = (
                f"{len(points)} seeded kill points at named MOCO writes ({', '.join(named)}): "
                f"{when}"
            )
        else:
            writes = {p["detail"]["writes"] for p in points}
            over = (
                f"the {writes.pop()} writes of a clean run"
                if len(writes) == 1
                else "the writes a clean run makes to the API each hits (listed below)"
            )
            injection = f"{len(points)} seeded kill points over {over} ({when})"
        out.append(
            {
                "area": "Crash",
                "fault": CRASH_KINDS[kind],
                "injection": injection,
                "outcome": CRASH_OUTCOMES[kind].format(reruns=reruns),
                "lost": sum(p["lost"] for p in points),
                "duplicates": sum(p["duplicates"] for p in points),
            }
        )
    return out


def render(rows: list[dict[str, Any]], results: Path) -> str:
    crash = [r for r in rows if r["area"] == "Crash"]
    others = [r for r in rows if r["area"] != "Crash"]
    ordered = sorted(others, key=lambda r: AREAS.index(r["area"]) if r["area"] in AREAS else 99)
    table = ordered[:]
    insert_at = next((i for i, r in enumerate(table) if r["area"] == "Bad input"), len(table))
    table[insert_at:insert_at] = crash_rows(crash)
    slow = sum(1 for r in rows if r.get("slow"))
    stamp = datetime.fromtimestamp(results.stat().st_mtime, tz=timezone.utc)
    lines = [
        (
            f"Measured by the suite on {stamp:%Y-%m-%d %H:%M} UTC: {len(rows)} cases "
            f"({slow} of them from the slow, CI-only part), {len(crash)} of them crash points. "
            f"Records lost in total: **{sum(r['lost'] for r in rows)}**; duplicates created in "
            f"total: **{sum(r['duplicates'] for r in rows)}**."
        ),
        "",
        "| Area | Fault | How it is injected | Outcome | Records lost | Duplicates created |",
        "|---|---|---|---|---:|---:|",
    ]
    lines.extend(
        f"| {cell(r['area'])} | {cell(r['fault'])} | {cell(r['injection'])} | "
        f"{cell(r['outcome'])} | {r['lost']} | {r['duplicates']} |"
        for r in table
    )
    if crash:
        lines += [
            "",
            "### The kill points",
            "",
            (
                "`k`: the request (of the kind in *At*, counted at the sandbox that received it) "
                "at which the process group got SIGKILL, of the requests of that kind a clean "
                "run makes; *before*: the request was dropped unapplied, *after*: it was "
                "committed and its answer lost, *next*: its answer arrived and the process died "
                "at its next request, after recording it in the ledger (one writer thread)."
            ),
            "",
            (
                "| Run killed | Seed | At | k / of a clean run | When | Found at the kill | "
                "Reruns | Records lost | Duplicates created |"
            ),
            "|---|---:|---|---:|---|---|---:|---:|---:|",
        ]
        for r in sorted(
            crash, key=lambda r: (list(CRASH_KINDS).index(r["detail"]["kind"]), r["detail"]["seed"])
        ):
            d = r["detail"]
            lines.append(
                f"| {d['kind']} | {d['seed']} | {cell(d.get('point', 'any Contacts API write'))} "
                f"| {d['k']} / {d['writes']} | {d['phase']} | {cell(d.get('found', ''))} | "
                f"{d['reruns']} | {r['lost']} | {r['duplicates']} |"
            )
    return "\n".join(lines)


SKELETON = f"""# Reliability

{BEGIN}
{END}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--results", type=Path, default=default_results())
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if not args.results.exists():
        print(
            f"error: {args.results} does not exist; run `scripts/test --all` first.",
            file=sys.stderr,
        )
        return 2
    document = json.loads(args.results.read_text(encoding="utf-8"))
    rows = document["rows"] if isinstance(document, dict) else document
    if not rows:
        print(f"error: {args.results} holds no rows.", file=sys.stderr)
        return 2
    problems = []
    if not any(r.get("slow") for r in rows):
        problems.append("the results hold no slow case: run `scripts/test --all` for the table")
    bad = [r["case"] for r in rows if r["lost"] or r["duplicates"]]
    if bad:
        problems.append(f"cases with losses or duplicates: {', '.join(bad)}")
    doc = args.out.read_text(encoding="utf-8") if args.out.exists() else SKELETON
    if BEGIN not in doc or END not in doc:
        print(f"error: {args.out} lacks the {BEGIN} / {END} markers.", file=sys.stderr)
        return 2
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    args.out.write_text(
        f"{head}{BEGIN}\n{render(rows, args.results)}\n{END}{tail}", encoding="utf-8"
    )
    print(f"wrote {len(rows)} cases to {args.out}")
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
