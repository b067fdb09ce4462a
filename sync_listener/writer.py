"""Group commit: deliveries that arrive together are stored with one commit.

Each 202 waits for its event's commit, and with SQLite ``synchronous=FULL`` a commit is a disk
sync; committing one event at a time would queue concurrent senders behind each other's syncs.
:class:`EventWriter` takes every event waiting when the previous commit ends and stores them in one
transaction (:meth:`EventStore.add_many`), so a burst costs a few commits, not one per event.

What a caller may rely on: :meth:`EventWriter.add` returns once the event is committed (its row
id) or found to be a duplicate (None), or raises the ledger's error; nothing is acknowledged before
its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sync_ledger.events import EventStore, NewEvent

#: Most events in one transaction (bounds the work a single commit holds up).
MAX_BATCH = 200


class EventWriter:
    """The one task that stores events, a batch per commit."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._queue: asyncio.Queue[tuple[NewEvent, asyncio.Future[int | None]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start storing (call from the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._drain(), name="event writer")

    async def stop(self) -> None:
        """Stop storing; call when no request waits any more."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def add(self, event: NewEvent) -> int | None:
        """Store ``event``: its row id once committed, or None if its dedupe key is stored."""
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, done))
        return await done

    async def _drain(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            waiting = [(event, done) for event, done in batch if not done.done()]
            if not waiting:
                continue  # every sender gave up waiting
            try:
                ids = await asyncio.to_thread(self._store.add_many, [event for event, _ in waiting])
            except Exception as error:  # noqa: BLE001  (any failure goes to the waiting requests)
                for _, done in waiting:
                    if not done.done():
                        done.set_exception(error)
                continue
            for (_, done), row_id in zip(waiting, ids, strict=True):
                if not done.done():
                    done.set_result(row_id)
