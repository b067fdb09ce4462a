"""The reliability harness for the reverse direction and two-way: ``tap-contacts | target-moco``
and a two-way cycle (that pipe, then ``tap-moco | target-contacts``) over one ledger.

What the tests build on:

- :class:`TwoWayWorld`: a :class:`World` whose Contacts location holds CRM data of its own
  (generated contacts, tasks, notes, appointments) beside MOCO's, a few people on both sides (same
  e-mail, different tags), and a reverse state of its own. :meth:`TwoWayWorld.run_reverse` runs
  the reverse pipe as two real processes with the reverse stream maps and settings of
  meltano.yml; :meth:`TwoWayWorld.cycle` runs both directions in the order of the
  ``two-way-sync`` job and tells the writes each API received.
- Kill points on MOCO writes: :func:`moco_is_write` and the predicates below pick the requests a
  :class:`KillSwitch` counts (a person create, a tagging, a note's, task's or appointment's
  comment, a comment update).
- :class:`Sides` / :func:`compare_sides`: both APIs' content as a user would check it (MOCO people
  by e-mail/phone with names and tags, MOCO comments by person and text; the CRM's contacts,
  tasks and notes as :func:`fingerprint` has them), and what is missing or there twice against a
  clean run's.
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from sandbox.server import HTTPError
from tests.reliability.harness import (
    BIN,
    LOCATION,
    MOCO_KEY,
    PIT,
    ROOT,
    Comparison,
    KillSwitch,
    Run,
    World,
    compare,
    is_write,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import Request

MOCO_WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
TASK_MARK = "To-do (from the CRM)"
APPOINTMENT_MARK = "Appointment (from the CRM)"


@functools.cache
def meltano_reverse() -> dict[str, Any]:
    """target-moco settings as ``meltano run`` passes them: the reverse stream maps, their
    config, and the values meltano.yml gives its settings (two_way, timezone, ...)."""
    import yaml

    data = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    loader = next(p for p in data["plugins"]["loaders"] if p["name"] == "target-moco")
    defaults = {s["name"]: s["value"] for s in loader["settings"] if "value" in s}
    kept = (
        "two_way",
        "conflict_policy",
        "default_gender",
        "timezone",
        "extra_task_streams",
        "max_concurrency",
    )
    return {
        **{name: defaults[name] for name in kept},
        "stream_maps": loader["config"]["stream_maps"],
        "stream_map_config": loader["config"]["stream_map_config"],
    }


@functools.cache
def meltano_forward_two_way() -> dict[str, Any]:
    """target-contacts' two-way settings as meltano.yml gives them."""
    import yaml

    data = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    loader = next(p for p in data["plugins"]["loaders"] if p["name"] == "target-contacts")
    defaults = {s["name"]: s["value"] for s in loader["settings"] if "value" in s}
    return {name: defaults[name] for name in ("two_way", "conflict_policy")}


# --- MOCO requests --------------------------------------------------------------------------
def on_request(matches: Callable[[str, str, Any], bool]) -> Callable[[Request], bool]:
    """``matches`` as a :class:`KillSwitch` asks it, of a request arriving at the sandbox."""

    def counts(request: Request) -> bool:
        try:
            body = request.json()
        except HTTPError:
            body = None
        return matches(request.method, request.path, body)

    return counts


def logged(matches: Callable[[str, str, Any], bool], log: list[dict[str, Any]]) -> int:
    """How many entries of a sandbox's request log ``matches`` picks."""
    return sum(1 for e in log if matches(e["method"], e["path"], e.get("body")))


def moco_write(method: str, path: str, _body: Any = None) -> bool:
    """A request that changes MOCO data through the API (not a read, not the web UI)."""
    return method in MOCO_WRITE_METHODS and path.startswith("/api/v1/")


def person_create(method: str, path: str, _body: Any = None) -> bool:
    return method == "POST" and path == "/api/v1/contacts/people"


@functools.cache
def moco_names() -> frozenset[tuple[str, str]]:
    """(first name, last name) of MOCO's own generated people."""
    from sandbox.moco_data import generate

    people = generate(MOCO_CONTACTS, MOCO_SEED)["contacts"]
    return frozenset((p["firstname"], p["lastname"]) for p in people)


def namesake_create(method: str, path: str, body: Any = None) -> bool:
    """The create of a person whose name a different MOCO person already has."""
    names = (body.get("firstname") or "", body.get("lastname")) if isinstance(body, dict) else None
    return person_create(method, path) and names in moco_names()


def person_update(method: str, path: str, _body: Any = None) -> bool:
    return method == "PUT" and path.startswith("/api/v1/contacts/people/")


