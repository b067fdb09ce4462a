"""RateBudget: one sliding window shared by processes through a SQLite ledger file, and the
Contacts limiter taking its slots from it."""

from __future__ import annotations

import logging
import multiprocessing
import types
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

from contacts_api.ratelimit import ContactsRateLimiter, limiter_from_config
from sync_ledger import budget as budget_module
from sync_ledger.budget import RateBudget, budget_name, rate_budget_slots
from sync_ledger.db import make_engine

if TYPE_CHECKING:
    from pathlib import Path

    from tests.timing import FakeClock

MAX = 10
WINDOW = 0.5
PROCESSES = 3
PER_PROCESS = 12


def take_slots(url: str, block: int, start: Any, out: Any) -> None:
    """A worker process: wait for the others, then take PER_PROCESS slots of the shared budget."""
    budget = RateBudget(make_engine(url), "contacts-api test", MAX, WINDOW, block=block)
    start.wait()
    out.put([budget.acquire() for _ in range(PER_PROCESS)])


@pytest.mark.parametrize("block", [1, 3], ids=["one-slot-at-a-time", "blocks-of-3"])
def test_processes_sharing_a_budget_never_exceed_it_together(tmp_path: Path, block: int):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    make_engine(url)  # tables and migrations once, before the workers race
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(PROCESSES)
    out = spawn.Queue()
    workers = [
        spawn.Process(target=take_slots, args=(url, block, start, out)) for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    moments = sorted(m for _ in workers for m in out.get(timeout=120))
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0

    assert len(moments) == PROCESSES * PER_PROCESS
    # The budget's own record of when each slot was taken: never MAX + 1 within one window.
    assert all(moments[k] - moments[k - MAX] >= WINDOW for k in range(MAX, len(moments)))


@pytest.fixture
def budget_clock(monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock) -> FakeClock:
    """The budget's wall clock and sleeps on the test's fake clock."""
    monkeypatch.setattr(
        budget_module,
        "time",
        types.SimpleNamespace(time=fake_clock.monotonic, sleep=fake_clock.sleep),
    )
    monkeypatch.setattr(budget_module, "WAIT_JITTER", 0.0)
    return fake_clock


def moments(budget: RateBudget) -> list[float]:
    with budget.engine.connect() as conn:
        return sorted(conn.execute(select(rate_budget_slots.c.taken_at)).scalars())


def rows(budget: RateBudget) -> int:
    with budget.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(rate_budget_slots)).scalar_one())


def test_acquire_waits_for_the_oldest_slot_and_keeps_the_table_small(
    tmp_path: Path, budget_clock: FakeClock
):
    budget = RateBudget(make_engine(f"sqlite:///{tmp_path / 'l.db'}"), "b", 10, 10.0)
    start = budget_clock.now

    moments = [budget.acquire() for _ in range(25)]

    assert moments[:10] == [start] * 10
    assert moments[10:20] == [start + 10.0] * 10  # waited until the first ten expired
    assert moments[20:] == [start + 20.0] * 5
    assert rows(budget) <= 10  # expired slots are deleted as new ones are taken
    assert budget.in_use() == 5
    budget_clock.advance(10.0)
    assert budget.in_use() == 0


def test_slots_are_taken_in_blocks_and_stale_ones_given_back(
    tmp_path: Path, budget_clock: FakeClock
):
    budget = RateBudget(make_engine(f"sqlite:///{tmp_path / 'l.db'}"), "b", 100, 10.0)
    assert budget.block == 5  # a twentieth of the window's requests
    other = RateBudget(budget.engine, "b", 100, 10.0)  # another process's view

    first = budget.take()
    assert rows(budget) == 5 and other.in_use() == 5  # the others see the whole block taken
    more = [budget.take() for _ in range(4)]
    assert rows(budget) == 5  # handed out from the block, no database work
    assert len({slot.id for slot in [first, *more]}) == 5
    for slot in [first, *more]:
        budget.answered(slot)
    assert other.in_use() == 5

    spare = budget.take()  # a new block: 1 handed out, 4 taken ahead
    assert rows(budget) == 10
    budget_clock.advance(budget_module.RESERVED_MAX_AGE * 10.0 + 0.1)  # too old to be sent now
    late = budget.take()  # the 4 stale ones are given back, a fresh block taken
    assert spare.taken_at < late.taken_at == budget_clock.now
    assert moments(budget) == [spare.taken_at] * 6 + [late.taken_at] * 5


