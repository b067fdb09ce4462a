"""Items 8 (the reverse direction and two-way) and 9 (real time) in the report.

:func:`evaluate` adds their goals to the evaluation (keys ``8a``... and ``9a``...), :func:`markdown`
gives their sections of docs/benchmarks.md; both read ``reverse`` and ``realtime`` of results.json
and give nothing when the item was not measured.
"""

from __future__ import annotations

from typing import Any

from bench import report

REVERSE_ITEM = "8"
REALTIME_ITEM = "9"
CEILING_GOAL = 0.90  # item 8: share of MOCO's ceiling a first reverse sync keeps
LATENCY_GOAL_S = 10.0  # item 9: p95 from a change on one side to the record on the other
MIN_CHANGES = 20  # item 9: changes per direction for a p95
DIRECTIONS = {
    "moco_to_contacts": "MOCO web-UI edit -> CRM contact written",
    "contacts_to_moco": "CRM edit through the API -> MOCO person written",
}
PHASE_NAMES = {
    "webhook": "webhook delivered and stored (the sandbox's jitter, the listener's commit)",
    "debounce": "debounce: quiet time before the listener starts the run",
    "meltano_start": "`meltano run` starts (CLI, project, state) until it spawns tap and target",
    "plugin_start": "the tap's process starts (Python, imports, config) until its first request",
    "tap_read": "the tap's first read of the changed stream",
    "target_start": "waiting for the target's process to be up (after the tap's read)",
    "target_write": "the target: stream maps, the two-way read, the write",
}


# report imports this module: its helpers are looked up when called, not at import.
def _get(d: Any, *keys: str, default: Any = None) -> Any:  # noqa: ANN401  a path into JSON
    return report._get(d, *keys, default=default)  # noqa: SLF001  one helper for the report


def num(x: float | None, digits: int = 1) -> str:
    """:func:`bench.report.num`."""
    return report.num(x, digits)


def pct(x: float | None, digits: int = 1) -> str:
    """:func:`bench.report.pct`."""
    return report.pct(x, digits)


def _goal(goal: str, result: str, *, met: bool, why: str = "", close: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"goal": goal, "result": result, "met": met}
    if not met:
        out["why"], out["close"] = why, close
    return out


def _steady(run: dict[str, Any] | None) -> float | None:
    return _get(run, "moco_api", "rate", "steady_fraction")


# --- evaluation ----------------------------------------------------------------------------------
def evaluate(r: dict[str, Any]) -> dict[str, Any]:
    """The goals of items 8 and 9 that the results measured: met or not, and why."""
    goals: dict[str, Any] = {}
    rev = r.get("reverse")
    if rev and "scaled" in rev:
        goals.update(_reverse_goals(rev))
    if rev and "two_way" in rev:
        goals.update(_two_way_goals(rev["two_way"]))
    rt = r.get("realtime")
    if rt and "moco_to_contacts" in rt:
        goals.update(_realtime_goals(rt))
    return goals


