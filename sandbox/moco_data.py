"""Seed data for the MOCO sandbox: MOCO's record shapes and a deterministic generator.

The shapes (field order, ``""`` versus ``null``, type-specific company fields) follow the real
responses recorded in ``reference/moco-recorded/`` (2022/2023) and reference/moco-api.md §6; the
sandbox (:mod:`sandbox.moco`) fills missing seed fields from the same defaults.

:func:`generate` returns a seed document ``{"companies": [...], "contacts": [...], "todos": [...],
"comments": [...]}`` that ``POST /_sandbox/seed`` accepts as is. Callers may rely on:

- the same ``(n_contacts, seed)`` always giving the same document (no clock, no hash order);
- exactly ``n_contacts`` contacts, ``max(3, n_contacts // 5)`` companies (the first three: one of
  each type), ``max(4, n_contacts // 2)`` to-dos, and ``max(3, n_contacts // 2)`` comments plus one
  system comment ("Firma angelegt.") per company;
- ids ascending with ``created_at`` inside each record type, in the id ranges of :data:`ID_BASES`;
- ``created_at``/``updated_at`` in 2021..2025, formatted ``YYYY-MM-DDTHH:MM:SSZ``;
- a mix that exercises a sync: non-ASCII names (the first contacts are always "Jürgen Müßig",
  "Zoë Lefèvre" (no e-mail), "Łukasz Wójcik" (no phone)), contacts without e-mail, without phone,
  without company, tags from :data:`CONTACT_TAGS`, custom properties, completed and open to-dos
  on contacts and (the first four: Contact, Company, Deal, Assignment) on other records, HTML
  comments on contacts and on companies, deals and projects;
- e-mail addresses and phone numbers unique across contacts (the Contacts API deduplicates on them).

100,000 contacts (with 20,000 companies, 50,000 to-dos, 70,000 comments) take about 4 s on
a small 2-core machine.
"""

from __future__ import annotations

import calendar
import random
import time
import unicodedata
from typing import TYPE_CHECKING, Any, TypeVar

from sandbox.server import copy_json

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

_T = TypeVar("_T")

# Users that records point at (``user``, ``created_by``, ``assigned_to``); the first one is the
# owner of the sandbox's API key (``GET /session``) and the default author of API writes.
USERS: list[dict[str, Any]] = [
    {"id": 933662266, "firstname": "Michael", "lastname": "Mustermann"},
    {"id": 933662267, "firstname": "Sabine", "lastname": "Größer"},
    {"id": 933662268, "firstname": "Tomasz", "lastname": "Wiśniewski"},
    {"id": 933662269, "firstname": "Léa", "lastname": "Martin"},
]
SESSION_USER = USERS[0]
SESSION_UUID = "aec324a2-4832-11eb-b378-0242ac130002"

# First id of each record type (real MOCO ids are large; distinct ranges catch mixed-up ids).
ID_BASES: dict[str, int] = {
    "companies": 761_300_000,
    "contacts": 677_600_000,
    "todos": 23_400_000,
    "comments": 15_300_000,
    "web_hooks": 4_100,
}

COMPANY_TYPES = ("customer", "supplier", "organization")
GENDERS = ("F", "M", "U")
TODOABLE_TYPES = (
    "Assignment",
    "Company",
    "Contact",
    "Deal",
    "Invoice",
    "Offer",
    "ProjectGroup",
    "PurchaseDraft",
    "PurchaseOrder",
    "Purchase",
    "User",
)
COMMENTABLE_TYPES = (
    "Company",
    "Contact",
    "Deal",
    "DeliveryNote",
    "Expense",
    "Invoice",
    "InvoiceBookkeepingExport",
    "InvoiceDeletion",
    "InvoiceReminder",
    "Offer",
    "OfferConfirmation",
    "Project",
    "ProjectGroup",
    "Purchase",
    "PurchaseBookkeepingExport",
    "PurchaseDraft",
    "Receipt",
    "ReceiptRefundRequest",
    "RecurringExpense",
    "Unit",
    "User",
    "UserHolidayRequest",
)
CONTACT_TAGS = (
    "Christmas Card",
    "Early Adopter",
    "Influencer",
    "Key Account",
    "Lead",
    "Newsletter",
    "Partner",
    "VIP",
)
COMPANY_TAGS = ("A-Kunde", "Agentur", "Druckerei", "Enterprise", "Netzwerk", "Partner")

# --- record shapes: field order and defaults as MOCO answers them ------------------------------
# Mutable defaults are copied by the callers (see :func:`fresh`).

CONTACT_DEFAULTS: dict[str, Any] = {
    "id": None,
    "gender": "U",
    "firstname": "",
    "lastname": "",
    "title": "",
    "job_position": "",
    "mobile_phone": "",
    "work_fax": "",
    "work_phone": "",
    "work_email": "",
    "work_address": "",
    "home_email": "",
    "home_address": "",
    "birthday": None,
    "salutation": "",
    "info": "",
    "avatar_url": None,
    "tags": [],
    "custom_properties": {},
    "company": None,
    "user": None,
    "created_at": None,
    "updated_at": None,
}

