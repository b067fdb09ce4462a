"""The operator's view of rejected records: list them, and retry them after the cause is fixed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contacts_api.errors import ConfigError
from sync_ledger.db import DEFAULT_LEDGER_URL, make_engine
from sync_ledger.ledger import IdLedger, Reject
from sync_ledger.summary import RunSummary
from target_contacts.wiring import build_sync

if TYPE_CHECKING:
    from collections.abc import Mapping

STREAM_ORDER = ("contacts", "tasks", "notes")


def _ledger(config: Mapping[str, Any]) -> IdLedger:
    if not config.get("location_id"):
        raise ConfigError("location_id is required to find the location's rejects")
    engine = make_engine(config.get("ledger_url") or DEFAULT_LEDGER_URL)
    return IdLedger(engine, config["location_id"])


def list_rejects(config: Mapping[str, Any], stream: str | None = None) -> list[Reject]:
    """The location's rejected records, oldest first."""
    return _ledger(config).rejects(stream=stream)


def format_rejects(rejects: list[Reject]) -> str:
    """A table a person can act on: stream, source id, attempts, kind, field and reason."""
    if not rejects:
        return "No rejected records."
    lines = [f"{'stream':<9}{'source id':<22}{'attempts':>8}  {'kind':<16}{'field':<14}reason"]
    lines += [
        f"{r.stream:<9}{r.source_id:<22}{r.attempts:>8}  {r.kind:<16}{(r.field or '-'):<14}"
        f"{r.reason}"
        for r in rejects
    ]
    lines.append(
        f"{len(rejects)} rejected record(s). Fix the cause (data in MOCO, a setting or "
        "a mapping), then run `contacts-admin rejects retry`."
    )
    return "\n".join(lines)


def retry_rejects(config: Mapping[str, Any], stream: str | None = None) -> RunSummary:
    """Send every rejected record again with the current settings; what fails again stays."""
    rejects = list_rejects(config, stream)
    summary = RunSummary()
    sync = build_sync(config, summary)
    try:
        for name in STREAM_ORDER:
            records = [r.record for r in rejects if r.stream == name]
            if records:
                sync.write_batch(name, records)
        sync.resolve_held()
    finally:
        sync.close()
    return summary
