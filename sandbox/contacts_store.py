"""The Contacts sandbox's records: contacts and their tasks, notes and appointments.

:class:`ContactStore` keeps the records with the lookups the API needs (duplicates by e-mail and
phone per location, the ``GET /contacts/`` order, each contact's children) and the two search
indexes (:mod:`sandbox.contacts_index`), all in step on every write. It turns validated write
bodies into stored contacts (derived lower-case names, E.164 phones, lower-case tags, custom
fields as ``[{id, value}]``).

Records are replaced, never edited in place: a write builds a new dict and stores it, so the
version a search index was handed stays what it was until the lag has passed, and answers may
share a stored version's lists while they are sent. Time is ``clock``'s (epoch seconds).
"""

from __future__ import annotations

import bisect
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import phonenumbers

from sandbox import contacts_data
from sandbox.contacts_data import iso
from sandbox.contacts_index import SearchIndex
from sandbox.contacts_oauth import firebase_id
from sandbox.contacts_search import parse_iso_ms
from sandbox.server import copy_json as clone

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

_DOB_YMD = re.compile(r"^(\d{4})([/\-._])(\d{1,2})\2(\d{1,2})$")
_DOB_MDY = re.compile(r"^(\d{1,2})([/\-._])(\d{1,2})\2(\d{4})$")


@lru_cache(maxsize=65536)  # a create parses the same number for the duplicate check and the store
def normalize_phone(phone: str) -> str:
    """E.164 when the number parses (``+1 888-888-8888`` -> ``+18888888888``), else trimmed."""
    # assumption: numbers without a country code are read as US numbers, the API's default
    try:
        parsed = phonenumbers.parse(phone, None if phone.strip().startswith("+") else "US")
    except phonenumbers.NumberParseException:
        return phone.strip()
    if not phonenumbers.is_possible_number(parsed):
        return phone.strip()
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_tags(tags: Iterable[str]) -> list[str]:
    """Trimmed, lower-cased, de-duplicated tags in first-seen order."""
    # assumption: normalisation is UNCONFIRMED; real data shows lower-case tags [3P]
    return list(dict.fromkeys(t.strip().lower() for t in tags if t and t.strip()))


def parse_date_of_birth(value: str) -> str | None:
    """``YYYY-MM-DDT00:00:00.000Z`` for one of the documented formats; ``None`` otherwise."""
    m = _DOB_YMD.match(value.strip())
    if m:
        year, month, day = m.group(1), m.group(3), m.group(4)
    else:
        m = _DOB_MDY.match(value.strip())
        if not m:
            return None
        month, day, year = m.group(1), m.group(3), m.group(4)
    try:
        day_of_birth = datetime(int(year), int(month), int(day), tzinfo=timezone.utc)
        return day_of_birth.strftime("%Y-%m-%dT00:00:00.000Z")
    except ValueError:
        return None


# Body keys a write never stores: the id and location are the API's, the rest are instructions.
_NOT_STORED = frozenset(
    {"id", "locationId", "createNewIfDuplicateAllowed", "dateAdded", "dateUpdated"}
)
# The form the API stores a written value in, per field (others: as sent).
_STORED_FORM: dict[str, Callable[[Any], Any]] = {
    "dateOfBirth": lambda value: parse_date_of_birth(value) or value,
    "phone": normalize_phone,
    "email": str.strip,
}
_DERIVED = (
    ("firstNameLowerCase", "firstName"),
    ("lastNameLowerCase", "lastName"),
    ("fullNameLowerCase", "name"),
    ("emailLowerCase", "email"),
)


def _derive_names(contact: dict[str, Any], body: dict[str, Any]) -> None:
    """``name`` from first and last name unless the body sets it; the lower-cased copies."""
    if "name" not in body and ("firstName" in body or "lastName" in body):
        full = " ".join(p for p in (contact.get("firstName"), contact.get("lastName")) if p)
        if full:
            contact["name"] = full
        else:
            contact.pop("name", None)
    for target, source in _DERIVED:
        if contact.get(source):
            contact[target] = contact[source].lower()
        else:
            contact.pop(target, None)


