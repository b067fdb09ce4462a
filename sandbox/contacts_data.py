"""Seed data for the Contacts sandbox: a deterministic generator of realistic CRM data.

:func:`generate` returns a seed document ``{"contacts", "tasks", "notes", "appointments"}`` in the
Contacts API's shapes (reference/contacts-api.md §5.5-5.6, reverse-and-realtime.md §2-3), the form
``POST /_sandbox/seed`` loads and ``GET /_sandbox/state`` answers. Callers may rely on:

- the same arguments always giving the same document (no clock, no hash order);
- exactly ``n_contacts`` contacts, and by default ``n // 2`` tasks, ``n // 2`` notes and
  ``n // 4`` appointments, at least 4, 3 and 16 of them when there is any contact;
- contacts in ``dateAdded`` order, each complete as the sandbox stores one (derived lower-case
  names, E.164 phones, lower-case tags), with ``dateUpdated >= dateAdded`` and ~5% sharing their
  ``dateUpdated`` with the contact before them (batch imports: ties for the id tie-break);
- the hard cases first: "Jürgen Müßig", "Zoë Lefèvre" (no e-mail), "Łukasz Wójcik" (no phone),
  "O'Brien" (no first name); non-ASCII names, companies, cities and tags throughout;
- e-mail addresses and phone numbers unique across contacts (the duplicate rules apply to them);
- tasks open and completed, due in the past and the future, with ``dateAdded``/``dateUpdated``
  (the location task search shows them; the per-contact route does not);
- note bodies with HTML, entities, emoji and ``<script>`` tags;
- appointments with every status of :data:`APPOINTMENT_STATUSES`, each in the past (2022) and in
  the future (2028) among the first 16, then a realistic mix from 2021 to 2028.

Ids are 20 characters of letters and digits, like the API's.
"""

from __future__ import annotations

import base64
import gc
import random
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sandbox.moco_data import ascii_fold

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

_T = TypeVar("_T")

# The location's users: tasks, notes and appointments point at them, and the location task search
# answers their names as ``assignedToUserDetails``.
USERS: list[dict[str, Any]] = [
    {
        "id": "sbxUser0000000000001",
        "firstName": "Michael",
        "lastName": "Mustermann",
        "profilePhoto": "https://images.example.com/users/michael.png",
    },
    {
        "id": "sbxUser0000000000002",
        "firstName": "Sabine",
        "lastName": "Größer",
        "profilePhoto": None,
    },
    {
        "id": "sbxUser0000000000003",
        "firstName": "Tomasz",
        "lastName": "Wiśniewski",
        "profilePhoto": None,
    },
    {
        "id": "sbxUser0000000000004",
        "firstName": "Léa",
        "lastName": "Martin",
        "profilePhoto": "https://images.example.com/users/lea.png",
    },
]
USERS_BY_ID = {u["id"]: u for u in USERS}
USER_IDS = tuple(USERS_BY_ID)

# appointmentStatus values: AppointmentSchemaResponse (reverse-and-realtime.md §3.2)
APPOINTMENT_STATUSES = (
    "new",
    "confirmed",
    "cancelled",
    "showed",
    "noshow",
    "invalid",
    "active",
    "completed",
)
CALENDAR_IDS = ("sbxCalBeratung000001", "sbxCalDemo0000000002", "sbxCalSupport0000003")
GROUP_ID = "sbxCalGroupVertrieb1"
CUSTOM_FIELD_IDS = {"customer_number": "sbxCfKundennummer001", "interests": "sbxCfInteressen00002"}

_MS_DAY = 86_400_000
_T0 = 1_609_459_200_000  # 2021-01-01T00:00:00Z: first contact
_T1 = 1_782_863_999_000  # 2026-06-30T23:59:59Z: last change the generator makes
_FUTURE_FROM = 1_830_297_600_000  # 2028-01-01: "the future" for appointments and tasks
_FUTURE_TO = 1_861_919_999_000  # 2028-12-31T23:59:59Z
_PAST_FROM = 1_640_995_200_000  # 2022-01-01: "the past" of the fixed appointments

