"""MOCO's people by e-mail and phone, so that matching many new CRM contacts costs no searches.

Before target-moco creates a person for a CRM contact it looks for one MOCO already holds (same
e-mail, else same phone). With searches that is two or three ``GET /contacts/people?term=...``
calls per new contact: most of a first import's requests against MOCO's 120 per two minutes,
and most of the target's CPU. :class:`PeopleDirectory` reads the account's people once instead
(100 per request) and answers "who has this e-mail / phone" from memory.

What a caller may rely on:

- :meth:`PeopleDirectory.prepare` decides per batch: with ``mode`` ``auto`` the people are read
  when the batch holds at least :data:`MIN_NEW_CONTACTS` unlinked contacts, reading every page
  costs fewer requests than searching for them would (:data:`SEARCHES_PER_CONTACT` each) and
  the account holds at most :data:`MAX_PEOPLE` people;
  ``always`` reads them for any batch with an unlinked contact, ``never`` keeps searching. When
  it returns False the caller searches as before.
- Kept fresh: people created or changed since the last read began are read again every
  :data:`REFRESH_SECONDS` (``updated_after`` on MOCO's own clock: its ``Date`` before the first
  read, then the latest ``updated_at`` seen when a read began, less
  :data:`CLOCK_MARGIN_SECONDS`), and every person this run creates or changes is noted at once
  (:meth:`PeopleDirectory.wrote`), so two contacts of one run never both make a person.
- Every answer is confirmed: :meth:`PeopleDirectory.candidates` reads each person it would
  name (``GET /contacts/people/{id}``) and names only those that still exist and still carry
  the e-mail or phone. A person deleted or edited in MOCO since the read is never matched
  wrongly. What it cannot know is a person someone made (or gave this e-mail or phone) in MOCO
  after its last read: that person is known from the next refresh on, at most
  :data:`REFRESH_SECONDS` later; a search before each create leaves the same gap, only shorter
  (docs/operations.md, "Matching people in MOCO").
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from moco_api.errors import NotFoundError
from moco_api.timestamps import format_moco_timestamp
from sync_ledger.merge import parse_time

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from moco_api.client import PeopleCount

logger = logging.getLogger("target_moco")

MODES = ("auto", "always", "never")
#: With mode auto, a batch with fewer unlinked contacts than this keeps searching.
MIN_NEW_CONTACTS = 20
#: Searches one unlinked contact costs on average (e-mail, name for home_email, phone).
SEARCHES_PER_CONTACT = 2
#: People per page of ``GET /contacts/people`` (MOCO's maximum).
PAGE_SIZE = 100
#: With mode auto, an account with more people keeps searching: the directory's memory
#: (about 0.7 KB per person) stays below ~35 MB.
MAX_PEOPLE = 50_000
#: While a batch runs, people changed in MOCO are read again at least this often.
REFRESH_SECONDS = 30.0
#: ``updated_after`` reaches this far before the moment the last read began (MOCO's clock):
#: changes committed in another order than their times, a ``Date`` in whole seconds.
CLOCK_MARGIN_SECONDS = 5.0
EMAIL_FIELDS = ("work_email", "home_email")
PHONE_FIELDS = ("work_phone", "mobile_phone")
FIELDS = (*EMAIL_FIELDS, *PHONE_FIELDS)
PHONE_TAIL = 7  # the trailing digits that identify a phone whatever its prefix
_TRUNK_ZERO = re.compile(r"\(\s*0\s*\)")
_NON_DIGITS = re.compile(r"\D")


class PeopleReader(Protocol):
    """What the directory needs from a MOCO client."""

    def get_person(self, person_id: str) -> dict[str, Any]:
        """One person; raises NotFoundError when it is gone."""
        ...

    def find_people(self, **filters: str) -> list[dict[str, Any]]:
        """People matching MOCO's list filters, every page."""
        ...

    def count_people(self) -> PeopleCount:
        """How many people the account holds, and MOCO's time then (one request)."""
        ...


def email_key(value: object) -> str:
    """The form two e-mail addresses are compared in."""
    return str(value or "").strip().casefold()


