"""Progress lines of a long run: one per stream and interval, with the rate and, when the number
of records is known, the expected end. Everything runs on a fake clock: no test waits."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from sync_ledger.db import make_engine
from sync_ledger.ledger import IdLedger
from sync_ledger.progress import ProgressLog
from sync_ledger.summary import RunSummary
from sync_ledger.writer import BatchWriter
from tests.timing import FakeClock

if TYPE_CHECKING:
    from pathlib import Path

    from sync_ledger.ledger import LedgerEntry
    from sync_ledger.writer import WorkItem

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def make_log(clock: FakeClock, summary: RunSummary) -> ProgressLog:
    """A progress log on ``clock``; its wall clock reads noon when ``clock`` starts."""
    start = clock.now
    return ProgressLog(
        summary,
        interval=30,
        clock=clock.monotonic,
        now=lambda: NOON + timedelta(seconds=clock.now - start),
    )


@dataclass
class Watched:
    """A run's summary and its progress log on a fake clock, and the lines logged."""

    clock: FakeClock
    summary: RunSummary
    progress: ProgressLog
    caplog: pytest.LogCaptureFixture

    def lines(self) -> list[str]:
        """The progress lines since the last call."""
        lines = [r.getMessage() for r in self.caplog.records if r.name == "sync_ledger.progress"]
        self.caplog.clear()
        return lines


@pytest.fixture
def run(caplog: pytest.LogCaptureFixture) -> Watched:
    caplog.set_level(logging.INFO, logger="sync_ledger.progress")
    clock = FakeClock()
    summary = RunSummary()
    return Watched(clock, summary, make_log(clock, summary), caplog)


def test_a_line_per_interval_with_the_counts_and_the_rate_of_the_last_interval(
    run: Watched,
) -> None:
    for outcome in ["created"] * 200 + ["updated"] * 50 + ["unchanged"] * 45 + ["rejected"] * 5:
        run.summary.read("contacts")
        run.summary.outcome("contacts", outcome)
        run.clock.advance(0.1)  # 10 records/s: 300 records take 30 s
        run.progress.tick()
    assert run.lines() == [
        "contacts: 300 done (200 created, 50 updated, 45 unchanged, 5 rejected), 10.0 records/s"
    ]

    # Slower now: the rate is the last interval's, not the run's average.
    for _ in range(60):
        run.summary.outcome("contacts", "created")
        run.clock.advance(0.5)
        run.progress.tick()
    assert run.lines() == [
        "contacts: 360 done (260 created, 50 updated, 45 unchanged, 5 rejected), 2.0 records/s"
    ]


def test_nothing_is_logged_before_the_interval_and_a_stream_that_did_not_move_is_left_out(
    run: Watched,
) -> None:
    run.summary.outcome("contacts", "created")
    run.clock.advance(29.9)
    run.progress.tick()
    assert run.lines() == []

    run.clock.advance(0.1)
    run.progress.tick()
    assert run.lines() == [
        "contacts: 1 done (1 created, 0 updated, 0 unchanged, 0 rejected), 0.033 records/s"
    ]
    # The contacts are done; only tasks move in the next interval.
    for _ in range(45):
        run.summary.outcome("tasks", "updated")
    run.clock.advance(30)
    run.progress.tick()
    assert run.lines() == [
        "tasks: 45 done (0 created, 45 updated, 0 unchanged, 0 rejected), 1.5 records/s"
    ]


def test_the_expected_end_only_when_the_total_is_known(run: Watched) -> None:
    run.progress.expect("contacts", 20_000)
    for _ in range(12_000):
        run.summary.outcome("contacts", "created")
    run.clock.advance(1200)  # 12,000 in 20 minutes: 10 records/s, 8,000 left take 800 s more
    run.progress.tick()
    assert run.lines() == [
        (
            "contacts: 12,000 of ~20,000 done (12,000 created, 0 updated, 0 unchanged, "
            "0 rejected), 10.0 records/s, expected end 12:33 UTC"
        )
    ]

    # An end on another day carries its date.
    run.progress.expect("contacts", 100_000)
    for _ in range(30):
        run.summary.outcome("contacts", "created")
    run.clock.advance(30)  # 1 record/s now: 87,970 left take a day and a bit
    run.progress.tick()
    assert run.lines() == [
        (
            "contacts: 12,030 of ~100,000 done (12,030 created, 0 updated, 0 unchanged, "
            "0 rejected), 1.0 records/s, expected end 2026-03-03 12:46 UTC"
        )
    ]


class CreatingWriter(BatchWriter):
    """Creates every record; each create takes 0.125 s on the fake clock (8 records/s)."""

    def __init__(self, ledger: IdLedger, clock: FakeClock) -> None:
        super().__init__(ledger, concurrency=1)
        self.clock = clock

    def _dispatch(
        self, item: WorkItem, entry: LedgerEntry | None, parents: dict[str, LedgerEntry]
    ) -> str:
        del item, entry, parents
        self.clock.advance(0.125)
        return "created"


def test_the_batch_writer_logs_a_long_batch_at_a_steady_pace(tmp_path: Path, run: Watched) -> None:
    ledger = IdLedger(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"), "loc")
    writer = CreatingWriter(ledger, run.clock)
    writer.progress = make_log(run.clock, writer.summary)
    try:
        writer.write_batch("contacts", [{"id": str(i)} for i in range(1000)])
    finally:
        writer.close()
    # 1,000 records at 8 per second: a line every 240 records, not one per record.
    assert run.lines() == [
        f"contacts: {n:,} done ({n:,} created, 0 updated, 0 unchanged, 0 rejected), 8.0 records/s"
        for n in (240, 480, 720, 960)
    ]
