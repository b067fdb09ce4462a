"""``python -m bench`` (or ``bench/run``): run the benchmark, write results.json and the report.

Items (the issue's numbering): 1 write throughput (scaled, plus one unscaled run), 2 calls per
record, 3 read throughput, 4 overhead and memory, 5 the naive baseline (measured with 1 and 2),
6 tap-contacts alone (first read with and without the location-wide task read, an unchanged
location, memory from 10,000 to 100,000 contacts; not in the default set, run it with --items 6),
7 many locations at once (N target-contacts, each its own location of one Contacts sandbox: the
share of each location's ceiling, 429s, total CPU; not in the default set, --items 7, or alone:
``python -m bench.many_locations``), 8 the reverse direction and two-way (target-moco writing new
CRM contacts into an empty MOCO, scaled like 1-3, and an unscaled run; identical reruns; two
two-way cycles on an unchanged account), 9 real time through the webhook listener (latency each
way at the real limits, a burst of MOCO edits). 8 and 9 are not in the default set either.
``--merge`` keeps the other items' results of the results file and replaces those of the items run;
without it a run refuses to start when the results file holds items it would not measure.
``--quick`` is a small smoke run (a minute or two) that writes to bench/.quick/ unless told
otherwise; its numbers are too small to mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from enum import IntEnum
from pathlib import Path

from bench import harness, report, scenarios, target_cost
from bench import many_locations as many_locations_bench
from bench import realtime as realtime_bench
from bench import reverse as reverse_bench
from bench import tap_contacts as tap_contacts_bench
from bench.harness import ROOT, base_env, ensure_meltano_plugins, log, machine_info, say


class Item(IntEnum):
    """The benchmark issue's items, by their numbers."""

    WRITE_THROUGHPUT = 1
    CALLS_PER_RECORD = 2
    READ_THROUGHPUT = 3
    OVERHEAD = 4
    NAIVE_BASELINE = 5
    TAP_CONTACTS = 6
    MANY_LOCATIONS = 7
    REVERSE = 8
    REAL_TIME = 9


