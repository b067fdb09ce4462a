"""GroupCommit: writes of many threads share commits, each caller gets its own answer."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from sync_ledger.db import GroupCommit

if TYPE_CHECKING:
    from collections.abc import Iterator


class FakeDatabase:
    """Transactions that keep what their writes did only when they commit."""

    def __init__(self) -> None:
        self.committed: list[list[str]] = []
        self.rolled_back = 0

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        done: list[str] = []
        try:
            yield done
        except BaseException:
            self.rolled_back += 1
            raise
        self.committed.append(done)


def write(name: str, *, gate: threading.Event | None = None, fail: bool = False) -> Any:
    def work(steps: list[str]) -> str:
        if gate is not None:
            assert gate.wait(10)
        if fail:
            msg = f"{name} breaks a constraint"
            raise ValueError(msg)
        steps.append(name)
        return f"{name} done"

    return work


def queue_while_blocked(
    group: GroupCommit, works: dict[str, Any]
) -> tuple[dict[str, Any], threading.Event, list[threading.Thread]]:
    """Start a first write that holds its transaction open, then ``works`` behind it."""
    answers: dict[str, Any] = {}
    gate = threading.Event()

    def call(name: str, work: Any) -> None:
        try:
            answers[name] = group.run(work)
        except ValueError as error:
            answers[name] = error

    first = threading.Thread(target=call, args=("first", write("first", gate=gate)))
    first.start()
    deadline = time.monotonic() + 10
    while not group._committing.locked():  # the first commit is under way
        assert time.monotonic() < deadline
        time.sleep(0.001)
    threads = [threading.Thread(target=call, args=item) for item in works.items()]
    for thread in threads:
        thread.start()
    while len(group._queue) < len(works):
        assert time.monotonic() < deadline
        time.sleep(0.001)
    return answers, gate, [first, *threads]


def test_writes_arriving_during_a_commit_share_the_next_one_and_get_their_own_answers() -> None:
    database = FakeDatabase()
    group = GroupCommit(database.transaction)
    names = [f"w{n}" for n in range(5)]
    answers, gate, threads = queue_while_blocked(group, {n: write(n) for n in names})
    gate.set()
    for thread in threads:
        thread.join(10)

    assert answers == {name: f"{name} done" for name in ["first", *names]}
    assert len(database.committed) == 2
    assert database.committed[0] == ["first"]
    assert sorted(database.committed[1]) == names


def test_a_failing_write_fails_alone_and_the_writes_it_shared_a_transaction_with_commit() -> None:
    database = FakeDatabase()
    group = GroupCommit(database.transaction)
    works = {n: write(n) for n in ("a", "b", "c")}
    works["bad"] = write("bad", fail=True)
    answers, gate, threads = queue_while_blocked(group, works)
    gate.set()
    for thread in threads:
        thread.join(10)

    assert isinstance(answers.pop("bad"), ValueError)
    assert answers == {name: f"{name} done" for name in ("first", "a", "b", "c")}
    committed = sorted(name for done in database.committed for name in done)
    assert committed == ["a", "b", "c", "first"]
    # The shared transaction rolled back, then each of its writes ran alone; only "bad" failed.
    assert database.rolled_back == 2


def test_one_thread_alone_commits_each_write_at_once() -> None:
    database = FakeDatabase()
    group = GroupCommit(database.transaction)
    assert [group.run(write(n)) for n in ("x", "y")] == ["x done", "y done"]
    assert database.committed == [["x"], ["y"]]
    with pytest.raises(ValueError, match="z breaks"):
        group.run(write("z", fail=True))
    assert database.committed == [["x"], ["y"]]
