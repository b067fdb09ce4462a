"""The people directory on its own: when it reads, what it answers, how it stays fresh."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from moco_api.client import PeopleCount
from moco_api.errors import NotFoundError
from target_moco.people import (
    CLOCK_MARGIN_SECONDS,
    MAX_PEOPLE,
    MIN_NEW_CONTACTS,
    PeopleDirectory,
    phone_key,
    same_phone,
)


class FakeMoco:
    """People held in memory; counts the list reads and remembers their filters."""

    def __init__(self, people: list[dict[str, Any]]) -> None:
        self.people = {str(p["id"]): p for p in people}
        self.reads: list[dict[str, str]] = []
        self.gets: list[str] = []
        self.now = datetime(2026, 12, 1, 10, 0, 30, tzinfo=timezone.utc)  # MOCO's clock

    def count_people(self) -> PeopleCount:
        return PeopleCount(len(self.people), self.now)

    def find_people(self, **filters: str) -> list[dict[str, Any]]:
        self.reads.append(filters)
        since = filters.get("updated_after")
        return [
            dict(p)
            for p in self.people.values()
            if since is None or str(p.get("updated_at") or "") > since
        ]

    def get_person(self, person_id: str) -> dict[str, Any]:
        self.gets.append(person_id)
        if person_id not in self.people:
            raise NotFoundError(f"person {person_id} not found", status=404)
        return dict(self.people[person_id])


def person(i: int, **fields: Any) -> dict[str, Any]:
    return {"id": i, "updated_at": "2026-12-01T10:00:00Z", **fields}


def test_auto_reads_only_for_enough_new_contacts_and_when_pages_cost_less():
    few = FakeMoco([person(1, work_email="a@x.example")])
    directory = PeopleDirectory(few)
    assert directory.prepare(MIN_NEW_CONTACTS - 1) is False
    assert few.reads == []
    assert directory.prepare(MIN_NEW_CONTACTS) is True
    assert few.reads == [{}]

    # 4,000 people are 40 pages: worth it for 21 new contacts (42 searches), not for 20 (40).
    many = FakeMoco([person(i) for i in range(1, 4001)])
    assert PeopleDirectory(many).prepare(20) is False
    assert many.reads == []
    assert PeopleDirectory(many).prepare(21) is True
    assert PeopleDirectory(many, mode="never").prepare(10_000) is False
    # Past MAX_PEOPLE, auto keeps searching whatever the batch: the directory's memory is bounded.
    huge = FakeMoco([])
    huge.count_people = lambda: PeopleCount(MAX_PEOPLE + 1, huge.now)  # type: ignore[method-assign]
    assert PeopleDirectory(huge).prepare(10_000) is False
    assert huge.reads == []
    assert PeopleDirectory(FakeMoco([]), mode="always").prepare(1) is True


def test_a_match_is_read_again_and_must_still_hold():
    moco = FakeMoco(
        [
            person(1, work_email="Ana@X.example"),
            person(2, home_email="ana@x.example"),
            person(3, home_email="ana@x.example"),
            person(4, mobile_phone="+49 (0)40 777 2002"),
        ]
    )
    directory = PeopleDirectory(moco, mode="always")
    directory.prepare(1)
    del moco.people["2"]  # deleted in MOCO since the read
    moco.people["3"]["home_email"] = "other@x.example"  # edited since the read
    found = directory.candidates("home_email", " ana@x.EXAMPLE ")
    assert [p["id"] for p in found] == [1]
    assert moco.gets == ["1", "2", "3"]
    # What the confirmations showed replaces what the read said.
    assert directory.candidates("work_email", "ana@x.example") == found
    assert [p["id"] for p in directory.candidates("work_phone", "040 7772002")] == [4]
    assert directory.candidates("work_phone", "040 7772003") == []


def test_people_made_elsewhere_are_read_again_on_mocos_clock():
    now = [1000.0]
    moco = FakeMoco([person(1, work_email="a@x.example", updated_at="2026-12-01T10:00:00Z")])
    directory = PeopleDirectory(moco, mode="always", refresh_seconds=30, clock=lambda: now[0])
    directory.prepare(1)
    # MOCO writes UTC with Z; another offset is read as the same moment.
    moco.people["2"] = person(2, work_email="b@x.example", updated_at="2026-12-01T11:05:00+01:00")
    now[0] += 29
    assert directory.candidates("work_email", "b@x.example") == []  # not due yet
    now[0] += 1
    assert [p["id"] for p in directory.candidates("work_email", "b@x.example")] == [2]
    # From MOCO's time (its Date) before the first read began, not ours, less the margin;
    assert moco.reads[1] == {"updated_after": "2026-12-01T10:00:25Z"}
    assert CLOCK_MARGIN_SECONDS == 5
    # then from the latest change seen when the previous read began (10:05 was seen during it).
    for _ in range(2):
        now[0] += 30
        directory.candidates("work_email", "b@x.example")
    assert moco.reads[2:] == [
        {"updated_after": "2026-12-01T10:00:25Z"},
        {"updated_after": "2026-12-01T10:04:55Z"},
    ]


def test_what_this_run_writes_is_known_at_once_also_in_a_dry_run():
    moco = FakeMoco([])
    directory = PeopleDirectory(moco, mode="always")
    directory.prepare(1)
    # A dry run's answer shows only the placeholder id: what was sent counts.
    directory.wrote("dry-run-000001", {"lastname": "L", "work_email": "c@x.example"}, {"id": "x"})
    moco.people["dry-run-000001"] = {"id": "dry-run-000001", "work_email": "c@x.example"}
    assert [p["id"] for p in directory.candidates("work_email", "c@x.example")] == [
        "dry-run-000001"
    ]
    # A change of e-mail moves the person; its phone, not written, stays known.
    directory.wrote("7", {"work_email": "d@x.example", "work_phone": "030 1234567"}, {})
    directory.wrote("7", {"work_email": "e@x.example"}, {})
    moco.people["7"] = {"id": "7", "work_email": "e@x.example", "work_phone": "030 1234567"}
    assert directory.candidates("work_email", "d@x.example") == []
    assert [p["id"] for p in directory.candidates("work_phone", "+49 30 1234567")] == ["7"]
    directory.forget("7")
    assert directory.candidates("work_email", "e@x.example") == []


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("040 777 2002", "+49 40 777 2002", True),
        ("+49 (0)40 7772002", "0049 40 777 2002", True),
        ("123 45", "12345", True),
        ("0176 1234567", "+49 176 1234567", True),
        ("12345", "012345", True),
        ("040 777 2002", "040 777 2003", False),
    ],
)
def test_phones_that_are_the_same_line_share_a_key(a, b, same):
    assert same_phone(a, b) is same
    assert (phone_key(a) == phone_key(b)) is same


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="auto, always, never"):
        PeopleDirectory(FakeMoco([]), mode="sometimes")


def test_the_person_a_match_read_is_handed_over_once():
    moco = FakeMoco([person(1, work_email="a@x.example")])
    directory = PeopleDirectory(moco, mode="always")
    directory.prepare(1)
    [found] = directory.candidates("work_email", "a@x.example")
    assert directory.just_read("1") == found
    assert directory.just_read("1") is None  # once
    directory.candidates("work_email", "a@x.example")
    directory.candidates("work_email", "nobody@x.example")
    assert directory.just_read("1") is None  # only what the last call read


class CreatingMoco(FakeMoco):
    """FakeMoco that creates people and notes what another process sees in the ledger then."""

    def __init__(self, people: list[dict[str, Any]], url: str) -> None:
        super().__init__(people)
        from sync_ledger.db import make_engine
        from sync_ledger.ledger import Direction, IdLedger

        self.other = IdLedger(make_engine(url), "loc", Direction.REVERSE)
        self.seen: list[tuple[str, set[str]]] = []

    def create_person(self, body: dict[str, Any]) -> dict[str, Any]:
        source = body["lastname"]
        entries = self.other.lookup("contacts", [f"c{i}" for i in range(1, 41)])
        self.seen.append((source, {s for s, e in entries.items() if e.state == "creating"}))
        made = person(1000 + len(self.people), **body)
        self.people[str(made["id"])] = made
        return dict(made)

    def update_person(self, person_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.people[person_id] = {**self.people[person_id], **body}
        return dict(self.people[person_id])


def test_target_moco_commits_the_intents_of_new_people_together_before_their_creates(tmp_path):
    from sync_ledger.db import make_engine
    from sync_ledger.ledger import Direction, IdLedger
    from target_moco.sync import MocoSync

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = IdLedger(make_engine(url), "loc", Direction.REVERSE)
    # One contact matches a MOCO person by e-mail: it is linked, not created, and no intent.
    moco = CreatingMoco([person(1, lastname="Old", work_email="c3@x.example")], url)
    sync = MocoSync(moco, ledger, concurrency=1)  # type: ignore[arg-type]
    records = [
        {"id": f"c{i}", "lastname": f"c{i}", "work_email": f"c{i}@x.example"} for i in range(1, 41)
    ]
    sync.write_batch("contacts", records)
    sync.close()
    assert sync.people.in_use
    created = [source for source, _ in moco.seen]
    assert created == [f"c{i}" for i in range(1, 41) if i != 3]
    for source, creating in moco.seen:
        assert source in creating  # durable before its create
    # The first block's intents, together: its other new contacts are there before their turn.
    assert moco.seen[0][1] == {f"c{i}" for i in range(1, 9) if i != 3}
    entries = ledger.lookup("contacts", [f"c{i}" for i in range(1, 41)])
    assert all(e.written for e in entries.values())
    assert entries["c3"].target_id == "1"