# Common to all company types, in REC 2023 order; reference/moco-api.md §6.2 adds the fields REC
# lacks: ``alternative_correspondence_language`` (MD, OA; the newer name of
# ``english_correspondence_language``, both always carry the same value), ``default_payment_means``
# (OA; its "applies to" is blank, so every type has it), ``active`` and ``archived_on`` (MD, OA).
COMPANY_DEFAULTS: dict[str, Any] = {
    "id": None,
    "type": "customer",
    "name": "",
    "website": "",
    "email": None,
    "billing_email_cc": "",
    "phone": "",
    "fax": "",
    "address": "",
    "country_code": "DE",
    "vat_identifier": None,
    "alternative_correspondence_language": False,
    "english_correspondence_language": False,
    "tags": [],
    "user": None,
    "labels": [],
    "info": "",
    "footer": "",
    "custom_properties": {},
    # UNCONFIRMED default: OA allows null too; "not_defined" is the enum's own "nothing chosen".
    "default_payment_means": "not_defined",
    "active": True,
    "archived_on": None,
    "created_at": None,
    "updated_at": None,
}
# The VAT code objects of §6.2. ``billing_vat`` keeps the four fields REC shows; ``customer_vat``
# and ``supplier_vat`` carry every field §6.2 lists (REC 2023 showed only the first four; the
# values of the added ones are UNCONFIRMED, typed as OA's VatCodeSale / VatCodePurchase).
BILLING_VAT_DEFAULT: dict[str, Any] = {
    "id": 59020,
    "tax": 19.0,
    "reverse_charge": False,
    "intra_eu": False,
}
CUSTOMER_VAT_DEFAULT: dict[str, Any] = {
    "id": 59020,
    "tax": 19.0,
    "description": "Umsatzsteuer 19 %",
    "reverse_charge": False,
    "intra_eu": False,
    "active": True,
    "print_gross_total": False,
    "notice_tax_exemption": None,
    "notice_tax_exemption_alt": None,
    "code": "USt19",
    "credit_account": None,
}
SUPPLIER_VAT_DEFAULT: dict[str, Any] = {
    "id": 59021,
    "tax": 19.0,
    "description": "Vorsteuer 19 %",
    "reverse_charge": False,
    "intra_eu": False,
    "active": True,
    "code": "VSt19",
}
# Company fields holding a VAT code object: a seed's partial object is completed from these.
VAT_DEFAULTS: dict[str, dict[str, Any]] = {
    "billing_vat": BILLING_VAT_DEFAULT,
    "customer_vat": CUSTOMER_VAT_DEFAULT,
    "supplier_vat": SUPPLIER_VAT_DEFAULT,
}
CUSTOMER_DEFAULTS: dict[str, Any] = {
    "identifier": None,
    "intern": False,
    "billing_tax": 19.0,
    "billing_vat": BILLING_VAT_DEFAULT,
    "customer_vat": CUSTOMER_VAT_DEFAULT,
    "currency": "EUR",
    "custom_rates": False,
    "include_time_report": False,
    "billing_notes": "",
    "default_discount": 0.0,
    "default_cash_discount": 0.0,
    "default_cash_discount_days": 0,
    "default_invoice_due_days": 30,
    # UNCONFIRMED default (OA: nullable enum); a plain PDF is what an account starts with.
    "invoice_format": "regular_pdf",
    "projects": [],
    "debit_number": None,
}
# REC shows suppliers with ``iban``; §6.2 adds the VAT code, bank and bookkeeping fields and
# ``default_invoice_due_days`` ("customer/supplier", nullable: no payment term set by default).
SUPPLIER_DEFAULTS: dict[str, Any] = {
    "supplier_vat": SUPPLIER_VAT_DEFAULT,
    "default_invoice_due_days": None,
    "iban": None,
    "bank_bic": None,
    "bank_owner": None,
    "credit_number": None,
}
# Type-specific fields OA documents; a seed may give them for any type and they are kept.
COMPANY_OPTIONAL_FIELDS = frozenset(
    {
        "supplier_vat",
        "invoice_format",
        "bank_bic",
        "bank_owner",
        "debit_number",
        "credit_number",
    }
)

TODO_DEFAULTS: dict[str, Any] = {
    "id": None,
    "title": "",
    "due_date": None,
    "completed_at": None,
    "completed": False,
    "personal": False,
    "todoable_id": None,
    "todoable_type": None,
    "todoable_description": "",
    "created_by": None,
    "assigned_to": None,
    "created_at": None,
    "updated_at": None,
}

COMMENT_DEFAULTS: dict[str, Any] = {
    "id": None,
    "commentable_id": None,
    "commentable_type": None,
    "text": "",
    "manual": True,
    "created_at": None,
    "updated_at": None,
    "user": None,
}
# Present only when set (REC 2022 has no such key; MD: only under impersonation).
COMMENT_OPTIONAL_FIELDS = frozenset(
    {"impersonating_user", "attachment_filename", "attachment_content"}
)