def tagging(method: str, path: str, _body: Any = None) -> bool:
    return method == "PATCH" and path.startswith("/api/v1/taggings/Contact/")


def comment_kind(text: str) -> str:
    """Which CRM record a MOCO comment's text stands for: task, appointment or note."""
    if text.startswith(TASK_MARK):
        return "task"
    if text.startswith(APPOINTMENT_MARK):
        return "appointment"
    return "note"


def comment_create(kind: str) -> Callable[[str, str, Any], bool]:
    """``POST /comments`` for a CRM record of ``kind`` (note, task, appointment)."""

    def matches(method: str, path: str, body: Any = None) -> bool:
        text = str(body.get("text") or "") if isinstance(body, dict) else ""
        return method == "POST" and path == "/api/v1/comments" and comment_kind(text) == kind

    return matches


def comment_update(method: str, path: str, _body: Any = None) -> bool:
    return method == "PUT" and path.startswith("/api/v1/comments/")


# --- Contacts API requests (the forward direction's writes) -----------------------------------
def crm_write(method: str, path: str, _body: Any = None) -> bool:
    """A request that changes CRM data (not a read, a search or an OAuth call)."""
    return is_write(method, path) and not path.endswith("/tasks/search")


def contact_create(method: str, path: str, _body: Any = None) -> bool:
    return method == "POST" and path == "/contacts/"


def note_create(method: str, path: str, _body: Any = None) -> bool:
    return method == "POST" and path.startswith("/contacts/") and path.endswith("/notes")


def task_create(method: str, path: str, _body: Any = None) -> bool:
    return method == "POST" and path.startswith("/contacts/") and path.endswith("/tasks")


# --- both sides as a user checks them -------------------------------------------------------
def _person_key(person: dict[str, Any] | None) -> str:
    if person is None:
        return "<no such person>"
    email = (person.get("work_email") or person.get("home_email") or "").strip().lower()
    phone = str(person.get("work_phone") or person.get("mobile_phone") or "")
    return email or phone or f"{person.get('firstname')} {person.get('lastname')}"


def moco_fingerprint(
    state: dict[str, Any],
) -> tuple[dict[str, Counter[Any]], dict[str, Counter[Any]]]:
    """(identity, content) counters of MOCO's people and the comments on them."""
    people = {p["id"]: p for p in state["contacts"]}
    identity: dict[str, Counter[Any]] = {
        "people": Counter(_person_key(p) for p in state["contacts"]),
        "comments": Counter(
            (_person_key(people.get(c["commentable_id"])), c["text"])
            for c in state["comments"]
            if c["commentable_type"] == "Contact"
        ),
    }
    content: dict[str, Counter[Any]] = {
        "people": Counter(
            (
                _person_key(p),
                p.get("firstname"),
                p.get("lastname"),
                p.get("work_email"),
                p.get("home_email"),
                p.get("work_phone"),
                p.get("mobile_phone"),
                tuple(sorted({str(t).casefold() for t in p.get("tags") or []})),
            )
            for p in state["contacts"]
        ),
        "comments": identity["comments"],
    }
    return identity, content


@dataclass
class Sides:
    """Both APIs' stored data (``GET /_sandbox/state`` of each)."""

    moco: dict[str, Any]
    crm: dict[str, Any]

    def counts(self) -> dict[str, int]:
        return {
            "moco people": len(self.moco["contacts"]),
            "moco comments": len(self.moco["comments"]),
            "crm contacts": len(self.crm["contacts"]),
            "crm tasks": len(self.crm["tasks"]),
            "crm notes": len(self.crm["notes"]),
        }


@dataclass
class SidesComparison:
    """What is missing, there twice or different on either side against the expected sides."""

    moco_lost: dict[str, int]
    moco_duplicates: dict[str, int]
    moco_differing: dict[str, list[Any]]
    crm: Comparison

    @property
    def total_lost(self) -> int:
        return sum(self.moco_lost.values()) + self.crm.total_lost

    @property
    def total_duplicates(self) -> int:
        return sum(self.moco_duplicates.values()) + self.crm.total_duplicates

    @property
    def exact(self) -> bool:
        return (
            not any(self.moco_lost.values())
            and not any(self.moco_duplicates.values())
            and not any(self.moco_differing.values())
            and self.crm.exact
        )

    def explain(self) -> str:
        return (
            f"MOCO: lost {self.moco_lost}, duplicates {self.moco_duplicates}, differing "
            f"{json.dumps(self.moco_differing, default=str, ensure_ascii=False)[:3000]}\n"
            f"CRM: {self.crm.explain()}"
        )