ALL_ITEMS = tuple(item.value for item in Item)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of ``bench/run``."""
    p = argparse.ArgumentParser(
        prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--items", default="1,2,3,4,5", help="items to run, e.g. 1,2,5 (default: all)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes; results to bench/.quick/ unless --results/--report given",
    )
    p.add_argument(
        "--scale",
        type=int,
        default=5,
        help="rate scale factor for items 1-3 (Contacts limit x N, MOCO window / N)",
    )
    p.add_argument(
        "--latency",
        default="0.1,0.2",
        help="sandbox answer latency range in seconds, uniform (default 0.1,0.2)",
    )
    p.add_argument("--contacts", type=int, help="MOCO contacts for items 1+2 (default 2000)")
    p.add_argument(
        "--naive-contacts",
        type=int,
        help="MOCO contacts for the naive baseline "
        "(default 150; it sends one request at a time, so it is slow by design)",
    )
    p.add_argument(
        "--unscaled-contacts",
        type=int,
        help="MOCO contacts for the unscaled item 1 run (default 300; 0: skip it)",
    )
    p.add_argument("--unscaled-naive-contacts", type=int, help="default 60")
    p.add_argument("--read-contacts", type=int, help="MOCO contacts for item 3 (default 20000)")
    p.add_argument(
        "--read-fast-contacts",
        type=int,
        help="MOCO contacts for item 3 at 10 requests/s (default 6000; 0: skip)",
    )
    p.add_argument(
        "--overhead-sizes", type=_ints, help="MOCO contacts per item 4 run (default 10000,100000)"
    )
    p.add_argument(
        "--overhead-streams",
        choices=("contacts", "all"),
        help="streams synced in item 4 (default contacts; all adds tasks and notes "
        "and takes about twice as long)",
    )
    p.add_argument(
        "--overhead-moco-sizes",
        type=_ints,
        help="CRM contacts per item 4 run of tap-contacts | target-moco (default 10000; 0: skip)",
    )
    p.add_argument(
        "--overhead-rerun",
        action=argparse.BooleanOptionalAction,
        help="item 4 also re-reads everything unchanged after each first sync (default: yes)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        help="target max_concurrency (default: 16 at scale 5, 8 unscaled/item 4)",
    )
    p.add_argument(
        "--elt-buffer-size",
        type=int,
        help="Meltano's elt.buffer_size in bytes for every run (default: meltano.yml's, "
        "2 MiB); see item 4",
    )
    p.add_argument(
        "--tap-contacts",
        type=int,
        help="contacts of item 6's first reads at 100 requests / 10 s (default 10000)",
    )
    p.add_argument(
        "--tap-memory-sizes",
        type=_ints,
        help="contacts per item 6 memory run, limits off (default 10000,100000; 0: skip)",
    )
    p.add_argument(
        "--locations", type=int, help="item 7: target processes, one location each (default 20)"
    )
    p.add_argument(
        "--location-contacts",
        type=int,
        help="item 7: new contacts per location (default 450: about 40 s of writing)",
    )
    p.add_argument(
        "--many-ledger",
        choices=many_locations_bench.LEDGERS,
        help="item 7: one SQLite ledger (default), a SQLite file per location, or one "
        "PostgreSQL database (a throwaway cluster)",
    )
    reverse_bench.add_arguments(p)
    realtime_bench.add_arguments(p)
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the results file's other items: replace only the items run, and say so in "
        "the report's notes",
    )
    p.add_argument("--results", type=Path, help="default bench/results.json")
    p.add_argument("--report", type=Path, help="default docs/benchmarks.md")
    p.add_argument(
        "--render",
        action="store_true",
        help="run nothing: re-render the report from the results file",
    )
    p.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the temp dir with ledgers, meltano state and logs",
    )
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> scenarios.Config:
    """The scenarios' sizes and settings: the defaults, ``--quick``'s, then the options given."""
    cfg = scenarios.Config()
    if args.quick:
        cfg = scenarios.Config(
            contacts=200,
            naive_contacts=20,
            unscaled_contacts=30,
            unscaled_naive_contacts=10,
            read_contacts=1500,
            read_fast_contacts=0,
            overhead_sizes=(500, 2000),
            overhead_moco_sizes=(500,),
        )
    low, _, high = args.latency.partition(",")
    cfg.latency = (float(low), float(high or low))
    cfg.scale = args.scale
    for name in (
        "contacts",
        "naive_contacts",
        "unscaled_contacts",
        "unscaled_naive_contacts",
        "read_contacts",
        "read_fast_contacts",
        "overhead_sizes",
        "overhead_streams",
        "overhead_rerun",
        "concurrency",
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    if args.overhead_moco_sizes is not None:
        cfg.overhead_moco_sizes = tuple(n for n in args.overhead_moco_sizes if n)
    return cfg


def tap_contacts_config(args: argparse.Namespace) -> tap_contacts_bench.TapContactsConfig:
    """Item 6's sizes: the defaults, ``--quick``'s, then the options given."""
    cfg = tap_contacts_bench.TapContactsConfig()
    if args.quick:
        cfg = tap_contacts_bench.TapContactsConfig(
            contacts=300, memory_sizes=(500, 2000), full_pass=True
        )
    low, _, high = args.latency.partition(",")
    cfg.latency = (float(low), float(high or low))
    if args.tap_contacts is not None:
        cfg.contacts = args.tap_contacts
    if args.tap_memory_sizes is not None:
        cfg.memory_sizes = tuple(n for n in args.tap_memory_sizes if n)
    return cfg


def many_locations_config(args: argparse.Namespace) -> many_locations_bench.ManyLocationsConfig:
    """Item 7's sizes: the defaults, ``--quick``'s, then the options given."""
    cfg = many_locations_bench.ManyLocationsConfig()
    if args.quick:
        cfg = many_locations_bench.ManyLocationsConfig(locations=3, contacts=150)
    low, _, high = args.latency.partition(",")
    cfg.latency = (float(low), float(high or low))
    if args.locations is not None:
        cfg.locations = args.locations
    if args.location_contacts is not None:
        cfg.contacts = args.location_contacts
    if args.many_ledger is not None:
        cfg.ledger = args.many_ledger
    return cfg


def _ensure_plugins(items: set[int], workdir: Path) -> None:
    """Meltano's plugins, unless only items 6 and 7 run (plugins alone, without Meltano)."""
    if items - {Item.TAP_CONTACTS, Item.MANY_LOCATIONS}:
        ensure_meltano_plugins(base_env(workdir))