def _reverse_goals(rev: dict[str, Any]) -> dict[str, Any]:
    first = rev["scaled"]["first"]
    per_new = first.get("person_writes_per_new_person")
    creates = _get(first, "moco_api", "by_route", "POST /contacts/people", default=0)
    tagged = first.get("person_creates_with_tags")
    wanted = first.get("people_created", 0)
    goals = {
        "8a": _goal(
            "MOCO writes per new person <= 1 (the tags in the create body)",
            f"{num(per_new, 3)} writes per new person ({first.get('people_created', 0)} created, "
            f"{creates} creates; {tagged if tagged is not None else 'n/a'} of them carry tags)",
            met=per_new is not None and per_new <= 1 and wanted > 0 and tagged == creates,
            why="see the routes of the first run in section 8",
            close="send the tags in the create body; no separate tagging call",
        )
    }
    unchanged = {
        key: _get(rev, "scaled", key, "moco_api", "requests")
        for key in ("unchanged_incremental", "unchanged_full_reread")
    }
    goals["8b"] = _goal(
        "MOCO calls per unchanged record on an identical rerun: 0",
        "; ".join(
            f"{key.replace('_', ' ')}: {n} MOCO calls"
            + (
                f" for {_get(rev, 'scaled', key, 'records_read_by_target')} records"
                if key.endswith("reread")
                else ""
            )
            for key, n in unchanged.items()
        ),
        met=all(n == 0 for n in unchanged.values()),
        why="target-moco called MOCO for records whose payload had not changed",
        close="skip records whose hash matches the ledger's before any read",
    )
    checks = [("scaled", _steady(first))]
    if "unscaled" in rev:
        checks.append(("unscaled (120 / 120 s)", _steady(rev["unscaled"]["first"])))
    goals["8c"] = _goal(
        f">= {pct(CEILING_GOAL, 0)} of MOCO's ceiling on a first sync",
        "; ".join(f"{name}: {pct(frac)} (steady state)" for name, frac in checks),
        met=all(f is not None and f >= CEILING_GOAL for _, f in checks),
        why="the write pool did not keep MOCO's window full (see the window lag in section 8)",
        close="more writes in flight (target-moco's max_concurrency) or a smaller limiter margin",
    )
    runs = [
        run
        for part in ("scaled", "unscaled")
        for key, run in (rev.get(part) or {}).items()
        if key != "settings" and isinstance(run, dict)
    ]
    n429 = sum(
        _get(run, api, "status_429", default=0)
        for run in runs
        for api in ("moco_api", "contacts_api")
    )
    goals["8d"] = _goal(
        "0 x 429 (both APIs, every reverse run)",
        f"{n429} x 429",
        met=n429 == 0,
        why="requests went over a limit the plugins are configured with",
        close="find the requests the limiters let through early (times in results.json)",
    )
    return goals


def _two_way_goals(tw: dict[str, Any]) -> dict[str, Any]:
    cycles = {k: v for k, v in tw.items() if k.startswith("cycle_")}
    writes = {k: (v["moco_api"]["writes"], v["contacts_api"]["writes"]) for k, v in cycles.items()}
    goals = {
        "8e": _goal(
            "two-way cycle with no change: 0 writes on both APIs",
            "; ".join(
                f"{k.replace('_', ' ')}: {m} MOCO, {c} Contacts API" for k, (m, c) in writes.items()
            ),
            met=all(m == 0 and c == 0 for m, c in writes.values()),
            why="a cycle wrote although nothing had changed (an echo or a ping-pong)",
            close="see the routes of the cycle in section 8",
        )
    }
    bounded = {
        k: v["contacts_searches"] <= v["contacts_search_allowance"]
        and v["contacts_other_reads"] == 0
        for k, v in cycles.items()
    }
    missed = [k for k, ok in bounded.items() if not ok]
    goals["8f"] = _goal(
        "two-way cycle with no change: Contacts reads <= 1 search per 500 contacts, no "
        "sub-resource read outside a full pass",
        "; ".join(
            f"{k.replace('_', ' ')}: {v['contacts_searches']} searches (allowed "
            f"{v['contacts_search_allowance']}), {v['contacts_other_reads']} other Contacts reads, "
            f"{v['moco_api']['reads']} MOCO reads"
            for k, v in cycles.items()
        ),
        met=not missed,
        why=(
            "cycle 1 is the first to see what the set-up cycle wrote: target-contacts' writes gave "
            "those CRM contacts a new dateUpdated, so tap-contacts reads the tasks, notes and "
            "appointments of each (children of changed contacts), and target-moco reads the MOCO "
            "person of each pair it meets for the first time (a pair target-contacts made) before "
            "it decides there is nothing to write; the cycle after it reads nothing of the kind"
            if missed == ["cycle_1"]
            else f"reads beyond the bound in {', '.join(missed)}"
        ),
        close=(
            "record in the ledger the dateUpdated each CRM write produced, so that tap-contacts "
            "can tell its own write from a person's change and skip the children; and store "
            "target-contacts' written values as target-moco's baseline, so the first sight of a "
            "pair needs no MOCO read"
        ),
    )
    return goals