# A copy of a default value that is safe to store (lists and dicts are not shared).
fresh = copy_json


def user_ref(user: dict[str, Any]) -> dict[str, Any]:
    """The ``{id, firstname, lastname}`` reference MOCO embeds for a user."""
    return {"id": user["id"], "firstname": user["firstname"], "lastname": user["lastname"]}


# --- vocabularies ----------------------------------------------------------------------------

_FIRST_F = (
    "Anna",
    "Lena",
    "Sophie",
    "Zoë",
    "Małgorzata",
    "Anaïs",
    "Chloé",
    "Dörte",
    "Renée",
    "Julia",
    "Katrin",
    "Ines",
    "Maja",
    "Agnieszka",
    "Søs",
    "Hannah",
    "Emma",
    "Mia",
    "Laura",
    "Çağla",
    "Åsa",
    "Nadia",
    "Elif",
    "Léonie",
    "Zuzanna",
    "Marie",
)
_FIRST_M = (
    "Jürgen",
    "Łukasz",
    "Søren",
    "José",
    "Björn",
    "Günther",
    "François",
    "Maximilian",
    "Jonas",
    "Paul",
    "Felix",
    "Noah",
    "Tobias",
    "Stefan",
    "Nikolai",
    "Ľubomír",
    "Ole",
    "Matthias",
    "Piotr",
    "Jean-Luc",
    "Andreas",
    "Kemal",
    "Oskar",
    "Grzegorz",
    "Émile",
)
_FIRST_U = ("Alex", "Kim", "Robin", "Sascha", "Luca", "Toni", "Noa", "Andrea")
_LAST = (
    "Müßig",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weiß",
    "Bäcker",
    "Kowalski",
    "Wójcik",
    "Nowak",
    "Jørgensen",
    "Andersson",
    "Dubois",
    "Lefèvre",
    "García",
    "O'Brien",
    "van der Berg",
    "de la Cruz",
    "Zürcher",
    "Öztürk",
    "Großmann",
    "Hoffmann",
    "Becker",
    "Wagner",
    "Keller",
    "Brunner",
    "Huber",
    "Meier",
    "Frey",
    "Baumann",
    "Gerber",
    "Steiner",
    "Nguyễn",
    "Ødegaard",
    "Šimek",
    "Lewandowska",
    "Krämer",
    "Schäfer",
    "Fuchs",
    "Roth",
    "Yılmaz",  # noqa: RUF001 - a Turkish name, spelled right on purpose
    "Dvořák",
    "Rossi",
    "Mäkinen",
    "Sørensen",
    "Lindqvist",
    "Nagy",
    "Horváth",
    "von Arnim",
    "Zimmermann",
)
_TITLES = ("Dr.", "Prof. Dr.", "Dr. med.", "Mag.", "Dipl.-Ing.")
_POSITIONS = (
    "Geschäftsführerin",
    "Geschäftsführer",
    "CEO",
    "Head of Marketing",
    "Einkauf",
    "Projektleiterin",
    "Office Manager",
    "CTO",
    "Buchhaltung",
    "Marketing Manager",
    "Werkstudent",
    "Art Director",
    "Vertrieb",
)
_COUNTRIES = ("DE", "DE", "DE", "DE", "DE", "CH", "CH", "AT", "AT", "PL")
_CITIES = {
    "DE": (
        ("10115", "Berlin"),
        ("20095", "Hamburg"),
        ("80331", "München"),
        ("50667", "Köln"),
        ("40213", "Düsseldorf"),
    ),
    "CH": (("8001", "Zürich"), ("3011", "Bern"), ("4051", "Basel"), ("1201", "Genève")),
    "AT": (("1010", "Wien"), ("8010", "Graz"), ("5020", "Salzburg")),
    "PL": (("31-001", "Kraków"), ("00-001", "Warszawa"), ("90-001", "Łódź")),
}
_STREETS = {
    "DE": ("Hauptstraße", "Lindenallee", "Königsweg", "Schloßstraße", "Am Mühlbach"),
    "CH": ("Bahnhofstrasse", "Rue du Rhône", "Seestrasse", "Marktgasse"),
    "AT": ("Mariahilfer Straße", "Herrengasse", "Getreidegasse"),
    "PL": ("ul. Długa", "ul. Świętokrzyska", "ul. Piotrkowska"),
}
_LEGAL = {
    "DE": ("GmbH", "AG", "KG", "GmbH & Co. KG", "e.K."),
    "CH": ("AG", "GmbH", "Sàrl"),
    "AT": ("GmbH", "OG"),
    "PL": ("Sp. z o.o.", "S.A."),
}
_WORDS = (
    "Nordlicht",
    "Alpenblick",
    "Sonnenhof",
    "Blaupause",
    "Weitblick",
    "Kreativwerk",
    "Bergquelle",
    "Stadtgrün",
    "Fernweh",
    "Morgenrot",
    "Lichtblick",
    "Wolkenlos",
)
_NOUNS = ("Media", "Design", "Software", "Consulting", "Druck", "Logistik", "Bau", "Digital")
_ORGS = (
    "Verein für Stadtkultur e.V.",
    "Stiftung {w}",
    "{c} Tourismus",
    "Förderverein {w} e.V.",
    "Handelskammer {c}",
    "Fachhochschule {c}",
)
_JOB_INFO = (
    "",
    "",
    "",
    "Bevorzugt Kontakt per E-Mail.",
    "Met at the trade fair 2023.",
    "Entscheidet über Budget.",
    "Spricht Deutsch und Polski.",
)
_TODO_TITLES = (
    "Angebot nachfassen",
    "Follow up on offer",
    "Rückruf vereinbaren",
    "Send contract",
    "Vertrag prüfen",
    "Termin für Workshop finden",
    "Präsentation vorbereiten",
    "Rechnung klären",
    "Check in after launch",
    "Geburtstagskarte schicken",
    "Referenzen anfragen",
    "Onboarding-Call planen",
)
_DEALS = (
    "Website Relaunch",
    "SEO Retainer",
    "Brand Workshop",
    "Shop-Migration",
    "Wartungsvertrag",
    "Kampagne Frühling",
)
_PROJECTS = (
    "Layoutanpassung",
    "Website Support",
    "Corporate Design",
    "App Redesign",
    "Intranet Łódź",
    "Messeauftritt Zürich",
)
_CONTACT_NOTES = (
    "<div>Telefonat mit <strong>{first}</strong>: Interesse an einem Relaunch.</div>",
    "<div>Meeting notes:<br>- Budget confirmed<br>- Next step: offer by Friday</div>",
    (
        "<div><strong>Wichtig:</strong> bevorzugt E-Mail.</div><ul><li>Newsletter abbestellt</li>"
        "<li>Rückruf im Q3</li></ul>"
    ),
    "<div>Hat nach dem Angebot gefragt – Preis &amp; Laufzeit klären.</div>",  # noqa: RUF001 - typography
    "Kurze Notiz: {first} ist ab Montag im Urlaub.",
    "<div>Follow-up:</div><ol><li>Vertrag senden</li><li>Kick-off planen</li></ol>",
    "<div><em>Vertraulich</em>: wechselt zu {company}.</div>",
    "<div>Zoë &amp; Jürgen vom Team treffen {first} in Łódź 👍</div>",
    "<pre>Code: ABC-123\nZeile 2</pre>",
)
_OTHER_NOTES = (
    "<div>Rahmenvertrag verlängert.</div>",
    "<div><strong>Achtung:</strong> Zahlungsziel 14 Tage.</div>",
    "<div>Status:<ul><li>Entwurf abgestimmt</li><li>Freigabe offen</li></ul></div>",
)
_CUSTOM_SOURCES = ("Messe", "Empfehlung", "Website", "LinkedIn", "Kaltakquise")
_INTERESTS = ("Design", "Hosting", "SEO", "Workshops")
_BRANCHES = ("Automotive", "Handel", "Gesundheit", "Öffentliche Hand", "Kultur")