def test_a_slot_taken_ahead_is_used_within_half_a_second_even_in_a_long_window(
    tmp_path: Path, budget_clock: FakeClock
):
    # The MOCO limiter reports no answers and keeps a margin of 1 s on a window of minutes.
    budget = RateBudget(make_engine(f"sqlite:///{tmp_path / 'l.db'}"), "b", 200, 121.0)
    first = budget.take()
    budget_clock.advance(0.4)
    assert budget.take().taken_at == first.taken_at  # still fresh: from the block
    budget_clock.advance(0.2)
    assert budget.take().taken_at == budget_clock.now  # stale ones given back, a new block


def test_answers_wait_in_memory_until_nothing_is_in_flight(tmp_path: Path, budget_clock: FakeClock):
    budget = RateBudget(make_engine(f"sqlite:///{tmp_path / 'l.db'}"), "b", 100, 10.0)
    start = budget_clock.now
    slots = [budget.take() for _ in range(3)]
    budget_clock.advance(2.0)
    budget.answered(slots[0])
    budget.answered(slots[1])
    assert moments(budget) == [start] * 5  # two answers wait: one request is still out
    budget.answered(slots[2])
    assert moments(budget) == [start, start, start + 2.0, start + 2.0, start + 2.0]


def test_budgets_of_different_names_do_not_share(tmp_path: Path, budget_clock: FakeClock):
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    one, other = RateBudget(engine, "one", 2, 10.0), RateBudget(engine, "other", 2, 10.0)
    start = budget_clock.now

    taken = [one.acquire(), one.acquire(), other.acquire(), other.acquire()]

    assert taken == [start] * 4


def test_long_names_are_shortened_but_stay_distinct():
    first = budget_name("contacts-api", "https://" + "a" * 300, "loc-1")
    second = budget_name("contacts-api", "https://" + "a" * 300, "loc-2")
    assert len(first) <= 255
    assert first != second
    assert budget_name("contacts-api", "https://x", "loc") == "contacts-api https://x loc"


def test_the_limiter_is_shared_through_a_file_ledger_but_not_an_in_memory_one(tmp_path: Path):
    base = {"location_id": "loc-a", "rate_limit_requests": 7, "rate_limit_window_seconds": 3}
    file_config = {**base, "base_url": "http://127.0.0.1:1/file"}
    memory_config = {**base, "base_url": "http://127.0.0.1:1/memory"}

    shared = limiter_from_config(file_config, engine=make_engine(f"sqlite:///{tmp_path / 'l.db'}"))
    alone = limiter_from_config(memory_config, engine=make_engine("sqlite:///:memory:"))

    assert isinstance(shared.budget, RateBudget)
    assert shared.budget.name == "contacts-api http://127.0.0.1:1/file loc-a"
    assert shared.budget.max_requests == 7
    assert shared.budget.window_seconds == pytest.approx(3 + shared.safety_margin_seconds)
    assert alone.budget is None
    assert limiter_from_config(file_config, engine=None) is shared  # one per process and location


class CountingBudget:
    """A SharedBudget that counts slots taken and answered and reports a fixed number in use."""

    def __init__(self, in_use: int = 0) -> None:
        self.taken = 0
        self.answers: list[int] = []
        self.used = in_use

    def take(self) -> int:
        self.taken += 1
        return self.taken

    def answered(self, slot: int) -> None:
        self.answers.append(slot)

    def in_use(self) -> int:
        return self.used


def test_the_limiter_takes_a_budget_slot_for_every_request(fake_clock: FakeClock):
    budget = CountingBudget()
    limiter = ContactsRateLimiter(5, 10.0, budget=budget)

    slots = [limiter.acquire() for _ in range(12)]
    for slot in slots:
        limiter.answered(slot)

    assert slots == list(range(1, 13))
    assert budget.answers == slots
    # The budget is the window (held from each answer, for every process): the limiter adds no
    # wait of its own, which would only repeat the budget's and cost CPU per request.
    assert fake_clock.now == 1000.0