def _dominant_phases(rt: dict[str, Any]) -> list[tuple[str, float]]:
    """Phases by their median summed over both directions, largest first."""
    totals: dict[str, float] = {}
    for key in DIRECTIONS:
        for name in PHASE_NAMES:
            median = _get(rt, key, "phases", name, "median_s")
            if median is not None:
                totals[name] = totals.get(name, 0.0) + median / len(DIRECTIONS)
    return sorted(totals.items(), key=lambda kv: -kv[1])


def _realtime_goals(rt: dict[str, Any]) -> dict[str, Any]:
    goals: dict[str, Any] = {}
    top = _dominant_phases(rt)
    probe = rt.get("start_up_probe") or {}
    why = (
        "most of the time is process start-up, not the APIs: "
        + ", ".join(f"{PHASE_NAMES[name].split(':')[0]} ~{num(s)} s" for name, s in top[:3])
        + " (medians). On this machine, at a load average of "
        + f"{_get(rt, 'load_average_start', default=[0])[0]:.1f}-"
        + f"{_get(rt, 'load_average_end', default=[0])[0]:.1f} on "
        + "2 cores, a bare `--about` of each program took "
        + ", ".join(f"{name} {num(s)} s" for name, s in probe.items())
    )
    close = (
        "keep the plugins' processes warm: a listener that runs the tap and the target in "
        "long-lived worker processes (or in-process, importing them once) instead of one "
        "`meltano run` per event would leave the webhook, the debounce and the API calls, "
        "a few seconds; a shorter debounce_seconds trims the floor by up to 2 s"
    )
    for letter, key in (("a", "moco_to_contacts"), ("b", "contacts_to_moco")):
        lat = rt[key]["latency"]
        p95 = lat.get("p95_s")
        enough = lat.get("count", 0) >= MIN_CHANGES
        goals[f"9{letter}"] = _goal(
            f"{DIRECTIONS[key]}: p95 < {num(LATENCY_GOAL_S)} s over >= {MIN_CHANGES} changes",
            f"p50 {num(lat.get('p50_s'))} s, p95 {num(p95)} s, max {num(lat.get('max_s'))} s "
            f"over {lat.get('count', 0)} changes"
            + (f"; {rt[key]['not_written']} never written" if rt[key].get("not_written") else ""),
            met=p95 is not None and p95 < LATENCY_GOAL_S and enough and not rt[key]["not_written"],
            why=why if p95 is None or p95 >= LATENCY_GOAL_S else "fewer changes than the goal asks",
            close=close if p95 is None or p95 >= LATENCY_GOAL_S else "run more changes",
        )
    burst = rt.get("burst") or {}
    if burst:
        runs = burst.get("runs_by_direction", {})
        goals["9c"] = _goal(
            "a burst of MOCO web-UI edits: all land in the CRM (and in few runs)",
            f"{burst['landed']} of {burst['edits']} landed, the last "
            f"{num(burst['last_landed_s'])} s after the first edit; runs: "
            f"{runs.get('moco-to-contacts', 0)} moco-to-contacts, "
            f"{runs.get('contacts-to-moco', 0)} contacts-to-moco (the echo)",
            met=burst["landed"] == burst["edits"],
            why="edits were lost between the webhook and the CRM",
            close="see the listener's log (bench/run --keep-workdir)",
        )
    totals = rt.get("api_totals") or {}
    n429 = sum(_get(totals, api, "status_429", default=0) for api in ("moco_api", "contacts_api"))
    goals["9d"] = _goal(
        "0 x 429 during item 9 (both APIs)",
        f"{_get(totals, 'moco_api', 'status_429', default=0)} x 429 from MOCO, "
        f"{_get(totals, 'contacts_api', 'status_429', default=0)} from the Contacts API",
        met=n429 == 0,
        why=(
            "tap-moco keeps its own window per process and takes no slot of the shared MOCO "
            "budget in the ledger that target-moco uses, so back-to-back runs of both directions "
            "can send more than 120 requests in 2 minutes"
            if _get(totals, "moco_api", "status_429", default=0)
            else "a limiter let requests through early"
        ),
        close="tap-moco taking its slots from the ledger's shared MOCO budget, as target-moco does",
    )
    return goals