_FOLD = str.maketrans(
    {
        "ä": "ae",
        "ö": "oe",
        "ü": "ue",
        "ß": "ss",
        "Ä": "Ae",
        "Ö": "Oe",
        "Ü": "Ue",
        "ł": "l",
        "Ł": "L",
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "Ae",
        "ı": "i",  # noqa: RUF001 - the Turkish dotless i, folded on purpose
        "đ": "d",
        "Đ": "D",
    }
)

_T0 = 1609459200  # 2021-01-01T00:00:00Z
_T1 = 1767225599  # 2025-12-31T23:59:59Z
_DAY_CACHE: dict[int, str] = {}
_TIME_OF_DAY: list[str] = []  # "HH:MM:SSZ" for each second of a day, built on first use
_TYPE_MIX = ("customer",) * 6 + ("supplier",) * 2 + ("organization",) * 2
_GENDER_MIX = ("F",) * 12 + ("M",) * 12 + ("U",)


def _pick(rng: random.Random, seq: Sequence[_T]) -> _T:
    """``rng.choice`` without its per-call overhead (this runs millions of times)."""
    return seq[int(rng.random() * len(seq))]


def _chance(rng: random.Random, probability: float) -> bool:
    """True with ``probability`` (one draw, like every other draw: the order makes the data)."""
    return rng.random() < probability


def _band(roll: float, bands: tuple[tuple[float, str], ...], rest: str, skip: set[str]) -> str:
    """The first band whose upper bound is above ``roll`` and not in ``skip``, else ``rest``."""
    return next((name for bound, name in bands if roll < bound and name not in skip), rest)


