"""Crashes: SIGKILL the pipeline at seeded points of a sync, rerun, and find the CRM exactly as a
clean run leaves it: no duplicate, none missing, no note posted twice.

Each point is drawn from a seeded RNG: ``k`` over the write requests a clean run of the same data
makes, and whether the process group dies just before the k-th write is applied (the request is
lost) or just after it was committed (its answer is lost). The kill comes from the Contacts
sandbox the moment the k-th write arrives, so it lands exactly there, also between a committed
create and the ledger row that would have recorded it.
"""

from __future__ import annotations

import random
import signal
from typing import TYPE_CHECKING

import pytest
import requests

from tests.reliability.harness import (
    LOCATION,
    MOCO_KEY,
    PIT,
    KillSwitch,
    Row,
    World,
    assert_like_clean_run,
    compare,
    crm_counts,
    expected_crm,
)
from tests.reliability.meltano_runs import meltano_run

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.reliability.conftest import Baseline

N_CONTACTS, DATA_SEED = 40, 7
# In every run of the suite: seeds whose points fall just after a committed contact create
# (4: write 31), note create (9: write 60) and task create (16: write 47) of the 65.
DEFAULT_POINTS = (4, 9, 16)
SLOW_POINTS = tuple(s for s in range(1, 24) if s not in DEFAULT_POINTS)  # 20 more in CI
INCREMENTAL_POINTS = (101, 102, 103, 104, 105)


def kill_point(seed: int, writes: int) -> tuple[int, str]:
    rng = random.Random(seed)  # noqa: S311  reproducible kill points, not a secret
    return rng.randint(1, writes), rng.choice(("before", "after"))


def assert_idempotent(world: World) -> int:
    """A full re-read of everything (no state) writes nothing: every hash in the ledger holds."""
    world.state = None
    world.clear_logs()
    run = world.run()
    assert run.ok, run.describe()
    assert run.summary is not None and run.summary["adds_up"]
    writes = world.writes()
    assert writes == [], f"a repeated sync wrote {[(w['method'], w['path']) for w in writes]}"
    return len(writes)


def crash_and_rerun(
    world_factory: Callable[..., World], base: Baseline, seed: int, record: Callable[..., Row]
) -> None:
    k, phase = kill_point(seed, base.writes)
    world = world_factory(n_contacts=N_CONTACTS, seed=DATA_SEED, latency=0.01)
    kill = KillSwitch(world.contacts, k, phase)
    killed = world.run(kill=kill)
    kill.uninstall()
    assert killed.killed, f"the kill at write {k} never came:\n{killed.describe()}"
    assert killed.target_returncode == -signal.SIGKILL
    at_kill = crm_counts(world.crm())
    reruns = world.run_until_complete()
    summary = reruns[-1].summary
    assert summary is not None and summary["adds_up"], reruns[-1].stderr[-3000:]
    comparison = assert_like_clean_run(world, base)
    repeat_writes = assert_idempotent(world)
    record(
        case=f"crash-pipe-{seed}",
        area="Crash",
        fault="SIGKILL of tap | target during a full sync",
        injection=f"seed {seed}: process group killed at write {k} of {base.writes}, "
        f"{phase} the write is applied",
        outcome=f"{len(reruns)} rerun(s) completed; CRM equal to a clean run; "
        f"full re-sync wrote {repeat_writes}",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
        detail={
            "seed": seed,
            "k": k,
            "phase": phase,
            "writes": base.writes,
            "crm_at_kill": at_kill,
            "reruns": len(reruns),
            "kind": "pipe",
        },
    )


@pytest.mark.parametrize("seed", DEFAULT_POINTS)
def test_sigkill_at_a_seeded_write_then_rerun_ends_like_a_clean_run(
    world_factory, baseline, record, seed
):
    crash_and_rerun(world_factory, baseline(N_CONTACTS, DATA_SEED), seed, record)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_POINTS)
def test_sigkill_at_more_seeded_writes_then_rerun_ends_like_a_clean_run(
    world_factory, baseline, record, seed
):
    crash_and_rerun(world_factory, baseline(N_CONTACTS, DATA_SEED), seed, record)


