"""Searching the Contacts sandbox: ``POST /contacts/search`` and the location-wide task search.

Both read a :class:`~sandbox.contacts_index.SearchIndex`, so both see writes only after the
sandbox's indexing lag. Facts are from reference/reverse-and-realtime.md §1.1-1.2 and §3.1 and the
official "Contacts Search API" document they cite ([CLICKUP]); choices where the facts are
UNCONFIRMED say so where they are made.

Contact search (:class:`ContactSearch`), body ``{locationId, pageLimit, page?, searchAfter?,
filters?, sort?, query?}``, answer ``{contacts, total, traceId}``:

- ``filters``: ``{field, operator, value}`` items and ``{group: AND|OR, filters}`` groups, the
  top level ANDed; fields and their operators as [CLICKUP]'s "Supported Filter Fields" table
  (:data:`FILTER_FIELDS`, plus ``customFields.<id>``); ``range`` takes ``{gte, lte, gt, lt}``.
- ``sort``: at most 2 of :data:`SORTABLE`; ties broken by contact id (ascending). Each contact
  carries ``searchAfter = [sort value, ..., id]`` (dates as epoch ms, a missing value as null;
  missing values sort last in either direction, as Elasticsearch does by default).
- ``page`` (1-based) reaches at most :data:`SEARCH_WINDOW_MAX` records; ``searchAfter`` anywhere.

Task search (:class:`TaskSearch`), body ``TaskSearchParamsDto`` plus a top-level ``searchAfter``,
answer 201 ``{tasks}`` of rows with ``_id``, no ``total``.
"""

from __future__ import annotations

import bisect
import json
import math
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from itertools import islice
from typing import TYPE_CHECKING, Any

from sandbox.contacts_data import USERS_BY_ID
from sandbox.contacts_oauth import error
from sandbox.server import HTTPError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from sandbox.contacts_index import Doc, Key, SearchIndex

    Predicate = Callable[[Doc], bool]

Order = tuple[tuple[str, bool], ...]  # (field, descending) per sort entry

SEARCH_WINDOW_MAX = 10_000  # page-number paging reaches at most this many records (§1.1)
# "maximum of 500 records per request" [CLICKUP]; some clients cap themselves at 100 [3P]
SEARCH_PAGE_LIMIT_MAX = 500
SORT_ENTRIES_MAX = 2  # "You can combine 2 sort at once" [CLICKUP]
FILTER_VALUE_MAX = 75  # "Values ≤ 75 chars" [CLICKUP]
CONTAINS_MIN = 3  # "Min. 3 characters required for applying contains filter" [3P]
TASK_LIMIT_DEFAULT = 25  # TaskSearchParamsDto's default [SPEC]
TASK_LIMIT_MAX = 500  # "limit: 500 works" (§3.1); whether more does is UNCONFIRMED

OPERATORS = ("eq", "not_eq", "contains", "not_contains", "exists", "not_exists", "range")
_EXISTS = frozenset({"exists", "not_exists"})
_EQ = frozenset({"eq", "not_eq"}) | _EXISTS
_TEXT = _EQ | {"contains", "not_contains"}
_DATE = _EXISTS | {"range"}
# [CLICKUP] "Supported Filter Fields": field -> operators (dateOfBirth from §1.1's range list)
FILTER_FIELDS: dict[str, frozenset[str]] = {
    "id": frozenset({"eq", "not_eq"}),
    "address": _TEXT,
    "assignedTo": _EQ,
    "businessName": _TEXT,
    "city": _TEXT,
    "country": _EQ,
    "companyName": _TEXT,
    "dateAdded": _DATE,
    "dateUpdated": _DATE,
    "dateOfBirth": _DATE,
    "dnd": _EQ,
    "email": _EQ,  # "contains and not_contains are not yet supported"
    "followers": _EQ,
    "firstNameLowerCase": _TEXT,
    "lastNameLowerCase": _TEXT,
    "isValidWhatsapp": _EQ,
    "lastEmailClickedDate": _DATE,
    "lastEmailOpenedDate": _DATE,
    "phone": _TEXT,
    "postalCode": _TEXT,
    "source": _TEXT,
    "state": _TEXT,
    "tags": _TEXT,
    "timezone": _EQ,
    "type": _EQ,
    "validEmail": _EQ,
    "website": _EQ,  # "contains and not_contains are not yet supported"
    "lastAppointment": _DATE,
    "activeWorkflows": _EQ,
    "finishedWorkflows": _EQ,
}
DATE_FIELDS = frozenset(f for f, ops in FILTER_FIELDS.items() if ops == _DATE)
_STORED_AS = {"address": "address1"}  # filter field -> the contact field it reads
CUSTOM_PREFIX = "customFields."
# [CLICKUP] "Supported Fields" for sort, by the kind of value they sort by
SORTABLE = {
    "firstNameLowerCase": "text",
    "lastNameLowerCase": "text",
    "businessName": "text",
    "dateAdded": "date",
    "dateUpdated": "date",
    "email": "text",
    "dnd": "flag",
    "source": "text",
}
# assumption: the order without `sort` is UNCONFIRMED; a tap should always send one
DEFAULT_ORDER: Order = (("dateAdded", False),)

