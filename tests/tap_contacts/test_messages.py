"""The Singer messages of a run: one SCHEMA per stream and a few STATE messages, not one of each
per contact (the SDK's child-stream sync would write them per contact).

tap_contacts/streams.py overrides singer-sdk's private ``Stream._write_schema_message`` and
``Stream._write_state_message`` on the child streams for this; a failure here after a singer-sdk
upgrade means those hooks changed: re-check ``ChildStream`` before taking the new release.
"""

from __future__ import annotations

import inspect
from collections import Counter
from typing import TYPE_CHECKING

from singer_sdk import Stream

from tap_contacts.streams import ChildStream
from tests.tap_contacts.support import run_tap, seed, tap_config

if TYPE_CHECKING:
    from sandbox.server import RunningSandbox


def test_the_private_hooks_the_child_streams_override_still_exist():
    for hook in ("_write_schema_message", "_write_state_message"):
        sdk = getattr(Stream, hook, None)
        assert sdk is not None, f"singer-sdk has no Stream.{hook}: see tap_contacts/streams.py"
        ours = getattr(ChildStream, hook)
        assert ours is not sdk
        assert list(inspect.signature(ours).parameters) == list(
            inspect.signature(sdk).parameters
        ), f"Stream.{hook} changed its parameters: see tap_contacts/streams.py"


def test_one_schema_per_stream_and_state_only_from_the_contacts_stream(sandbox: RunningSandbox):
    seed(sandbox, generate={"contacts": 120, "seed": 4})

    run = run_tap(tap_config(sandbox))

    assert run.error is None
    kinds = Counter((m["type"], m.get("stream")) for m in run.messages)
    for stream in ("contacts", "tasks", "notes", "appointments"):
        assert kinds["SCHEMA", stream] == 1, stream
        assert kinds["RECORD", stream] > 0, stream
    assert kinds["STATE", None] <= 2
    # The final state holds the children's digests and the full pass.
    bookmarks = run.state["bookmarks"]
    assert set(bookmarks) == {"contacts", "tasks", "notes", "appointments"}
    assert all(bookmarks[s]["digests"].startswith("v1:") for s in ("tasks", "notes"))
