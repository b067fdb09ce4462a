"""target-contacts' sinks: the shared ledger sink, for the three input streams."""

from __future__ import annotations

from sync_ledger.singer_target import LedgerSink

STREAMS = ("contacts", "tasks", "notes")


class ContactsApiSink(LedgerSink):
    """Batches one input stream and writes it through the target's :class:`ContactsSync`."""