SEARCH_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "locationId": {"type": "string"},
        "pageLimit": {"type": "number", "minimum": 1},
        "page": {"type": "number", "minimum": 1},
        "searchAfter": {"type": "array"},
        "filters": {"type": "array", "items": {"type": "object"}},
        "sort": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "direction": {"type": "string", "enum": ["asc", "desc"]},
                },
                "required": ["field"],
            },
        },
        "query": {"type": "string", "maxLength": FILTER_VALUE_MAX},
    },
    "required": ["locationId", "pageLimit"],
}
# TaskSearchParamsDto [SPEC locations.json] plus the observed top-level searchAfter (§3.1); the
# extra keys one client sends (dueDate, sortKey, sortDirection, overdue, unAssigned) are
# UNCONFIRMED and refused like any undeclared property
TASK_SEARCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "contactId": {"type": "array", "items": {"type": "string"}},
        "completed": {"type": "boolean"},
        "assignedTo": {"type": "array", "items": {"type": "string"}},
        "query": {"type": "string"},
        "limit": {"type": "number", "minimum": 1, "maximum": TASK_LIMIT_MAX},
        "skip": {"type": "number", "minimum": 0},
        "businessId": {"type": "string"},
        "searchAfter": {"type": "array"},
    },
}


def unprocessable(messages: list[str]) -> HTTPError:
    """A 422 with class-validator ``messages``, as the API answers invalid input."""
    return HTTPError(422, error(422, messages))


def bad_request(message: str) -> HTTPError:
    """A 400 in the API's envelope (what the search answers for a field it cannot filter)."""
    return HTTPError(400, error(400, message))


_DAY_MS: dict[str, int] = {}  # "YYYY-MM-DD" -> epoch ms of its midnight (UTC)
_CANONICAL_LENGTH = len("2021-07-08T02:30:00.000Z")