def compare_sides(expected: Sides, actual: Sides) -> SidesComparison:
    """Compare both sides by content; ids are each API's own."""
    want_id, want = moco_fingerprint(expected.moco)
    have_id, have = moco_fingerprint(actual.moco)
    lost, duplicates, differing = {}, {}, {}
    for kind in ("people", "comments"):
        lost[kind] = sum((want_id[kind] - have_id[kind]).values())
        duplicates[kind] = sum((have_id[kind] - want_id[kind]).values())
        differing[kind] = sorted(map(repr, (have[kind] - want[kind]).elements()))
    return SidesComparison(lost, duplicates, differing, compare(expected.crm, actual.crm))


# --- the world --------------------------------------------------------------------------------
@dataclass
class Cycle:
    """One two-way cycle: its two runs and the writes each API received."""

    reverse: Run
    forward: Run
    moco_writes: list[dict[str, Any]]
    crm_writes: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return self.reverse.ok and self.forward.ok

    def describe(self) -> str:
        return f"{self.reverse.describe()}\n{self.forward.describe()}"

    def writes(self) -> tuple[list[str], list[str]]:
        """(MOCO writes, CRM writes) as ``METHOD path`` lines."""
        return (
            [f"{w['method']} {w['path']}" for w in self.moco_writes],
            [f"{w['method']} {w['path']}" for w in self.crm_writes],
        )


