"""MOCO faults while target-moco writes, in a two-way cycle: creates committed but answered 5xx
or never answered in time, and 429 storms. After each, both sides must hold exactly what clean
cycles leave (no duplicate on either side, nothing lost), and the next cycle writes nothing."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from tests.reliability.harness import times
from tests.reliability.two_way import TwoWayBaseline, TwoWayWorld, comment_kind, compare_sides
from tests.timing import wait_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.reliability.harness import Row


def assert_like_clean_cycles(world: TwoWayWorld, base: TwoWayBaseline) -> Any:
    """Both sides, the ledger and the rejects are what clean cycles leave; the next cycle writes
    nothing. Returns the comparison."""
    sides = world.sides()
    comparison = compare_sides(base.first, sides)
    assert comparison.exact, comparison.explain()
    assert world.two_way_problems(sides) == []
    assert world.rejects() == base.first_rejects
    world.assert_quiet()
    return comparison


def faulted(world: TwoWayWorld, route: str) -> list[dict[str, Any]]:
    """The MOCO log entries of ``POST route`` answered with an error or after the client's
    timeout (the sandbox logs a stalled answer with its duration)."""
    return [
        e
        for e in world.moco_log()
        if e["method"] == "POST"
        and e["path"] == route
        and (e["status"] >= 500 or e["duration"] >= 2)
    ]


def adopted(stderr: str) -> int:
    """How many creates target-moco found in MOCO and adopted instead of sending them again."""
    return sum(1 for line in stderr.splitlines() if "; adopted " in line)


# --- creates committed, answer lost ------------------------------------------------------------
ROUTES = {"person": "/api/v1/contacts/people", "comment": "/api/v1/comments"}
# Each fault lets the requests it sees pass first; one that fires hides the request from those
# after it in the list.
SPREAD = {"person": (0, 1, 2), "comment": (0, 4, 8)}
LOOKS = {"person": "GET /contacts/people?term=...", "comment": "GET /comments of the person"}
ANSWERS = {
    "5xx": ({"kind": "commit_then_status", "status": 502}, None, "then answered 502"),
    "timeout": (
        {"kind": "commit_then_slow", "delay": 2.5},
        {"request_timeout": 1},
        "then stalled 2.5 s past the 1 s client timeout",
    ),
}


@pytest.mark.parametrize("what", list(ROUTES))
@pytest.mark.parametrize("answer", list(ANSWERS))
def test_a_moco_create_committed_without_its_answer_is_adopted_not_sent_again(
    two_way_world: Callable[..., TwoWayWorld],
    two_way_baseline: Callable[[], TwoWayBaseline],
    record: Callable[..., Row],
    what: str,
    answer: str,
) -> None:
    base = two_way_baseline()
    world = two_way_world()
    fault, settings, how = ANSWERS[answer]
    route = ROUTES[what]
    # Three creates spread over the run: of the 7 people, the 1st, 3rd and 5th; of the 14
    # comments, the 1st, 6th and 11th (notes, tasks and appointments).
    world.moco_faults(
        *(
            {**fault, "method": "POST", "path": f"^{route}$", "times": 1, "after": after}
            for after in SPREAD[what]
        )
    )
    cycle = world.cycle(reverse_target=settings)
    assert cycle.ok, cycle.describe()
    # The sandbox logs a request when it answers: a stalled create lands in the log 2.5 s after
    # it was sent, which can be after the cycle has ended.
    wait_for(lambda: len(faulted(world, route)) >= 3, timeout=10)
    hit = faulted(world, route)
    assert len(hit) == 3, hit
    assert adopted(cycle.reverse.stderr) == 3, cycle.reverse.stderr[-3000:]
    kinds = Counter(comment_kind(e["body"]["text"]) for e in hit) if what == "comment" else {}
    comparison = assert_like_clean_cycles(world, base)
    record(
        case=f"moco-{what}-create-{answer}",
        area="MOCO writes",
        fault=f"{what} create committed, then "
        + ("a 5xx answer" if answer == "5xx" else "a timeout"),
        injection=f"3 POST {route.removeprefix('/api/v1')} stored by the sandbox, {how}"
        + (f" ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})" if kinds else ""),
        outcome=f"target-moco looked ({LOOKS[what]}) before creating again, found and adopted "
        "each; the cycle completed; the next cycle wrote nothing",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


# --- 429 storms ----------------------------------------------------------------------------------
def statuses(world: TwoWayWorld) -> Counter[int]:
    return Counter(e["status"] for e in world.moco_log())


def test_a_429_storm_on_moco_is_waited_out(
    two_way_world: Callable[..., TwoWayWorld],
    two_way_baseline: Callable[[], TwoWayBaseline],
    record: Callable[..., Row],
) -> None:
    base = two_way_baseline()
    world = two_way_world()
    # MOCO's own 429 carries no Retry-After: the client backs off exponentially.
    world.moco_faults({"kind": "status", "status": 429, "times": 8, "after": 10})
    cycle = world.cycle()
    assert cycle.ok, cycle.describe()
    assert statuses(world)[429] == 8
    assert "retrying in" in cycle.reverse.stderr
    comparison = assert_like_clean_cycles(world, base)
    record(
        case="moco-write-429-storm",
        area="MOCO writes",
        fault="429 storm while target-moco writes",
        injection="8 consecutive MOCO requests (reads, creates, updates) answered 429 without "
        "Retry-After, as MOCO answers",
        outcome=f"{times(8, 429)} waited out with exponential backoff, creates included (a 429 "
        "stores nothing); one cycle completed; the next cycle wrote nothing",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_a_429_storm_longer_than_the_retries_stops_the_run_cleanly(
    two_way_world: Callable[..., TwoWayWorld],
    two_way_baseline: Callable[[], TwoWayBaseline],
    record: Callable[..., Row],
) -> None:
    base = two_way_baseline()
    world = two_way_world()
    # Retry-After: 1 keeps the six tries of each request to seconds instead of a minute.
    world.moco_faults(
        {"kind": "status", "status": 429, "headers": {"Retry-After": "1"}, "times": -1, "after": 15}
    )
    stopped = world.run_reverse()
    assert stopped.target_returncode not in (0, None), stopped.describe()
    assert stopped.states == [] and world.reverse_state is None  # no state passed on
    assert "the account's rate limit is used up" in stopped.stderr, stopped.describe()
    written = world.moco_writes()
    at_stop = world.sides().counts()
    world.moco_faults()  # the storm is over
    rerun = world.cycle()
    assert rerun.ok, rerun.describe()
    comparison = assert_like_clean_cycles(world, base)
    record(
        case="moco-write-429-storm-outlasting",
        area="MOCO writes",
        fault="429 storm longer than the client's retries",
        injection="every MOCO request after the 15th answered 429 (Retry-After: 1), for good",
        outcome=f"run stopped after {len([w for w in written if w['status'] < 300])} writes "
        "with 'the account's rate limit is used up', no state passed on; once the storm was "
        "over the next cycle completed, both sides equal to clean cycles; the one after wrote "
        "nothing",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
        detail={"at_stop": at_stop},
    )