def parse_iso_ms(value: object) -> int | None:
    """Epoch ms of an ISO-8601 string or a number; ``None`` when it is neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, str) or not value:
        return None
    if len(value) == _CANONICAL_LENGTH and value[-1] == "Z" and value[10] == "T":
        # the API's own form, which every stored date has: parsed without datetime (hot path)
        return _parse_canonical(value)
    try:
        # Python 3.10's fromisoformat does not read a "Z" suffix (3.11's does)
        dt = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def _parse_canonical(value: str) -> int | None:
    """Epoch ms of ``YYYY-MM-DDTHH:MM:SS.mmmZ``; ``None`` when it is no such time."""
    day = _DAY_MS.get(value[:10])
    if day is None and (day := _midnight(value[:10])) is None:
        return None
    try:
        hours, minutes, seconds = int(value[11:13]), int(value[14:16]), int(value[17:19])
        milli = int(value[20:23])
    except ValueError:
        return None
    if hours > 23 or minutes > 59 or seconds > 59:  # noqa: PLR2004 - a clock's bounds
        return None
    return day + hours * 3_600_000 + minutes * 60_000 + seconds * 1000 + milli


def _midnight(date: str) -> int | None:
    try:
        day = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    _DAY_MS[date] = int(day.timestamp()) * 1000
    return _DAY_MS[date]


# --- sort keys ---------------------------------------------------------------------------------
_TOP = 0x10FFFF  # the largest code point: a reversed text's end mark, above every reversed char


def _reversed_text(text: str) -> str:
    """A string that sorts in the reverse order of ``text`` (a prefix after its extensions)."""
    return text.translate(_REVERSE) + chr(_TOP)


class _Reverse(dict[int, str]):
    """``str.translate`` table: each code point to its mirror below :data:`_TOP`."""

    def __missing__(self, code: int) -> str:
        self[code] = chr(_TOP - 1 - code)
        return self[code]


_REVERSE = _Reverse()


def sort_value(doc: Doc, field: str) -> int | str | bool | None:
    """The value a contact sorts by on ``field``, as its ``searchAfter`` shows it."""
    raw = doc.get(field)
    if raw is None or raw == "":
        return None
    kind = SORTABLE[field]
    if kind == "date":
        return parse_iso_ms(raw)
    if kind == "flag":
        return bool(raw)
    # assumption: text sorts case-insensitively (the sortable names are lower-cased fields)
    return str(raw).lower()


def _component(value: object, descending: bool) -> tuple[Any, ...]:  # noqa: FBT001 - a sort flag
    """One sort entry's part of a key: missing values last in both directions."""
    if value is None:
        return (1,)
    if isinstance(value, str):
        return (0, _reversed_text(value) if descending else value)
    number = int(value)  # type: ignore[call-overload]  # epoch ms or a bool
    return (0, -number if descending else number)


def contact_key(order: Order) -> Callable[[Doc], Key]:
    """The key function of a sorted view in ``order``, ties broken by the contact id."""
    parts = [_part(field, desc) for field, desc in order]
    if len(parts) == 1:
        (first,) = parts
        return lambda doc: (first(doc), doc["id"])
    first, second = parts
    return lambda doc: (first(doc), second(doc), doc["id"])


def _part(field: str, descending: bool) -> Callable[[Doc], tuple[Any, ...]]:  # noqa: FBT001
    """:func:`_component` of :func:`sort_value` for one sort entry.

    Made for speed: views of 100,000 contacts are built with it.
    """
    if SORTABLE[field] != "date":
        return lambda doc: _component(sort_value(doc, field), descending)
    sign = -1 if descending else 1

    def date(doc: Doc) -> tuple[Any, ...]:
        ms = parse_iso_ms(doc.get(field) or None)
        return (1,) if ms is None else (0, sign * ms)

    return date


def parse_order(items: list[dict[str, Any]] | None) -> Order:
    """The sort entries of a body; 422 for more than two or an unsortable field."""
    if not items:
        return DEFAULT_ORDER
    if len(items) > SORT_ENTRIES_MAX:
        raise unprocessable([f"sort must contain no more than {SORT_ENTRIES_MAX} elements"])
    order = []
    for item in items:
        if item["field"] not in SORTABLE:
            # exact text UNCONFIRMED; the sortable fields are [CLICKUP]'s
            raise unprocessable(
                [f"sort.field must be one of the following values: {', '.join(SORTABLE)}"]
            )
        # assumption: a sort entry without a direction sorts ascending
        order.append((item["field"], item.get("direction") == "desc"))
    return tuple(order)


def cursor_key(order: Order, search_after: list[Any]) -> Key:
    """The key a ``searchAfter`` names; 422 when it is not one this sort hands out."""
    message = "searchAfter must be the searchAfter of a contact of this search: [sort value(s), id]"
    if len(search_after) != len(order) + 1 or not isinstance(search_after[-1], str):
        raise unprocessable([message])
    parts = []
    for (field, desc), value in zip(order, search_after, strict=False):
        kind = SORTABLE[field]
        fits = value is None or (
            isinstance(value, str)
            if kind == "text"
            else isinstance(value, (int, float)) and (kind == "flag" or not isinstance(value, bool))
        )
        if not fits:
            raise unprocessable([message])
        parts.append(_component(value, desc))
    return (*parts, search_after[-1])