def phone_digits(value: object) -> str:
    """A phone's digits without a written trunk zero "(0)" and without leading zeros.

    National (040 ...) and international (+49 40 ...) forms of one line then end alike:
    "+49 (0)40 ..." writes the trunk 0 that an international call leaves out.
    """
    return _NON_DIGITS.sub("", _TRUNK_ZERO.sub("", str(value or ""))).lstrip("0")


def same_phone(a: object, b: object) -> bool:
    """Whether two phone numbers are the same line (their trailing digits agree)."""
    left, right = phone_digits(a), phone_digits(b)
    if min(len(left), len(right)) < PHONE_TAIL:
        return left == right
    return left.endswith(right) or right.endswith(left)


def phone_key(value: object) -> str:
    """The trailing digits every form of one phone line shares: same_phone implies equal keys."""
    return phone_digits(value)[-PHONE_TAIL:]


class PeopleDirectory:
    """The people of one MOCO account by e-mail and phone; see the module docstring."""

    def __init__(
        self,
        client: PeopleReader,
        *,
        mode: str = "auto",
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.client = client
        self.mode = mode
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.RLock()
        # Person ids by e-mail key and by phone key; per person id its FIELDS values.
        self._by_email: dict[str, list[str]] = {}
        self._by_phone: dict[str, list[str]] = {}
        self._fields: dict[str, tuple[Any, ...]] = {}
        self._read_at: float | None = None  # our clock when the last read began
        # MOCO's clock: the latest updated_at of any person seen, and a moment no later than
        # the last read's start (whatever our own clock says); the count before the first read.
        self._latest: datetime | None = None
        self._since: datetime | None = None
        self._count: PeopleCount | None = None
        self._in_use = False
        self._confirmed = threading.local()  # per thread: the people its last candidates() read

    @property
    def in_use(self) -> bool:
        """Whether matches come from the directory (else the caller searches)."""
        return self._in_use

    def prepare(self, new_contacts: int) -> bool:
        """Get ready for a batch with ``new_contacts`` unlinked contacts; whether to use it."""
        with self._lock:
            if not self._in_use and self._worth_reading(new_contacts):
                self._read()
            else:
                self._refresh_if_due()
            return self._in_use

    def indexed(self, field: str, value: str) -> bool:
        """Whether a person read so far has a ``field`` kind of value matching ``value``.

        No call and no refresh: a quick "may match" before :meth:`candidates` confirms.
        """
        names, key_of = (
            (EMAIL_FIELDS, email_key) if field in EMAIL_FIELDS else (PHONE_FIELDS, phone_key)
        )
        key = key_of(value)
        index = self._by_email if names is EMAIL_FIELDS else self._by_phone
        with self._lock:
            return bool(key) and bool(index.get(key))

    def candidates(self, field: str, value: str) -> list[dict[str, Any]]:
        """The people (as MOCO answers them now) whose ``field`` kind of value matches ``value``.

        ``field`` is an e-mail or phone field name; e-mail matches either e-mail field, phone
        either phone field, compared as MOCO's searches would (exact e-mail, same phone line).
        """
        self._refresh_if_due()
        names, key_of = (
            (EMAIL_FIELDS, email_key) if field in EMAIL_FIELDS else (PHONE_FIELDS, phone_key)
        )
        key = key_of(value)
        if not key:
            return []
        index = self._by_email if names is EMAIL_FIELDS else self._by_phone
        with self._lock:
            ids = sorted(index.get(key, ()), key=_number)
        found = []
        for person_id in ids:
            try:
                person = self.client.get_person(person_id)
            except NotFoundError:
                self.forget(person_id)  # deleted in MOCO since the read
                continue
            self.saw(person)
            if key in {key_of(person.get(f)) for f in names}:
                found.append(person)
        self._confirmed.people = {str(person["id"]): person for person in found}
        return found

    def just_read(self, person_id: str) -> dict[str, Any] | None:
        """The person as this thread's last :meth:`candidates` call read it, once; else None.

        Linking the person that call matched reads it again otherwise (a second request).
        """
        people = getattr(self._confirmed, "people", None) or {}
        self._confirmed.people = {}
        return people.get(person_id)

    def saw(self, person: Mapping[str, Any]) -> None:
        """Note a person as MOCO holds it now (read, or the answer to a write)."""
        person_id = str(person.get("id") or "")
        if not person_id:
            return
        fields = tuple(person.get(f) for f in FIELDS)
        updated = parse_time(person.get("updated_at"))
        with self._lock:
            if updated is not None and (self._latest is None or updated > self._latest):
                self._latest = updated
            self._drop(person_id)
            self._fields[person_id] = fields
            for index, key in self._keys(fields):
                ids = index.setdefault(key, [])
                if person_id not in ids:
                    ids.append(person_id)

    def wrote(self, person_id: str, sent: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
        """Note a person this run created or changed.

        MOCO's answer shows the person; where it shows no e-mail or phone field (a dry run's
        planned write), what was sent on top of what the directory knew.
        """
        with self._lock:
            known = dict(zip(FIELDS, self._fields.get(person_id, ()), strict=False))
        written = {f: sent[f] for f in FIELDS if f in sent}
        self.saw({**known, **written, **answer, "id": person_id})

    def forget(self, person_id: str) -> None:
        """Drop a person (deleted)."""
        with self._lock:
            self._drop(person_id)

    # --- internals ---------------------------------------------------------------------------
    def _keys(self, fields: tuple[Any, ...]) -> list[tuple[dict[str, list[str]], str]]:
        """(index, key) of each e-mail and phone in ``fields`` (a person's, in FIELDS order)."""
        emails = [(self._by_email, email_key(v)) for v in fields[: len(EMAIL_FIELDS)]]
        phones = [(self._by_phone, phone_key(v)) for v in fields[len(EMAIL_FIELDS) :]]
        return [(index, key) for index, key in emails + phones if key]

    def _drop(self, person_id: str) -> None:
        fields = self._fields.pop(person_id, None)
        if fields is None:
            return
        for index, key in self._keys(fields):
            ids = index.get(key)
            if ids is not None and person_id in ids:
                ids.remove(person_id)
                if not ids:
                    del index[key]

    def _worth_reading(self, new_contacts: int) -> bool:
        if self.mode == "never" or new_contacts < 1:
            return False
        if self.mode == "always":
            return True
        if new_contacts < MIN_NEW_CONTACTS:
            return False
        self._count = self.client.count_people()
        pages = max(1, math.ceil(self._count.total / PAGE_SIZE))
        worth = pages < SEARCHES_PER_CONTACT * new_contacts and self._count.total <= MAX_PEOPLE
        if not worth:
            logger.info(
                "matching %d new contacts by search: MOCO holds %d people (%d requests to read)",
                new_contacts,
                self._count.total,
                pages,
            )
        return worth

    def _read(self) -> None:
        """Read every person, or (once read) those changed since the last read began.

        The next read starts from a moment on MOCO's clock no later than this read's start: the
        ``Date`` of the count before the first read, then the latest ``updated_at`` seen.
        """
        filters = {}
        if not self._in_use:
            count = self._count or self.client.count_people()
            mark = count.server_time
        else:
            mark = max((m for m in (self._since, self._latest) if m is not None), default=None)
            if self._since is not None:
                moment = self._since - timedelta(seconds=CLOCK_MARGIN_SECONDS)
                filters["updated_after"] = format_moco_timestamp(moment)
            # else every person again: MOCO's time was not known when the last read began
        self._read_at = self._clock()
        people = self.client.find_people(**filters)
        for person in people:
            self.saw(person)
        self._since = mark
        if not self._in_use:
            self._in_use = True
            logger.info(
                "read MOCO's %d people to match new contacts without searching", len(people)
            )

    def _refresh_if_due(self) -> None:
        with self._lock:
            if (
                self._in_use
                and self._read_at is not None
                and self._clock() - self._read_at >= self.refresh_seconds
            ):
                self._read()


def _number(person_id: str) -> tuple[int, str]:
    return (int(person_id), "") if person_id.isdigit() else (0, person_id)
