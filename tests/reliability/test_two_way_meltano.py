"""SIGKILL of a real ``meltano run two-way-sync`` at seeded writes of either task (tap-contacts
target-moco, then tap-moco target-contacts), then ``meltano run two-way-sync --force``: both
sides end as clean cycles leave them, and the job's next run writes nothing on either API."""

from __future__ import annotations

import json
import random
import signal
from typing import TYPE_CHECKING, Any

import pytest

from tests.reliability.harness import KillSwitch
from tests.reliability.meltano_runs import meltano_run
from tests.reliability.two_way import compare_sides, logged, moco_write, on_request

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from pathlib import Path

    from tests.reliability.harness import Row
    from tests.reliability.two_way import TwoWayBaseline, TwoWayWorld

JOB = ("two-way-sync",)
# (seed, the API whose write is killed): both tasks of the job, before and after a commit.
POINTS = [(601, "moco"), (602, "moco"), (603, "contacts")]


def summaries(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """The SUMMARY line of each target the job ran, in order."""
    return [
        json.loads(line.split("SUMMARY ", 1)[1])
        for line in result.stderr.splitlines()
        if "SUMMARY {" in line
    ]


def two_way_sync(
    project: Path, world: TwoWayWorld, suffix: str, *args: str, kill: KillSwitch | None = None
) -> subprocess.CompletedProcess[str]:
    return meltano_run(project, world, f"--state-id-suffix={suffix}", *args, blocks=JOB, kill=kill)


@pytest.mark.slow  # Meltano starts slowly: about a minute per point
@pytest.mark.timeout(900)  # three runs of a two-task job, on a shared machine
@pytest.mark.parametrize(("seed", "api"), POINTS)
def test_sigkill_of_meltano_run_two_way_sync_then_rerun_ends_like_clean_cycles(
    meltano_project: Path,
    two_way_world: Callable[..., TwoWayWorld],
    two_way_baseline: Callable[[], TwoWayBaseline],
    record: Callable[..., Row],
    seed: int,
    api: str,
) -> None:
    base = two_way_baseline()
    rng = random.Random(seed)  # noqa: S311  reproducible kill points
    if api == "moco":
        writes = logged(moco_write, base.first_moco_writes)
        k, phase = rng.randint(1, writes), rng.choice(("before", "after"))
    else:
        writes = len(base.first_crm_writes)
        k, phase = rng.randint(1, writes), rng.choice(("before", "after"))
    world = two_way_world()
    suffix = f"crash{seed}"  # a state (and a job) of this test's own
    if api == "moco":
        kill = KillSwitch(world.moco, k, phase, counts=on_request(moco_write))
        task = "tap-contacts target-moco"
    else:
        kill = KillSwitch(world.contacts, k, phase)
        task = "tap-moco target-contacts"
    killed = two_way_sync(meltano_project, world, suffix, kill=kill)
    kill.uninstall()
    assert kill.fired.is_set(), killed.stderr[-3000:]
    assert killed.returncode == -signal.SIGKILL
    world.end_dead_leases()  # the killed target's run lock, as its lease would end
    at_kill = world.sides().counts()
    # Meltano keeps the killed run marked as running (stale after 5 minutes): `--force`
    # stands in for the wait.
    rerun = two_way_sync(meltano_project, world, suffix, "--force")
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert [s["adds_up"] for s in summaries(rerun)] == [True, True], rerun.stderr[-3000:]
    sides = world.sides()
    comparison = compare_sides(base.first, sides)
    assert comparison.exact, comparison.explain()
    assert world.two_way_problems(sides) == []
    assert world.rejects() == base.first_rejects
    world.clear_logs()
    again = two_way_sync(meltano_project, world, suffix, "--force")  # the killed run still counts
    assert again.returncode == 0, again.stderr[-4000:]
    assert (world.moco_writes(), world.crm_writes()) == ([], [])
    record(
        case=f"crash-meltano-two-way-{seed}",
        area="Crash",
        fault="SIGKILL of `meltano run two-way-sync`",
        injection=f"seed {seed}: meltano's process group killed in its {task} task at "
        f"{api.replace('moco', 'MOCO').replace('contacts', 'Contacts API')} write {k} of "
        f"{writes}, {phase} the write is applied",
        outcome="`meltano run two-way-sync --force` completed, both sides equal to clean "
        "cycles; the job's next run wrote nothing on either API",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
        detail={
            "seed": seed,
            "k": k,
            "phase": phase,
            "writes": writes,
            "point": f"any {'MOCO' if api == 'moco' else 'Contacts API'} write ({task})",
            "crm_at_kill": at_kill,
            "reruns": 1,
            "kind": "meltano-two-way",
        },
    )