# --- markdown ------------------------------------------------------------------------------------
def _goal_rows(goals: dict[str, Any], prefix: str) -> list[str]:
    rows = ["| # | Goal | Result | Met? |", "|---|---|---|---|"]
    missed = []
    for key in sorted(k for k in goals if k.startswith(prefix)):
        g = goals[key]
        rows.append(
            f"| {key} | {g['goal']} | {g['result']} | {'**met**' if g['met'] else '**missed**'} |"
        )
        if not g["met"]:
            missed.append(
                f"- **{key} missed.** Why: {g['why']}. What would close it: {g['close']}."
            )
    return [*rows, "", *missed, *([""] if missed else [])]


def _run_info(part: dict[str, Any]) -> str:
    m = part.get("run") or {}
    load = m.get("load_average_start"), m.get("load_average_end")
    if not m:
        return ""
    return (
        f"Measured on {m.get('date')} by `{m.get('command')}` at `git` {m.get('git_head')}; "
        f"load average {load[0][0]:.2f} at the start and {load[1][0]:.2f} at the end "
        "(2 cores shared with other jobs)."
    )


def _reverse_row(label: str, run: dict[str, Any] | None) -> str:
    if not run:
        return ""
    m, c = run["moco_api"], run["contacts_api"]
    rate = m.get("rate") or {}
    share = (
        f"{pct(rate['steady_fraction'])} (steady state)"
        if rate.get("steady_fraction") is not None
        else "—"
    )
    return (
        f"| {label} | {run.get('records_read_by_target', 0):,} | {m['requests']:,} "
        f"({m['reads']:,} / {m['writes']:,}) | {m['status_429']} | {share} | {c['requests']:,} | "
        f"{num(run['wall_s'])} s |"
    )


