"""Canary for the private singer-sdk hooks tap-moco and target-contacts override or read.

singer-sdk keeps these ``_``-prefixed names out of its public API, so a release may change them
without notice. Each test asserts that the installed singer-sdk still has the hook with the
parameters our override expects, and still calls it where we rely on it being called, on small
probe plugins and hand-made answers (no sandbox, no network). A failure names the hook and the
file of ours that depends on it: re-check that override before taking the new singer-sdk.

Covered:

- ``Target._process_record_message`` (target_contacts/target.py): the raw RECORD message, once
  per RECORD, before the SDK validates it; ``super()`` hands the record to the sink.
- ``Target._write_state_message`` (target_contacts/target.py): the only way the SDK emits the
  drained state, so skipping it passes no state on in a dry run.
- ``Target._sinks_active`` and ``Target.drain_one`` (target_contacts/target.py ``drain_stream``).
- ``Sink._parse_timestamps_in_record`` (target_contacts/sinks.py): called for every record; the
  override is what keeps timestamps as the strings they arrived as.
- ``Sink._key_properties`` (target_contacts/sinks.py): emptied so that a record without its id
  becomes a reject instead of the SDK's MissingKeyPropertiesError.
- ``PluginBase._validate_config`` (tap_moco/tap.py): called at construction with
  ``raise_errors``; the base returns the schema errors when told not to raise.
- ``state["progress_markers"]`` and the replication-key signpost (tap_moco/client.py): an unsorted
  stream's new bookmark waits in the progress markers until the stream has been read to its end;
  removing them keeps the old bookmark; finalising caps the bookmark at the signpost.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import io
import json
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
import requests
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, MissingKeyPropertiesError
from singer_sdk.helpers import _state as sdk_state
from singer_sdk.helpers import conform
from singer_sdk.plugin_base import PluginBase
from singer_sdk.sinks import BatchSink, Sink
from singer_sdk.target_base import Target

from sync_ledger.singer_target import KeepsTombstones, LedgerSink
from tap_moco.client import EMITTED_STATE_KEY, format_moco_timestamp, parse_moco_timestamp
from tap_moco.tap import TapMoco
from target_contacts.sinks import ContactsApiSink
from target_contacts.target import TargetContacts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

SDK_VERSION = importlib.metadata.version("singer-sdk")
TARGET_PY = "target_contacts/target.py"
SINKS_PY = "target_contacts/sinks.py"
LEDGER_SINK_PY = "sync_ledger/singer_target.py"
TAP_PY = "tap_moco/tap.py"
CLIENT_PY = "tap_moco/client.py"


def changed(hook: str, ours: str, what: str) -> str:
    """The failure message: which hook changed, who relies on it, and for what."""
    return (
        f"singer-sdk {SDK_VERSION} changed {hook}: {ours} relies on it for {what}; "
        "re-check the override"
    )


def parameters(func: Callable[..., Any]) -> list[tuple[str, Any]]:
    """A function's parameters as (name, kind), ``self`` included."""
    return [(p.name, p.kind) for p in inspect.signature(func).parameters.values()]


def assert_same_parameters(
    sdk: Callable[..., Any], ours: Callable[..., Any], hook: str, where: str, what: str
) -> None:
    """Our override takes exactly the parameters the SDK's hook has (and is an override)."""
    assert sdk is not ours, changed(hook, where, what)
    assert parameters(ours) == parameters(sdk), changed(hook, where, what) + (
        f" (the SDK's parameters: {parameters(sdk)}, ours: {parameters(ours)})"
    )


# --- probe target: records every hook call --------------------------------------------------------
SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "updated": {"type": "string", "format": "date-time"},
    },
}


class ProbeSink(BatchSink):
    """Keeps every batch it is asked to write."""

    max_size = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[list[dict[str, Any]]] = []

    def process_batch(self, context: dict[str, Any]) -> None:
        self.batches.append(list(context.get("records", [])))