def _overhead_results(cfg: scenarios.Config, workdir: Path) -> dict:
    """Item 4: target-contacts' runs, then target-moco's under ``target_moco`` (unless skipped)."""
    result = scenarios.overhead(cfg, workdir)
    if cfg.overhead_moco_sizes:
        result["target_moco"] = target_cost.target_moco(
            cfg.overhead_moco_sizes, workdir, streams=cfg.overhead_streams, seed=cfg.seed
        )
    return result


def _tap_contacts_results(items: set[int], args: argparse.Namespace, workdir: Path) -> dict:
    """Item 6's results under ``tap_contacts``, when it is asked for."""
    if Item.TAP_CONTACTS not in items:
        return {}
    return {"tap_contacts": tap_contacts_bench.run(tap_contacts_config(args), workdir)}


def _many_locations_results(items: set[int], args: argparse.Namespace, workdir: Path) -> dict:
    """Item 7's results under ``many_locations``, when it is asked for."""
    if Item.MANY_LOCATIONS not in items:
        return {}
    return {"many_locations": many_locations_bench.run(many_locations_config(args), workdir)}


def _both_ways_results(
    items: set[int], args: argparse.Namespace, workdir: Path, command: str
) -> dict:
    """Items 8 and 9 under ``reverse`` and ``realtime``, each with when and where it ran."""
    out: dict = {}
    for item, key, module in (
        (Item.REVERSE, "reverse", reverse_bench),
        (Item.REAL_TIME, "realtime", realtime_bench),
    ):
        if item not in items:
            continue
        ensure_meltano_plugins(base_env(workdir))
        machine = machine_info()
        section = module.run(module.config_from(args), workdir)
        section["run"] = {
            "command": command.strip(),
            **{k: machine[k] for k in ("date", "git_head", "git_modified_files")},
            "load_average_start": machine["load_average_start"],
            "load_average_end": list(os.getloadavg()),
        }
        out[key] = section
    return out


#: results.json's keys that describe a run rather than hold an item's results.
RUN_KEYS = ("command", "quick", "items", "machine", "config", "duration_s", "evaluation", "notes")


def merge_results(old: dict, new: dict) -> dict:
    """``old`` with the sections of the items ``new`` measured replaced, and a note saying so."""
    merged = {**old, **{k: v for k, v in new.items() if k not in RUN_KEYS}}
    merged["items"] = sorted(set(old.get("items") or []) | set(new["items"]))
    m = new["machine"]
    label = f"**Items {', '.join(str(i) for i in new['items'])} measured**"
    note = (
        f"{label} on {m['date']} with `{new['command'].strip()}` at commit {m['git_head']} "
        f"on {m['nproc']} CPUs ({m['cpu_model']}), Python {m['python']} "
        f"({new['duration_s'] / 60:.1f} minutes; load average {m['load_average_start'][0]:.2f} "
        f"at the start, {m['load_average_end'][0]:.2f} at the end); merged into this file. "
        "The other items' results come from the runs named above."
    )
    kept = [n for n in old.get("notes") or [] if not n.startswith(label)]
    merged["notes"] = [*kept, note]
    return merged


