"""Coalesced runs: stored events become at most one run at a time per location.

What a caller may rely on:

- :meth:`Coordinator.notify` (called after an event is committed) makes the lane's next run start
  once no event has arrived for ``debounce_seconds``, and at the latest ``max_wait_seconds`` after
  the first event it waits for: a burst is one run.
- A run claims every pending event of its lane that no run covers yet, before it starts (so each
  claimed event was stored before the run began and the run's re-read sees its change). Events
  that arrive while it runs are left for exactly one follow-up run.
- A run whose claimed events include a delete starts with its tap's ``reconcile_now`` set
  through the environment (:mod:`sync_listener.deletes`), so that the delete propagates in it.
- The two directions of one location never run at once, and a run starts at the earliest
  ``debounce_seconds`` after the location's previous run ended. So a run reads what the other
  direction finished writing (its ledger baselines included), and the webhooks its own writes
  cause on the other side (HighLevel marks none of them) arrive before that side's next run
  claims its events: one forward run's echoes cost at most one reverse run, which writes nothing.
- A run that exits 0 marks its events ``handled``. A run that fails gives them back and is retried
  after ``retry_backoff_seconds``, doubling up to ``retry_backoff_max_seconds``; the events stay
  pending until a run succeeds.
- :meth:`Coordinator.start` resumes the lanes that have pending events (after
  :meth:`EventStore.recover` gave back those of runs that never finished); a lane without pending
  events starts no run, so nothing handled is ever run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from sync_listener.deletes import run_environment
from sync_listener.intake import CONTACTS_TO_MOCO, MOCO_TO_CONTACTS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from sync_ledger.events import EventStore, Lane
    from sync_listener.runner import CommandRunner
    from sync_listener.settings import ListenerSettings

T = TypeVar("T")

log = logging.getLogger(__name__)

IDLE = "idle"
WAITING = "waiting"  # for quiet after its events
QUEUED = "queued"  # due, waiting for the other direction's run of its location to end
RUNNING = "running"
BACKOFF = "backoff"

#: Pause before retrying a ledger write that failed (the database was locked or unreachable).
_STORE_RETRY_SECONDS = 1.0


class _LaneWorker:
    """The single flight of one lane: waits for quiet, claims, runs, settles, repeats."""

    def __init__(
        self,
        lane: Lane,
        command: tuple[str, ...],
        coordinator: Coordinator,
    ) -> None:
        self.lane = lane
        self.state = IDLE
        self._command = command
        self._coordinator = coordinator
        self._wake = asyncio.Event()
        self._first: float | None = None  # first event since the last claim
        self._last: float | None = None  # latest event since the last claim
        self._not_before = 0.0  # end of the backoff after a failed run
        self._failures = 0
        self.task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = now
        self._last = now
        if self.state == IDLE:
            self.state = WAITING
        self._wake.set()

    async def loop(self) -> None:
        coordinator = self._coordinator
        location = self.lane.location_id
        while True:
            await self._wake.wait()
            await self._quiet()
            self.state = QUEUED
            async with coordinator.location_lock(location):
                # The other direction may have just written: let the webhooks it caused arrive.
                settle = coordinator.released_at(location) + coordinator.settings.debounce_seconds
                if settle > time.monotonic():
                    await asyncio.sleep(settle - time.monotonic())
                self._wake.clear()
                self._first = self._last = None
                ran = False
                try:
                    ran = await self._run_once()
                except Exception:  # a bug here must not end the lane silently; its events wait
                    log.exception("lane %s/%s failed; retrying", self.lane.direction, location)
                    ran = True
                    self._failed()
                finally:
                    if ran:
                        coordinator.release(location)
            self.state = WAITING if self._wake.is_set() else IDLE

    async def _quiet(self) -> None:
        """Return once the lane is due: quiet long enough, or waited long enough, and no backoff."""
        settings = self._coordinator.settings
        while True:
            now = time.monotonic()
            first = self._first if self._first is not None else now
            last = self._last if self._last is not None else now
            due = max(
                min(last + settings.debounce_seconds, first + settings.max_wait_seconds),
                self._not_before,
            )
            if now >= due:
                return
            self.state = BACKOFF if now < self._not_before else WAITING
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), due - now)

    async def _run_once(self) -> bool:
        """Claim the lane's events and run once for them; whether there were any."""
        store = self._coordinator.store
        run_id = str(uuid.uuid4())
        claimed = await self._coordinator.stored(lambda: store.claim(self.lane, run_id))
        if claimed == 0:
            return False  # an earlier run already covered them
        covers_delete = self._coordinator.covers_delete
        deletes = await self._coordinator.stored(lambda: covers_delete(run_id))
        extra_env = run_environment(self.lane, covers_delete=deletes)
        self.state = RUNNING
        log.info(
            "run %s: %s for location %s covers %d event(s): %s%s",
            run_id,
            self.lane.direction,
            self.lane.location_id,
            claimed,
            " ".join(self._command),
            "".join(f" (a delete among them: {k}={v})" for k, v in extra_env.items()),
        )
        started = time.monotonic()
        status = await self._coordinator.runner.run(self._command, run_id, self.lane, extra_env)
        seconds = time.monotonic() - started
        if status == 0:
            handled = await self._coordinator.stored(lambda: store.finish(run_id))
            self._failures = 0
            self._not_before = 0.0
            log.info("run %s: exited 0 after %.1f s; %d event(s) handled", run_id, seconds, handled)
            return True
        await self._coordinator.stored(lambda: store.release(run_id))
        pause = self._failed()
        log.error(
            "run %s: exited %d after %.1f s; its %d event(s) stay pending, retry %d in %.0f s",
            run_id,
            status,
            seconds,
            claimed,
            self._failures,
            pause,
        )
        return True

    def _failed(self) -> float:
        """Schedule the retry of a failed run after a doubling pause; the pause."""
        self._failures += 1
        settings = self._coordinator.settings
        pause = min(
            settings.retry_backoff_seconds * 2.0 ** (self._failures - 1),
            settings.retry_backoff_max_seconds,
        )
        self._not_before = time.monotonic() + pause
        self.notify()
        return pause