def _between(rng: random.Random, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]``; faster than ``rng.randint``."""
    return low + int(rng.random() * (high - low + 1))


def _sample(rng: random.Random, seq: tuple[str, ...], k: int) -> list[str]:
    """``k`` distinct items of ``seq`` (``k`` is small)."""
    out: list[str] = []
    while len(out) < k:
        item = _pick(rng, seq)
        if item not in out:
            out.append(item)
    return out


def ascii_fold(text: str) -> str:
    """``"Jürgen Müßig"`` -> ``"Juergen Muessig"``: German transliteration, then accents dropped."""
    text = text.translate(_FOLD)
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isascii())


def _slug(text: str) -> str:
    folded = ascii_fold(text).lower()
    out = []
    dash = False
    for ch in folded:
        if ch.isalnum():
            out.append(ch)
            dash = False
        elif not dash and out:
            out.append("-")
            dash = True
    return "".join(out).strip("-")


def format_ts(epoch: int) -> str:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SSZ`` (UTC); table-driven because it runs ~10^6 times."""
    day, rest = divmod(epoch, 86400)
    prefix = _DAY_CACHE.get(day)
    if prefix is None:
        prefix = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
        _DAY_CACHE[day] = prefix
    if not _TIME_OF_DAY:
        _TIME_OF_DAY.extend(
            f"{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)
        )
    return prefix + _TIME_OF_DAY[rest]


def _date(epoch: int) -> str:
    return format_ts(epoch)[:10]


# Phone numbers as people write them per country, from seven unique digits (DE: the default).
_MOBILE_FORMATS: dict[str, Callable[[str], str]] = {
    "CH": lambda d: f"+41 79 {d[:3]} {d[3:5]} {d[5:]}",
    "AT": lambda d: f"+43 664 {d}",
    "PL": lambda d: f"+48 5{d[:2]} {d[2:5]} {d[5:]}",
    "DE": lambda d: f"+49 151 {d[:4]} {d[4:]}0",
}
_LANDLINE_FORMATS: dict[str, Callable[[str], str]] = {
    "CH": lambda d: f"+41 44 {d[:3]} {d[3:5]} {d[5:]}",
    "AT": lambda d: f"+43 1 {d}",
    "PL": lambda d: f"+48 22 {d[:3]} {d[3:5]} {d[5:]}",
}
# German landlines in four styles by ``n % 4``, the first without country code as users type it
_DE_LANDLINE_STYLES: tuple[Callable[[str], str], ...] = (
    lambda d: f"030 {d}",
    lambda d: f"+49 (0)30 {d}",
    lambda d: f"+49 30 {d}",
    lambda d: f"+49 30 {d}",
)


def _phone(country: str, n: int, *, mobile: bool) -> str:
    """A plausible number in the country's usual format; ``n`` makes it unique."""
    if mobile:
        digits = f"{(n * 104729 + 1234567) % 9_000_000 + 1_000_000}"
        return _MOBILE_FORMATS.get(country, _MOBILE_FORMATS["DE"])(digits)
    digits = f"{(n * 7919 + 2345678) % 9_000_000 + 1_000_000}"
    landline = _LANDLINE_FORMATS.get(country, _DE_LANDLINE_STYLES[n % 4])
    return landline(digits)


def _address(rng: random.Random, country: str, first_line: str | None = None) -> str:
    zip_code, city = _pick(rng, _CITIES[country])
    street = f"{_pick(rng, _STREETS[country])} {_between(rng, 1, 120)}"
    lines = [first_line] if first_line else []
    lines += [street, f"{zip_code} {city}"]
    return "\n".join(lines)


def _sorted_times(rng: random.Random, count: int, start: int = _T0, end: int = _T1) -> list[int]:
    return sorted(_between(rng, start, end) for _ in range(count))


def _next_ids(rng: random.Random, base: int, count: int) -> list[int]:
    """Ascending ids with small gaps (MOCO's ids are shared with other accounts)."""
    ids = []
    current = base
    for _ in range(count):
        current += 1 + _chance(rng, 0.2) * _between(rng, 1, 5)
        ids.append(current)
    return ids


def _company_name(rng: random.Random, ctype: str, country: str) -> str:
    if ctype == "organization":
        zip_city = _pick(rng, _CITIES[country])[1]
        return _pick(rng, _ORGS).format(w=_pick(rng, _WORDS), c=zip_city)
    style = _band(rng.random(), ((0.4, "words"), (0.7, "surname")), "two surnames", set())
    legal = _pick(rng, _LEGAL[country])
    if style == "words":
        return f"{_pick(rng, _WORDS)} {_pick(rng, _NOUNS)} {legal}"
    if style == "surname":
        return f"{_pick(rng, _LAST)} {legal}"
    return f"{_pick(rng, _LAST)} & {_pick(rng, _LAST)} {legal}"


