"""The run summaries of a Meltano job as Markdown, for a CI job summary ($GITHUB_STEP_SUMMARY).

Each target of the job writes its summary as JSON to ``SUMMARIES/<target>.json`` (its
``summary_path``); this prints them as tables, with the API calls, a few reject examples and the
two-way conflicts, and names a target that wrote none (the run stopped before it finished).
Standard library and PyYAML only (Meltano brings PyYAML), so it runs beside a plain
``pip install meltano``::

    python scripts/job_summary.py --job moco-to-contacts --outcome success --summaries DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUTCOMES = ("created", "updated", "unchanged", "rejected")


def loaders_of(job: str, meltano_yml: Path = ROOT / "meltano.yml") -> list[str]:
    """The loaders ``meltano run JOB`` runs, in order; JOB may also be a task ("tap target")."""
    project = yaml.safe_load(meltano_yml.read_text())
    loaders = {p["name"] for p in project["plugins"].get("loaders", [])}
    tasks = next((j["tasks"] for j in project.get("jobs", []) if j["name"] == job), [job])
    names = [name for task in tasks for name in task.split()]
    return [name for name in names if name in loaders]


def target_section(name: str, report: dict[str, Any]) -> list[str]:
    """One target's summary: a table per stream, calls, rejects and conflicts."""
    dry = report.get("dry_run")
    lines = [f"#### {name}" + (" (DRY RUN plan: nothing was written)" if dry else ""), ""]
    streams: dict[str, dict[str, int]] = report.get("streams", {})
    extra = sorted({k for c in streams.values() for k in c} - {"read", *OUTCOMES})
    columns = ["read", *OUTCOMES, *extra]
    lines.append("| stream | " + " | ".join(columns) + " |")
    lines.append("|---|" + "---:|" * len(columns))
    lines.extend(
        f"| {stream} | " + " | ".join(f"{counts.get(c, 0):,}" for c in columns) + " |"
        for stream, counts in streams.items()
    )
    lines.append("")
    if not report.get("adds_up", True):
        lines += ["**The counts do not add up** (read ≠ the sum of the outcomes).", ""]
    calls = report.get("planned_calls" if dry else "api_calls") or {}
    if calls:
        routes = ", ".join(f"{route}: {n:,}" for route, n in sorted(calls.items()))
        kind = "Planned calls" if dry else "API calls"
        lines += [f"{kind}: {sum(calls.values()):,} ({routes})", ""]
    for stream, won in (report.get("conflicts") or {}).items():
        lines.append(
            f"Conflicts in {stream}: {won.get('source', 0)} written from the source, "
            f"{won.get('target', 0)} kept in the target"
        )
    examples = [e for stream in report.get("reject_examples", {}).values() for e in stream]
    if examples:
        kinds = ", ".join(f"{k} {n}" for k, n in (report.get("rejects_by_kind") or {}).items())
        lines += ["", f"Rejected ({kinds}); examples:", ""]
        lines += [f"- {example}" for example in examples]
        lines += ["", f"List and retry them with `meltano invoke {name}:rejects-list`."]
    return [*lines, ""]


def render(job: str, outcome: str, summaries: Path) -> str:
    """The Markdown of one run of ``job`` whose step ended with ``outcome``."""
    lines = [f"### {job}: {outcome}", ""]
    for name in loaders_of(job):
        path = summaries / f"{name}.json"
        if path.is_file():
            lines += target_section(name, json.loads(path.read_text(encoding="utf-8")))
        else:
            lines += [
                f"#### {name}",
                "",
                (
                    "No summary: the run stopped before this target finished; the log says why. "
                    "What it wrote is in the ledger, and the next run continues from there."
                ),
                "",
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the Markdown summary of one run (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, help="the job (or 'tap target') that ran")
    parser.add_argument("--outcome", required=True, help="how the run step ended")
    parser.add_argument("--summaries", required=True, type=Path, help="folder of <target>.json")
    args = parser.parse_args(argv)
    sys.stdout.write(render(args.job, args.outcome, args.summaries))


if __name__ == "__main__":
    main()
