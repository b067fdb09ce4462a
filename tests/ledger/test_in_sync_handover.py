"""A pair one direction wrote, met for the first time by the other direction.

target-contacts creates the CRM copy of a MOCO person (or comment); someone edits the MOCO side a
moment later, before target-moco has ever written that pair. target-moco has no baseline of its
own, but target-contacts left the pair in sync and the CRM side has not changed since: the
difference is MOCO's own edit, kept, not a conflict that the CRM's copy (whose update time is
the later one: its own create) would win. And the same the other way round for notes.

Unit tests: small in-memory fakes of both APIs (no HTTP) and one real SQLite ledger shared by the
two directions, as in a two-way project.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import TYPE_CHECKING, Any

import pytest

from sync_ledger.db import make_engine
from sync_ledger.ledger import Direction, IdLedger
from sync_ledger.merge import ConflictPolicy, parse_time
from target_contacts.sync import ContactsSync, WriteRules
from target_moco.sync import MocoRules, MocoSync

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy import Engine

START = dt.datetime(2026, 12, 2, 10, 0, 0, tzinfo=dt.timezone.utc)


class Clock:
    """One clock for both fakes: each tick is 100 ms later."""

    def __init__(self) -> None:
        self._ticks = itertools.count(1)
        self.now = START

    def tick(self) -> dt.datetime:
        self.now = START + dt.timedelta(milliseconds=100 * next(self._ticks))
        return self.now


class FakeAPI:
    """What both fakes keep: the shared clock, the writes made (call, id, body), new ids."""

    def __init__(self, clock: Clock, first_id: int) -> None:
        self.clock = clock
        self.writes: list[tuple[str, str, dict[str, Any]]] = []
        self._ids = itertools.count(first_id)


class FakeCRM(FakeAPI):
    """The Contacts API calls target-contacts makes here; times in milliseconds, as the CRM's."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock, 1)
        self.contacts: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, dict[str, Any]] = {}

    def _stamp(self) -> str:
        return self.clock.tick().isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def create_contact(self, body: dict[str, Any]) -> dict[str, Any]:
        contact = {**body, "id": f"crm-{next(self._ids)}", "dateUpdated": self._stamp()}
        self.contacts[contact["id"]] = contact
        self.writes.append(("create_contact", contact["id"], dict(body)))
        return dict(contact)

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        return dict(self.contacts[contact_id])

    def update_contact(self, contact_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.contacts[contact_id].update(body, dateUpdated=self._stamp())
        self.writes.append(("update_contact", contact_id, dict(body)))
        return dict(self.contacts[contact_id])

    def edit_contact(self, contact_id: str, **changes: Any) -> None:
        """Another client of the Contacts API changes the contact."""
        self.contacts[contact_id].update(changes, dateUpdated=self._stamp())

    def create_note(self, contact_id: str, body: dict[str, Any]) -> dict[str, Any]:
        note = {**body, "id": f"note-{next(self._ids)}", "contactId": contact_id}
        self.notes[note["id"]] = note
        self.writes.append(("create_note", note["id"], dict(body)))
        return dict(note)

    def get_note(self, contact_id: str, note_id: str) -> dict[str, Any]:
        assert self.notes[note_id]["contactId"] == contact_id
        return dict(self.notes[note_id])

    def update_note(self, contact_id: str, note_id: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.notes[note_id]["contactId"] == contact_id
        self.notes[note_id].update(body)
        self.writes.append(("update_note", note_id, dict(body)))
        return dict(self.notes[note_id])


class FakeMoco(FakeAPI):
    """The MOCO calls target-moco makes here; ``updated_at`` to the second, as MOCO's."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock, 901)
        self.people: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, dict[str, Any]] = {}

    def _stamp(self) -> str:
        return self.clock.tick().replace(microsecond=0).isoformat().replace("+00:00", "Z")

    def add_person(self, person_id: str, **fields: Any) -> None:
        self.people[person_id] = {"id": int(person_id), "tags": [], **fields}
        self.people[person_id]["updated_at"] = self._stamp()

    def edit_person(self, person_id: str, **changes: Any) -> None:
        """Someone changes the person in MOCO's web UI."""
        self.people[person_id].update(changes, updated_at=self._stamp())

    def get_person(self, person_id: str) -> dict[str, Any]:
        return dict(self.people[person_id])

    def update_person(self, person_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.people[person_id].update(body, updated_at=self._stamp())
        self.writes.append(("update_person", person_id, dict(body)))
        return dict(self.people[person_id])

    def add_tags(self, entity: str, record_id: str, tags: list[str]) -> list[str]:
        raise AssertionError(f"no tags expected here: {entity} {record_id} {tags}")

    def add_comment(self, person_id: str, text: str) -> str:
        comment_id = str(next(self._ids))
        self.comments[comment_id] = {
            "id": int(comment_id),
            "commentable_type": "Contact",
            "commentable_id": int(person_id),
            "text": text,
            "updated_at": self._stamp(),
        }
        return comment_id

    def edit_comment(self, comment_id: str, text: str) -> None:
        """Someone changes the comment in MOCO's web UI."""
        self.comments[comment_id].update(text=text, updated_at=self._stamp())

    def get_comment(self, comment_id: str) -> dict[str, Any]:
        return dict(self.comments[comment_id])

    def create_comment(self, body: dict[str, Any]) -> dict[str, Any]:
        comment_id = self.add_comment(str(body["commentable_id"]), body["text"])
        self.writes.append(("create_comment", comment_id, dict(body)))
        return dict(self.comments[comment_id])

    def update_comment(self, comment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.comments[comment_id].update(body, updated_at=self._stamp())
        self.writes.append(("update_comment", comment_id, dict(body)))
        return dict(self.comments[comment_id])


class World:
    """Both fakes, the shared ledger, and one run of either direction at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.clock = Clock()
        self.crm = FakeCRM(self.clock)
        self.moco = FakeMoco(self.clock)
        self.moco.add_person("7", firstname="Bea", lastname="Berg", work_email="bea@example.com")

    def forward(self, stream: str, records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
        """target-contacts writes ``records`` (in its input's field names); its conflicts."""
        ledger = IdLedger(self.engine, "loc")
        sync = ContactsSync(
            self.crm,  # type: ignore[arg-type]  # the fake has only the calls these cases make
            ledger,
            location_id="loc",
            concurrency=1,
            rules=WriteRules(conflict_policy=ConflictPolicy.MOST_RECENT),
        )
        try:
            sync.write_batch(stream, records)
        finally:
            sync.close()
        return sync.summary.conflicts_by_stream()

    def reverse(self, stream: str, records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
        """target-moco writes ``records`` (in its input's field names); its conflicts."""
        ledger = IdLedger(self.engine, "loc", Direction.REVERSE)
        sync = MocoSync(
            self.moco,  # type: ignore[arg-type]  # the fake has only the calls these cases make
            ledger,
            concurrency=1,
            rules=MocoRules(conflict_policy=ConflictPolicy.MOST_RECENT),
        )
        try:
            sync.write_batch(stream, records)
        finally:
            sync.close()
        return sync.summary.conflicts_by_stream()

    def bea_from_moco(self) -> dict[str, Any]:
        """MOCO person 7 as tap-moco and the forward mapping give it to target-contacts."""
        person = self.moco.people["7"]
        return {
            "id": "7",
            "firstName": person["firstname"],
            "lastName": person["lastname"],
            "email": person["work_email"],
            "sourceUpdatedAt": person["updated_at"],
        }

    def bea_to_crm(self) -> str:
        """target-contacts writes MOCO person 7; the CRM contact's id."""
        assert self.forward("contacts", [self.bea_from_moco()]) == {}
        return next(c["id"] for c in self.crm.contacts.values() if c["email"] == "bea@example.com")

    def crm_to_moco(self, crm_id: str) -> dict[str, dict[str, int]]:
        """The CRM contact as tap-contacts and the reverse mapping give it, through target-moco."""
        contact = self.crm.contacts[crm_id]
        record = {
            "id": crm_id,
            "firstname": contact["firstName"],
            "lastname": contact["lastName"],
            "work_email": contact["email"],
            "source_updated_at": contact["dateUpdated"],
        }
        return self.reverse("contacts", [record])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield World(engine)
    engine.dispose()


def test_a_moco_edit_right_after_the_crm_copy_was_made_is_kept(world: World):
    crm_id = world.bea_to_crm()
    # Within the same second as the CRM's create: MOCO's time (to the second) reads as older.
    world.moco.edit_person("7", lastname="Berg-Huber")
    moco_time = parse_time(world.moco.people["7"]["updated_at"])
    assert moco_time is not None
    assert moco_time < parse_time(world.crm.contacts[crm_id]["dateUpdated"])

    conflicts = world.crm_to_moco(crm_id)

    assert world.moco.people["7"]["lastname"] == "Berg-Huber"
    assert world.moco.writes == []
    assert conflicts == {}
    # The next forward run carries the edit to the CRM, with nothing to decide either.
    assert world.forward("contacts", [world.bea_from_moco()]) == {}
    assert world.crm.contacts[crm_id]["lastName"] == "Berg-Huber"


def test_a_crm_edit_after_the_copy_was_made_still_meets_moco_edits_as_a_conflict(world: World):
    crm_id = world.bea_to_crm()
    world.moco.edit_person("7", lastname="Berg-Huber")
    world.crm.edit_contact(crm_id, lastName="Berg-Schmidt")  # a moment later: the newer edit

    conflicts = world.crm_to_moco(crm_id)

    assert conflicts == {"contacts": {"source": 1, "target": 0}}
    assert world.moco.people["7"]["lastname"] == "Berg-Schmidt"


def test_a_crm_edit_only_goes_to_moco(world: World):
    crm_id = world.bea_to_crm()
    world.crm.edit_contact(crm_id, firstName="Beatrix")

    world.crm_to_moco(crm_id)

    # (Counted as a conflict: with the CRM changed since, nothing tells what MOCO held then.)
    assert world.moco.writes == [("update_person", "7", {"firstname": "Beatrix"})]


def test_a_crm_change_target_contacts_kept_is_not_taken_for_in_sync(world: World):
    crm_id = world.bea_to_crm()
    world.crm.edit_contact(crm_id, firstName="Beatrix")  # kept by the next forward run
    world.moco.edit_person("7", lastname="Berg-Huber")  # written by it
    assert world.forward("contacts", [world.bea_from_moco()]) == {}
    assert world.crm.contacts[crm_id]["firstName"] == "Beatrix"  # the CRM's own change, kept

    world.crm_to_moco(crm_id)

    # After that forward run the sides differ in firstName: target-moco must carry it to MOCO,
    # not keep MOCO's "Bea" as if the pair were in sync.
    assert world.moco.people["7"]["firstname"] == "Beatrix"
    assert world.moco.people["7"]["lastname"] == "Berg-Huber"


def test_a_moco_comment_edit_right_after_its_crm_note_was_made_is_kept(world: World):
    crm_id = world.bea_to_crm()
    comment_id = world.moco.add_comment("7", "<div>Angebot</div>")
    note = {"notesId": comment_id, "contactId": "7", "content": "Angebot"}
    assert world.forward("notes", [note]) == {}
    note_id = next(iter(world.crm.notes))
    world.moco.edit_comment(comment_id, "<div>Angebot geschickt</div>")

    conflicts = world.reverse(
        "notes", [{"id": note_id, "contactId": crm_id, "body": world.crm.notes[note_id]["body"]}]
    )

    assert conflicts == {}
    assert world.moco.writes == []
    assert world.moco.comments[comment_id]["text"] == "<div>Angebot geschickt</div>"


def test_a_crm_note_edit_right_after_its_moco_comment_was_made_is_kept(world: World):
    crm_id = world.bea_to_crm()
    note_id = "note-crm-1"
    world.crm.notes[note_id] = {"id": note_id, "contactId": crm_id, "body": "Rückruf"}
    assert world.reverse("notes", [{"id": note_id, "contactId": crm_id, "body": "Rückruf"}]) == {}
    (comment_id,) = world.moco.comments
    world.crm.notes[note_id]["body"] = "Rückruf vereinbart"  # CRM notes carry no update time

    comment = world.moco.comments[comment_id]
    conflicts = world.forward(
        "notes",
        [
            {
                "notesId": comment_id,
                "contactId": "7",
                "content": "Rückruf",
                "sourceUpdatedAt": comment["updated_at"],
            }
        ],
    )

    assert conflicts == {}
    assert world.crm.writes[-1][0] == "create_contact"  # no note write
    assert world.crm.notes[note_id]["body"] == "Rückruf vereinbart"