# --- filters -----------------------------------------------------------------------------------
def _getter(field: str) -> Callable[[Doc], Any]:
    if field.startswith(CUSTOM_PREFIX):
        field_id = field[len(CUSTOM_PREFIX) :].split(".", 1)[0]

        def custom(doc: Doc) -> object:
            for item in doc.get("customFields") or ():
                if item.get("id") == field_id:
                    return item.get("value")
            return None

        return custom
    stored = _STORED_AS.get(field, field)
    return lambda doc: doc.get(stored)


def _operators(field: str) -> frozenset[str]:
    if field.startswith(CUSTOM_PREFIX) and len(field) > len(CUSTOM_PREFIX):
        return frozenset(OPERATORS)
    ops = FILTER_FIELDS.get(field)
    if ops is None:
        # observed: `400 Invalid field tasks.assignedTo` for an unknown field [3P]
        raise bad_request(f"Invalid field {field}")
    return ops


def _listed(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _present(value: object) -> bool:
    return value not in (None, "", [])


def _comparable(field: str, value: object, normalize_phone: Callable[[str], str]) -> object:
    if field == "phone" and isinstance(value, str):
        return normalize_phone(value)
    # assumption: eq compares strings case-insensitively (tags and *LowerCase fields are lower-case)
    return value.strip().lower() if isinstance(value, str) else value


class FilterCompiler:
    """Turns the ``filters`` of a body into one predicate over indexed contacts."""

    def __init__(self, normalize_phone: Callable[[str], str]) -> None:
        self.normalize_phone = normalize_phone

    def compile(self, items: Iterable[Any]) -> Callable[[Doc], bool] | None:
        """The AND of ``items`` (``None`` when there are none)."""
        predicates = [self._one(item) for item in items]
        if not predicates:
            return None
        if len(predicates) == 1:
            return predicates[0]
        return lambda doc: all(p(doc) for p in predicates)

    def _one(self, item: object) -> Callable[[Doc], bool]:
        if isinstance(item, dict) and "group" in item:
            subs = item.get("filters")
            if item["group"] not in ("AND", "OR") or not isinstance(subs, list):
                raise unprocessable(["filters: a group needs group AND|OR and a filters array"])
            predicates = [self._one(sub) for sub in subs]
            if item["group"] == "AND":
                return lambda doc: all(p(doc) for p in predicates)
            return lambda doc: any(p(doc) for p in predicates)
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("field"), str)
            or item.get("operator") not in OPERATORS
        ):
            raise unprocessable(
                [f"filters: each filter needs a field and an operator of {list(OPERATORS)}"]
            )
        field, op = item["field"], item["operator"]
        if op not in _operators(field):
            # exact text UNCONFIRMED; [CLICKUP] lists the operators each field supports
            raise bad_request(f"Operator {op} is not supported for field {field}")
        get = _getter(field)
        if op in _EXISTS:
            wanted = op == "exists"  # "send no value" [CLICKUP]: a value is ignored
            return lambda doc: _present(get(doc)) == wanted
        if op == "range":
            return self._range(field, get, item.get("value"))
        return self._match(field, op, get, item.get("value"))

    def _match(
        self, field: str, op: str, get: Callable[[Doc], Any], value: object
    ) -> Callable[[Doc], bool]:
        values = _listed(value)
        if not values or any(
            v is None or isinstance(v, (dict, list)) or (isinstance(v, str) and not v)
            for v in values
        ):
            raise unprocessable([f"filters: {field} {op} needs a string, number or boolean value"])
        if any(isinstance(v, str) and len(v) > FILTER_VALUE_MAX for v in values):
            raise unprocessable(
                [f"filters: value must be shorter than or equal to {FILTER_VALUE_MAX} characters"]
            )
        positive = op in ("eq", "contains")
        if op in ("eq", "not_eq"):
            wanted = {_comparable(field, v, self.normalize_phone) for v in values}

            def equal(doc: Doc) -> bool:
                have = (
                    _comparable(field, h, self.normalize_phone)
                    for h in _listed(get(doc))
                    if h is not None
                )
                return any(h in wanted for h in have if not isinstance(h, (dict, list))) == positive

            return equal
        needles = [str(v).strip().lower() for v in values]
        if any(len(n) < CONTAINS_MIN for n in needles):
            raise bad_request("Min. 3 characters required for applying contains filter")

        def contains(doc: Doc) -> bool:
            have = [h.lower() for h in _listed(get(doc)) if isinstance(h, str)]
            return any(n in h for n in needles for h in have) == positive

        return contains

    def _range(self, field: str, get: Callable[[Doc], Any], value: object) -> Callable[[Doc], bool]:
        low, high = range_bounds(field, value)
        as_number = parse_iso_ms if _is_date(field) else _number

        def within(doc: Doc) -> bool:
            number = as_number(get(doc))
            return number is not None and low <= number < high

        return within