# --- crashes during an incremental run (updates, completions, edited notes, new records) ---------
def change_moco(world: World) -> None:
    """A fixed set of MOCO changes after a first sync: renames, new tags, a contact that gets an
    e-mail (its earlier note and task were waiting for it), completed to-dos, an edited comment,
    and new contacts with a comment and a to-do."""
    moco = world.moco_state()
    people = sorted(moco["contacts"], key=lambda p: p["id"])
    reachable = [p for p in people if p["work_email"] or p["home_email"]]
    for p in reachable[:3]:
        world.moco_api(
            "PUT",
            f"/contacts/people/{p['id']}",
            json={"lastname": p["lastname"] + "-Neu", "tags": [*p["tags"], "Umzug"]},
        )
    hidden = next(
        p
        for p in people
        if not (p["work_email"] or p["home_email"] or p["work_phone"] or p["mobile_phone"])
    )
    world.moco_api(
        "PUT",
        f"/contacts/people/{hidden['id']}",
        json={"work_email": f"sichtbar.{hidden['id']}@example.com"},
    )
    world.moco_api(
        "POST",
        "/comments",
        json={
            "commentable_type": "Contact",
            "commentable_id": hidden["id"],
            "text": "<div>Jetzt <strong>erreichbar</strong></div>",
        },
    )
    open_todos = [
        t
        for t in sorted(moco["todos"], key=lambda t: t["id"])
        if t["todoable_type"] == "Contact" and not t["completed"]
    ]
    for todo in open_todos[:2]:
        requests.put(
            f"{world.moco.url}/_sandbox/todos/{todo['id']}", json={"completed": True}, timeout=30
        ).raise_for_status()
    comment = next(
        c
        for c in sorted(moco["comments"], key=lambda c: c["id"])
        if c["commentable_type"] == "Contact" and c["manual"]
    )
    world.moco_api(
        "PUT",
        f"/comments/{comment['id']}",
        json={"text": "<div>Geändert: Rückruf am Montag 📞</div>"},
    )
    for i in range(2):
        new = world.moco_api(
            "POST",
            "/contacts/people",
            json={
                "firstname": f"Neu{i}",
                "lastname": f"Kontakt{i}",
                "gender": "F",
                "work_email": f"neu{i}@example.com",
                "tags": ["Lead"],
            },
        )
        world.moco_api(
            "POST",
            "/comments",
            json={
                "commentable_type": "Contact",
                "commentable_id": new["id"],
                "text": f"<div>Erstkontakt {i}</div>",
            },
        )
        requests.post(
            f"{world.moco.url}/_sandbox/todos",
            timeout=30,
            json={
                "title": f"Angebot {i} senden",
                "todoable_type": "Contact",
                "todoable_id": new["id"],
                "due_date": "2027-01-15T00:00:00Z",
            },
        ).raise_for_status()


@pytest.fixture(scope="module")
def incremental_writes(tmp_path_factory, evidence) -> int:
    """How many writes a clean incremental run makes after :func:`change_moco`."""
    from sandbox.contacts import ContactsSandbox
    from sandbox.moco import MocoSandbox
    from sandbox.server import RunningSandbox
    from tests.reliability.harness import CLIENT_ID, CLIENT_SECRET, COMPANY_ID

    folder = tmp_path_factory.mktemp("incremental-baseline")
    with (
        RunningSandbox(MocoSandbox(api_key=MOCO_KEY, rate_limit=100_000)) as moco,
        RunningSandbox(
            ContactsSandbox(
                location_id=LOCATION,
                token=PIT,
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                company_id=COMPANY_ID,
                rate_limit=100_000,
                allow_duplicates=True,
            )
        ) as contacts,
    ):
        requests.post(
            f"{moco.url}/_sandbox/seed",
            timeout=60,
            json={"generate": {"contacts": N_CONTACTS, "seed": DATA_SEED}},
        ).raise_for_status()
        world = World(moco, contacts, folder, evidence)
        assert world.run().ok
        change_moco(world)
        world.clear_logs()
        run = world.run()
        assert run.ok, run.describe()
        comparison = compare(expected_crm(world.moco_state()), world.crm())
        assert comparison.exact, comparison.explain()
        writes = len(world.writes())
        world.collect()
    assert writes >= 10
    return writes


