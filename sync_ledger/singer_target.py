"""The Singer side both targets share: sinks and a target around a :class:`BatchWriter`.

Sinks batch records into the writer; the target drains contacts first, reports a summary that
adds up, keeps dry runs free of state, and passes the tap's state on only when every record is
written, unchanged or rejected.

target-contacts and target-moco subclass :class:`LedgerTarget` with their streams, settings and
writer (:meth:`LedgerTarget.build_writer`).
"""

from __future__ import annotations

import json
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from singer_sdk.mapper import RemoveRecordTransform
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.sinks import BatchSink
from singer_sdk.target_base import Target
from typing_extensions import override

from sync_ledger.compiled_maps import compile_stream_maps
from sync_ledger.runlock import NO_RUN_LOCK, WAIT_SETTING, RunLockLike, run_lock_for
from sync_ledger.summary import RunSummary
from sync_ledger.writer import DELETED_AT, PARENT_STREAM, BatchWriter, FatalSyncError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum


class StreamNotAccepted(ValueError):  # noqa: N818  a configuration verdict, named for the user
    """A stream reached the target that it does not write (rename or drop it in the maps)."""


class DryRunPlan(Protocol):
    """What a dry run's client offers besides the API calls: the plan it recorded."""

    def write_plan(self, path: Path) -> None:
        """Write the planned calls as JSON lines."""
        ...

    def calls_by_route(self) -> Mapping[str, int]:
        """Planned calls per route."""
        ...


class KeepsTombstones(BatchSink):
    """A sink that keeps the soft-delete marker (``_sdc_deleted_at``) of incoming records."""

    @override
    def _remove_sdc_metadata_from_record(self, record: dict[str, Any]) -> None:
        """Drop Singer's metadata columns, but keep the soft-delete marker: it is a tombstone."""
        deleted = record.get(DELETED_AT)
        super()._remove_sdc_metadata_from_record(record)
        if deleted:
            record[DELETED_AT] = deleted