def _is_date(field: str) -> bool:
    return field in DATE_FIELDS


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return parse_iso_ms(value)
    return None


_BOUND_KEYS = ("gte", "gt", "lte", "lt")


def range_bounds(field: str, value: object) -> tuple[float, float]:
    """``[low, high)`` of a ``range`` value ``{gte, gt, lte, lt}`` (dates: epoch ms)."""
    if (
        not isinstance(value, dict)
        or not value
        or any(k not in _BOUND_KEYS for k in value)
        or ("gte" in value and "gt" in value)
        or ("lte" in value and "lt" in value)
    ):
        raise unprocessable(
            [f"filters: range on {field} takes an object of gte|gt and/or lte|lt bounds"]
        )
    low, high = float("-inf"), float("inf")
    for name, raw in value.items():
        number: float | None
        if _is_date(field):
            # ISO-8601 strings are what works in practice; whether epoch-ms numbers are accepted
            # is UNCONFIRMED, so they are refused here (a client must not depend on them)
            number = parse_iso_ms(raw) if isinstance(raw, str) else None
            if number is None:
                raise unprocessable(
                    [f"filters: range bounds on {field} must be ISO-8601 date strings"]
                )
            step = 1  # milliseconds: the precision of the stored dates
        else:
            number = _number(raw)
            if number is None:
                raise unprocessable([f"filters: range bounds on {field} must be numbers"])
            step = 0
        # gt/lte become inclusive/exclusive bounds one step on; for numbers gt and lte stay
        # approximate at step 0, which only matters for values equal to a bound
        if name == "gte":
            low = max(low, number)
        elif name == "gt":
            low = max(low, number + step if step else _next_up(number))
        elif name == "lte":
            high = min(high, number + step if step else _next_up(number))
        else:
            high = min(high, number)
    return low, high


def _next_up(number: float) -> float:
    return math.nextafter(number, math.inf)


