"""The two-way decision for one linked record: a three-way merge per field.

A target that writes a changed record into a pair the other direction also syncs first reads the
record's current state on its own side, then decides field by field with the baseline (the
values this side held after the last sync, kept in the ledger):

=====================================  =================================================
source value vs. current vs. baseline  decision
=====================================  =================================================
source == current                      nothing to write (an echo of our own write, or the
                                       same edit made on both sides)
current == baseline != source          the source changed: write it
source == baseline != current          the target changed: keep it (the other direction
                                       carries it back)
no baseline, the target's value empty  the source fills it (nothing is overwritten)
all three differ, or no baseline       a conflict: the policy decides
=====================================  =================================================

Policies: ``most_recent`` (default: the side whose record changed last wins; neither API has
per-field change times, so the records' update times decide; without both times (CRM notes have
none) the change the run read wins, so that both sides agree), ``moco_wins`` and
``contacts_wins``. Tags are sets and merge by union elsewhere; notes append.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sync_ledger.ledger import LedgerEntry

logger = logging.getLogger(__name__)


class ConflictPolicy(str, Enum):
    """Who wins a field that changed on both sides since the last sync."""

    MOST_RECENT = "most_recent"
    MOCO_WINS = "moco_wins"
    CONTACTS_WINS = "contacts_wins"


POLICIES = tuple(p.value for p in ConflictPolicy)

# What a direction keeps in its ledger ``extra`` when its write left both sides holding the same
# values. The other direction has no baseline of its own for a pair it never wrote; with these it
# can tell "only my target changed since" (keep it) from a change on both sides (a conflict). A
# MOCO edit made a moment after target-contacts created its CRM copy must not be reverted by the
# next target-moco run because the CRM's update time (its own create) happens to be later.
#: The CRM contact's ``dateUpdated`` right after a write that left it equal to the MOCO person.
SYNCED_AT = "synced_at"
#: The plain text a note (CRM) and its comment (MOCO) both showed after the write.
SYNCED_TEXT = "synced_text"


def text_extra(
    name: str, text: str, held: Mapping[str, Any] | None, *, in_sync: bool
) -> dict[str, Any]:
    """The ledger ``extra`` of a written note or comment whose field ``name`` shows ``text``.

    ``held``: what the target holds after a merge (None: ``text``, just written); ``in_sync``:
    both sides show ``text`` now (see :data:`SYNCED_TEXT`).
    """
    extra: dict[str, Any] = {"fields": dict(held) if held is not None else {name: text}}
    if in_sync:
        extra[SYNCED_TEXT] = text
    return extra


def text_baseline(
    entry: LedgerEntry, name: str, text: str, *, same: Callable[[str, str], bool]
) -> Mapping[str, Any] | None:
    """This direction's baseline of a note or comment whose source now shows ``text``.

    Without one of its own (the other direction wrote the pair): ``{name: text}`` when the other
    direction left the pair in sync showing that text, so whatever the target shows now is the
    target's own change; else None (every difference is a conflict).
    """
    baseline: Mapping[str, Any] | None = entry.extra.get("fields")
    synced = entry.other_extra.get(SYNCED_TEXT)
    if baseline is None and synced is not None and same(synced, text):
        return {name: text}
    return baseline


@dataclass
class Merge:
    """What to write into the target for one record, and what the target holds afterwards."""

    writes: dict[str, Any] = field(default_factory=dict)
    #: Fields that changed on both sides: name -> "source" or "target" (who won).
    conflicts: dict[str, str] = field(default_factory=dict)
    #: The target's values for the merged fields after the writes: the next baseline.
    baseline: dict[str, Any] = field(default_factory=dict)
    #: Fields where the target keeps a value other than the source's (its own change, or a
    #: conflict it won): the two sides differ until the other direction carries it back.
    kept: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        """Whether the target holds the source's value in every field after the writes."""
        return not self.kept


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 time (``Z``, an offset, or none: UTC) or epoch milliseconds, else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _empty(value: object) -> bool:
    """No value at all: None, blank text, an empty list or object."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, (list, dict)) and not value)


def _source_wins(
    policy: ConflictPolicy,
    *,
    source_is_moco: bool,
    source_time: datetime | None,
    target_time: datetime | None,
) -> bool:
    if policy is ConflictPolicy.MOCO_WINS:
        return source_is_moco
    if policy is ConflictPolicy.CONTACTS_WINS:
        return not source_is_moco
    if source_time is None or target_time is None:
        # Unknown order (the Contacts API gives notes no update time): the change this run read
        # wins, so that both sides agree after it. Keeping the target's value instead left each
        # direction keeping its own side for good; the conflict is counted and logged either way.
        return True
    return source_time > target_time


def merge_fields(
    source: Mapping[str, Any],
    current: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    *,
    same: Callable[[str, Any, Any], bool],
    policy: ConflictPolicy,
    source_is_moco: bool,
    source_time: datetime | None,
    target_time: datetime | None,
) -> Merge:
    """Decide every field of ``source`` (see the module's table).

    ``current`` is the target's record now, ``baseline`` the target's values after the last sync
    (None: this side never synced the pair, so every difference is a conflict), ``same`` compares
    two values of a field the way the target stores them.
    """
    result = Merge()
    for name, wanted in source.items():
        now = current.get(name)
        if same(name, wanted, now):
            result.baseline[name] = now
            continue
        known = baseline is not None and name in baseline
        before = baseline.get(name) if baseline is not None else None
        if known and same(name, now, before):
            result.writes[name] = wanted
        elif known and same(name, wanted, before):
            result.kept.append(name)  # only the target changed: keep it
        elif not known and _empty(now):
            # Nothing to lose: a "kept" empty value could not travel back (the other direction
            # never clears a field), and the next run would write the source's value anyway.
            result.writes[name] = wanted
        elif _source_wins(
            policy,
            source_is_moco=source_is_moco,
            source_time=source_time,
            target_time=target_time,
        ):
            result.writes[name] = wanted
            result.conflicts[name] = "source"
        else:
            result.conflicts[name] = "target"
            result.kept.append(name)
        result.baseline[name] = result.writes.get(name, now)
    return result