# name pools, mixed so that most scripts' hard letters appear (ä ö ü ß é è ë ł ś ż ø å ñ ç ş)
_FIRST = (
    "Jürgen", "Zoë", "Łukasz", "Anaïs", "Søren", "Ömer", "José", "François", "Małgorzata",
    "Björn", "Dorothée", "Grzegorz", "Ágnes", "Şebnem", "Chloé", "Renée", "Jörg", "Käthe",
    "Maëlle", "Håkon", "Íñigo", "Çağla", "Agnieszka", "Thomas", "Anna", "Lukas", "Marie",
    "Paul", "Sophie", "Emma", "Jonas", "Lea", "Max", "Hannah", "Ben", "Mia", "Felix", "Clara",
    "Noah", "Ida", "Elias", "Zofia", "Mateusz", "Lucía", "Andrés", "Maja", "Sven", "Żaneta",
)  # fmt: skip
_LAST = (
    "Müßig", "Lefèvre", "Wójcik", "O'Brien", "Groß", "Kowalczyk", "Dvořák", "Šimić",
    "Łapiński", "Brontë", "Ødegaard", "Weiß", "Schäfer", "Göransson", "García", "Fernández",
    "Müller", "Schmidt", "Schneider", "Fischer", "Meyer", "Wagner", "Becker", "Hoffmann",
    "Schulz", "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Zieliński",
    "Nowak", "Dubois", "Moreau", "Lindqvist", "Jørgensen", "Núñez", "Yılmaz", "Özdemir",  # noqa: RUF001 - a Turkish name
    "Van der Berg", "de la Cruz", "Lévêque", "Straße-Ebersbach", "Åberg", "Wiśniewska",
)  # fmt: skip
_SPECIAL_PEOPLE = (("Jürgen", "Müßig"), ("Zoë", "Lefèvre"), ("Łukasz", "Wójcik"), ("", "O'Brien"))
_NO_EMAIL, _NO_PHONE = 1, 2  # their indexes