class TimestampProbeSink(ProbeSink):
    """Overrides the timestamp parsing as ContactsApiSink does, and counts the calls."""

    calls: list[dict[str, Any]]

    def _parse_timestamps_in_record(
        self, record: dict, schema: dict, treatment: conform.DatetimeErrorTreatmentEnum
    ) -> None:
        type(self).calls.append({"record": dict(record), "schema": schema, "treatment": treatment})


class ProbeTarget(Target):
    """A target that records the private hooks the SDK calls, then does what the SDK does."""

    name = "target-sdk-canary"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = ProbeSink

    def __init__(self, *, pass_state_on: bool = True, **kwargs: Any) -> None:
        super().__init__(config={}, validate_config=False, **kwargs)
        self.pass_state_on = pass_state_on
        self.record_messages: list[dict[str, Any]] = []
        self.states_written: list[dict[str, Any]] = []
        self.events: list[str] = []

    def _process_record_message(self, message_dict: dict) -> None:
        self.record_messages.append(message_dict)
        self.events.append("record")
        if isinstance(message_dict.get("record"), dict):
            super()._process_record_message(message_dict)

    def _write_state_message(self, state: dict) -> None:
        self.states_written.append(state)
        self.events.append("state")
        if self.pass_state_on:
            super()._write_state_message(state)


def singer_lines(*records: Any, state: dict[str, Any] | None = None) -> io.StringIO:
    """A SCHEMA for stream ``people``, one RECORD per record, then an optional STATE."""
    lines: list[dict[str, Any]] = [
        {"type": "SCHEMA", "stream": "people", "schema": SCHEMA, "key_properties": ["id"]}
    ]
    lines += [{"type": "RECORD", "stream": "people", "record": r} for r in records]
    if state is not None:
        lines.append({"type": "STATE", "value": state})
    return io.StringIO("".join(json.dumps(line) + "\n" for line in lines))


def people(n: int) -> list[dict[str, Any]]:
    return [
        {"id": str(i), "name": f"Person {i}", "updated": "2024-05-06T07:08:09Z"}
        for i in range(1, n + 1)
    ]


def probe_sink(target: ProbeTarget) -> ProbeSink:
    sink = target.get_sink("people")
    assert isinstance(sink, ProbeSink)
    return sink


# --- target: record processing --------------------------------------------------------------------
def test_process_record_message_receives_every_raw_record_message() -> None:
    hook, what = "Target._process_record_message", "rejecting RECORDs that hold no object"
    assert_same_parameters(
        Target._process_record_message,
        TargetContacts._process_record_message,
        hook,
        TARGET_PY,
        what,
    )
    target = ProbeTarget()
    target.listen(singer_lines(*people(3), "oops", state={"bookmarks": {}}))
    assert [m.get("record") for m in target.record_messages] == [*people(3), "oops"], changed(
        hook, TARGET_PY, what + " (it must see each RECORD message once, before validation)"
    )
    written = [r["id"] for batch in probe_sink(target).batches for r in batch]
    assert written == ["1", "2", "3"], changed(
        hook, TARGET_PY, "handing each record to its sink through super()"
    )