def _companies(rng: random.Random, count: int) -> list[dict[str, Any]]:
    times = _sorted_times(rng, count)
    ids = _next_ids(rng, ID_BASES["companies"], count)
    out: list[dict[str, Any]] = []
    customer_no = 0
    for i in range(count):
        fixed = i < len(COMPANY_TYPES)  # the first ones: one of each type, never archived
        ctype = COMPANY_TYPES[i] if fixed else _pick(rng, _TYPE_MIX)
        country = _pick(rng, _COUNTRIES)
        name = _company_name(rng, ctype, country)
        slug = _slug(name) or f"company-{i}"
        created = times[i]
        updated = created if _chance(rng, 0.6) else _between(rng, created, _T1)
        archived = not fixed and _chance(rng, 0.05)
        tags = sorted(_sample(rng, COMPANY_TAGS, _pick(rng, (0, 0, 1, 2))))
        custom: dict[str, Any] = {}
        if _chance(rng, 0.4):
            custom["Branche"] = _pick(rng, _BRANCHES)
        record: dict[str, Any] = {
            "id": ids[i],
            "type": ctype,
            "name": name,
            "website": f"https://www.{slug}.example.com" if _chance(rng, 0.7) else "",
            "email": f"info@{slug}.example.com" if _chance(rng, 0.6) else None,
            "billing_email_cc": "",
            "phone": _phone(country, 5_000_000 + i, mobile=False) if _chance(rng, 0.8) else "",
            "fax": "",
            "address": _address(rng, country, name),
            "country_code": country,
            "vat_identifier": (
                f"{country}{_between(rng, 100000000, 999999999)}" if _chance(rng, 0.5) else None
            ),
            "alternative_correspondence_language": country == "PL",
            "english_correspondence_language": country == "PL",
            "tags": tags,
            "user": user_ref(_pick(rng, USERS)),
            "labels": list(tags),
            "info": "" if _chance(rng, 0.8) else "Rahmenvertrag seit 2022.",
            "footer": "",
            "custom_properties": custom,
            "default_payment_means": "not_defined",
            "active": not archived,
            "archived_on": format_ts(_between(rng, updated, _T1)) if archived else None,
            "created_at": format_ts(created),
            "updated_at": format_ts(updated),
        }
        if archived:  # archiving is a write, so it is the latest change
            record["updated_at"] = record["archived_on"]
        if ctype == "customer":
            customer_no += 1
            record.update(fresh(CUSTOMER_DEFAULTS))
            record["identifier"] = f"K{customer_no:04d}"
            record["currency"] = "CHF" if country == "CH" else "EUR"
        elif ctype == "supplier":
            record.update(fresh(SUPPLIER_DEFAULTS))
            record["iban"] = (
                f"DE{_between(rng, 10, 99)}{_between(rng, 10**17, 10**18 - 1)}"
                if _chance(rng, 0.5)
                else None
            )
        out.append(record)
    return out


# The first contacts are fixed so that small data sets still carry the hard cases: Zoë has no
# e-mail address and Łukasz no phone number.
_SPECIAL_PEOPLE = (
    ("M", "Jürgen", "Müßig"),
    ("F", "Zoë", "Lefèvre"),
    ("M", "Łukasz", "Wójcik"),
    ("U", "", "O'Brien"),
)
_NO_EMAIL, _NO_PHONE = 1, 2  # their indexes


def _person(rng: random.Random, i: int) -> tuple[str, str, str]:
    """Gender, first and last name of the ``i``-th contact."""
    if i < len(_SPECIAL_PEOPLE):
        return _SPECIAL_PEOPLE[i]
    gender = _pick(rng, _GENDER_MIX)
    pool = _FIRST_F if gender == "F" else _FIRST_M if gender == "M" else _FIRST_U
    first = "" if _chance(rng, 0.01) else _pick(rng, pool)
    return gender, first, _pick(rng, _LAST)


class _EmailBook:
    """Hands out unique e-mail addresses: ``first.last@`` a domain, numbered when taken."""

    def __init__(self) -> None:
        self.folded: dict[str, str] = {}  # name -> its ASCII form for an address
        self._used: dict[str, int] = {}

    def address(self, first: str, last: str, company: dict[str, Any] | None, i: int) -> str:
        """The address of the ``i``-th contact: at its company's domain, or an example one."""
        folded = self.folded
        for name in (first, last):
            if name not in folded:
                folded[name] = _slug(name).replace("-", "")
        local = ".".join(p for p in (folded[first], folded[last]) if p) or "kontakt"
        domain = (
            company["website"].removeprefix("https://www.")
            if company and company["website"]
            else ("example.com", "example.org", "example.net")[i % 3]
        )
        address = f"{local}@{domain}"
        seen = self._used.get(address, 0)
        self._used[address] = seen + 1
        return address if not seen else f"{local}{seen + 1}@{domain}"


_WORK_PHONE_BELOW, _MOBILE_ABOVE = 0.75, 0.5  # one roll: low ones a landline, high ones a mobile


def _phones(rng: random.Random, country: str, i: int) -> tuple[str, str]:
    """Work phone and mobile phone (one of them or both) of the ``i``-th contact."""
    roll = rng.random()
    work = _phone(country, i, mobile=False) if roll < _WORK_PHONE_BELOW else ""
    mobile = _phone(country, i, mobile=True) if roll > _MOBILE_ABOVE else ""
    return work, mobile


def _contact_properties(rng: random.Random) -> dict[str, Any]:
    """Some of the custom properties a contact may carry."""
    custom: dict[str, Any] = {}
    if _chance(rng, 0.5):
        custom["Quelle"] = _pick(rng, _CUSTOM_SOURCES)
    if _chance(rng, 0.2):
        custom["Interessen"] = sorted(_sample(rng, _INTERESTS, _between(rng, 1, 2)))
    if _chance(rng, 0.3):
        custom["Newsletter"] = _pick(rng, ("0", "1"))
    return custom


