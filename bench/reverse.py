"""Item 8: the reverse direction and two-way (``bench/run --items 8``).

- ``reverse``: N generated CRM contacts, each with one note and at least one tag, written by
  ``meltano run contacts-to-moco`` into an empty MOCO sandbox, both APIs scaled like items 1-3
  (MOCO 120 requests / (120 / scale) s): MOCO writes and reads per new person (and whether the
  creates carry the tags), the share of MOCO's ceiling the run kept (the window lag, see
  ``harness.rate_stats``), 429s. Then an identical rerun (incremental) and a full re-read
  (``--full-refresh``, every record reaches target-moco again): MOCO calls, the goal being 0.
- ``reverse_unscaled``: the same first run at MOCO's real 120 requests / 2 min, fewer contacts.
- ``two_way``: an account with people on both sides (MOCO generated; the CRM generated with
  tasks, notes and appointments), synced once by ``meltano run two-way-sync`` with the limits
  lifted (set-up, not measured), then two more cycles with nothing changed at the scaled limits:
  writes and reads per API. The bounds: no write; the Contacts search at most one request per
  500 contacts and no other Contacts read (sub-resources are read in a full pass only, every
  ``child_full_pass_hours``); MOCO reads as tap-moco's incremental run makes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.both_ways import ApiLimits, BothWays, api_entries, api_stats, crm_seed
from bench.harness import Sandbox, log

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

SEARCH = "POST /contacts/search"
PERSON_WRITES = (
    "POST /contacts/people",
    "PUT /contacts/people/{id}",
    "PATCH /contacts/people/{id}",
    "PUT /taggings/Contact/{id}",
    "PATCH /taggings/Contact/{id}",
)
CONTACTS_PER_SEARCH = 500  # the bound: one search request per 500 contacts


@dataclass
class ReverseConfig:
    """Sizes of item 8 (``bench/run``'s ``--reverse-*`` and ``--two-way-*`` options)."""

    scale: int = 5
    latency: tuple[float, float] = (0.1, 0.2)
    contacts: int = 300
    unscaled_contacts: int = 60
    two_way_moco: int = 300
    two_way_crm: int = 300
    seed: int = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Item 8's options of ``bench/run`` (its scale is ``--scale``, as for items 1-3)."""
    parser.add_argument(
        "--reverse-contacts",
        type=int,
        help="item 8: new CRM contacts written into an empty MOCO, scaled (default 300)",
    )
    parser.add_argument(
        "--reverse-unscaled-contacts",
        type=int,
        help="item 8: the same at MOCO's real 120 / 2 min (default 60; 0: skip)",
    )
    parser.add_argument(
        "--two-way-contacts",
        type=int,
        help="item 8: people on each side of the two-way account (default 300; 0: skip)",
    )


def config_from(args: argparse.Namespace) -> ReverseConfig:
    """Item 8's sizes: the defaults, ``--quick``'s, then the options given."""
    cfg = ReverseConfig()
    if args.quick:
        cfg = ReverseConfig(contacts=30, unscaled_contacts=0, two_way_moco=30, two_way_crm=30)
    low, _, high = args.latency.partition(",")
    cfg.latency = (float(low), float(high or low))
    cfg.scale = args.scale
    if args.reverse_contacts is not None:
        cfg.contacts = args.reverse_contacts
    if args.reverse_unscaled_contacts is not None:
        cfg.unscaled_contacts = args.reverse_unscaled_contacts
    if args.two_way_contacts is not None:
        cfg.two_way_moco = cfg.two_way_crm = args.two_way_contacts
    return cfg


def _sandboxes(
    cfg: ReverseConfig, limits: ApiLimits, *, moco_people: int = 0, crm_contacts: int = 0
) -> tuple[Sandbox, Sandbox]:
    moco = Sandbox(
        "moco",
        latency=cfg.latency,
        rate_limit=limits.moco_requests,
        rate_window=limits.moco_window,
        generate=moco_people,
        extra=("--generate-seed", str(cfg.seed)),
    )
    try:
        crm_extra = ("--generate", str(crm_contacts), "--generate-seed", str(cfg.seed))
        crm = Sandbox(
            "contacts",
            latency=cfg.latency,
            rate_limit=limits.contacts_requests,
            rate_window=limits.contacts_window,
            extra=crm_extra if crm_contacts else (),
        )
    except BaseException:
        moco.stop()
        raise
    return moco, crm


def _run(rig: BothWays, name: str, args: list[str], limits: ApiLimits) -> dict[str, Any]:
    """One measured ``meltano run``: both APIs' calls, the targets' summaries, time and CPU."""
    rig.moco.clear_log()
    rig.crm.clear_log()
    cpu0 = (rig.moco.cpu_seconds(), rig.crm.cpu_seconds())
    run = rig.run(name, ["run", "--no-install", *args], rig.env(limits))
    moco_entries = api_entries(rig.moco)
    out = {
        "wall_s": run["wall_s"],
        "moco_api": api_stats(
            moco_entries, api="moco", limit=limits.moco_requests, window=limits.moco_window
        ),
        "contacts_api": api_stats(
            api_entries(rig.crm),
            api="contacts",
            limit=limits.contacts_requests,
            window=limits.contacts_window,
        ),
        "summaries": run["summaries"],
        "peak_rss_mb": run["peak_rss_mb"],
        "cpu_s": {
            "moco_sandbox": round(rig.moco.cpu_seconds() - cpu0[0], 2),
            "contacts_sandbox": round(rig.crm.cpu_seconds() - cpu0[1], 2),
            **run["cpu_s"],
        },
    }
    creates = [
        e for e in moco_entries if e["method"] == "POST" and e["path"] == "/api/v1/contacts/people"
    ]
    if creates and all("body" in e for e in creates):
        out["person_creates_with_tags"] = sum(
            1 for e in creates if isinstance(e["body"], dict) and e["body"].get("tags")
        )
    m, c = out["moco_api"], out["contacts_api"]
    log(
        f"  {name}: MOCO {m['requests']} requests ({m['writes']} writes, {m['status_429']} x "
        f"429), Contacts API {c['requests']} requests, {run['wall_s']:.1f} s"
    )
    return out


def _per_person(run: dict[str, Any]) -> None:
    """Add MOCO calls per new person and per record that reached target-moco to ``run``."""
    summary = run["summaries"].get("target-moco") or {}
    streams = summary.get("streams") or {}
    created = (streams.get("contacts") or {}).get("created", 0)
    records = sum(s.get("read", 0) for s in streams.values())
    routes = run["moco_api"]["by_route"]
    run["people_created"] = created
    run["records_read_by_target"] = records
    if created:
        writes = sum(routes.get(route, 0) for route in PERSON_WRITES)
        run["person_writes_per_new_person"] = round(writes / created, 4)
        run["person_reads_per_new_person"] = round(
            routes.get("GET /contacts/people", 0) / created, 4
        )
        run["moco_requests_per_new_person"] = round(run["moco_api"]["requests"] / created, 4)
    if records:
        run["moco_calls_per_record"] = round(run["moco_api"]["requests"] / records, 4)


def reverse(
    cfg: ReverseConfig, workdir: Path, limits: ApiLimits, contacts: int, *, scaled: bool
) -> dict[str, Any]:
    """A first ``contacts-to-moco`` of ``contacts`` new CRM contacts into an empty MOCO.

    ``scaled``: at the scaled limits, followed by an identical rerun and a full re-read.
    """
    name = "reverse" if scaled else "reverse-unscaled"
    wd = workdir / name
    wd.mkdir(parents=True, exist_ok=True)
    log(
        f"item 8 ({name}, MOCO {limits.moco_requests}/{limits.moco_window} s): {contacts} new "
        "CRM contacts with a note and a tag each -> an empty MOCO"
    )
    moco, crm = _sandboxes(cfg, limits)
    with moco, crm:
        moco.configure(log_bodies=True)  # to see the tags in the creates
        crm.post("/_sandbox/seed", crm_seed(contacts, cfg.seed))
        rig = BothWays(wd, moco, crm)
        out: dict[str, Any] = {
            "settings": {
                "contacts": contacts,
                "scale": cfg.scale if scaled else 1,
                "latency_s": list(cfg.latency),
                "limits": limits.describe(),
                "moco_window_s": limits.moco_window,
                "real_limits": ApiLimits.scaled(1).describe(),
                "target_moco_max_concurrency": "meltano.yml (2)",
                "seed": "sandbox.contacts_data.generate, one note per contact, a tag on each",
            }
        }
        out["first"] = _run(rig, "first", ["contacts-to-moco"], limits)
        _per_person(out["first"])
        moco.configure(log_bodies=False)
        if scaled:
            for key, args in (
                ("unchanged_incremental", ["contacts-to-moco"]),
                ("unchanged_full_reread", ["--full-refresh", "contacts-to-moco"]),
            ):
                out[key] = _run(rig, key.replace("_", "-"), args, limits)
                _per_person(out[key])
    return out


def _cycle_bounds(run: dict[str, Any], crm_contacts: int) -> None:
    """Add the two-way cycle's bound checks to ``run``: searches per 500, other reads."""
    c = run["contacts_api"]
    searches = c["by_route"].get(SEARCH, 0)
    run["contacts_searches"] = searches
    run["contacts_search_allowance"] = math.ceil(crm_contacts / CONTACTS_PER_SEARCH)
    run["contacts_searches_per_500_contacts"] = round(
        searches / (crm_contacts / CONTACTS_PER_SEARCH), 4
    )
    run["contacts_other_reads"] = c["reads"] - searches


def two_way(cfg: ReverseConfig, workdir: Path, limits: ApiLimits) -> dict[str, Any]:
    """An account with people on both sides: set-up sync, then two cycles with no change."""
    wd = workdir / "two-way"
    wd.mkdir(parents=True, exist_ok=True)
    log(
        f"item 8 (two-way, MOCO {limits.moco_requests}/{limits.moco_window} s): "
        f"{cfg.two_way_moco} MOCO people, {cfg.two_way_crm} CRM contacts"
    )
    moco, crm = _sandboxes(cfg, limits, moco_people=cfg.two_way_moco, crm_contacts=cfg.two_way_crm)
    with moco, crm:
        rig = BothWays(wd, moco, crm)
        out: dict[str, Any] = {
            "settings": {
                "moco_people": cfg.two_way_moco,
                "crm_contacts": cfg.two_way_crm,
                "crm_generator": "sandbox --generate N: N/2 tasks, N/2 notes, N/4 appointments",
                "scale": cfg.scale,
                "limits": limits.describe(),
                "latency_s": list(cfg.latency),
            }
        }
        log("  set-up: meltano run two-way-sync with the limits lifted")
        out["initial"] = rig.set_up("initial", "two-way-sync")
        rig.enforce(limits)
        state = crm.state()
        moco_state = moco.state()
        out["after_initial"] = {
            "crm_contacts": len(state["contacts"]),
            "moco_people": len(moco_state["contacts"]),
            "moco_comments": len(moco_state["comments"]),
            "moco_todos": len(moco_state["todos"]),
        }
        for cycle in (1, 2):
            run = _run(rig, f"cycle-{cycle}", ["two-way-sync"], limits)
            _cycle_bounds(run, out["after_initial"]["crm_contacts"])
            out[f"cycle_{cycle}"] = run
    return out


def run(cfg: ReverseConfig, workdir: Path) -> dict[str, Any]:
    """Item 8; the dict goes to results.json under ``reverse``."""
    limits = ApiLimits.scaled(cfg.scale)
    out: dict[str, Any] = {"scaled": reverse(cfg, workdir, limits, cfg.contacts, scaled=True)}
    if cfg.unscaled_contacts:
        real = ApiLimits.scaled(1)
        out["unscaled"] = reverse(cfg, workdir, real, cfg.unscaled_contacts, scaled=False)
    if cfg.two_way_moco or cfg.two_way_crm:
        out["two_way"] = two_way(cfg, workdir, limits)
    return out