# --- contact search ----------------------------------------------------------------------------
class ContactSearch:
    """``POST /contacts/search`` over an index of contacts partitioned by location."""

    _CACHE_SIZE = 16

    def __init__(self, index: SearchIndex, normalize_phone: Callable[[str], str]) -> None:
        self.index = index
        self.filters = FilterCompiler(normalize_phone)
        self.page_limit_max = SEARCH_PAGE_LIMIT_MAX
        # (location, order, filters and query, slice) -> (index version, matching keys)
        self._matches: OrderedDict[tuple[Any, ...], tuple[int, list[Key]]] = OrderedDict()

    def clear(self) -> None:
        """Forget cached matches (the index was cleared)."""
        self._matches.clear()

    def run(
        self, body: dict[str, Any], matches_query: Callable[[Doc, str], bool]
    ) -> dict[str, Any]:
        """The answer to a validated body; ``matches_query`` is the free-text match."""
        limit = int(body["pageLimit"])
        if limit > self.page_limit_max:
            # the documented maximum is 500 (some sources say 100); whether a larger pageLimit
            # is capped or refused is UNCONFIRMED: refused, so a client never takes a capped page
            # for the last one
            raise unprocessable([f"pageLimit must not be greater than {self.page_limit_max}"])
        if "page" in body and "searchAfter" in body:
            raise unprocessable(["page and searchAfter cannot be used together"])
        page_no = int(body.get("page", 1))
        if "searchAfter" not in body and page_no * limit > SEARCH_WINDOW_MAX:
            # assumption: status and text are UNCONFIRMED; the 10,000-record reach is documented
            raise bad_request(
                f"page * pageLimit must not exceed {SEARCH_WINDOW_MAX}; use searchAfter to read "
                "further"
            )
        order = parse_order(body.get("sort"))
        cursor = cursor_key(order, body["searchAfter"]) if "searchAfter" in body else None
        location = body["locationId"]
        filters = list(body.get("filters") or [])
        sliced, filters = _split_primary_range(order, filters)
        predicate = self.filters.compile(filters)
        query = (body.get("query") or "").strip().lower()
        if query:
            by_filters = predicate
            predicate = (
                (lambda doc: matches_query(doc, query) and by_filters(doc))
                if by_filters
                else (lambda doc: matches_query(doc, query))
            )

        self.index.catch_up()
        view = self.index.view(location, ("contacts", order), contact_key(order))
        keys = view.keys
        low, high = _slice(keys, order, sliced)
        if predicate is not None:
            signature = (location, order, json.dumps([filters, query], sort_keys=True), low, high)
            keys = self._matching(signature, location, keys[low:high], predicate)
            low, high = 0, len(keys)
        if cursor is not None:
            start = max(low, bisect.bisect_right(keys, cursor))
        else:
            start = low + (page_no - 1) * limit
        page = keys[start : min(start + limit, high)] if start < high else []
        contacts = []
        for key in page:
            doc = self.index.get(key[-1])
            if doc is None:  # pragma: no cover - a key is only in a view while its doc is
                continue
            after = [sort_value(doc, f) for f, _ in order]
            # a shallow copy: indexed versions are never changed (the store replaces records),
            # so the answer may share their lists until it is sent. Search items also list the
            # contact's opportunities (§5.4); the sandbox has none
            contacts.append({**doc, "opportunities": [], "searchAfter": [*after, key[-1]]})
        return {"contacts": contacts, "total": high - low, "traceId": str(uuid.uuid4())}

    def _matching(
        self,
        signature: tuple[Any, ...],
        location: str,
        keys: list[Key],
        predicate: Callable[[Doc], bool],
    ) -> list[Key]:
        version = self.index.version(location)
        cached = self._matches.get(signature)
        if cached is not None and cached[0] == version:
            self._matches.move_to_end(signature)
            return cached[1]
        get = self.index.get
        found = [key for key in keys if predicate(get(key[-1]) or {})]
        self._matches[signature] = (version, found)
        while len(self._matches) > self._CACHE_SIZE:
            self._matches.popitem(last=False)
        return found


def _split_primary_range(
    order: Order, filters: list[Any]
) -> tuple[tuple[float, float] | None, list[Any]]:
    """Top-level ``range`` filters on the first sort field (a date) become a slice of the view."""
    field = order[0][0]
    if SORTABLE[field] != "date":
        return None, filters
    low, high = float("-inf"), float("inf")
    rest, found = [], False
    for item in filters:
        if (
            isinstance(item, dict)
            and item.get("field") == field
            and item.get("operator") == "range"
        ):
            item_low, item_high = range_bounds(field, item.get("value"))
            low, high, found = max(low, item_low), min(high, item_high), True
        else:
            rest.append(item)
    return ((low, high) if found else None), rest


def _slice(keys: list[Key], order: Order, bounds: tuple[float, float] | None) -> tuple[int, int]:
    """Positions ``[start, end)`` of the keys whose first sort value lies within ``bounds``."""
    if bounds is None:
        return 0, len(keys)
    low, high = bounds
    if low >= high:
        return 0, 0
    if order[0][1]:  # descending: the first component is (0, -value)
        first, last = ((0, -high + 1),), ((0, -low + 1),)
    else:
        first, last = ((0, low),), ((0, high),)
    return bisect.bisect_left(keys, first), bisect.bisect_left(keys, last)


# --- task search -------------------------------------------------------------------------------
def task_key(doc: Doc) -> Key:
    """Task search order: due date ascending (no due date last), then id.

    UNCONFIRMED: the observed row cursor ``[1788329940000, "..."]`` is a whole-minute time, most
    likely the due date; the real order may differ, so clients must page by ``searchAfter`` only.
    """
    due = parse_iso_ms(doc.get("dueDate"))
    return ((1,) if due is None else (0, due), doc["id"])


