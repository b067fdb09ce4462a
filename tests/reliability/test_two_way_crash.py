"""Crashes in two-way cycles: SIGKILL ``tap-contacts | target-moco`` at named, seeded points of
its MOCO writes (and ``tap-moco | target-contacts`` at a few of its CRM writes) during a two-way
cycle, rerun, and find both sides exactly as clean cycles leave them; the cycle after that
writes nothing on either API.

A point names the kind of MOCO request (a person create, a tagging, the comment of a CRM note,
task or appointment, a comment update), the moment (*before* the request is applied, *after* it
was committed with its answer lost, or *next*: the answer arrived and the process dies at its
next request, after the ledger recorded it; the target runs one writer for those points) and a
seed that draws which of the clean run's requests of that kind it is. The MOCO sandbox sends the
SIGKILL the moment that request arrives, so every point lands exactly where it says; the test
checks that it did (the ledger at the kill) before it reruns.
"""

from __future__ import annotations

import random
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from tests.reliability.harness import KillSwitch, Row
from tests.reliability.two_way import (
    TwoWayBaseline,
    TwoWayWorld,
    change_crm,
    comment_create,
    comment_update,
    compare_sides,
    contact_create,
    logged,
    namesake_create,
    note_create,
    on_request,
    person_create,
    person_update,
    tagging,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import Request


@dataclass(frozen=True)
class Point:
    """Where a kill lands: the kind of MOCO write, the moment, the seed, the cycle."""

    what: str
    matches: Callable[[str, str, Any], bool]
    phase: str
    seed: int
    changed: bool = False  # in the cycle after change_crm (else the first cycle)

    @property
    def forward(self) -> bool:
        """A write of target-contacts (the cycle's second run), not of target-moco."""
        return self.what.startswith("CRM ")

    @property
    def name(self) -> str:
        stage = "changed" if self.changed else "first"
        return f"{stage}-{self.what.replace(' ', '-')}-{self.phase}-{self.seed}"

    def k(self, base: TwoWayBaseline) -> tuple[int, int]:
        """(k, n): the seeded k-th of the n requests of this kind a clean run makes."""
        if self.forward:
            log = base.first_crm_writes
        else:
            log = base.changed_moco_writes if self.changed else base.first_moco_writes
        n = logged(self.matches, log)
        assert n, f"a clean run makes no {self.what}"
        return random.Random(self.seed).randint(1, n), n  # noqa: S311  reproducible points


PERSON, TAGGING, UPDATE = "person create", "tagging", "person update"
NAMESAKE = "create of a person with a MOCO namesake"
NOTE, TASK, APPOINTMENT = "note comment create", "task comment create", "appointment comment create"
COMMENT_UPDATE = "comment update"
CONTACT, CRM_NOTE = "CRM contact create", "CRM note create"
MATCHERS: dict[str, Callable[[str, str, Any], bool]] = {
    CONTACT: contact_create,
    CRM_NOTE: note_create,
    PERSON: person_create,
    NAMESAKE: namesake_create,
    TAGGING: tagging,
    UPDATE: person_update,
    NOTE: comment_create("note"),
    TASK: comment_create("task"),
    APPOINTMENT: comment_create("appointment"),
    COMMENT_UPDATE: comment_update,
}


def point(what: str, phase: str, seed: int, *, changed: bool = False) -> Point:
    return Point(what, MATCHERS[what], phase, seed, changed)


# In every run of the suite: a committed person create whose answer is lost, the create of a
# contact that has a namesake in MOCO (a different person: other phone, no e-mail), a kill
# between a person's update and its tagging, a committed note comment, a committed comment
# update, and in the cycle's forward run a committed CRM contact create (the next cycle's
# reverse run comes first and meets that contact).
DEFAULT_POINTS = (
    point(PERSON, "after", 11),
    point(NAMESAKE, "before", 15),
    point(TAGGING, "before", 12),
    point(NOTE, "after", 13),
    point(COMMENT_UPDATE, "after", 14, changed=True),
    point(CONTACT, "after", 16),
)
SLOW_POINTS = (
    point(CRM_NOTE, "after", 20),
    point(PERSON, "before", 21),
    point(PERSON, "next", 22),
    point(NAMESAKE, "after", 29),
    point(TAGGING, "after", 23),
    point(TASK, "after", 24),
    point(APPOINTMENT, "before", 25),
    point(NOTE, "next", 26),
    point(COMMENT_UPDATE, "before", 27, changed=True),
    point(TAGGING, "before", 28, changed=True),
)


# --- where the kill landed ---------------------------------------------------------------------
IDENTITY = ("firstname", "lastname", "work_email", "work_phone")


def _crm_contact_id(world: TwoWayWorld, body: Any) -> str:
    """The CRM contact a person create was made from (by e-mail, else phone, else name)."""
    crm = world.crm()["contacts"]
    if body.get("work_email"):
        return next(c["id"] for c in crm if c.get("email") == body["work_email"])
    if body.get("work_phone"):
        return next(c["id"] for c in crm if c.get("phone") == body["work_phone"])
    return next(c["id"] for c in crm if c.get("lastName") == body["lastname"])


def _person_created(world: TwoWayWorld, phase: str, body: Any, answer: Any) -> str:
    crm_id = _crm_contact_id(world, body)
    links = world.reverse_links()
    link = next(r for r in links if r["kind"] == "contact" and r["crm_id"] == crm_id)
    stored = [
        p
        for p in world.moco_state()["contacts"]
        if all((p.get(k) or "") == body.get(k, "") for k in IDENTITY)
    ]
    if phase == "before":
        assert stored == [] and link["state"] == "creating", (stored, link)
        return "not stored; ledger: intent 'creating'"
    assert [p["id"] for p in stored] == [answer["id"]]
    if phase == "after" or (phase == "next" and link["state"] == "creating"):
        # "next": the written row may still ride with the thread's next ledger write
        # (IdLedger.carrying); a kill before that leaves what a lost answer leaves.
        assert link["state"] == "creating" and link["moco_id"] is None, link
        if phase == "next":
            return "person stored, its written row carried, not yet committed; ledger: 'creating'"
        return "person stored, answer lost; ledger: still 'creating', no MOCO id"
    assert link["state"] == "written" and link["moco_id"] == str(answer["id"]), link
    return "person stored and recorded in the ledger"


def _comment_created(world: TwoWayWorld, phase: str, body: Any, answer: Any) -> str:
    on_person = [
        c
        for c in world.moco_state()["comments"]
        if c["commentable_id"] == body["commentable_id"] and c["text"] == body["text"]
    ]
    recorded = [r for r in world.reverse_links() if r["moco_id"] == str(answer.get("id"))]
    if phase == "before":
        assert on_person == [], on_person
        return "comment not stored"
    assert [c["id"] for c in on_person] == [answer["id"]]
    if phase == "after" or (phase == "next" and recorded == []):  # "next": see _person_created
        assert recorded == [], recorded
        if phase == "next":
            return "comment stored, its written row carried, not yet committed"
        return "comment stored, answer lost; the ledger does not know its id"
    assert [r["state"] for r in recorded] == ["written"], recorded
    return "comment stored and recorded in the ledger"


def _changed(
    world: TwoWayWorld, phase: str, kind: str, record_id: str, applied: Callable[[Any], bool]
) -> bool:
    stored = next(r for r in world.moco_state()[kind] if str(r["id"]) == record_id)
    done = applied(stored)
    assert done == (phase != "before"), (phase, stored)
    return done


def landed(world: TwoWayWorld, kill: KillSwitch) -> str:
    """Check that the kill came where its point says (MOCO and the ledger at the kill); returns
    what was found, in words."""
    hit: Request | None = kill.hit
    assert hit is not None
    body = hit.json() or {}
    answer = (kill.answer.body or {}) if kill.answer is not None else {}
    record_id = hit.path.rsplit("/", 1)[1]
    if person_create(hit.method, hit.path):
        return _person_created(world, kill.phase, body, answer)
    if hit.method == "POST" and hit.path == "/api/v1/comments":
        return _comment_created(world, kill.phase, body, answer)
    if tagging(hit.method, hit.path):
        wanted = {t.casefold() for t in body["tags"]}
        tagged = _changed(
            world,
            kill.phase,
            "contacts",
            record_id,
            lambda p: wanted <= {t.casefold() for t in p["tags"]},
        )
        return "tags stored, answer lost" if tagged else "person written, its tags not"
    if comment_update(hit.method, hit.path):
        changed = _changed(
            world, kill.phase, "comments", record_id, lambda c: c["text"] == body["text"]
        )
        return "new text stored, answer lost" if changed else "comment unchanged"
    raise AssertionError(f"no check for {hit.method} {hit.path}")


def landed_in_the_crm(world: TwoWayWorld, kill: KillSwitch) -> str:
    """Check that a kill in the forward run came where its point says (the CRM and the ledger
    at the kill); returns what was found, in words."""
    hit: Request | None = kill.hit
    assert hit is not None
    answer = (kill.answer.body or {}) if kill.answer is not None else {}
    created = next(iter(answer.values()), {}) if isinstance(answer, dict) else {}
    kind = "contacts" if contact_create(hit.method, hit.path) else "notes"
    stored = {str(r["id"]) for r in world.crm()[kind]}
    recorded = [r for r in world.forward_links() if r["target_id"] == created.get("id")]
    if kill.phase == "before":
        return "not stored"
    assert created.get("id") in stored, (created, hit.path)
    if kill.phase == "after" or (kill.phase == "next" and recorded == []):
        assert recorded == [], recorded  # "next": see _person_created
        if kill.phase == "next":
            return "stored, its written row carried, not yet committed"
        return "stored, answer lost; the ledger does not know its id"
    assert [r["state"] for r in recorded] == ["written"], recorded
    return "stored and recorded in the ledger"


# --- the test -----------------------------------------------------------------------------------
def crash_and_rerun(
    two_way_world: Callable[..., TwoWayWorld],
    base: TwoWayBaseline,
    p: Point,
    record: Callable[..., Row],
) -> None:
    k, n = p.k(base)
    world = two_way_world()
    expected, expected_rejects = base.first, base.first_rejects
    if p.changed:
        first = world.cycle()
        assert first.ok, first.describe()
        change_crm(world)
        expected, expected_rejects = base.changed, base.changed_rejects
    # "next" needs one writer: the request after the answer then comes from the same thread.
    target = {"max_concurrency": 1} if p.phase == "next" else None
    if p.forward:
        reverse = world.run_reverse()
        assert reverse.ok, reverse.describe()
        kill = KillSwitch(world.contacts, k, p.phase, counts=on_request(p.matches))
        killed = world.run(kill=kill, target=target)
    else:
        kill = KillSwitch(world.moco, k, p.phase, counts=on_request(p.matches))
        killed = world.run_reverse(kill=kill, target=target)
    kill.uninstall()
    assert killed.killed, f"the kill at {p.what} {k} of {n} never came:\n{killed.describe()}"
    assert killed.target_returncode == -signal.SIGKILL
    found = landed_in_the_crm(world, kill) if p.forward else landed(world, kill)
    at_kill = world.sides().counts()
    if p.forward:
        # The rerun as the job makes it: the reverse run first, then the forward run.
        rerun = world.cycle()
        assert rerun.ok, rerun.describe()
        reruns = [rerun.forward]
    else:
        reruns = world.reverse_until_complete()
        forward = world.run()
        assert forward.ok, forward.describe()
    assert reruns[-1].summary is not None and reruns[-1].summary["adds_up"]
    sides = world.sides()
    comparison = compare_sides(expected, sides)
    assert comparison.exact, comparison.explain()
    assert world.two_way_problems(sides) == []
    assert world.rejects() == expected_rejects
    world.assert_quiet()
    pipe = "tap-moco | target-contacts" if p.forward else "tap-contacts | target-moco"
    record(
        case=f"crash-two-way-{p.name}",
        area="Crash",
        fault=f"SIGKILL of {pipe} during a two-way cycle",
        injection=f"killed at {p.what} {k} of {n}, {p.phase}: {found}",
        outcome=(
            "the next cycle (reverse, then forward) completed"
            if p.forward
            else f"{len(reruns)} rerun(s) and the forward run completed"
        )
        + "; both sides equal to clean cycles; the cycle after wrote nothing",
        lost=comparison.total_lost,
        duplicates=comparison.total_duplicates,
        detail={
            "seed": p.seed,
            "k": k,
            "phase": p.phase,
            "writes": n,
            "point": p.what,
            "crm_at_kill": at_kill,
            "found": found,
            "reruns": len(reruns),
            "kind": "two-way-changed" if p.changed else "two-way",
        },
    )


@pytest.mark.parametrize("p", DEFAULT_POINTS, ids=lambda p: p.name)
def test_sigkill_of_the_reverse_pipe_then_rerun_ends_like_clean_cycles(
    two_way_world, two_way_baseline, record, p
):
    crash_and_rerun(two_way_world, two_way_baseline(), p, record)


@pytest.mark.slow
@pytest.mark.parametrize("p", SLOW_POINTS, ids=lambda p: p.name)
def test_sigkill_of_the_reverse_pipe_at_more_points_then_rerun_ends_like_clean_cycles(
    two_way_world, two_way_baseline, record, p
):
    crash_and_rerun(two_way_world, two_way_baseline(), p, record)