def _reverse_section(r: dict[str, Any], goals: dict[str, Any]) -> list[str]:
    rev = r["reverse"]
    s = rev["scaled"]["settings"]
    first = rev["scaled"]["first"]
    out: list[str] = []
    add = out.append
    add(f"## {REVERSE_ITEM}. Reverse direction (target-moco) and two-way")
    add("")
    add(
        f"`meltano run contacts-to-moco` (tap-contacts | target-moco) writes {s['contacts']:,} "
        "generated CRM contacts, each with one note and a tag, into an empty MOCO sandbox. "
        f"**Scaled x{s['scale']}** like items 1-3: MOCO {s['limits']['moco']} (real: "
        f"{s['real_limits']['moco']}), Contacts API {s['limits']['contacts']} (real: "
        f"{s['real_limits']['contacts']}); answers take {s['latency_s'][0] * 1000:.0f}-"
        f"{s['latency_s'][1] * 1000:.0f} ms; target-moco's `max_concurrency` as in meltano.yml "
        "(2). The unscaled row runs at MOCO's real 120 requests / 2 min. " + _run_info(rev)
    )
    add("")
    add(
        "| Run | Records reaching target-moco | MOCO requests (reads / writes) | 429 | "
        "Share of MOCO's ceiling | Contacts API requests | Wall time |"
    )
    add("|---|---|---|---|---|---|---|")
    rows = [
        (f"First sync (scaled x{s['scale']})", first),
        ("Identical rerun (incremental)", rev["scaled"].get("unchanged_incremental")),
        (
            "Identical full re-read (`--full-refresh`: every record reaches target-moco again)",
            rev["scaled"].get("unchanged_full_reread"),
        ),
    ]
    unscaled = rev.get("unscaled")
    if unscaled:
        n = unscaled["settings"]["contacts"]
        rows.append((f"First sync, unscaled ({n} contacts, MOCO 120 / 120 s)", unscaled["first"]))
    out += [_reverse_row(label, run) for label, run in rows if run]
    add("")
    routes = first["moco_api"]["by_route"]
    created = first.get("people_created", 0)
    per_contact = first.get("moco_requests_per_new_person")
    add(
        f"- New people: {created:,}; MOCO calls of the first sync: "
        + ", ".join(f"{k}: {v:,}" for k, v in routes.items())
        + ". Writes on a person per new person: "
        + num(first.get("person_writes_per_new_person"), 3)
        + " (the create carries the tags: "
        + f"{first.get('person_creates_with_tags', 'n/a')} of "
        + f"{routes.get('POST /contacts/people', 0)} creates have them; no tagging call)."
    )
    add(
        "- Before it creates a person target-moco looks for one MOCO holds already, so that "
        "such a person is adopted, not duplicated: in a batch of many new contacts it reads "
        "MOCO's people once (`people_directory: auto`: how many there are, then 100 per "
        "request) instead of searching by e-mail and phone before each create; here "
        f"{num(first.get('person_reads_per_new_person'), 2)} `GET /contacts/people` per new "
        "person (2 to 3 with a search each). Those reads count against MOCO's limit too: "
        f"{num(per_contact, 2)} requests per new contact "
        "with its note, so at the real 120 requests / 2 min a first import of 1,000 such "
        f"contacts takes ~{(per_contact or 0) * 1000 / 60:.0f} minutes."
    )
    rate = first["moco_api"].get("rate") or {}
    if rate.get("window_lag_mean_s") and "moco_window_s" in s:
        window = s["moco_window_s"]
        add(
            f"- Window lag of the first sync's MOCO requests ({rate['steady_events']:,} requests "
            f"after the first {rate['ceiling_per_s'] * window:.0f}): mean "
            f"{rate['window_lag_mean_s']} s against the {window} s window (min "
            f"{rate['window_lag_min_s']} s, 90th percentile {rate['window_lag_p90_s']} s): "
            f"{pct(rate.get('steady_fraction'))} of the ceiling. target-moco's limiter keeps a "
            "margin of min(1 s, window / 20) in its own window and 1 s in the ledger's shared "
            "budget."
        )
    for key, label in (
        ("unchanged_incremental", "identical rerun"),
        ("unchanged_full_reread", "full re-read"),
    ):
        run = rev["scaled"].get(key)
        if run:
            add(
                f"- The {label}: {run['moco_api']['requests']} MOCO requests; Contacts API "
                + ", ".join(f"{k}: {v:,}" for k, v in run["contacts_api"]["by_route"].items())
                + "."
            )
    add("")
    tw = rev.get("two_way")
    if tw:
        out += _two_way_lines(tw)
    add(f"### Goals of item {REVERSE_ITEM}")
    add("")
    out += _goal_rows(goals, REVERSE_ITEM)
    add(
        f"Reproduce: `bench/run --items {REVERSE_ITEM} --merge` (sizes: `--reverse-contacts`, "
        "`--reverse-unscaled-contacts`, `--two-way-contacts`, `--scale`)."
    )
    add("")
    return out