class TwoWayWorld(World):
    """A :class:`World` with CRM data of its own, run in both directions over one ledger."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reverse_state: dict[str, Any] | None = None

    # --- configs --------------------------------------------------------------------------
    def tap_contacts_config(self, **overrides: Any) -> dict[str, Any]:
        config = {
            "base_url": self.contacts.url,
            "location_id": LOCATION,
            "private_integration_token": PIT,
            "ledger_url": f"sqlite:///{self.ledger_path}",
            "rate_limit_requests": 100_000,
            "rate_limit_window_seconds": 1,
            "request_timeout": 10,
        }
        return {k: v for k, v in {**config, **overrides}.items() if v is not None}

    def target_moco_config(self, **overrides: Any) -> dict[str, Any]:
        config = {
            **meltano_reverse(),
            "api_key": MOCO_KEY,
            "base_url": self.moco.url,
            "location_id": LOCATION,
            "ledger_url": f"sqlite:///{self.ledger_path}",
            "rate_limit_requests": 100_000,
            "rate_limit_window_seconds": 1,
            "request_timeout": 5,
        }
        return {k: v for k, v in {**config, **overrides}.items() if v is not None}

    def target_config(self, *, mapped: bool = True, **overrides: Any) -> dict[str, Any]:
        """target-contacts' settings, two-way as meltano.yml sets it."""
        return super().target_config(mapped=mapped, **{**meltano_forward_two_way(), **overrides})

    # --- running ----------------------------------------------------------------------------
    def run_reverse(
        self,
        *,
        kill: KillSwitch | None = None,
        tap: dict[str, Any] | None = None,
        target: dict[str, Any] | None = None,
        timeout: float = 240,
        save_state: bool = True,
    ) -> Run:
        """``tap-contacts [--state] | target-moco`` as two processes in one process group."""
        number, folder = self._folder()
        tap_config = folder / "tap-config.json"
        target_config = folder / "target-config.json"
        tap_config.write_text(json.dumps(self.tap_contacts_config(**(tap or {}))))
        target_config.write_text(json.dumps(self.target_moco_config(**(target or {}))))
        run = self.pipe(
            number,
            folder,
            # the module, not the console script: a venv made before tap-contacts had its script
            [sys.executable, "-m", "tap_contacts", "--config", str(tap_config)],
            [str(BIN / "target-moco"), "--config", str(target_config)],
            state=self.reverse_state,
            kill=kill,
            timeout=timeout,
        )
        self._finish(run, (tap_config, target_config), save_state=False)
        if save_state and run.states:
            self.reverse_state = run.states[-1]
            self.evidence.text(f"run {run.number} saved reverse state", self.reverse_state)
        return run

    def reverse_until_complete(self, *, max_runs: int = 4, **kwargs: Any) -> list[Run]:
        """Rerun the reverse pipe (with its saved state) until one finishes cleanly."""
        made = []
        for _ in range(max_runs):
            run = self.run_reverse(**kwargs)
            made.append(run)
            if run.ok:
                return made
        raise AssertionError(f"no clean reverse run in {max_runs} tries:\n{made[-1].describe()}")

    def cycle(self, *, fresh: bool = False, reverse_target: dict[str, Any] | None = None) -> Cycle:
        """One two-way cycle as the ``two-way-sync`` job runs it: the reverse pipe, then the
        forward pipe, each from its saved state (``fresh``: from none, a full re-read);
        ``reverse_target``: target-moco settings to change."""
        if fresh:
            self.state = self.reverse_state = None
        self.clear_logs()
        reverse = self.run_reverse(target=reverse_target)
        forward = self.run()
        return Cycle(reverse, forward, self.moco_writes(), self.crm_writes())

    def assert_quiet(self, *, fresh: bool = False) -> Cycle:
        """A cycle that must complete, add up and write nothing on either API."""
        cycle = self.cycle(fresh=fresh)
        assert cycle.ok, cycle.describe()
        for run in (cycle.reverse, cycle.forward):
            assert run.summary is not None and run.summary["adds_up"], run.stderr[-3000:]
        assert cycle.writes() == ([], []), f"a cycle with no change wrote {cycle.writes()}"
        return cycle

    # --- sandboxes --------------------------------------------------------------------------
    def moco_writes(self) -> list[dict[str, Any]]:
        return [e for e in self.moco_log() if moco_write(e["method"], e["path"])]

    def crm_writes(self) -> list[dict[str, Any]]:
        return [e for e in self.contacts_log() if crm_write(e["method"], e["path"])]

    def sides(self) -> Sides:
        return Sides(self.moco_state(), self.crm())

    def contacts_api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A Contacts API call as another integration (or a person in the CRM) makes it."""
        response = requests.request(
            method,
            f"{self.contacts.url}{path}",
            timeout=30,
            headers={"Authorization": f"Bearer {PIT}", "Version": "2021-07-28"},
            **kwargs,
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def moco_web_ui(self, method: str, path: str, body: dict[str, Any]) -> Any:
        """A change made by a person in MOCO's web UI (``/_sandbox/people/{id}`` and the like)."""
        response = requests.request(
            method, f"{self.moco.url}/_sandbox{path}", json=body, timeout=30
        )
        response.raise_for_status()
        return response.json() if response.content else None

    # --- the ledger ---------------------------------------------------------------------------
    def reverse_links(self) -> list[dict[str, Any]]:
        """target-moco's pairs as (kind, crm_id, moco_id, state) rows."""
        return [
            {
                "kind": r["crm_type"],
                "crm_id": r["crm_id"],
                "moco_id": r["moco_id"],
                "state": r["rev_state"],
            }
            for r in self.ledger_rows("links")
            if r["rev_state"] is not None
        ]

    def two_way_problems(self, sides: Sides) -> list[str]:
        """Ledger rows that contradict either side: left 'creating', pointing nowhere, shared."""
        problems = self.ledger_problems(sides.crm)
        people = {str(p["id"]) for p in sides.moco["contacts"]}
        comments = {str(c["id"]) for c in sides.moco["comments"]}
        seen: dict[tuple[str, str], str] = {}
        for row in self.reverse_links():
            where = f"{row['kind']} {row['crm_id']}"
            if row["state"] != "written":
                problems.append(f"{where} is left in state {row['state']} (reverse)")
                continue
            existing = people if row["kind"] == "contact" else comments
            if row["moco_id"] not in existing:
                problems.append(f"{where} points at MOCO {row['moco_id']}, which is not there")
            key = ("person" if row["kind"] == "contact" else "comment", row["moco_id"])
            other = seen.setdefault(key, where)
            if other != where:
                problems.append(f"{where} and {other} share MOCO {key[0]} {row['moco_id']}")
        return problems


# --- the data both sides start with, and what changes later ------------------------------------
CRM_CONTACTS, CRM_SEED = 10, 3  # the CRM's own contacts (with 5 tasks, 5 notes, 4 appointments)
MOCO_CONTACTS, MOCO_SEED = 6, 7  # MOCO's own people (with their to-dos and comments)
N_TWINS = 3  # people on both sides before the first cycle: same e-mail and names, other tags


