"""Conflicting edits made while a two-way cycle runs: a person working in MOCO's web UI and
another client of the Contacts API change the same people and notes at the moment the sync reads
or writes them.

Afterwards both sides must agree on every edited field, no edit may be lost silently (the newest
edit wins, as the most_recent policy says, or the cycle counted a conflict for that stream),
nothing is duplicated or lost, and the next cycles converge to one that writes nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from moco_api.html import html_to_text
from tests.hooks import Hook

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import Request
    from tests.reliability.harness import Row
    from tests.reliability.two_way import Cycle, Sides, TwoWayBaseline, TwoWayWorld

MOCO_FIELDS = {"firstName": "firstname", "lastName": "lastname"}
_order = itertools.count()


@dataclass(frozen=True)
class Pair:
    """A CRM record and the MOCO record the ledger links it to."""

    kind: str  # contact or note
    crm_id: str
    moco_id: str
    crm_parent: str | None = None


@dataclass
class Edit:
    """One change a person made on one side, in the order they were made."""

    pair: Pair
    name: str  # the CRM field: firstName, lastName, body
    side: str  # crm or moco
    value: str
    seq: int = field(default_factory=lambda: next(_order))


def pairs(world: TwoWayWorld, before: Sides, kind: str, *, origin: str) -> list[Pair]:
    """Linked pairs of ``kind`` whose record was on the ``origin`` side only ``before`` the
    first cycle (the sync made the other), by CRM id."""
    crm_kind, moco_kind = ("contacts", "contacts") if kind == "contact" else ("notes", "comments")
    crm_ids = {str(r["id"]) for r in before.crm[crm_kind]}
    moco_ids = {str(r["id"]) for r in before.moco[moco_kind]}
    return sorted(
        (
            Pair(kind, r["crm_id"], r["moco_id"], r["crm_parent"])
            for r in world.ledger_rows("links")
            if r["crm_type"] == kind
            and r["crm_id"]
            and r["moco_id"]
            and (r["crm_id"] in crm_ids) == (origin == "crm")
            and (r["moco_id"] in moco_ids) == (origin == "moco")
        ),
        key=lambda p: p.crm_id,
    )


def crm_edit(world: TwoWayWorld, pair: Pair, name: str, value: str) -> Edit:
    if pair.kind == "contact":
        world.contacts_api("PUT", f"/contacts/{pair.crm_id}", json={name: value})
    else:
        world.contacts_api(
            "PUT", f"/contacts/{pair.crm_parent}/notes/{pair.crm_id}", json={"body": value}
        )
    return Edit(pair, name, "crm", value)


def moco_edit(world: TwoWayWorld, pair: Pair, name: str, value: str) -> Edit:
    if pair.kind == "contact":
        world.moco_web_ui("PUT", f"/people/{pair.moco_id}", {MOCO_FIELDS[name]: value})
    else:
        world.moco_web_ui("PUT", f"/comments/{pair.moco_id}", {"text": f"<div>{value}</div>"})
    return Edit(pair, name, "moco", value)


def values(world: TwoWayWorld, pair: Pair, name: str) -> tuple[str, str]:
    """(CRM value, MOCO value) of one field of a pair, as each side shows it."""
    sides = world.sides()
    if pair.kind == "contact":
        crm = next(c for c in sides.crm["contacts"] if c["id"] == pair.crm_id)
        person = next(p for p in sides.moco["contacts"] if str(p["id"]) == pair.moco_id)
        return str(crm.get(name) or ""), str(person.get(MOCO_FIELDS[name]) or "")
    note = next(n for n in sides.crm["notes"] if n["id"] == pair.crm_id)
    comment = next(c for c in sides.moco["comments"] if str(c["id"]) == pair.moco_id)
    return note["body"], html_to_text(comment["text"]) or ""


def conflicts(cycles: list[Cycle], stream: str) -> int:
    return sum(
        sum((run.summary or {}).get("conflicts", {}).get(stream, {}).values())
        for cycle in cycles
        for run in (cycle.reverse, cycle.forward)
    )


@dataclass
class Outcome:
    """What became of the edits of one field."""

    edits: list[Edit]
    final: str
    newest_won: bool
    conflicts: int


def judge(world: TwoWayWorld, edits: list[Edit], cycles: list[Cycle]) -> list[Outcome]:
    """Per edited field: both sides agree; the newest edit won, or a conflict was counted (an
    edit on one side only must simply win)."""
    outcomes = []
    keys = sorted({(e.pair, e.name) for e in edits}, key=lambda k: (k[0].crm_id, k[1]))
    for pair, name in keys:
        made = sorted((e for e in edits if (e.pair, e.name) == (pair, name)), key=lambda e: e.seq)
        crm, moco = values(world, pair, name)
        assert crm == moco, f"{pair} {name}: the CRM shows {crm!r}, MOCO {moco!r}"
        assert crm in {e.value for e in made}, f"{pair} {name}: {crm!r} is no edit's value"
        counted = conflicts(cycles, "contacts" if pair.kind == "contact" else "notes")
        newest = made[-1].value == crm
        if len({e.side for e in made}) == 1 or not counted:
            assert newest, f"{pair} {name}: {crm!r} won over the newer {made[-1].value!r} silently"
        outcomes.append(Outcome(made, crm, newest, counted))
    return outcomes


def converge(world: TwoWayWorld, cycles: list[Cycle], *, max_cycles: int = 3) -> int:
    """Cycles until one writes nothing (it must come within ``max_cycles``); returns how many
    cycles with writes came before it."""
    for n in range(max_cycles):
        cycle = world.cycle()
        assert cycle.ok, cycle.describe()
        cycles.append(cycle)
        if cycle.writes() == ([], []):
            return n
    raise AssertionError(f"still writing after {max_cycles} cycles: {cycles[-1].writes()}")


def assert_nothing_lost_or_doubled(world: TwoWayWorld, base: TwoWayBaseline) -> None:
    sides = world.sides()
    assert sides.counts() == base.first.counts()
    assert world.two_way_problems(sides) == []
    assert world.rejects() == base.first_rejects


def first_request(
    path: str, method: str | None = None, *, exact: bool = False
) -> Callable[[Request], bool]:
    """A request under ``path`` (``exact``: to ``path`` itself), with ``method`` if given."""

    def matches(request: Request) -> bool:
        where = request.path == path if exact else request.path.startswith(path)
        return where and method in (None, request.method)

    return matches


# --- the cases ---------------------------------------------------------------------------------
def test_edits_on_both_sides_while_target_moco_writes(
    two_way_world: Callable[..., TwoWayWorld],
    two_way_baseline: Callable[[], TwoWayBaseline],
    record: Callable[..., Row],
) -> None:
    base = two_way_baseline()
    world = two_way_world()
    before = world.sides()
    first = world.cycle()
    assert first.ok, first.describe()
    anna, other = pairs(world, before, "contact", origin="crm")[:2]
    note = pairs(world, before, "note", origin="crm")[0]
    edits = [
        crm_edit(world, anna, "firstName", "Anna-CRM"),
        crm_edit(world, note, "body", "Rückruf vereinbart (CRM)"),
    ]

    def in_moco_web_ui(_request: Request) -> None:
        edits.extend(
            [
                moco_edit(world, anna, "firstName", "Anna-MOCO"),
                moco_edit(world, note, "body", "Rückruf verschoben (MOCO)"),
                moco_edit(world, other, "lastName", "Nur-in-MOCO"),
            ]
        )

    # The moment target-moco sends its first MOCO request of the cycle.
    hook = Hook(world.moco, first_request("/api/v1/"), in_moco_web_ui, when="before")
    cycles = [world.cycle()]
    hook.uninstall()
    assert hook.done.is_set() and cycles[0].ok, cycles[0].describe()
    extra = converge(world, cycles)
    outcomes = judge(world, edits, cycles)
    assert_nothing_lost_or_doubled(world, base)
    record(
        case="two-way-conflict-during-reverse",
        area="Two-way",
        fault="the same fields edited on both sides while target-moco writes",
        injection="CRM: a contact's first name and a note edited via the API before the cycle; "
        "MOCO web UI, at target-moco's first request: the same first name and the note's "
        "comment, plus another person's last name",
        outcome=_outcome(outcomes, extra),
        lost=0,
        duplicates=0,
        detail={"outcomes": [_describe(o) for o in outcomes]},
    )


def test_edits_on_both_sides_while_target_contacts_writes(
    two_way_world: Callable[..., TwoWayWorld],
    two_way_baseline: Callable[[], TwoWayBaseline],
    record: Callable[..., Row],
) -> None:
    base = two_way_baseline()
    world = two_way_world()
    before = world.sides()
    first = world.cycle()
    assert first.ok, first.describe()
    bea, carl = pairs(world, before, "contact", origin="moco")[:2]
    note = pairs(world, before, "note", origin="moco")[0]
    edits = [
        moco_edit(world, bea, "lastName", "Bea-MOCO"),
        moco_edit(world, note, "body", "Angebot geschickt (MOCO)"),
        moco_edit(world, carl, "firstName", "Carl-MOCO"),
    ]

    def in_the_crm(_request: Request) -> None:
        edits.append(crm_edit(world, bea, "lastName", "Bea-CRM"))

    def note_in_the_crm(_request: Request) -> None:
        edits.append(crm_edit(world, note, "body", "Angebot angenommen (CRM)"))

    def between_read_and_write(_request: Request) -> None:
        # Another field of the contact the sync has read and is about to write.
        edits.append(crm_edit(world, carl, "lastName", "Carl-CRM"))

    # Just before target-contacts reads Bea, and the note, to merge (after target-moco's run of
    # this cycle, so only target-contacts can see both edits), and the moment its PUT of Carl
    # arrives (the sync read Carl before the other client's write: a partial update must keep
    # that other field).
    # An edit of the same field between the read and the write is overwritten, as
    # docs/reliability.md says: neither API has a conditional update.
    # The contact itself, not a path under it: the reverse pipe's tap reads a changed contact's
    # notes and appointments (GET /contacts/{id}/notes) before target-contacts runs.
    hooks = [
        Hook(
            world.contacts,
            first_request(f"/contacts/{bea.crm_id}", "GET", exact=True),
            in_the_crm,
            when="before",
        ),
        Hook(
            world.contacts,
            first_request(f"/contacts/{note.crm_parent}/notes/{note.crm_id}", "GET", exact=True),
            note_in_the_crm,
            when="before",
        ),
        Hook(
            world.contacts,
            first_request(f"/contacts/{carl.crm_id}", "PUT", exact=True),
            between_read_and_write,
            when="before",
        ),
    ]
    cycles = [world.cycle()]
    for hook in reversed(hooks):
        hook.uninstall()
    assert all(h.done.is_set() for h in hooks) and cycles[0].ok, cycles[0].describe()
    extra = converge(world, cycles)
    outcomes = judge(world, edits, cycles)
    assert_nothing_lost_or_doubled(world, base)
    record(
        case="two-way-conflict-during-forward",
        area="Two-way",
        fault="the same fields edited on both sides while target-contacts writes",
        injection="MOCO web UI before the cycle: a person's last name, another's first name, a "
        "comment; CRM API just before target-contacts reads the first person: the same last "
        "name, and just before it reads the comment's note: that note; when its PUT of the "
        "second arrives: that contact's last name",
        outcome=_outcome(outcomes, extra),
        lost=0,
        duplicates=0,
        detail={"outcomes": [_describe(o) for o in outcomes]},
    )


def _describe(o: Outcome) -> str:
    made = " then ".join(f"{e.side} {e.name}={e.value!r}" for e in o.edits)
    return f"{made}: {o.final!r} on both sides ({o.conflicts} conflict(s) counted)"


def _outcome(outcomes: list[Outcome], extra: int) -> str:
    both = [o for o in outcomes if len({e.side for e in o.edits}) > 1]
    newest = sum(1 for o in both if o.newest_won)
    return (
        f"{len(outcomes)} edited fields agree on both sides; {len(outcomes) - len(both)} edited "
        f"on one side arrived on the other; of {len(both)} edited on both, {newest} kept the "
        f"newest edit, the others were counted as conflicts; {extra} more cycle(s) carried the "
        "last edits, then a cycle wrote nothing"
    )