def _two_way_lines(tw: dict[str, Any]) -> list[str]:
    s = tw["settings"]
    a = tw["after_initial"]
    out: list[str] = []
    add = out.append
    add(f"### Two-way cycles on an unchanged account (scaled x{s['scale']})")
    add("")
    add(
        f"MOCO with {s['moco_people']:,} generated people (with to-dos and comments), the CRM "
        f"with {s['crm_contacts']:,} generated contacts ({s['crm_generator']}). A set-up "
        "`meltano run two-way-sync` with the limits lifted (not measured: "
        f"{num(tw['initial']['wall_s'])} s) links them all: {a['crm_contacts']:,} CRM "
        f"contacts, {a['moco_people']:,} MOCO people, {a['moco_comments']:,} MOCO comments. "
        "Then `meltano run two-way-sync` twice with nothing changed:"
    )
    add("")
    add(
        "| Cycle | Writes MOCO / Contacts API | MOCO reads | Contacts searches (allowed: one "
        "per 500 contacts) | Other Contacts reads | Wall time |"
    )
    add("|---|---|---|---|---|---|")
    for key in sorted(k for k in tw if k.startswith("cycle_")):
        c = tw[key]
        moco_reads = ", ".join(
            f"{k.removeprefix('GET ')}: {v}"
            for k, v in c["moco_api"]["by_route"].items()
            if k.startswith("GET")
        )
        others = ", ".join(
            f"{k}: {v}"
            for k, v in c["contacts_api"]["by_route"].items()
            if k != "POST /contacts/search" and not _write_route(k)
        )
        add(
            f"| {key.replace('_', ' ')} | {c['moco_api']['writes']} / "
            f"{c['contacts_api']['writes']} | {c['moco_api']['reads']} ({moco_reads}) | "
            f"{c['contacts_searches']} ({c['contacts_search_allowance']}) | "
            f"{c['contacts_other_reads']}"
            + (f" ({others})" if others else "")
            + f" | {num(c['wall_s'])} s |"
        )
    add("")
    add(
        "- Cycle 1 is the first to read back what the set-up cycle wrote on each side; cycle 2 "
        "is the steady state of an unchanged account. MOCO's reads in it are tap-moco's "
        "incremental run: one page each of companies, people and comments changed since the "
        "bookmark, and the to-do list in full (MOCO's `/todos` has no `updated_after`)."
    )
    add(
        "- Wall times are two `meltano run` pipelines each; on this machine most of it is the "
        f"processes' start-up (see item {REALTIME_ITEM})."
    )
    add("")
    return out


def _write_route(route: str) -> bool:
    method, _, path = route.partition(" ")
    return method in ("POST", "PUT", "PATCH", "DELETE") and not path.endswith("/search")


def _realtime_section(r: dict[str, Any], goals: dict[str, Any]) -> list[str]:
    rt = r["realtime"]
    s = rt["settings"]
    la0 = _get(rt, "load_average_start", default=[0])[0]
    la1 = _get(rt, "load_average_end", default=[0])[0]
    plan = "the unlimited plan" if s["moco_plan"] == "unlimited" else "the standard plan"
    out: list[str] = []
    add = out.append
    add(f"## {REALTIME_ITEM}. Real time (the webhook listener)")
    add("")
    add(
        f"Both sandboxes at their **real** limits: MOCO {s['limits']['moco']} ({plan}), "
        f"Contacts API {s['limits']['contacts']}; answers take {s['latency_s'][0] * 1000:.0f}-"
        f"{s['latency_s'][1] * 1000:.0f} ms. MOCO holds {s['moco_people']:,} generated people, "
        f"synced to the CRM and back before the listener starts ({rt.get('pairs', 0):,} linked "
        "pairs). The listener runs as `meltano invoke sync-listener` with meltano.yml's "
        f"settings (debounce {s['debounce_seconds']} s; each run is `meltano run "
        "moco-to-contacts` or `contacts-to-moco`); the Contacts sandbox's webhooks go to its "
        "`/webhooks/contacts` (its public keys as `SYNC_LISTENER_CONTACTS_PUBLIC_KEY` and "
        "`_LEGACY_PUBLIC_KEY`), MOCO's hooks were registered by `meltano invoke "
        "sync-listener:register-moco-webhooks`. Each change is made on an idle sync (the "
        "previous one and its echo done), after one uncounted warm-up change each way. "
        "Latency: from the edit's answer to the answer of the other side's write (its body "
        "checked in the sandbox's log). "
        + _run_info(rt)
        + f" Load average during the item: {la0:.1f} at its start, {la1:.1f} at its end."
    )
    add("")
    add("| Direction | Changes | p50 | p95 | max | Runs per change (with the echo) |")
    add("|---|---|---|---|---|---|")
    for key, label in DIRECTIONS.items():
        d = rt.get(key)
        if d:
            lat = d["latency"]
            add(
                f"| {label} | {lat.get('count', 0)} | {num(lat.get('p50_s'))} s | "
                f"{num(lat.get('p95_s'))} s | {num(lat.get('max_s'))} s | "
                f"{num(_get(d, 'runs_per_change', 'p50_s'))} (median) |"
            )
    add("")
    add(
        "Where the time goes (median per change, from the ledger's `received_at`, the "
        "listener's log, Meltano's log lines of the run and the sandboxes' request logs):"
    )
    add("")
    add("| Phase | MOCO -> CRM | CRM -> MOCO |")
    add("|---|---|---|")
    for name, text in PHASE_NAMES.items():
        cells = [f"{num(_get(rt, key, 'phases', name, 'median_s'), 2)} s" for key in DIRECTIONS]
        add(f"| {text} | {' | '.join(cells)} |")
    add("")
    probe = rt.get("start_up_probe") or {}
    if probe:
        add(
            "- Start-up of each program alone on this machine during the item (`meltano "
            "--version`, `<plugin> --about`): "
            + ", ".join(f"{k} {num(v)} s" for k, v in probe.items())
            + ". A run starts `meltano`, then the tap and the target; each is a Python process "
            "that imports singer-sdk (and SQLAlchemy, the ledger) before its first request."
        )
    out += _burst_lines(rt)
    totals = rt.get("api_totals") or {}
    add(
        f"- During the whole item: MOCO {_get(totals, 'moco_api', 'requests', default=0):,} "
        f"requests, {_get(totals, 'moco_api', 'status_429', default=0)} x 429; Contacts API "
        f"{_get(totals, 'contacts_api', 'requests', default=0):,} requests, "
        f"{_get(totals, 'contacts_api', 'status_429', default=0)} x 429; "
        f"{_get(rt, 'runs', 'total', default=0)} runs, "
        f"{_get(rt, 'runs', 'failed', default=0)} failed."
    )
    add("")
    add(f"### Goals of item {REALTIME_ITEM}")
    add("")
    out += _goal_rows(goals, REALTIME_ITEM)
    add(
        f"Reproduce: `bench/run --items {REALTIME_ITEM} --merge` (sizes: `--realtime-people`, "
        "`--realtime-changes`, `--realtime-burst`; `--realtime-moco-plan unlimited` for "
        "MOCO's 1,200 / 2 min)."
    )
    add("")
    return out


