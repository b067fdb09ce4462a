"""How CRM tasks and appointments become MOCO comments: the one place that decides it.

MOCO's API cannot create or change to-dos (its OpenAPI has only ``GET /todos``) and has no
appointment or calendar resource at all, so a CRM task and a CRM appointment each become one
comment on the person, updated in place when the task is completed or the appointment is
rescheduled or cancelled. Should MOCO ever offer to-do writes, :func:`render_task` is what to
replace with a to-do body (and target-moco's ``tasks`` writes with to-do calls).

The text is plain; target-moco escapes it into MOCO's comment HTML, so it shows as written.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from collections.abc import Mapping

TASK_HEADING = "To-do (from the CRM)"
APPOINTMENT_HEADING = "Appointment (from the CRM)"


def _text(value: object) -> str:
    return str(value).strip() if value is not None else ""


def _moment(value: object, zone: ZoneInfo) -> datetime | None:
    """An ISO time with an offset, ``Z``, or none (then in ``zone``); None when unreadable."""
    text = _text(value)
    if not text:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def render_task(record: Mapping[str, Any]) -> str:
    """A CRM task as comment text: heading, title, due date, status (and its body)."""
    due = _moment(record.get("dueDate"), ZoneInfo("UTC"))
    lines = [f"{TASK_HEADING}: {_text(record.get('title'))}"]
    if due is not None:
        lines.append(f"Due: {due.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC")
    lines.append(f"Status: {'completed' if record.get('completed') else 'open'}")
    body = _text(record.get("body"))
    if body:
        lines += ["", body]
    return "\n".join(lines)


def render_appointment(record: Mapping[str, Any], *, timezone_name: str = "UTC") -> str:
    """A CRM appointment as comment text: title, start and end with the zone, status, calendar.

    Times with an offset are shown in ``timezone_name``; times without one (the per-contact
    route's ``YYYY-MM-DD HH:MM:SS``, whose zone is UNCONFIRMED) are taken to be in it.
    """
    zone = _zone(timezone_name)
    start = _moment(record.get("startTime"), zone)
    end = _moment(record.get("endTime"), zone)
    lines = [f"{APPOINTMENT_HEADING}: {_text(record.get('title')) or '(no title)'}"]
    if start is not None:
        start = start.astimezone(zone)
        when = f"{start:%Y-%m-%d %H:%M}"
        if end is not None:
            end = end.astimezone(zone)
            when += (
                f" to {end:%H:%M}" if end.date() == start.date() else f" to {end:%Y-%m-%d %H:%M}"
            )
        lines.append(f"When: {when} ({zone.key})")
    else:
        lines.append(f"When: {_text(record.get('startTime')) or 'not set'}")
    lines.append(f"Status: {_text(record.get('status')) or 'unknown'}")
    calendar = _text(record.get("calendarId"))
    if calendar:
        lines.append(f"Calendar: {calendar}")
    return "\n".join(lines)