class ContactStore:
    """Every record of the sandbox's locations; see the module docstring.

    ``child_writes_bump_contact``: whether a task, note or appointment write sets its contact's
    ``dateUpdated`` (:meth:`touch_contact`).
    """

    def __init__(
        self, locations: tuple[str, ...], clock: Callable[[], float], search_lag: float
    ) -> None:
        self.locations = locations
        self.clock = clock
        self.child_writes_bump_contact = False
        self.search_index = SearchIndex(clock, search_lag)
        self.task_index = SearchIndex(clock, search_lag)
        self.clear()

    def clear(self) -> None:
        """Forget every record and the search indexes' documents."""
        self.contacts: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, dict[str, Any]] = {}
        self.appointments: dict[str, dict[str, Any]] = {}
        self.stores = {"tasks": self.tasks, "notes": self.notes, "appointments": self.appointments}
        self.added: dict[str, int] = {}  # contact id -> dateAdded epoch ms
        # per location, (dateAdded ms, id) sorted: the GET /contacts/ cursor order
        self.order: dict[str, list[tuple[int, str]]] = {loc: [] for loc in self.locations}
        self._by_email: dict[tuple[str, str], list[str]] = {}
        self._by_phone: dict[tuple[str, str], list[str]] = {}
        # contact id -> ids of its tasks / notes / appointments (dicts keep order, delete in O(1))
        self.children: dict[str, dict[str, dict[str, None]]] = {
            "tasks": {},
            "notes": {},
            "appointments": {},
        }
        self._field_ids: dict[tuple[str, str], str] = {}  # (location, custom field key) -> id
        self.search_index.clear()
        self.task_index.clear()

    def now_ms(self) -> int:
        """The sandbox clock's time in epoch milliseconds."""
        return int(self.clock() * 1000)

    def new_id(self, *stores: dict[str, Any]) -> str:
        """A fresh 20-character id that none of ``stores`` holds."""
        while True:
            new = firebase_id()
            if not any(new in store for store in stores):
                return new

    @staticmethod
    def _index_key(contact: dict[str, Any], field: str) -> str | None:
        value = contact.get(field)
        if not value:
            return None
        return str(value).lower() if field == "email" else str(value)

    def _index(self, contact: dict[str, Any]) -> None:
        loc, cid = contact["locationId"], contact["id"]
        for field, index in (("email", self._by_email), ("phone", self._by_phone)):
            key = self._index_key(contact, field)
            if key:
                index.setdefault((loc, key), []).append(cid)

    def _unindex(self, contact: dict[str, Any]) -> None:
        loc, cid = contact["locationId"], contact["id"]
        for field, index in (("email", self._by_email), ("phone", self._by_phone)):
            key = self._index_key(contact, field)
            ids = index.get((loc, key)) if key else None
            if key and ids and cid in ids:
                ids.remove(cid)
                if not ids:
                    del index[(loc, key)]

    def matches(self, location: str, field: str, value: str | None) -> list[str]:
        """Ids of contacts in ``location`` whose ``field`` equals ``value`` (oldest first)."""
        if not value:
            return []
        if field == "email":
            return self._by_email.get((location, value.strip().lower()), [])
        return self._by_phone.get((location, normalize_phone(value)), [])

    # Records are replaced, never edited in place: the search index keeps showing the version
    # it was handed until the lag has passed (see sandbox.contacts_index).
    def store_contact(
        self, contact: dict[str, Any], added_ms: int, *, immediate: bool = False
    ) -> None:
        """Store a new contact (``immediate``: searches see it without the lag)."""
        cid = contact["id"]
        self.contacts[cid] = contact
        self.added[cid] = added_ms
        bisect.insort(self.order.setdefault(contact["locationId"], []), (added_ms, cid))
        self._index(contact)
        self.search_index.put(cid, contact["locationId"], contact, immediate=immediate)

    def replace_contact(self, contact: dict[str, Any]) -> None:
        """Store ``contact`` (a new dict) as the current version of the contact of its id."""
        self._unindex(self.contacts[contact["id"]])
        self.contacts[contact["id"]] = contact
        self._index(contact)
        self.search_index.put(contact["id"], contact["locationId"], contact)

    def touch_contact(self, cid: str) -> None:
        """A task, note or appointment of ``cid`` changed: bump its ``dateUpdated`` if set so."""
        contact = self.contacts.get(cid)
        if self.child_writes_bump_contact and contact is not None:
            self.replace_contact({**contact, "dateUpdated": iso(self.now_ms())})

    def drop_contact(self, cid: str, *, immediate: bool = False) -> None:
        """Delete a contact with its tasks, notes and appointments."""
        contact = self.contacts.pop(cid)
        self._unindex(contact)
        order = self.order[contact["locationId"]]
        key = (self.added.pop(cid), cid)
        pos = bisect.bisect_left(order, key)
        if pos < len(order) and order[pos] == key:
            del order[pos]
        self.search_index.delete(cid, immediate=immediate)
        # assumption: a deleted contact's tasks, notes and appointments go with it
        for kind, store in self.stores.items():
            for child in self.children[kind].pop(cid, {}):
                store.pop(child, None)
                if kind == "tasks":
                    self.task_index.delete(child, immediate=immediate)

    def add_child(self, kind: str, item: dict[str, Any], *, immediate: bool = False) -> None:
        """Store a new task, note or appointment (``kind``) of its ``contactId``."""
        self.stores[kind][item["id"]] = item
        self.children[kind].setdefault(item["contactId"], {})[item["id"]] = None
        if kind == "tasks":
            location = self.contacts[item["contactId"]]["locationId"]
            self.task_index.put(item["id"], location, item, immediate=immediate)

    def replace_child(self, kind: str, item: dict[str, Any]) -> None:
        """Store ``item`` (a new dict) as the current version of the task/note/appointment."""
        self.stores[kind][item["id"]] = item
        if kind == "tasks":
            location = self.contacts[item["contactId"]]["locationId"]
            self.task_index.put(item["id"], location, item)

    def drop_child(self, kind: str, item_id: str, *, immediate: bool = False) -> None:
        """Delete a task, note or appointment."""
        item = self.stores[kind].pop(item_id)
        self.children[kind].get(item["contactId"], {}).pop(item_id, None)
        if kind == "tasks":
            self.task_index.delete(item_id, immediate=immediate)

    def _custom_field_id(self, location: str, item: dict[str, Any]) -> str:
        if item.get("id"):
            return str(item["id"])
        # a key without a definition store: give each (location, key) a stable id
        return self._field_ids.setdefault((location, item["key"]), firebase_id())

    def _merge_custom_fields(self, contact: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Input ``{id|key, field_value|fieldValue}`` merged into output ``[{id, value}]``."""
        # assumption: fields not named keep their values; a null value clears a field
        current = {f["id"]: f["value"] for f in contact.get("customFields", [])}
        for item in items:
            fid = self._custom_field_id(contact["locationId"], item)
            value = item.get("field_value", item.get("fieldValue", item.get("value")))
            if value is None:
                current.pop(fid, None)
            else:
                current[fid] = clone(value)
        contact["customFields"] = [{"id": k, "value": v} for k, v in current.items()]

    def apply(self, contact: dict[str, Any], body: dict[str, Any]) -> None:
        """Write the fields of a create/update/upsert body (already validated) into ``contact``."""
        for key, value in body.items():
            if key in _NOT_STORED:
                continue
            if key == "tags":
                contact["tags"] = normalize_tags(value or [])
            elif key == "customFields":
                self._merge_custom_fields(contact, value or [])
            elif value is None:
                contact.pop(key, None)
            else:
                contact[key] = _STORED_FORM.get(key, clone)(value)
        _derive_names(contact, body)

    def new_contact(self, location: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create and store a contact added now."""
        now = self.now_ms()
        contact = self.build_contact(
            location, body, cid=self.new_id(self.contacts), times=(now, now)
        )
        self.store_contact(contact, now)
        return contact

    def build_contact(
        self, location: str, body: dict[str, Any], *, cid: str, times: tuple[int, int]
    ) -> dict[str, Any]:
        """A contact from a create body; ``times`` = (dateAdded, dateUpdated) in epoch ms."""
        added, updated = times
        contact: dict[str, Any] = {
            "id": cid,
            "locationId": location,
            "type": "lead",
            "dnd": False,
            "tags": [],
            "customFields": [],
            "additionalEmails": [],
            "additionalPhones": [],
            "followers": [],
            "dateAdded": iso(added),
        }
        self.apply(contact, body)
        contact["dateUpdated"] = iso(updated)
        return contact

    def update_contact(self, contact: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """A new version of ``contact`` with ``body`` applied, stored; ``dateUpdated`` is now."""
        updated: dict[str, Any] = clone(contact)
        self.apply(updated, body)
        updated["dateUpdated"] = iso(self.now_ms())
        self.replace_contact(updated)
        return updated

    def load_generated(self, data: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
        """Generated records are complete and canonical already: stored without normalising."""
        with contacts_data.gc_paused():
            for contact in data["contacts"]:
                cid = contact["id"]
                if cid in self.contacts:
                    self.drop_contact(cid, immediate=True)
                added = parse_iso_ms(contact["dateAdded"]) or 0
                self.contacts[cid] = contact
                self.added[cid] = added
                self.order.setdefault(contact["locationId"], []).append((added, cid))
                self._index(contact)
            for order in self.order.values():
                order.sort()
            self.search_index.load((c["id"], c["locationId"], c) for c in data["contacts"])
            for kind, store in self.stores.items():
                children = self.children[kind]
                for item in data[kind]:
                    if item["id"] in store:
                        self.drop_child(kind, item["id"], immediate=True)
                    store[item["id"]] = item
                    children.setdefault(item["contactId"], {})[item["id"]] = None
            self.task_index.load(
                (t["id"], self.contacts[t["contactId"]]["locationId"], t) for t in data["tasks"]
            )
        return {kind: len(items) for kind, items in data.items()}

    def put_seeded_contact(self, contact: dict[str, Any]) -> None:
        """Store a seeded contact, visible at once.

        One with a known id replaces that contact and keeps its tasks, notes and appointments.
        """
        cid = contact["id"]
        if cid in self.contacts:  # replaced: its tasks, notes and appointments stay
            children = {kind: self.children[kind].pop(cid, {}) for kind in self.stores}
            self.drop_contact(cid, immediate=True)
            for kind, ids in children.items():
                if ids:
                    self.children[kind][cid] = ids
        self.store_contact(contact, parse_iso_ms(contact["dateAdded"]) or 0, immediate=True)