def _burst_lines(rt: dict[str, Any]) -> list[str]:
    b = rt.get("burst")
    if not b:
        return []
    runs = b.get("runs") or []
    forward = [x for x in runs if x["direction"] == "moco-to-contacts"]
    echo = [x for x in runs if x["direction"] == "contacts-to-moco"]
    moco_routes = _get(b, "moco_api", "by_route", default={})
    crm_routes = _get(b, "contacts_api", "by_route", default={})
    return [
        f"- Burst: {b['edits']:,} MOCO web-UI edits in {num(b['edit_span_s'])} s. "
        f"{b['landed']:,} landed in the CRM, the first {num(b['first_landed_s'])} s and the last "
        f"{num(b['last_landed_s'])} s after the first edit, in {len(forward)} moco-to-contacts "
        "run(s) ("
        + ", ".join(f"{x['events']} events, {num(x['wall_s'])} s" for x in forward)
        + f"); then {len(echo)} contacts-to-moco run(s) for the CRM's webhooks of those writes "
        "(HighLevel marks no origin, so the echo is a run that writes nothing: "
        + ", ".join(f"{x['events']} events, {num(x['wall_s'])} s" for x in echo)
        + f"). All settled {num(b['settled_s'])} s after the first edit. MOCO during the burst: "
        + ", ".join(f"{k}: {v:,}" for k, v in moco_routes.items())
        + f" ({_get(b, 'moco_api', 'status_429', default=0)} x 429); Contacts API: "
        + ", ".join(f"{k}: {v:,}" for k, v in crm_routes.items())
        + f" ({_get(b, 'contacts_api', 'status_429', default=0)} x 429).",
    ]


def markdown(r: dict[str, Any]) -> list[str]:
    """The sections of items 8 and 9 (empty when neither was measured)."""
    goals = (r.get("evaluation") or {}).get("goals") or evaluate(r)
    out: list[str] = []
    if _get(r, "reverse", "scaled"):
        out += _reverse_section(r, goals)
    if _get(r, "realtime", "moco_to_contacts"):
        out += _realtime_section(r, goals)
    return out