def seed_two_way(world: TwoWayWorld) -> None:
    """CRM data of its own (generated), a MOCO twin of the first :data:`N_TWINS` CRM contacts
    with an e-mail and a last name (same e-mail and names, a MOCO tag, no phone), and a MOCO
    person whose phone is written "+49 (0)30 ..."."""
    counts = {"tasks": CRM_CONTACTS // 2, "notes": CRM_CONTACTS // 2, "appointments": 4}
    requests.post(
        f"{world.contacts.url}/_sandbox/seed",
        timeout=60,
        json={"generate": {"contacts": CRM_CONTACTS, "seed": CRM_SEED, **counts}},
    ).raise_for_status()
    crm = sorted(world.crm()["contacts"], key=lambda c: (c["dateAdded"], c["id"]))
    twins = [c for c in crm if c.get("email") and c.get("lastName")][:N_TWINS]
    people = [
        {
            "id": 688_000_000 + i,
            "firstname": c.get("firstName") or "",
            "lastname": c["lastName"],
            "gender": "U",
            "work_email": c["email"],
            "tags": ["Bestand"],
            "created_at": "2024-03-01T09:00:00Z",
            "updated_at": "2024-03-01T09:00:00Z",
        }
        for i, c in enumerate(twins)
    ]
    # MOCO's own person whose phone carries the trunk "(0)": the CRM gets it in E.164.
    people.append(
        {
            "id": 688_000_100,
            "firstname": "Paula",
            "lastname": "Nullmeier",
            "gender": "F",
            "work_email": "paula.nullmeier@example.com",
            "work_phone": "+49 (0)30 2345678",
            "tags": ["Kunde"],
            "created_at": "2024-03-01T09:00:00Z",
            "updated_at": "2024-03-01T09:00:00Z",
        }
    )
    requests.post(
        f"{world.moco.url}/_sandbox/seed", timeout=60, json={"contacts": people}
    ).raise_for_status()


def change_crm(world: TwoWayWorld) -> dict[str, str]:
    """A fixed set of CRM changes after a first cycle, as people make them in the CRM: a
    contact renamed and its note edited, a task completed and its contact tagged, an appointment
    rescheduled and its contact's first name changed, a new contact with a note. Returns what
    changed, by kind."""
    crm = world.crm()
    contacts = {c["id"]: c for c in crm["contacts"]}

    def by_content(*fields: str) -> Callable[[dict[str, Any]], tuple[str, ...]]:
        # Not by id: the sync's own creates get random ids, so "the smallest id" would pick a
        # different item in each world, and a crashed world would be compared with clean cycles
        # that changed another note.
        def key(item: dict[str, Any]) -> tuple[str, ...]:
            contact = contacts.get(item.get("contactId") or "", {})
            who = (str(contact.get("email") or ""), str(contact.get("lastName") or ""))
            return (*who, *(str(item.get(f) or "") for f in fields))

        return key

    note = min(crm["notes"], key=by_content("body"))
    task = min(
        (t for t in crm["tasks"] if not t.get("completed")), key=by_content("title", "dueDate")
    )
    appointment = min(crm["appointments"], key=by_content("title", "startTime"))
    world.contacts_api(
        "PUT",
        f"/contacts/{note['contactId']}",
        json={"lastName": f"{contacts[note['contactId']].get('lastName') or 'Ohne'}-Neu"},
    )
    world.contacts_api(
        "PUT",
        f"/contacts/{note['contactId']}/notes/{note['id']}",
        json={"body": "Geändert: Rückruf am Montag 📞 <b>dringend</b>"},
    )
    world.contacts_api(
        "PUT",
        f"/contacts/{task['contactId']}/tasks/{task['id']}/completed",
        json={"completed": True},
    )
    world.contacts_api("POST", f"/contacts/{task['contactId']}/tags", json={"tags": ["umzug"]})
    requests.put(
        f"{world.contacts.url}/_sandbox/appointments/{appointment['id']}",
        json={"startTime": "2028-03-02T09:00:00+01:00", "endTime": "2028-03-02T10:00:00+01:00"},
        timeout=30,
    ).raise_for_status()
    world.contacts_api(
        "PUT", f"/contacts/{appointment['contactId']}", json={"firstName": "Verschoben"}
    )
    new = world.contacts_api(
        "POST",
        "/contacts/",
        json={
            "locationId": LOCATION,
            "firstName": "Neu",
            "lastName": "Kundin",
            "email": "neu.kundin@example.com",
            "tags": ["lead"],
        },
    )["contact"]
    world.contacts_api(
        "POST", f"/contacts/{new['id']}/notes", json={"body": "Erstkontakt über das Formular"}
    )
    return {
        "note": note["id"],
        "task": task["id"],
        "appointment": appointment["id"],
        "new contact": new["id"],
    }


@dataclass
class TwoWayBaseline:
    """What clean, fault-free cycles make of the data set: both sides after the first cycle
    and after :func:`change_crm` and one more, the rejects, and the writes (log entries) each API
    received in those cycles."""

    first: Sides
    first_rejects: set[Any]
    first_moco_writes: list[dict[str, Any]]
    first_crm_writes: list[dict[str, Any]]
    changed: Sides
    changed_rejects: set[Any]
    changed_moco_writes: list[dict[str, Any]]
