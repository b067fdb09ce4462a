"""The three input streams' sinks: they batch records and hand them to the shared writer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from singer_sdk.sinks import BatchSink
from typing_extensions import override

if TYPE_CHECKING:
    from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum

    from target_contacts.target import TargetContacts

STREAMS = ("contacts", "tasks", "notes")


class ContactsApiSink(BatchSink):
    """Batches one input stream and writes it through the target's :class:`ContactsSync`.

    Records are validated against the target's own input schema (not the SDK's, which would stop
    the whole run on one bad record), so a bad record becomes a reject that names its field.
    """

    max_size = 500

    def __init__(
        self,
        target: TargetContacts,
        stream_name: str,
        schema: dict[str, Any],
        key_properties: list[str] | None,
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.target = target
        # A record without its id is rejected with a reason, not a crash of the whole run.
        self._key_properties = []

    @override
    def get_validator(self) -> None:
        return None

    @override
    def _parse_timestamps_in_record(
        self, record: dict[str, Any], schema: dict[str, Any], treatment: DatetimeErrorTreatmentEnum
    ) -> None:
        """Keep timestamps as the strings they arrived as; the writer normalises them."""

    @override
    def process_batch(self, context: dict[str, Any]) -> None:
        records = context.get("records", [])
        if not records:
            return
        if self.stream_name != "contacts":
            # A contact is always written before its tasks and notes.
            self.target.drain_stream("contacts")
        sync = self.target.sync
        sync.write_batch(self.stream_name, records)
        if sync.held_count:
            sync.hold_pending()