def _no_deletes(run_id: str) -> bool:
    del run_id
    return False


class Coordinator:
    """All lanes of one listener.

    ``covers_delete(run_id)`` says whether a run's claimed events include a delete
    (:class:`sync_listener.deletes.ClaimedDeletes`; without it no run forces a pass).
    """

    def __init__(
        self,
        store: EventStore,
        settings: ListenerSettings,
        runner: CommandRunner,
        *,
        covers_delete: Callable[[str], bool] = _no_deletes,
    ) -> None:
        self.store = store
        self.settings = settings
        self.runner = runner
        self.covers_delete = covers_delete
        self._commands = {
            MOCO_TO_CONTACTS: settings.moco_to_contacts_command,
            CONTACTS_TO_MOCO: settings.contacts_to_moco_command,
        }
        self._workers: dict[Lane, _LaneWorker] = {}
        self._locations: dict[str, asyncio.Lock] = {}
        self._released: dict[str, float] = {}

    def start(self, lanes: Iterable[Lane]) -> None:
        """Resume ``lanes`` (those with pending events after a restart)."""
        for lane in lanes:
            self.notify(lane)

    def notify(self, lane: Lane) -> None:
        """A pending event of ``lane`` was committed: schedule its run."""
        worker = self._workers.get(lane)
        if worker is None:
            command = self._commands.get(lane.direction)
            if command is None:
                log.error("events of unknown direction %r stay pending", lane.direction)
                return
            worker = _LaneWorker(lane, command, self)
            worker.task = asyncio.get_running_loop().create_task(
                worker.loop(), name=f"lane {lane.direction} {lane.location_id}"
            )
            self._workers[lane] = worker
        worker.notify()

    async def stop(self) -> None:
        """Stop every lane; a run in flight is stopped and its events stay pending."""
        tasks = [worker.task for worker in self._workers.values() if worker.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def location_lock(self, location_id: str) -> asyncio.Lock:
        """Held by the lane of ``location_id`` that is running (one run per location at a time)."""
        return self._locations.setdefault(location_id, asyncio.Lock())

    def released_at(self, location_id: str) -> float:
        """When the location's last run ended (monotonic seconds; 0 if none did)."""
        return self._released.get(location_id, 0.0)

    def release(self, location_id: str) -> None:
        """Note that a run of ``location_id`` ended now."""
        self._released[location_id] = time.monotonic()

    @property
    def runs_in_flight(self) -> int:
        """How many runs are going on now."""
        return sum(1 for worker in self._workers.values() if worker.state == RUNNING)

    def lanes(self) -> dict[str, str]:
        """Each lane (``direction/location``) and its state.

        States: idle, waiting (for quiet), queued (for the location), running, backoff.
        """
        return {
            f"{lane.direction}/{lane.location_id}": worker.state
            for lane, worker in self._workers.items()
        }

    async def stored(self, write: Callable[[], T]) -> T:
        """Do a ledger write in a thread, retrying until it succeeds (the lane waits meanwhile)."""
        while True:
            try:
                return await asyncio.to_thread(write)
            except SQLAlchemyError as error:  # noqa: PERF203  (a retry loop, once a second)
                log.warning(
                    "ledger write failed (%s); retrying in %.0f s",
                    type(error).__name__,
                    _STORE_RETRY_SECONDS,
                )
                await asyncio.sleep(_STORE_RETRY_SECONDS)