def test_a_slot_is_held_for_a_window_from_its_answer(tmp_path: Path, budget_clock: FakeClock):
    budget = RateBudget(make_engine(f"sqlite:///{tmp_path / 'l.db'}"), "b", 2, 10.0)
    start = budget_clock.now
    first, second = budget.take(), budget.take()
    budget_clock.advance(3.0)  # the answers took 3 s (a slow network, a busy machine)
    budget.answered(first)
    budget.answered(second)

    # The API may have counted them as late as their answers: 10 s from then, not from taking.
    assert budget.acquire() == start + 3.0 + 10.0


def test_an_answer_within_the_grace_moves_nothing_a_later_one_does(
    tmp_path: Path, budget_clock: FakeClock
):
    # A window of 10.2 s whose last 0.2 s are a margin on the caller's 10 s window: an answer
    # within 0.2 s of the taking is covered by the window from the taking (it ends more than
    # 10 s after the answer), so no write is spent on it.
    budget = RateBudget(
        make_engine(f"sqlite:///{tmp_path / 'l.db'}"), "b", 2, 10.2, answer_grace=0.2
    )
    start = budget_clock.now
    quick, slow = budget.take(), budget.take()
    budget_clock.advance(0.1)
    budget.answered(quick)
    budget_clock.advance(0.4)
    budget.answered(slow)  # 0.5 s after its taking: held from its answer

    assert moments(budget) == [pytest.approx(start), pytest.approx(start + 0.5)]
    assert budget.acquire() == pytest.approx(start + 10.2)  # the quick one's window
    assert budget.acquire() == pytest.approx(start + 0.5 + 10.2)


def test_an_answer_grace_is_shorter_than_the_window(tmp_path: Path):
    with pytest.raises(ValueError, match="answer_grace"):
        RateBudget(make_engine(f"sqlite:///{tmp_path / 'l.db'}"), "b", 2, 1.0, answer_grace=1.0)


def test_a_slot_answered_after_it_expired_is_held_again(tmp_path: Path, budget_clock: FakeClock):
    budget = RateBudget(make_engine(f"sqlite:///{tmp_path / 'l.db'}"), "b", 1, 10.0)
    start = budget_clock.now
    slow = budget.take()
    budget_clock.advance(15.0)  # a request slower than the window
    assert budget.in_use() == 0
    budget.answered(slow)

    assert budget.in_use() == 1
    assert budget.acquire() == start + 15.0 + 10.0


def test_the_client_holds_its_slot_until_the_answer(sandbox, tmp_path: Path):
    from contacts_api.auth import StaticTokenAuth
    from contacts_api.client import ContactsClient

    budget = RateBudget(make_engine(f"sqlite:///{tmp_path / 'l.db'}"), "client", 100, 10.0)
    client = ContactsClient(
        sandbox.url,
        "sandbox-location",
        StaticTokenAuth("sandbox-token"),
        limiter=ContactsRateLimiter(100, 10.0, budget=budget),
    )
    taken: list[Any] = []
    answered: list[Any] = []
    original_take, original_answered = budget.take, budget.answered

    def take() -> Any:
        slot = original_take()
        taken.append(slot)
        return slot

    def answer(slot: Any) -> None:
        answered.append(slot)
        original_answered(slot)

    budget.take, budget.answered = take, answer  # type: ignore[method-assign]
    client.search_contacts_page({"pageLimit": 10})

    assert len(taken) == 1
    assert answered == taken


def headers(remaining: int) -> dict[str, str]:
    return {
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Max": "100",
        "X-RateLimit-Interval-Milliseconds": "10000",
    }


@pytest.mark.parametrize(("in_use", "paused"), [(100, False), (3, True)])
def test_a_used_up_window_explained_by_the_shared_budget_causes_no_pause(
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    in_use: int,
    paused: bool,  # noqa: FBT001
):
    limiter = ContactsRateLimiter(100, 10.0, budget=CountingBudget(in_use))
    limiter.acquire()

    with caplog.at_level(logging.INFO, logger="contacts_api.ratelimit"):
        limiter.observe(headers(0))

    assert any("pausing requests" in r.getMessage() for r in caplog.records) is paused