def _salutation(gender: str, first: str, last: str) -> str:
    """The salutation line MOCO users write for a contact."""
    if gender == "F":
        return f"Sehr geehrte Frau {last}"
    if gender == "M":
        return f"Sehr geehrter Herr {last}"
    return f"Hallo {first or last}"


def _contacts(
    rng: random.Random, count: int, companies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    times = _sorted_times(rng, count)
    ids = _next_ids(rng, ID_BASES["contacts"], count)
    emails = _EmailBook()
    folded = emails.folded  # also names the rare private address
    out: list[dict[str, Any]] = []
    for i in range(count):
        gender, first, last = _person(rng, i)
        company = _pick(rng, companies) if companies and _chance(rng, 0.8) else None
        country = company["country_code"] if company else _pick(rng, _COUNTRIES)
        special = i < len(_SPECIAL_PEOPLE)
        no_email = i == _NO_EMAIL or (not special and _chance(rng, 0.12))
        no_phone = i == _NO_PHONE or (not special and _chance(rng, 0.15))
        email = "" if no_email else emails.address(first, last, company, i)
        work_phone, mobile = ("", "") if no_phone else _phones(rng, country, i)
        created = times[i]
        updated = created if _chance(rng, 0.5) else _between(rng, created, _T1)
        tags = sorted(_sample(rng, CONTACT_TAGS, _pick(rng, (0, 0, 0, 1, 1, 2, 3))))
        custom = _contact_properties(rng)
        salutation = _salutation(gender, first, last) if _chance(rng, 0.3) and last else ""
        out.append(
            {
                "id": ids[i],
                "gender": gender,
                "firstname": first,
                "lastname": last,
                "title": _pick(rng, _TITLES) if _chance(rng, 0.08) else "",
                "job_position": _pick(rng, _POSITIONS) if company and _chance(rng, 0.6) else "",
                "mobile_phone": mobile,
                "work_fax": "",
                "work_phone": work_phone,
                "work_email": email,
                "work_address": _address(rng, country) if _chance(rng, 0.4) else "",
                "home_email": (
                    f"{folded.get(first, 'privat') or 'privat'}.{ids[i]}@example.net"
                    if email and _chance(rng, 0.05)
                    else ""
                ),
                "home_address": _address(rng, country) if _chance(rng, 0.05) else "",
                "birthday": (
                    _date(_between(rng, -631152000, 978307200))  # born 1950..2000
                    if _chance(rng, 0.25)
                    else None
                ),
                "salutation": salutation,
                "info": _pick(rng, _JOB_INFO),
                "avatar_url": None,
                "tags": tags,
                "custom_properties": custom,
                "company": (
                    {"id": company["id"], "type": company["type"], "name": company["name"]}
                    if company
                    else None
                ),
                "user": user_ref(_pick(rng, USERS)),
                "created_at": format_ts(created),
                "updated_at": format_ts(updated),
            }
        )
    return out


def _display_name(contact: dict[str, Any]) -> str:
    return " ".join(p for p in (contact["firstname"], contact["lastname"]) if p)


# What a to-do or comment is attached to: a roll below a band's bound picks it (if there is one
# to pick); the first few take fixed rolls so that small data sets have one of each.
_TODO_BANDS = ((0.8, "Contact"), (0.9, "Company"), (0.96, "Deal"))
_FIRST_TODO_ROLLS = (0.1, 0.85, 0.95, 0.99)  # Contact, Company, Deal, Assignment
_COMMENT_BANDS = ((0.85, "Contact"), (0.93, "Company"), (0.98, "Deal"))
_FIRST_COMMENT_ROLLS = (0.1, 0.9, 0.97)  # Contact, Company, Deal


def _todos(
    rng: random.Random, count: int, contacts: list[dict[str, Any]], companies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    drafts: list[tuple[int, dict[str, Any]]] = []
    missing = {"Contact"} if not contacts else set()
    missing |= {"Company"} if not companies else set()
    for i in range(count):
        roll = _FIRST_TODO_ROLLS[i] if i < len(_FIRST_TODO_ROLLS) else rng.random()
        kind = _band(roll, _TODO_BANDS, "Assignment", missing)
        if kind == "Contact":
            target = _pick(rng, contacts)
            ttype, tid, desc = "Contact", target["id"], _display_name(target)
            start = _parse_epoch(target["created_at"])
        elif kind == "Company":
            target = _pick(rng, companies)
            ttype, tid, desc = "Company", target["id"], target["name"]
            start = _parse_epoch(target["created_at"])
        elif kind == "Deal":
            ttype, tid, desc = "Deal", 9_870_000 + _between(rng, 1, 500), _pick(rng, _DEALS)
            start = _T0
        else:
            ttype, tid = "Assignment", 945_892_000 + _between(rng, 1, 300)
            desc, start = _pick(rng, _PROJECTS), _T0
        created = _between(rng, start, _T1)
        completed = _chance(rng, 0.35)
        completed_at = _between(rng, created, _T1) if completed else None
        updated = (
            completed_at
            if completed
            else (created if _chance(rng, 0.7) else _between(rng, created, _T1))
        )
        due = _between(rng, created, _T1 + 90 * 86400) if _chance(rng, 0.7) else None
        assignee = _pick(rng, USERS) if _chance(rng, 0.9) else None
        drafts.append(
            (
                created,
                {
                    "id": 0,
                    "title": _pick(rng, _TODO_TITLES),
                    "due_date": f"{_date(due)}T00:00:00Z" if due is not None else None,
                    "completed_at": format_ts(completed_at) if completed_at is not None else None,
                    "completed": completed,
                    "personal": _chance(rng, 0.1),
                    "todoable_id": tid,
                    "todoable_type": ttype,
                    "todoable_description": desc,
                    "created_by": user_ref(_pick(rng, USERS)),
                    "assigned_to": user_ref(assignee) if assignee else None,
                    "created_at": format_ts(created),
                    "updated_at": format_ts(updated),
                },
            )
        )
    drafts.sort(key=lambda d: d[0])
    ids = _next_ids(rng, ID_BASES["todos"], len(drafts))
    for new_id, (_, todo) in zip(ids, drafts, strict=True):
        todo["id"] = new_id
    return [todo for _, todo in drafts]


def _comments(
    rng: random.Random, count: int, contacts: list[dict[str, Any]], companies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    drafts: list[tuple[int, dict[str, Any]]] = []

    def add(
        created: int, target: tuple[str, int], text: str, user: dict[str, Any], *, manual: bool
    ) -> None:
        ctype, cid = target
        updated = created if (not manual or _chance(rng, 0.85)) else _between(rng, created, _T1)
        drafts.append(
            (
                created,
                {
                    "id": 0,
                    "commentable_id": cid,
                    "commentable_type": ctype,
                    "text": text,
                    "manual": manual,
                    "created_at": format_ts(created),
                    "updated_at": format_ts(updated),
                    "user": user_ref(user),
                },
            )
        )

    for company in companies:  # MOCO writes this system comment when a company is created
        created = _parse_epoch(company["created_at"])
        target = ("Company", company["id"])
        add(created, target, "Firma angelegt.", _pick(rng, USERS), manual=False)
    missing = {"Contact"} if not contacts else set()
    missing |= {"Company"} if not companies else set()
    for i in range(count):
        roll = _FIRST_COMMENT_ROLLS[i] if i < len(_FIRST_COMMENT_ROLLS) else rng.random()
        user = _pick(rng, USERS)
        kind = _band(roll, _COMMENT_BANDS, "Project", missing)
        if kind == "Contact":
            contact = _pick(rng, contacts)
            company = contact["company"]["name"] if contact["company"] else "einer neuen Firma"
            text = _pick(rng, _CONTACT_NOTES).format(
                first=contact["firstname"] or "Kontakt", company=company
            )
            created = _between(rng, _parse_epoch(contact["created_at"]), _T1)
            add(created, ("Contact", contact["id"]), text, user, manual=True)
        elif kind == "Company":
            company_rec = _pick(rng, companies)
            created = _between(rng, _parse_epoch(company_rec["created_at"]), _T1)
            target = ("Company", company_rec["id"])
            add(created, target, _pick(rng, _OTHER_NOTES), user, manual=True)
        elif kind == "Deal":
            created = _between(rng, _T0, _T1)
            target = ("Deal", 9_870_000 + _between(rng, 1, 500))
            add(created, target, _pick(rng, _OTHER_NOTES), user, manual=True)
        else:
            created = _between(rng, _T0, _T1)
            target = ("Project", 945_892_000 + _between(rng, 1, 300))
            add(created, target, "Projekt angelegt.", user, manual=False)
    drafts.sort(key=lambda d: d[0])
    ids = _next_ids(rng, ID_BASES["comments"], len(drafts))
    for new_id, (_, comment) in zip(ids, drafts, strict=True):
        comment["id"] = new_id
    return [comment for _, comment in drafts]


def _parse_epoch(ts: str) -> int:
    """Inverse of :func:`format_ts` for the generator's own timestamps."""
    return calendar.timegm(
        (
            int(ts[0:4]),
            int(ts[5:7]),
            int(ts[8:10]),
            int(ts[11:13]),
            int(ts[14:16]),
            int(ts[17:19]),
            0,
            0,
            0,
        )
    )


def generate(n_contacts: int, seed: int = 1) -> dict[str, list[dict[str, Any]]]:
    """A deterministic seed document with ``n_contacts`` contacts; see the module docstring."""
    if n_contacts < 0:
        raise ValueError("n_contacts must be >= 0")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    n_companies = max(3, n_contacts // 5)
    companies = _companies(rng, n_companies)
    contacts = _contacts(rng, n_contacts, companies)
    todos = _todos(rng, max(4, n_contacts // 2), contacts, companies)
    comments = _comments(rng, max(3, n_contacts // 2), contacts, companies)
    return {"companies": companies, "contacts": contacts, "todos": todos, "comments": comments}
