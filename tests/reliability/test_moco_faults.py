"""MOCO faults while the real pipeline runs: 429s, 5xx, records changed while the tap pages
through them, a bad API key. The CRM is checked against what the mapping in meltano.yml promises
for MOCO's data (:func:`expected_crm`), computed independently of the target."""

from __future__ import annotations

from collections import Counter
from typing import Any

import requests

from tests.hooks import Hook
from tests.reliability.harness import (
    World,
    assert_like_clean_run,
    compare,
    expected_crm,
    times,
)
from tests.timing import SANDBOX_WINDOW_SHARE

N, SEED = 40, 7


def moco_statuses(world: World) -> Counter[int]:
    return Counter(e["status"] for e in world.moco_log())


def test_moco_429s_are_waited_out(world_factory, baseline, record):
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED)
    world.moco_faults(
        {"kind": "status", "status": 429, "headers": {"Retry-After": "1"}, "times": 3, "after": 2}
    )
    run = world.run(tap={"page_size": 10})
    assert run.ok, run.describe()
    assert moco_statuses(world)[429] == 3
    assert "after 429 Too Many Requests" in run.tap_stderr  # the retry says why it waits
    comparison = assert_like_clean_run(world, base)
    record(
        case="moco-429",
        area="MOCO",
        fault="429 answers",
        injection="3 consecutive MOCO requests answered 429 with Retry-After: 1",
        outcome="the tap waited and repeated them; one run completed",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_moco_rate_limit_is_kept_by_design(world_factory, baseline, record):
    base = baseline(N, SEED)
    # The sandbox counts over a share of the tap's window (its exact spacing is held on a fake
    # clock in tests/tap/test_http.py), so scheduling delays cannot turn into a 429.
    window = 2.0 * SANDBOX_WINDOW_SHARE
    world = world_factory(
        n_contacts=N, seed=SEED, latency=0.0, moco={"rate_limit": 4, "rate_window": window}
    )
    run = world.run(tap={"page_size": 10, "rate_limit_requests": 4, "rate_limit_window_seconds": 2})
    assert run.ok, run.describe()
    served = moco_statuses(world)
    assert served[429] == 0 and served[200] > 4  # several windows, never over the limit
    comparison = assert_like_clean_run(world, base)
    record(
        case="moco-rate-limit",
        area="MOCO",
        fault="MOCO rate limit (kept by design)",
        injection=f"sandbox allows 4 requests / {window:.1f} s; tap configured with 4 / 2 s "
        "(its exact spacing is tested on a fake clock)",
        outcome=f"{served[200]} requests over several windows, {times(0, 429)}",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_moco_5xx_are_retried(world_factory, baseline, record):
    base = baseline(N, SEED)
    world = world_factory(n_contacts=N, seed=SEED)
    world.moco_faults(
        {"kind": "status", "status": 503, "times": 1, "after": 3},
        {"kind": "status", "status": 502, "times": 1, "after": 7},
    )
    run = world.run(tap={"page_size": 10})
    assert run.ok, run.describe()
    assert moco_statuses(world)[503] == 1 and moco_statuses(world)[502] == 1
    assert "after 503 Service Unavailable" in run.tap_stderr
    comparison = assert_like_clean_run(world, base)
    record(
        case="moco-5xx",
        area="MOCO",
        fault="5xx answers",
        injection="one list page answered 503, a later one 502",
        outcome="each repeated after a wait (exponential backoff); one run completed",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_moco_bad_key_fails_clearly_and_writes_nothing(world_factory, record):
    world = world_factory(n_contacts=10, seed=SEED)
    bad_key = "wrong-key-Pq83Zx71"
    world.evidence.secret(bad_key)
    run = world.run(tap={"api_key": bad_key})
    assert run.tap_returncode != 0
    assert (
        "MOCO rejected the API key (401 Unauthorized): check the tap-moco api_key setting"
        in run.tap_stderr
    )
    assert run.states == []
    assert world.writes() == [] and world.contacts_log() == []
    record(
        case="moco-bad-key",
        area="MOCO",
        fault="bad API key",
        injection="tap-moco api_key set to a key MOCO refuses (401)",
        outcome="the tap stops at the first request: 'MOCO rejected the API key (401 "
        "Unauthorized): check the tap-moco api_key setting'; no state, 0 writes",
        lost=0,
        duplicates=0,
    )


# --- records changed while the tap pages through them --------------------------------------------
def reachable(person: dict[str, Any]) -> bool:
    return bool(
        person["work_email"]
        or person["home_email"]
        or person["work_phone"]
        or person["mobile_phone"]
    )


def during_contacts_page_2(world: World, change) -> Hook:
    return Hook(
        world.moco,
        lambda r: r.path.endswith("/contacts/people") and r.arg("page") == "2",
        lambda _r: change(),
    )


def converge(world: World, extra_contacts: list[dict[str, Any]], *, third_run: bool = False) -> Any:
    """The second run from the saved state (and a third that must write nothing); returns the
    comparison after the second run."""
    moco = world.moco_state()
    moco["contacts"] += extra_contacts  # synced before MOCO deleted them: the CRM keeps them
    want = expected_crm(moco)
    second = world.run(tap={"page_size": 5})
    assert second.ok, second.describe()
    comparison = compare(want, world.crm())
    assert comparison.exact, comparison.explain()
    if third_run:
        world.clear_logs()
        third = world.run(tap={"page_size": 5})
        assert third.ok and world.writes() == []
    return comparison


def test_contact_deleted_while_paged_shifts_a_record_and_the_next_run_gets_it(
    world_factory, record
):
    world = world_factory(n_contacts=N, seed=SEED)
    page_one = world.moco_api("GET", "/contacts/people", params={"per_page": 5})
    victim = next(p for p in page_one if reachable(p))
    hook = during_contacts_page_2(
        world, lambda: world.moco_api("DELETE", f"/contacts/people/{victim['id']}")
    )
    first = world.run(tap={"page_size": 5})
    hook.uninstall()
    assert first.ok and hook.done.is_set()
    assert "The contacts list changed while it was paged (X-Total 39 / 40" in first.tap_stderr
    missed = compare(
        expected_crm({**world.moco_state(), "contacts": [*world.moco_state()["contacts"], victim]}),
        world.crm(),
    ).total_lost
    comparison = converge(world, [victim], third_run=True)
    record(
        case="moco-paging-delete",
        area="MOCO",
        fault="record deleted while the tap pages (pages shift)",
        injection="a contact of page 1 deleted in MOCO while page 2 (of 5 per page) is read",
        outcome=f"run 1 missed {missed} record(s), saw X-Total move and kept the bookmark; "
        "run 2 got them; run 3 wrote nothing",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_delete_and_add_while_paged_keeps_the_total_and_still_nothing_is_lost(
    world_factory, record
):
    world = world_factory(n_contacts=N, seed=SEED)
    page_one = world.moco_api("GET", "/contacts/people", params={"per_page": 5})
    victim = next(p for p in page_one if reachable(p))

    def delete_one_add_one() -> None:
        world.moco_api("DELETE", f"/contacts/people/{victim['id']}")
        world.moco_api(
            "POST",
            "/contacts/people",
            json={
                "firstname": "Zora",
                "lastname": "Zyzzyva",
                "gender": "F",
                "work_email": "zora.zyzzyva@example.com",
            },
        )  # sorts last: read in this pass

    hook = during_contacts_page_2(world, delete_one_add_one)
    first = world.run(tap={"page_size": 5})
    hook.uninstall()
    assert first.ok and hook.done.is_set()
    assert "records changed since the read began: yes" in first.tap_stderr
    missed = compare(
        expected_crm({**world.moco_state(), "contacts": [*world.moco_state()["contacts"], victim]}),
        world.crm(),
    ).total_lost
    comparison = converge(world, [victim])
    record(
        case="moco-paging-delete-add",
        area="MOCO",
        fault="record deleted and another added while the tap pages (X-Total unchanged)",
        injection="page-1 contact deleted and a contact sorting last added while page 2 is read",
        outcome=f"run 1 missed {missed} record(s); a record changed after the read began "
        "kept the bookmark; run 2 got them",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )


def test_rename_completion_and_edit_while_paged_land_on_the_next_run(world_factory, record):
    world = world_factory(n_contacts=N, seed=SEED)
    people = world.moco_api("GET", "/contacts/people", params={"per_page": 100})
    mover = next(p for p in reversed(people) if reachable(p))  # on the last page
    moco = world.moco_state()
    todo = min(
        (t for t in moco["todos"] if t["todoable_type"] == "Contact" and not t["completed"]),
        key=lambda t: t["id"],
    )  # on the first /todos page
    comment = max(
        (c for c in moco["comments"] if c["commentable_type"] == "Contact" and c["manual"]),
        key=lambda c: c["created_at"],
    )  # first /comments page

    def change() -> None:
        world.moco_api("PUT", f"/contacts/people/{mover['id']}", json={"lastname": "Aachen"})

    contact_hook = during_contacts_page_2(world, change)
    todo_hook = Hook(
        world.moco,
        lambda r: r.path.endswith("/todos") and r.arg("page") == "2",
        lambda _r: requests.put(
            f"{world.moco.url}/_sandbox/todos/{todo['id']}", json={"completed": True}, timeout=30
        ),
    )
    comment_hook = Hook(
        world.moco,
        lambda r: r.path.endswith("/comments") and r.arg("page") == "2",
        lambda _r: world.moco_api(
            "PUT", f"/comments/{comment['id']}", json={"text": "<div>Neu: Termin 🗓</div>"}
        ),
    )
    first = world.run(tap={"page_size": 5})
    for hook in (comment_hook, todo_hook, contact_hook):
        hook.uninstall()
    assert (
        first.ok
        and contact_hook.done.is_set()
        and todo_hook.done.is_set()
        and comment_hook.done.is_set()
    )
    stale = compare(expected_crm(world.moco_state()), world.crm())
    assert stale.differing["tasks"] or stale.lost["tasks"]  # run 1 saw the old to-do
    comparison = converge(world, [])
    record(
        case="moco-paging-changes",
        area="MOCO",
        fault="records changed while the tap pages (rename, completion, edit)",
        injection="last-page contact renamed to sort first, a first-page to-do completed, a "
        "first-page comment edited, each while page 2 of its list is read",
        outcome="run 1 wrote the versions it read; run 2 (from the saved state) wrote the changes",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
    )