# country -> (timezone, phone prefix, digits after the 7 unique ones, cities (postal code, city),
# streets): every phone is E.164 and possible, so the sandbox's normalisation leaves it as it is
_COUNTRIES: dict[str, tuple[str, str, str, tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    "DE": (
        "Europe/Berlin",
        "+49151",
        "0",
        (("80331", "München"), ("50667", "Köln"), ("40213", "Düsseldorf"), ("10115", "Berlin")),
        ("Hauptstraße", "Königsallee", "Schloßstraße", "Görlitzer Weg"),
    ),
    "AT": (
        "Europe/Vienna",
        "+43664",
        "",
        (("1010", "Wien"), ("8010", "Graz"), ("5020", "Salzburg")),
        ("Mariahilfer Straße", "Getreidegasse"),
    ),
    "CH": (
        "Europe/Zurich",
        "+4179",
        "",
        (("8001", "Zürich"), ("1201", "Genève"), ("3011", "Bern")),
        ("Bahnhofstrasse", "Rue du Rhône"),
    ),
    "FR": (
        "Europe/Paris",
        "+336",
        "1",
        (("75001", "Paris"), ("25000", "Besançon"), ("69001", "Lyon")),
        ("Rue de l'Église", "Boulevard Saint-Michel"),
    ),
    "PL": (
        "Europe/Warsaw",
        "+4853",
        "",
        (("30-001", "Kraków"), ("90-001", "Łódź"), ("80-001", "Gdańsk")),
        ("ulica Świętokrzyska", "aleja Grunwaldzka"),
    ),
    "ES": (
        "Europe/Madrid",
        "+346",
        "2",
        (("29001", "Málaga"), ("14001", "Córdoba"), ("28013", "Madrid")),
        ("Calle de Alcalá", "Avenida de la Constitución"),
    ),
    "SE": (
        "Europe/Stockholm",
        "+4670",
        "",
        (("411 01", "Göteborg"), ("211 20", "Malmö")),
        ("Storgatan", "Drottninggatan"),
    ),
    "DK": (
        "Europe/Copenhagen",
        "+452",
        "",
        (("1050", "København"), ("8000", "Aarhus")),
        ("Nørregade", "Østergade"),
    ),
    "GB": (
        "Europe/London",
        "+4479",
        "5",
        (("SW1A 1AA", "London"), ("M1 1AE", "Manchester")),
        ("Baker Street", "High Street"),
    ),
}
_COUNTRY_MIX = ("DE",) * 8 + ("AT", "AT", "CH", "CH", "FR", "PL", "ES", "SE", "DK", "GB")
_COMPANY_WORDS = (
    "Müller & Söhne", "Bäckerei Groß", "Café Élysée", "Łódzkie Młyny", "Nordisk Øl",
    "Zürcher Uhrwerk", "Ñandú Viajes", "Straßenbau Süd", "Fjällräven Konsult", "Agence Rivière",
    "Datenwerk", "Blauer Hafen", "Kreativraum", "Grünfläche", "Sonnenschein",
)  # fmt: skip
_LEGAL = {
    "DE": ("GmbH", "KG", "AG", "GmbH & Co. KG"),
    "AT": ("GmbH", "OG"),
    "CH": ("AG", "GmbH", "Sàrl"),
    "FR": ("SARL", "SAS"),
    "PL": ("Sp. z o.o.", "S.A."),
    "ES": ("S.L.", "S.A."),
    "SE": ("AB",),
    "DK": ("ApS", "A/S"),
    "GB": ("Ltd", "LLP"),
}
TAGS = (
    "vip", "newsletter", "lead", "kunde", "partner", "messe-2025", "bestandskunde", "übernahme",
    "événement", "zażółć", "kaltakquise", "webinar",
)  # fmt: skip
_SOURCES = ("moco", "website", "import", "public api", "empfehlung", "messe")
_TASK_TITLES = (
    "Angebot nachfassen", "Rückruf vereinbaren", "Vertrag prüfen", "Envoyer le devis",
    "Zadzwonić do klienta", "Follow up on invoice", "Präsentation für Q3 vorbereiten",
    "Unterlagen für Übergabe schicken", "Termin bestätigen", "Geburtstagskarte schreiben 🎂",
)  # fmt: skip
_TASK_BODIES = (
    None,
    "Bitte bis Freitag erledigen.",
    "Rückfrage zu Position 3 – Rabatt von 5 % möglich?",  # noqa: RUF001 - a real en dash
    "Line one\nLine two\n\n— signed, the team",
    "Prüfen: <b>Preise</b> & Konditionen",
)
_NOTE_BODIES = (
    "<p>Telefonat mit <strong>{first}</strong>: Angebot über 12.500 € besprochen.</p>",
    "<div>Messe-Kontakt 🎉<br>Interesse an Wartungsvertrag für {company}</div>",
    "Notiz: <script>alert('xss')</script> bitte ignorieren",
    "<ul><li>Punkt eins</li><li>Punkt zwei &amp; drei</li></ul>",
    "Kurz angerufen, kein Anschluss.",
    "Çok teşekkürler, {first} — follow-up next week",
    '<a href="https://example.com/angebot?id=1&amp;v=2">Link</a> zum Angebot <script src="x.js"></script>',  # noqa: E501 - one body
    "Zeile eins\nZeile zwei\n\n– Gedankenstrich, „Anführungszeichen“ und 'Apostroph'",  # noqa: RUF001
    "<h1>Überschrift</h1><table><tr><td>Zelle</td></tr></table>",
)
_APPOINTMENT_TITLES = (
    "Erstgespräch mit {name}",
    "Beratung",
    "Démo produit",
    "Spotkanie w sprawie oferty",
    "Jahresgespräch {company}",
    "Support-Termin ☎",
)
_ADDRESSES = ("Zoom", "Telefon", "Büro München, Königsallee 1", "Vor Ort beim Kunden", "")
_STATUS_MIX = (
    ("confirmed",) * 8
    + ("showed",) * 4
    + ("cancelled",) * 2
    + ("noshow",) * 2
    + ("new",) * 2
    + ("invalid", "active", "completed")
)
_DURATIONS_MIN = (15, 30, 30, 45, 60, 60, 90)
_ID_ALPHABET_FIX = bytes.maketrans(b"+/", b"xQ")


def _pick(rng: random.Random, seq: Sequence[_T]) -> _T:
    """``rng.choice`` without its per-call overhead (this runs millions of times)."""
    return seq[int(rng.random() * len(seq))]


def _chance(rng: random.Random, probability: float) -> bool:
    return rng.random() < probability


def _between(rng: random.Random, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]``."""
    return low + int(rng.random() * (high - low + 1))


class _Ids:
    """Distinct 20-character ids of letters and digits from one block of random bytes."""

    def __init__(self, rng: random.Random, count: int) -> None:
        raw = base64.b64encode(rng.randbytes(15 * count)).translate(_ID_ALPHABET_FIX).decode()
        self._ids = [raw[i : i + 20] for i in range(0, 20 * count, 20)]
        self._next = 0
        self._seen: set[str] = set()

    def take(self) -> str:
        """The next id (a repeat, about never at 120 random bits, is skipped)."""
        while True:
            new = self._ids[self._next]
            self._next += 1
            if new not in self._seen:
                self._seen.add(new)
                return new


_DAY_PREFIX: dict[int, str] = {}  # day number -> "YYYY-MM-DD"
_CLOCK: list[str] = []  # "HH:MM:SS" for each second of a day, built on first use


def _day(ms: int) -> tuple[str, str, int]:
    """Date, time of day and milliseconds of epoch ``ms`` (UTC), from tables."""
    day, rest = divmod(ms, _MS_DAY)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = _DAY_PREFIX[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))
    if not _CLOCK:
        _CLOCK.extend(
            f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
        )
    seconds, milli = divmod(rest, 1000)
    return prefix, _CLOCK[seconds], milli


def iso(ms: int) -> str:
    """``2021-07-08T02:30:00.000Z`` for epoch ms (table-driven: it runs ~10^6 times)."""
    date, clock, milli = _day(ms)
    return f"{date}T{clock}.{milli:03d}Z"


def wall_time(ms: int) -> str:
    """``2021-07-16 11:00:00``: the per-contact appointment route's form (UTC here)."""
    date, clock, _ = _day(ms)
    return f"{date} {clock}"


def _slug(text: str) -> str:
    folded = ascii_fold(text).lower()
    return "".join(ch for ch in folded if ch.isalnum())


def _companies(rng: random.Random, count: int) -> list[tuple[str, str, str]]:
    """(name, country, website) of ``count`` companies."""
    out = []
    for i in range(count):
        country = _pick(rng, _COUNTRY_MIX)
        word = _pick(rng, _COMPANY_WORDS) if _chance(rng, 0.6) else _pick(rng, _LAST)
        name = f"{word} {_pick(rng, _LEGAL[country])}"
        slug = _slug(word) or "firma"
        out.append((name, country, f"https://www.{slug}{i}.example.com"))
    return out


class _Emails:
    """Unique addresses ``first.last@domain``, numbered when taken."""

    def __init__(self) -> None:
        self._slugs: dict[str, str] = {}
        self._used: dict[str, int] = {}

    def address(self, first: str, last: str, domain: str) -> str:
        slugs = self._slugs
        for name in (first, last):
            if name not in slugs:
                slugs[name] = _slug(name)
        local = ".".join(p for p in (slugs[first], slugs[last]) if p) or "kontakt"
        address = f"{local}@{domain}"
        seen = self._used.get(address, 0)
        self._used[address] = seen + 1
        return address if not seen else f"{local}{seen + 1}@{domain}"


def _phone(country: str, n: int) -> str:
    """A unique E.164 mobile number of ``country`` for the ``n``-th contact."""
    _, prefix, suffix, _, _ = _COUNTRIES[country]
    return f"{prefix}{(n * 7919 + 1234567) % 9_000_000 + 1_000_000}{suffix}"


# tag sets a contact may carry: none (half of them), one, two or three of TAGS
_TAG_SETS: tuple[tuple[str, ...], ...] = (
    ((),) * 24
    + tuple((t,) for t in TAGS)
    + tuple(tuple(sorted((TAGS[i], TAGS[(i * 5 + 3) % len(TAGS)]))) for i in range(len(TAGS)))
    + tuple(
        tuple(sorted({TAGS[i], TAGS[(i + 4) % len(TAGS)], TAGS[(i + 7) % len(TAGS)]}))
        for i in range(0, len(TAGS), 3)
    )
)  # fmt: skip
_INTERESTS = (["Beratung"], ["Wartung"], ["Schulung"], ["Beratung", "Wartung"])


def _custom_fields(roll: float, n: int) -> list[dict[str, Any]]:
    """Custom field values of the ``n``-th contact: a customer number and/or interests."""
    fields: list[dict[str, Any]] = []
    if roll < 0.3:  # noqa: PLR2004 - the share with a customer number
        fields.append({"id": CUSTOM_FIELD_IDS["customer_number"], "value": f"K-{10000 + n}"})
    if roll > 0.85:  # noqa: PLR2004 - the share with interests
        interests = list(_INTERESTS[n % len(_INTERESTS)])
        fields.append({"id": CUSTOM_FIELD_IDS["interests"], "value": interests})
    return fields


_DERIVED = (
    ("firstNameLowerCase", "firstName"),
    ("lastNameLowerCase", "lastName"),
    ("fullNameLowerCase", "name"),
    ("emailLowerCase", "email"),
)


def _contact(
    rng: random.Random,
    i: int,
    cid: str,
    location_id: str,
    company: tuple[str, str, str] | None,
    emails: _Emails,
    times: tuple[int, int],
) -> dict[str, Any]:
    roll = rng.random  # one draw per decision, in a fixed order: the order makes the data
    country = company[1] if company else _pick(rng, _COUNTRY_MIX)
    added, updated = times
    dnd = roll() < 0.05  # noqa: PLR2004 - the share who asked not to be contacted
    contact: dict[str, Any] = {
        "id": cid,
        "locationId": location_id,
        "type": "customer" if roll() < 0.4 else "lead",  # noqa: PLR2004 - the customers' share
        "dnd": dnd,
        "tags": list(_pick(rng, _TAG_SETS)),
        "customFields": _custom_fields(roll(), i),
        "additionalEmails": [],
        "additionalPhones": [],
        "followers": [],
        "dateAdded": iso(added),
    }
    _reach(rng, contact, i, country, (company, emails))
    if roll() < 0.7:  # noqa: PLR2004 - the share with a postal address
        postal, city = _pick(rng, _COUNTRIES[country][3])
        contact["address1"] = f"{_pick(rng, _COUNTRIES[country][4])} {1 + int(roll() * 120)}"
        contact["city"] = city
        contact["postalCode"] = postal
    contact["country"] = country
    contact["timezone"] = _COUNTRIES[country][0]
    contact["source"] = _pick(rng, _SOURCES)
    if roll() < 0.2:  # noqa: PLR2004 - the share with a birthday: born 1950..2000
        born = _between(rng, -631_152_000_000, 978_307_200_000)
        contact["dateOfBirth"] = iso(born // _MS_DAY * _MS_DAY)
    if roll() < 0.6:  # noqa: PLR2004 - the share assigned to a user
        contact["assignedTo"] = _pick(rng, USER_IDS)
    if dnd:
        contact["dndSettings"] = {"Email": {"status": "active"}, "SMS": {"status": "active"}}
    for derived, source in _DERIVED:
        value = contact.get(source)
        if value:
            contact[derived] = value.lower()
    contact["dateUpdated"] = iso(updated)
    return contact


def _reach(
    rng: random.Random,
    contact: dict[str, Any],
    i: int,
    country: str,
    company_and_emails: tuple[tuple[str, str, str] | None, _Emails],
) -> None:
    """Names, e-mail, phone and company of the ``i``-th contact, written into ``contact``."""
    company, emails = company_and_emails
    special = i < len(_SPECIAL_PEOPLE)
    first, last = _SPECIAL_PEOPLE[i] if special else (_pick(rng, _FIRST), _pick(rng, _LAST))
    no_email, no_phone = rng.random() < 0.08, rng.random() < 0.12  # noqa: PLR2004 - shares
    if first:
        contact["firstName"] = first
    if last:
        contact["lastName"] = last
    if i != _NO_EMAIL and (special or not no_email):
        domain = company[2][12:] if company else ("example.com", "example.org")[i % 2]
        contact["email"] = emails.address(first, last, domain)
    if i != _NO_PHONE and (special or not no_phone):
        contact["phone"] = _phone(country, i)
    if company:
        contact["companyName"] = company[0]
        contact["website"] = company[2]
    if first or last:
        contact["name"] = f"{first} {last}" if first and last else first or last


def _contact_times(rng: random.Random, count: int) -> list[tuple[int, int]]:
    """(dateAdded, dateUpdated) ms per contact: added ascending, some updates tied (imports)."""
    added = sorted(_between(rng, _T0, _T1) for _ in range(count))
    out: list[tuple[int, int]] = []
    for i, start in enumerate(added):
        if i and _chance(rng, 0.05) and out[-1][1] >= start:
            updated = out[-1][1]  # changed in the same batch as the contact before it
        elif _chance(rng, 0.5):
            updated = start
        else:
            updated = _between(rng, start, _T1)
        out.append((start, updated))
    return out


def _tasks(
    rng: random.Random, count: int, ids: _Ids, contacts: list[dict[str, Any]], added: list[int]
) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        n = _between(rng, 0, len(contacts) - 1)
        created = _between(rng, added[n], _T1)
        completed = i == 1 or (i != 0 and _chance(rng, 0.4))  # the first open, the second done
        future = i == 2 or (i > 3 and not completed and _chance(rng, 0.1))  # noqa: PLR2004
        if future:
            due = _between(rng, _FUTURE_FROM, _FUTURE_TO) // 60_000 * 60_000
        else:
            due = (created + _between(rng, 0, 120) * _MS_DAY) // 3_600_000 * 3_600_000
        updated = created if _chance(rng, 0.5) and not completed else _between(rng, created, _T1)
        task: dict[str, Any] = {"id": ids.take(), "title": _pick(rng, _TASK_TITLES)}
        body = _pick(rng, _TASK_BODIES)
        if body is not None:
            task["body"] = body
        if _chance(rng, 0.85):
            task["assignedTo"] = _pick(rng, USER_IDS)
        task |= {
            "dueDate": iso(due),
            "completed": completed,
            "contactId": contacts[n]["id"],
            "dateAdded": iso(created),
            "dateUpdated": iso(updated),
        }
        out.append(task)
    return out


def _notes(
    rng: random.Random, count: int, ids: _Ids, contacts: list[dict[str, Any]], added: list[int]
) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        n = _between(rng, 0, len(contacts) - 1)
        contact = contacts[n]
        body = _pick(rng, _NOTE_BODIES).format(
            first=contact.get("firstName") or "Kontakt",
            company=contact.get("companyName") or "die neue Firma",
        )
        out.append(
            {
                "id": ids.take(),
                "body": body,
                "userId": _pick(rng, USER_IDS),
                "dateAdded": iso(_between(rng, added[n], _T1)),
                "contactId": contact["id"],
            }
        )
    return out


def _appointments(
    rng: random.Random,
    count: int,
    ids: _Ids,
    contacts: list[dict[str, Any]],
    added: list[int],
) -> list[dict[str, Any]]:
    out = []
    fixed = 2 * len(APPOINTMENT_STATUSES)  # each status once in the past, once in the future
    for i in range(count):
        n = _between(rng, 0, len(contacts) - 1)
        contact = contacts[n]
        if i < fixed:
            status = APPOINTMENT_STATUSES[i // 2]
            window = (
                (_PAST_FROM, _PAST_FROM + 364 * _MS_DAY)
                if i % 2 == 0
                else (_FUTURE_FROM, _FUTURE_TO)
            )
        else:
            status = _pick(rng, _STATUS_MIX)
            window = (max(_T0, added[n]), _FUTURE_TO)
        start = _between(rng, *window) // 900_000 * 900_000  # on a quarter hour
        end = start + _pick(rng, _DURATIONS_MIN) * 60_000
        booked = _between(rng, min(added[n], start), min(start, _T1))
        changed = (
            booked if _chance(rng, 0.6) else _between(rng, booked, min(max(start, booked), _T1))
        )
        user = _pick(rng, USER_IDS)
        title = _pick(rng, _APPOINTMENT_TITLES).format(
            name=contact.get("name") or "Kontakt", company=contact.get("companyName") or "Kunde"
        )
        out.append(
            {
                "id": ids.take(),
                "calendarId": _pick(rng, CALENDAR_IDS),
                # assumption: the event `status` reads "cancelled" for a cancelled appointment,
                # "booked" otherwise (the spec's example is "booked"; the values are UNCONFIRMED)
                "status": "cancelled" if status == "cancelled" else "booked",
                "title": title,
                "assignedUserId": user,
                "notes": _pick(
                    rng, ("", "Agenda: Angebot durchgehen", "Bitte Parkplatz reservieren")
                ),
                "startTime": wall_time(start),
                "endTime": wall_time(end),
                "address": _pick(rng, _ADDRESSES),
                "locationId": contact["locationId"],
                "contactId": contact["id"],
                "groupId": GROUP_ID,
                "appointmentStatus": status,
                "users": [user],
                "dateAdded": iso(booked),
                "dateUpdated": iso(changed),
                "assignedResources": [],
            }
        )
    return out


def generate(
    n_contacts: int,
    seed: int = 1,
    *,
    location_id: str = "sandbox-location",
    tasks: int | None = None,
    notes: int | None = None,
    appointments: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """A deterministic seed document with ``n_contacts`` contacts; see the module docstring."""
    if n_contacts < 0 or any(c is not None and c < 0 for c in (tasks, notes, appointments)):
        raise ValueError("counts must be >= 0")
    with gc_paused():
        return _generate(n_contacts, seed, location_id, (tasks, notes, appointments))


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (restored after).

    For building or loading many records: they hold no cycles, and the collector's passes over a
    growing heap would make the work quadratic.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _generate(
    n_contacts: int, seed: int, location_id: str, counts: tuple[int | None, ...]
) -> dict[str, list[dict[str, Any]]]:
    tasks, notes, appointments = counts
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    if n_contacts == 0:
        return {"contacts": [], "tasks": [], "notes": [], "appointments": []}
    n_tasks = max(4, n_contacts // 2) if tasks is None else tasks
    n_notes = max(3, n_contacts // 2) if notes is None else notes
    n_appointments = max(16, n_contacts // 4) if appointments is None else appointments
    ids = _Ids(rng, n_contacts + n_tasks + n_notes + n_appointments + 16)
    companies = _companies(rng, max(3, n_contacts // 5))
    times = _contact_times(rng, n_contacts)
    emails = _Emails()
    contacts = [
        _contact(
            rng,
            i,
            ids.take(),
            location_id,
            _pick(rng, companies) if _chance(rng, 0.7) else None,
            emails,
            times[i],
        )
        for i in range(n_contacts)
    ]
    added = [t[0] for t in times]
    return {
        "contacts": contacts,
        "tasks": _tasks(rng, n_tasks, ids, contacts, added),
        "notes": _notes(rng, n_notes, ids, contacts, added),
        "appointments": _appointments(rng, n_appointments, ids, contacts, added),
    }
