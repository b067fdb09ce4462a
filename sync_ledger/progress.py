"""Progress of a long run in the log at a steady pace: one line per stream and interval.

A first import of tens of thousands of records runs for hours at the APIs' rate limits; the
person watching it needs to know it is moving, how fast, and (where the number of records is
known) when it will end, not a line per record. :class:`ProgressLog` reads the counts off the
run's :class:`~sync_ledger.summary.RunSummary`, so it counts exactly what the summary reports.

A target does not know how many records a tap will send (Singer carries no total), so a line
says the records done and the rate; the expected end only for a stream whose total someone
announced with :meth:`ProgressLog.expect`.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sync_ledger.summary import OUTCOMES

if TYPE_CHECKING:
    from collections.abc import Callable

    from sync_ledger.summary import RunSummary

logger = logging.getLogger("sync_ledger.progress")

#: Seconds between two progress lines of a run.
DEFAULT_INTERVAL_SECONDS = 30.0


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class ProgressLog:
    """Logs, at most every ``interval`` seconds, each stream that moved since its last line.

    For example ``contacts: 12,000 of ~20,000 done (11,500 created, 300 updated, 150 unchanged,
    50 rejected), 9.7 records/s, expected end 13:45 UTC``. The rate is the stream's pace over
    the last interval (the pace of a rate-limited import now, not its slow start). Call
    :meth:`tick` after each record; it costs a clock read until a line is due. Thread-safe.
    """

    def __init__(
        self,
        summary: RunSummary,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.summary = summary
        self.interval = interval
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._last = clock()
        self._next = self._last + interval
        #: Records each stream had done at the last lines.
        self._done: dict[str, int] = {}
        self._totals: dict[str, int] = {}

    def expect(self, stream: str, total: int) -> None:
        """Announce that ``stream`` has about ``total`` records in this run."""
        with self._lock:
            self._totals[stream] = total

    def tick(self) -> None:
        """Log the progress lines when the interval has passed since the last ones."""
        if self._clock() < self._next or not self._lock.acquire(blocking=False):
            return  # not due, or another thread is writing the lines right now
        try:
            at = self._clock()
            if at < self._next:
                return
            self._next = at + self.interval
            for line in self._lines(at):
                logger.info(line)
        finally:
            self._lock.release()

    def _lines(self, at: float) -> list[str]:
        lines = []
        for stream, counts in self.summary.as_dict().items():
            # Every outcome a record can end with (a target may add its own, e.g. deleted).
            done = sum(n for key, n in counts.items() if key != "read")
            before = self._done.get(stream, 0)
            self._done[stream] = done
            if done != before:
                rate = (done - before) / max(at - self._last, 1e-9)
                lines.append(self._line(stream, done, counts, rate))
        self._last = at
        return lines

    def _line(self, stream: str, done: int, counts: dict[str, int], rate: float) -> str:
        total = self._totals.get(stream)
        outcomes = ", ".join(
            f"{counts.get(o, 0):,} {o}"
            for o in (*OUTCOMES, *(k for k in counts if k not in ("read", *OUTCOMES)))
        )
        head = f"{stream}: {done:,} of ~{total:,} done" if total else f"{stream}: {done:,} done"
        # A slow stream's rate keeps two significant digits instead of showing as 0.0.
        pace = f"{rate:,.1f}" if rate >= 1 else f"{rate:.2g}"
        line = f"{head} ({outcomes}), {pace} records/s"
        if total and total > done:
            now = self._now()
            end = now + timedelta(seconds=(total - done) / rate)
            shown = f"{end:%H:%M}" if end.date() == now.date() else f"{end:%Y-%m-%d %H:%M}"
            line += f", expected end {shown} UTC"
        return line