# --- target: state --------------------------------------------------------------------------------
@pytest.mark.parametrize("run", ["live", "dry"])
def test_write_state_message_is_the_only_way_the_state_goes_out(
    run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pass_state_on = run == "live"
    hook = "Target._write_state_message"
    what = "passing no state on in a dry run (and the tap's state after the writes otherwise)"
    assert_same_parameters(
        Target._write_state_message, TargetContacts._write_state_message, hook, TARGET_PY, what
    )
    state = {"bookmarks": {"people": {"replication_key_value": "2024-05-06T07:08:09Z"}}}
    target = ProbeTarget(pass_state_on=pass_state_on)
    target.listen(singer_lines(*people(2), state=state))
    assert target.states_written == [state], changed(hook, TARGET_PY, what)
    assert target.events[-1] == "state" and probe_sink(target).batches, changed(
        hook, TARGET_PY, what + " (the state must follow the drained batches)"
    )
    emitted = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    expected = [json.dumps(state)] if pass_state_on else []
    assert emitted == expected, changed(hook, TARGET_PY, what)


# --- target: active sinks and draining ------------------------------------------------------------
def test_sinks_active_holds_each_streams_sink_and_drain_one_writes_it() -> None:
    hook, what = (
        "Target._sinks_active / Target.drain_one",
        "writing contacts before tasks and notes",
    )
    target = ProbeTarget()
    target.process_lines(singer_lines(*people(2)))  # no end of input: nothing drained yet
    sinks = getattr(target, "_sinks_active", None)
    assert isinstance(sinks, dict), changed(hook, TARGET_PY, what)
    sink = sinks.get("people")
    assert isinstance(sink, ProbeSink) and sink.batches == [], changed(hook, TARGET_PY, what)
    assert (
        parameters(Target.drain_one)
        == parameters(ProbeTarget.drain_one)
        == [
            ("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            ("sink", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ]
    ), changed(hook, TARGET_PY, what)
    target.drain_one(sink)
    assert [[r["id"] for r in batch] for batch in sink.batches] == [["1", "2"]], changed(
        hook, TARGET_PY, what
    )


# --- sink: timestamps and key properties ----------------------------------------------------------
def test_parse_timestamps_in_record_is_called_for_every_record_and_keeps_strings() -> None:
    hook = "Sink._parse_timestamps_in_record"
    what = "keeping timestamps as the strings they arrived as"
    assert_same_parameters(
        Sink._parse_timestamps_in_record,
        ContactsApiSink._parse_timestamps_in_record,
        hook,
        SINKS_PY,
        what,
    )
    # Without the override the SDK parses the date-time field: the override is load-bearing.
    plain = ProbeTarget()
    plain.listen(singer_lines(*people(1)))
    assert isinstance(probe_sink(plain).batches[0][0]["updated"], datetime), changed(
        hook, SINKS_PY, what + " (the SDK no longer parses timestamps there)"
    )

    TimestampProbeSink.calls = []
    overridden = ProbeTarget()
    overridden.default_sink_class = TimestampProbeSink
    overridden.listen(singer_lines(*people(3)))
    calls = TimestampProbeSink.calls
    assert [c["record"]["id"] for c in calls] == ["1", "2", "3"], changed(hook, SINKS_PY, what)
    assert all(c["schema"] == SCHEMA for c in calls), changed(hook, SINKS_PY, what)
    assert all(isinstance(c["treatment"], conform.DatetimeErrorTreatmentEnum) for c in calls), (
        changed(hook, SINKS_PY, what)
    )
    batch = probe_sink(overridden).batches[0]
    assert [r["updated"] for r in batch] == ["2024-05-06T07:08:09Z"] * 3, changed(
        hook, SINKS_PY, what
    )


class TombstoneProbeSink(KeepsTombstones, ProbeSink):
    """Keeps the soft-delete marker through the SDK's metadata removal, as LedgerSink does."""


def test_remove_sdc_metadata_from_record_is_where_the_soft_delete_marker_is_dropped() -> None:
    hook = "Sink._remove_sdc_metadata_from_record"
    what = "keeping _sdc_deleted_at (a tombstone) while the other metadata columns go"
    assert_same_parameters(
        Sink._remove_sdc_metadata_from_record,
        LedgerSink._remove_sdc_metadata_from_record,
        hook,
        LEDGER_SINK_PY,
        what,
    )
    gone = {**people(1)[0], "_sdc_deleted_at": "2026-12-01T10:00:00Z", "_sdc_sequence": 1}
    plain = ProbeTarget()
    plain.listen(singer_lines(gone))
    assert "_sdc_deleted_at" not in probe_sink(plain).batches[0][0], changed(
        hook, LEDGER_SINK_PY, what + " (the SDK no longer drops it there)"
    )
    kept = ProbeTarget()
    kept.default_sink_class = TombstoneProbeSink
    kept.listen(singer_lines(gone))
    record = probe_sink(kept).batches[0][0]
    assert record.get("_sdc_deleted_at") == "2026-12-01T10:00:00Z", changed(
        hook, LEDGER_SINK_PY, what
    )
    assert "_sdc_sequence" not in record, changed(hook, LEDGER_SINK_PY, what)


class KeylessProbeSink(ProbeSink):
    """Empties the key properties after construction, as ContactsApiSink does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._key_properties = []


def test_key_properties_attribute_drives_the_missing_key_check() -> None:
    hook = "Sink._key_properties"
    what = "turning a record without its id into a reject instead of stopping the run"
    without_id = {"name": "no id", "updated": "2024-05-06T07:08:09Z"}
    checked = ProbeTarget()
    try:
        checked.listen(singer_lines(without_id))
    except MissingKeyPropertiesError:
        pass  # the SDK's own check, which ContactsApiSink switches off
    else:
        pytest.fail(changed(hook, SINKS_PY, what + " (the SDK no longer checks key properties)"))
    assert probe_sink(checked)._key_properties == ["id"], changed(hook, SINKS_PY, what)

    keyless = ProbeTarget()
    keyless.default_sink_class = KeylessProbeSink
    try:
        keyless.listen(singer_lines(without_id))
    except MissingKeyPropertiesError:
        pytest.fail(changed(hook, SINKS_PY, what + " (emptying it no longer skips the check)"))
    names = [[r["name"] for r in batch] for batch in probe_sink(keyless).batches]
    assert names == [["no id"]], changed(hook, SINKS_PY, what)


# --- tap: config validation -----------------------------------------------------------------------
def test_validate_config_is_called_at_construction_with_raise_errors() -> None:
    hook = "PluginBase._validate_config"
    what = "requiring subdomain or base_url and keeping the API key out of config errors"
    assert_same_parameters(
        PluginBase._validate_config, TapMoco._validate_config, hook, TAP_PY, what
    )
    raise_errors = inspect.signature(PluginBase._validate_config).parameters["raise_errors"]
    assert raise_errors.default is True, changed(hook, TAP_PY, what)

    with pytest.raises(ConfigValidationError) as refused:
        TapMoco(config={"api_key": "canary-key"})  # neither subdomain nor base_url
    assert any("Set either 'subdomain'" in e for e in refused.value.errors), changed(
        hook, TAP_PY, what + " (our override was not called at construction)"
    )
    TapMoco(config={"api_key": "canary-key"}, validate_config=False)  # raise_errors=False
    bad = TapMoco(
        config={"api_key": "k", "subdomain": "acme", "page_size": "x"}, validate_config=False
    )
    errors = PluginBase._validate_config(bad, raise_errors=False)
    assert isinstance(errors, list) and any("page_size" in e for e in errors), changed(
        hook, TAP_PY, what + " (the base must return the schema errors when not raising)"
    )


# --- tap: progress markers and the signpost -------------------------------------------------------
NOW = datetime.now(timezone.utc)
OLD_BOOKMARK = format_moco_timestamp(NOW - timedelta(days=5))


def page(records: list[dict[str, Any]], total: int) -> requests.Response:
    """One answer of GET /contacts/people, as MOCO sends it."""
    response = requests.Response()
    response.status_code = 200
    response.headers["Content-Type"] = "application/json"
    response.headers["X-Total"] = str(total)
    response._content = json.dumps(records).encode()
    response.url = "http://127.0.0.1:9/api/v1/contacts/people"
    return response


def person(record_id: int, updated: datetime) -> dict[str, Any]:
    return {"id": record_id, "updated_at": format_moco_timestamp(updated)}


def sync_contacts(pages: list[requests.Response]) -> tuple[TapMoco, Any, list[dict[str, Any]]]:
    """Sync tap-moco's contacts stream over ``pages`` (no HTTP) from OLD_BOOKMARK.

    Returns the tap, the stream, and the stream's state as the SDK had it after each record.
    """
    state = {
        "bookmarks": {
            "contacts": {"replication_key": "updated_at", "replication_key_value": OLD_BOOKMARK}
        }
    }
    tap = TapMoco(config={"api_key": "canary-key", "base_url": "http://127.0.0.1:9"}, state=state)
    stream = tap.streams["contacts"]
    during: list[dict[str, Any]] = []

    def request_records(context: Any) -> Iterator[dict[str, Any]]:
        for answer in pages:
            for record in stream.parse_response(answer):
                yield record
                # The SDK has counted the record by the time the generator resumes.
                during.append(json.loads(json.dumps(stream.get_context_state(context))))

    stream.request_records = request_records  # type: ignore[method-assign]
    stream.backoff_attempts = 1  # should the SDK bypass request_records, fail fast
    try:
        stream.sync()
    except Exception as exc:  # noqa: BLE001  any failure here is the SDK's change to report
        pytest.fail(
            changed(
                "RESTStream.request_records / Stream.sync",
                CLIENT_PY,
                f"reading pages through parse_response and get_records ({exc!r})",
            )
        )
    return tap, stream, during


def bookmark_of(tap: TapMoco) -> dict[str, Any]:
    return tap.state["bookmarks"]["contacts"]


def test_an_unsorted_streams_bookmark_waits_in_the_progress_markers_until_its_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hook = "state['progress_markers'] (unsorted streams)"
    what = "moving the bookmark only once a stream was read to its end"
    assert sdk_state.PROGRESS_MARKERS == "progress_markers", changed(hook, CLIENT_PY, what)
    newest = NOW - timedelta(days=1)
    tap, _stream, during = sync_contacts(
        [
            page([person(1, NOW - timedelta(days=2)), person(2, NOW - timedelta(days=3))], 3),
            page([person(3, newest)], 3),
        ]
    )
    capsys.readouterr()
    assert during, changed(hook, CLIENT_PY, what)
    for seen in during:
        assert seen.get("replication_key_value") == OLD_BOOKMARK, changed(hook, CLIENT_PY, what)
        assert "replication_key_value" in seen.get("progress_markers", {}), changed(
            hook, CLIENT_PY, what
        )
    final = bookmark_of(tap)
    assert final["replication_key_value"] == format_moco_timestamp(newest), changed(
        hook, CLIENT_PY, what + " (the progress markers were not promoted at the end)"
    )
    assert "progress_markers" not in final, changed(hook, CLIENT_PY, what)
    assert EMITTED_STATE_KEY in final, changed(
        "Stream.get_context_state", CLIENT_PY, "remembering the versions emitted in the overlap"
    )


def test_without_progress_markers_finalising_keeps_the_old_bookmark(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hook = "state['progress_markers'] (finalising)"
    what = "keeping the bookmark when the list changed while it was paged"
    tap, _stream, _during = sync_contacts(
        [
            page([person(1, NOW - timedelta(days=2))], 3),
            page([person(2, NOW - timedelta(days=1))], 2),  # X-Total moved: a record went away
        ]
    )
    capsys.readouterr()
    final = bookmark_of(tap)
    assert final["replication_key_value"] == OLD_BOOKMARK, changed(hook, CLIENT_PY, what)
    assert "progress_markers" not in final, changed(hook, CLIENT_PY, what)


def test_finalising_caps_the_bookmark_at_the_signpost(capsys: pytest.CaptureFixture[str]) -> None:
    hook = "the replication-key signpost"
    what = "computing the bookmark the SDK will finalise (_next_bookmark)"
    tap, stream, _during = sync_contacts([page([person(1, NOW + timedelta(days=1))], 1)])
    capsys.readouterr()
    signpost = stream.get_replication_key_signpost(None)
    assert isinstance(signpost, datetime), changed(hook, CLIENT_PY, what)
    final = parse_moco_timestamp(bookmark_of(tap)["replication_key_value"])
    assert final == signpost, changed(hook, CLIENT_PY, what + " (min(newest, signpost))")
