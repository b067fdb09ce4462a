"""MOCO's timestamps: UTC ISO-8601 with ``Z``, whole seconds (``2018-10-17T09:33:46Z``)."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_moco_timestamp(value: str) -> datetime:
    """Parse MOCO's UTC timestamps (``2018-10-17T09:33:46Z``) and ISO-8601 with offsets.

    Naive values are taken as UTC. The result is always timezone-aware.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_moco_timestamp(moment: datetime) -> str:
    """Format ``moment`` the way MOCO's ``updated_after`` filter expects: UTC, whole seconds, ``Z``.

    Fractions of a second are cut off, so the bound never moves later than ``moment``.
    """
    utc = moment.astimezone(timezone.utc) if moment.tzinfo else moment
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