@pytest.mark.slow
@pytest.mark.parametrize("seed", INCREMENTAL_POINTS)
def test_sigkill_during_an_incremental_run_then_rerun_lands_every_change_once(
    world_factory, incremental_writes, record, seed
):
    k, phase = kill_point(seed, incremental_writes)
    world = world_factory(n_contacts=N_CONTACTS, seed=DATA_SEED, latency=0.01)
    first = world.run()
    assert first.ok, first.describe()
    saved = world.state
    change_moco(world)
    kill = KillSwitch(world.contacts, k, phase)
    killed = world.run(kill=kill)
    kill.uninstall()
    assert killed.killed, killed.describe()
    assert world.state == saved  # the killed run passed no state on
    reruns = world.run_until_complete()
    assert reruns[-1].summary is not None and reruns[-1].summary["adds_up"]
    crm = world.crm()
    comparison = compare(expected_crm(world.moco_state()), crm)
    assert comparison.exact, comparison.explain()
    assert world.ledger_problems(crm) == []
    repeat_writes = assert_idempotent(world)
    record(
        case=f"crash-incremental-{seed}",
        area="Crash",
        fault="SIGKILL of tap | target during an incremental sync (updates, completions, "
        "edited note, new records)",
        injection=f"seed {seed}: killed at write {k} of {incremental_writes}, {phase} the "
        "write is applied",
        outcome=f"{len(reruns)} rerun(s) from the saved state completed; every change landed "
        f"once; full re-sync wrote {repeat_writes}",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
        detail={
            "seed": seed,
            "k": k,
            "phase": phase,
            "writes": incremental_writes,
            "reruns": len(reruns),
            "kind": "incremental",
        },
    )


# --- a real `meltano run` -----------------------------------------------------------------------
def meltano_kill_and_rerun(
    meltano_project: Path,
    world_factory: Callable[..., World],
    base: Baseline,
    seed: int,
    record: Callable[..., Row],
) -> None:
    k, phase = kill_point(seed, base.writes)
    world = world_factory(n_contacts=N_CONTACTS, seed=DATA_SEED, latency=0.01)
    job = f"--state-id-suffix=crash{seed}"  # a state (and a job) of this test's own
    kill = KillSwitch(world.contacts, k, phase)
    killed = meltano_run(meltano_project, world, job, kill=kill)
    kill.uninstall()
    assert kill.fired.is_set(), killed.stderr[-3000:]
    assert killed.returncode == -signal.SIGKILL
    world.end_dead_leases()  # the killed target's run lock, as its lease would end
    # Meltano keeps the killed run marked as running (stale after 5 minutes); a scheduler's next
    # run comes later than that, `--force` stands in for the wait.
    blocked = meltano_run(meltano_project, world, job)
    assert blocked.returncode != 0 and "--force" in blocked.stderr
    rerun = meltano_run(meltano_project, world, job, "--force")
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    summary_lines = [ln for ln in rerun.stderr.splitlines() if "SUMMARY {" in ln]
    assert summary_lines and '"adds_up": true' in summary_lines[-1]
    comparison = assert_like_clean_run(world, base)
    world.clear_logs()
    again = meltano_run(meltano_project, world, job, "--force")
    assert again.returncode == 0, again.stderr[-4000:]
    assert world.writes() == []
    record(
        case=f"crash-meltano-{seed}",
        area="Crash",
        fault="SIGKILL of `meltano run tap-moco target-contacts`",
        injection=f"seed {seed}: meltano's process group killed at write {k} of "
        f"{base.writes}, {phase} the write is applied",
        outcome="Meltano refuses the job until the killed run is stale (or --force); the "
        "rerun completed, CRM equal to a clean run; the next run wrote 0",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
        detail={
            "seed": seed,
            "k": k,
            "phase": phase,
            "writes": base.writes,
            "reruns": 1,
            "kind": "meltano",
        },
    )


@pytest.mark.slow  # about 25 s each: Meltano itself starts slowly
@pytest.mark.parametrize("seed", [501, 502, 503])
def test_sigkill_of_meltano_run_then_rerun_ends_like_a_clean_run(
    meltano_project, world_factory, baseline, record, seed
):
    meltano_kill_and_rerun(
        meltano_project, world_factory, baseline(N_CONTACTS, DATA_SEED), seed, record
    )