def task_cursor(search_after: list[Any]) -> Key:
    """The key a task row's ``searchAfter`` names; 422 when it is not one."""
    if (
        len(search_after) != 2  # noqa: PLR2004 - [due date, id]
        or not isinstance(search_after[1], str)
        or not (search_after[0] is None or isinstance(search_after[0], (int, float)))
        or isinstance(search_after[0], bool)
    ):
        raise unprocessable(["searchAfter must be the searchAfter of a task: [due date, id]"])
    due = search_after[0]
    return ((1,) if due is None else (0, due), search_after[1])


def task_row(task: Doc, contact: Doc | None, location: str) -> dict[str, Any]:
    """A task as the location search answers it (§3.1): ``_id``, dates, details, no ``id``."""
    completed = bool(task.get("completed"))
    row: dict[str, Any] = {"_id": task["id"]}
    for name in ("title", "body", "assignedTo"):
        if task.get(name) is not None:
            row[name] = task[name]
    user = USERS_BY_ID.get(task.get("assignedTo") or "")
    row |= {
        "completed": completed,
        "contactId": task["contactId"],
        "dueDate": task.get("dueDate"),
        "dateAdded": task["dateAdded"],
        "dateUpdated": task["dateUpdated"],
        "updatedAt": task["dateUpdated"],
        "deleted": False,
        "locationId": location,
        "status": "completed" if completed else "to_do",
        "statusGroup": "completed" if completed else "to_do",
        # names are "often null" in real rows; the sandbox gives what the contact has
        "contactDetails": {
            "_id": task["contactId"],
            "firstName": (contact or {}).get("firstName"),
            "lastName": (contact or {}).get("lastName"),
        },
        # assumption: an unassigned task carries null details
        "assignedToUserDetails": (
            None
            if not task.get("assignedTo")
            else {
                "id": task["assignedTo"],
                "firstName": user["firstName"] if user else None,
                "lastName": user["lastName"] if user else None,
                "profilePhoto": user.get("profilePhoto") if user else None,
            }
        ),
    }
    return row


class TaskSearch:
    """``POST /locations/{locationId}/tasks/search`` over an index of tasks by location."""

    def __init__(self, index: SearchIndex) -> None:
        self.index = index

    def run(
        self, location: str, body: dict[str, Any], contacts: Mapping[str, Doc]
    ) -> dict[str, Any]:
        """The ``{tasks}`` answer to a validated body; ``contacts`` gives names and businesses."""
        limit = int(body.get("limit", TASK_LIMIT_DEFAULT))
        skip = int(body.get("skip", 0))
        cursor = task_cursor(body["searchAfter"]) if "searchAfter" in body else None
        predicate = _task_predicate(body, contacts)
        self.index.catch_up()
        keys = self.index.view(location, "tasks", task_key).keys
        start = bisect.bisect_right(keys, cursor) if cursor is not None else 0
        rows = []
        for key in islice(keys, start, None):
            task = self.index.get(key[-1])
            if task is None or (predicate is not None and not predicate(task)):
                continue
            if skip:
                skip -= 1
                continue
            row = task_row(task, contacts.get(task["contactId"]), location)
            row["searchAfter"] = [key[0][1] if key[0][0] == 0 else None, key[-1]]
            rows.append(row)
            if len(rows) >= limit:
                break
        return {"tasks": rows}


def _task_predicate(body: dict[str, Any], contacts: Mapping[str, Doc]) -> Predicate | None:
    checks: list[Callable[[Doc], bool]] = []
    if "contactId" in body:
        wanted = set(body["contactId"])
        checks.append(lambda t: t["contactId"] in wanted)
    if "completed" in body:
        done = body["completed"]
        checks.append(lambda t: bool(t.get("completed")) == done)
    if "assignedTo" in body:
        users = set(body["assignedTo"])
        checks.append(lambda t: t.get("assignedTo") in users)
    if body.get("query"):
        # assumption: free text over title and body, case-insensitive (the match is UNCONFIRMED)
        text = body["query"].strip().lower()
        checks.append(
            lambda t: (
                text in (t.get("title") or "").lower() or text in (t.get("body") or "").lower()
            )
        )
    if "businessId" in body:
        business = body["businessId"]
        checks.append(lambda t: (contacts.get(t["contactId"]) or {}).get("businessId") == business)
    if not checks:
        return None
    return lambda t: all(check(t) for check in checks)