def _refuse_to_drop(path: Path, items: set[int], *, merge: bool) -> None:
    """Stop before a run that would overwrite results of other items without ``--merge``.

    The results file (and the report made from it) holds items measured by separate runs: a run
    of some items without ``--merge`` would replace them all with its own.
    """
    if merge or not path.exists():
        return
    dropped = set(json.loads(path.read_text(encoding="utf-8")).get("items") or []) - items
    if dropped:
        raise SystemExit(
            f"{path} holds the results of items {sorted(dropped)}, which this run would drop: "
            f"add --merge to replace only those of items {sorted(items)}, or write elsewhere "
            "with --results PATH --report PATH"
        )


def _merged_if_asked(merge: bool, path: Path, results: dict) -> dict:  # noqa: FBT001
    """``results`` merged into the results file's (``--merge``), when that file exists."""
    if merge and path.exists():
        return merge_results(json.loads(path.read_text(encoding="utf-8")), results)
    return results


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915  the one entry point
    """Run the items asked for, write results.json and the report, print the summary table."""
    args = parse_args(argv)
    items = set(_ints(args.items))
    unknown = items - set(ALL_ITEMS)
    if unknown:
        raise SystemExit(f"unknown items {sorted(unknown)}; choose from {ALL_ITEMS}")
    cfg = build_config(args)
    if args.elt_buffer_size:
        harness.EXTRA_MELTANO_ENV["MELTANO_ELT_BUFFER_SIZE"] = str(args.elt_buffer_size)
    out_dir = ROOT / "bench" / ".quick" if args.quick else None
    results_path = args.results or (
        out_dir / "results.json" if out_dir else ROOT / "bench" / "results.json"
    )
    report_path = args.report or (
        out_dir / "benchmarks.md" if out_dir else ROOT / "docs" / "benchmarks.md"
    )
    if args.render:
        results = json.loads(results_path.read_text(encoding="utf-8"))
        results["evaluation"] = report.evaluate(results)
        results_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        report_path.write_text(report.markdown(results), encoding="utf-8")
        log(f"rendered {report_path} from {results_path}")
        return 0
    _refuse_to_drop(results_path, items, merge=args.merge)
    workdir = Path(tempfile.mkdtemp(prefix="moco-bench-"))
    started = time.monotonic()
    results: dict = {
        "command": "bench/run " + " ".join(sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "items": sorted(items),
        "machine": machine_info(),
        "config": {
            "scale": cfg.scale,
            "latency_s": list(cfg.latency),
            "meltano_elt_buffer_size": args.elt_buffer_size or "meltano.yml (2 MiB)",
        },
    }
    log(f"workdir {workdir}; results -> {results_path}; report -> {report_path}")
    try:
        _ensure_plugins(items, workdir)
        naive = Item.NAIVE_BASELINE in items
        if items & {Item.WRITE_THROUGHPUT, Item.CALLS_PER_RECORD, Item.NAIVE_BASELINE}:
            results["writes"] = scenarios.writes(cfg, workdir, naive=naive)
        if Item.WRITE_THROUGHPUT in items and cfg.unscaled_contacts:
            results["unscaled"] = scenarios.unscaled(cfg, workdir, naive=naive)
        if Item.READ_THROUGHPUT in items:
            results["reads"] = scenarios.reads(cfg, workdir)
        if Item.OVERHEAD in items:
            results["overhead"] = _overhead_results(cfg, workdir)
        results.update(_tap_contacts_results(items, args, workdir))
        results.update(_many_locations_results(items, args, workdir))
        results.update(_both_ways_results(items, args, workdir, results["command"]))
    finally:
        results["machine"]["load_average_end"] = list(os.getloadavg())
        results["duration_s"] = round(time.monotonic() - started, 1)
        if args.keep_workdir:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    duration = results["duration_s"]  # this run's: a merge keeps the file's whole-run fields
    results = _merged_if_asked(args.merge, results_path, results)
    results["evaluation"] = report.evaluate(results)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(report.markdown(results), encoding="utf-8")
    log(f"done in {duration:.0f} s: {results_path}, {report_path}")
    say(report.summary_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