class LedgerSink(KeepsTombstones):
    """Batches one input stream and writes it through the target's writer.

    Records are validated against the target's own input schema (not the SDK's, which would stop
    the whole run on one bad record), so a bad record becomes a reject that names its field.
    """

    max_size = 500

    def __init__(
        self,
        target: LedgerTarget,
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
        if self.stream_name != PARENT_STREAM:
            # A contact is always written before what belongs to it.
            self.target.drain_stream(PARENT_STREAM)
        writer = self.target.writer
        self.target.run_lock.check()  # a run whose lease was taken over writes nothing more
        writer.write_batch(self.target.writer_stream(self.stream_name), records)
        if writer.held_count:
            writer.hold_pending()


class LedgerTarget(Target):
    """A Singer target that writes through a :class:`BatchWriter` and the shared ledger."""

    default_sink_class = LedgerSink
    #: The input streams, in the order they are drained at the end (contacts first).
    streams: ClassVar[tuple[str, ...]] = ()
    #: The command that lists and retries rejects, named in messages.
    rejects_command: ClassVar[str] = "rejects list"
    #: This run's lock on its location (sync_ledger.runlock), taken with the writer.
    run_lock: RunLockLike = NO_RUN_LOCK

    @override
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Sinks drain one at a time; writes are concurrent inside the writer's own pool.
        self.max_parallelism = 1
        self.summary = RunSummary(self.streams)

    @classmethod
    @override
    def append_builtin_config(cls, config_jsonschema: dict[str, Any]) -> None:
        config_jsonschema["properties"].setdefault("run_lock_wait_seconds", WAIT_SETTING)
        super().append_builtin_config(config_jsonschema)

    def build_writer(self, config: Mapping[str, Any], summary: RunSummary) -> BatchWriter:
        """The writer for ``config``; raises a configuration error before the first write."""
        raise NotImplementedError

    def writer_stream(self, stream_name: str) -> str:
        """The input stream whose rules write ``stream_name``'s records (itself by default)."""
        return stream_name

    @override
    def get_sink_class(self, stream_name: str) -> type[LedgerSink]:
        if self.writer_stream(stream_name) not in self.streams:
            if self._dropped_by_stream_maps(stream_name):
                # `stream: __NULL__` drops every record, but the SDK still asks for a sink when
                # the SCHEMA arrives; an empty sink that never gets a record is harmless.
                return LedgerSink
            raise StreamNotAccepted(
                f"{self.name} received stream {stream_name!r}; it accepts "
                f"{', '.join(self.streams)}. Rename the stream with __alias__ or drop it "
                f"({stream_name}: __NULL__) in the stream maps."
            )
        _ = self.writer  # check the configuration before the first record is written
        return LedgerSink

    def _dropped_by_stream_maps(self, stream_name: str) -> bool:
        """Whether the stream maps drop ``stream_name`` entirely (``stream_name: __NULL__``)."""
        maps = [
            m
            for ms in self.mapper.stream_maps.values()
            for m in ms
            if m.stream_alias == stream_name
        ]
        return bool(maps) and all(isinstance(m, RemoveRecordTransform) for m in maps)

    @override
    def _process_schema_message(self, message_dict: dict[str, Any]) -> None:
        super()._process_schema_message(message_dict)
        # The stream's maps, new or rebuilt for a changed schema, evaluate compiled expressions.
        compile_stream_maps(self.mapper.stream_maps.get(str(message_dict.get("stream")), ()))

    @override
    def _process_record_message(self, message_dict: dict[str, Any]) -> None:
        record = message_dict.get("record")
        if "record" in message_dict and not isinstance(record, dict):
            raise InvalidInputLine(
                f"RECORD message of stream {message_dict.get('stream')!r} holds "
                f"{type(record).__name__} {str(record)[:80]!r}, not a JSON object: fix the tap "
                "or the stream maps that produced it"
            )
        super()._process_record_message(message_dict)

    # --- wiring ----------------------------------------------------------------------------
    @cached_property
    def writer(self) -> BatchWriter:
        """The writer shared by all sinks (built once; validates the configuration)."""
        writer = self.build_writer(self.config, self.summary)
        # One writing run per location and target: wait for (or stop at) a run writing it now.
        self.run_lock = run_lock_for(self.name, self.config)
        return writer

    def drain_stream(self, stream_name: str) -> None:
        """Write what one stream has buffered (used to put contacts before their children)."""
        sink = self._sinks_active.get(stream_name)
        if sink is not None:
            self.drain_one(sink)

    # --- end of input ------------------------------------------------------------------------
    @override
    def process_endofpipe(self) -> None:
        if "writer" not in self.__dict__:  # no record arrived: nothing to write or report
            super().process_endofpipe()
            return
        for stream in (*self.streams, *sorted(self._sinks_active)):
            self.drain_stream(stream)  # contacts first; streams written like others after them
        self.writer.resolve_held()
        self.writer.apply_deletes()
        self._report()
        rejected = sum(c["rejected"] for c in self.summary.as_dict().values())
        self.writer.close()
        if rejected and self.config.get("fail_on_rejects"):
            raise FatalSyncError(
                f"{rejected} record(s) were rejected and fail_on_rejects is set; "
                f"see `{self.rejects_command}`"
            )
        self.run_lock.check()
        super().process_endofpipe()  # writes the tap's state: everything it covers is done
        self.run_lock.release()

    @override
    def _write_state_message(self, state: dict[str, Any]) -> None:
        """Pass the tap's state on, except in a dry run.

        A dry run must leave no trace, state included, so that the live run after it reads the
        same records.
        """
        if self.config.get("dry_run"):
            self.logger.info("dry run: the tap's state is not passed on")
            return
        super()._write_state_message(state)

    def _report(self) -> None:
        client = getattr(self.writer, "client", None)
        extra: dict[str, Any] = {"dry_run": bool(self.config.get("dry_run"))}
        if self.config.get("dry_run") and hasattr(client, "write_plan"):
            plan: DryRunPlan = client  # type: ignore[assignment]  # checked just above
            path = Path(self.config.get("dry_run_plan_path") or "dry-run-plan.jsonl")
            plan.write_plan(path)
            extra["planned_calls"] = dict(plan.calls_by_route())
            extra["plan_path"] = str(path)
            title = f"{self.name} DRY RUN plan (nothing was written)"
        else:
            extra["api_calls"] = dict(getattr(client, "calls", {}))
            title = f"{self.name} summary"
        self.logger.info("\n%s", self.summary.table(title))
        report = self.summary.to_json(extra)
        # The machine-readable summary line on stderr (stdout carries the target's state).
        sys.stderr.write("SUMMARY " + json.dumps(report, sort_keys=True) + "\n")
        sys.stderr.flush()
        if self.config.get("summary_path"):
            Path(self.config["summary_path"]).write_text(
                json.dumps(report, indent=2) + "\n", encoding="utf-8"
            )
