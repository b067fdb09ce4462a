"""Two-way writes into the Contacts API: read the record first, write what the merge says.

The merge is :mod:`sync_ledger.merge`'s. Used for pairs the reverse direction (target-moco) also
syncs, and for every update and first match when ``two_way`` is on. An echo of a change that
came from the CRM itself, or the same edit made on both sides, costs one read and no write; a
field changed on both sides is decided by the conflict policy, counted in the summary and logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sync_ledger.merge import ConflictPolicy, Merge, merge_fields, parse_time

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sync_ledger.summary import RunSummary
    from target_contacts.payloads import ContactPayload, NotePayload, TaskPayload

logger = logging.getLogger("target_contacts")

_DATE_ONLY = 10  # "YYYY-MM-DD"
_TO_THE_SECOND = 19  # "YYYY-MM-DDTHH:MM:SS"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\x1f".join(sorted(_text(v) for v in value))
    return str(value).strip()


def same_field(name: str, a: object, b: object) -> bool:
    """Whether two values of Contacts API field ``name`` mean the same (as the CRM stores it)."""
    if name == "customFields":
        return _custom_values(a) == _custom_values(b)
    left, right = _text(a), _text(b)
    if name == "email":
        return left.casefold() == right.casefold()
    if name == "dateOfBirth":
        return left[:_DATE_ONLY] == right[:_DATE_ONLY]
    if name == "dueDate":
        return left[:_TO_THE_SECOND] == right[:_TO_THE_SECOND]
    return left == right


def _custom_values(value: object) -> dict[str, str]:
    items = value if isinstance(value, list) else []
    out: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict) and item.get("id"):
            raw = item.get("field_value", item.get("value"))
            out[str(item["id"])] = _text(raw)
    return out


def _merge(
    wanted: Mapping[str, Any],
    current: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    *,
    policy: ConflictPolicy,
    source_time: str | None,
    target_time: object,
) -> Merge:
    projected = {name: current.get(name) for name in wanted}
    if "customFields" in wanted:
        # Compare only the custom fields this sync maps; others are the CRM's own.
        ids = set(_custom_values(wanted["customFields"]))
        projected["customFields"] = [
            f for f in current.get("customFields") or [] if str(f.get("id")) in ids
        ]
    return merge_fields(
        wanted,
        projected,
        baseline,
        same=same_field,
        policy=policy,
        source_is_moco=True,
        source_time=parse_time(source_time),
        target_time=parse_time(target_time),
    )


def _report(summary: RunSummary, stream: str, source_id: str, merge: Merge) -> None:
    for name, winner in sorted(merge.conflicts.items()):
        summary.conflict(stream, winner)
        logger.info(
            "%s %s: %s changed on both sides since the last sync; %s",
            stream,
            source_id,
            name,
            "the source's value was written"
            if winner == "source"
            else "the CRM's value was kept (newer, or no way to tell which is newer)",
        )


def merge_contact(
    p: ContactPayload,
    current: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    *,
    policy: ConflictPolicy,
    summary: RunSummary,
) -> tuple[Merge, list[str]]:
    """The fields to write into CRM contact ``current`` for ``p``, and the tags to add."""
    merge = _merge(
        p.fields,
        current,
        baseline,
        policy=policy,
        source_time=p.source_updated_at,
        target_time=current.get("dateUpdated"),
    )
    _report(summary, "contacts", p.source_id, merge)
    have = {str(t).strip().lower() for t in current.get("tags") or []}
    new_tags = sorted(t for t in p.tags if t.strip().lower() not in have)
    return merge, new_tags


def merge_task(
    p: TaskPayload,
    current: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    *,
    policy: ConflictPolicy,
    summary: RunSummary,
) -> Merge:
    """The task fields (with ``completed``) to write into CRM task ``current`` for ``p``."""
    wanted = {**p.fields, "completed": p.completed}
    merge = _merge(
        wanted,
        {**current, "completed": bool(current.get("completed"))},
        baseline,
        policy=policy,
        source_time=p.source_updated_at,
        target_time=current.get("dateUpdated"),  # absent on the per-contact route
    )
    _report(summary, "tasks", p.source_id, merge)
    return merge


def merge_note(
    p: NotePayload,
    current: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    *,
    policy: ConflictPolicy,
    summary: RunSummary,
) -> Merge:
    """Whether CRM note ``current`` needs ``p``'s body (``writes``), by the same rules."""
    merge = _merge(
        {"body": p.body},
        current,
        baseline,
        policy=policy,
        source_time=p.source_updated_at,
        # CRM notes carry no update time. Their dateAdded is no stand-in: compared with MOCO's
        # time (whole seconds) it made a MOCO edit in the same second as the note's create look
        # older, and the CRM's text kept in the CRM never travelled back (the reverse reads a
        # note again only when its contact changes).
        target_time=current.get("dateUpdated"),
    )
    _report(summary, "notes", p.source_id, merge)
    return merge
