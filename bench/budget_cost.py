"""What the shared request budget costs a request in CPU: one slot taken and answered.

Every request target-contacts and tap-contacts send takes a slot of the location's budget in
the ledger database (``sync_ledger.budget.RateBudget``) and answers it. With one request in
flight at a time (the listener's runs, any run whose requests wait on a real network) every
answer is written at once; slots are taken a block at a time. This measures that pair on a
fresh SQLite ledger in a temp dir, on one thread, ``--pairs`` times, CPU of this process::

    python -m bench.budget_cost --pairs 5000

Prints microseconds of CPU per take and answer, and the budget's block.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.harness import say
from sync_ledger.budget import RateBudget
from sync_ledger.db import make_engine


def measure(pairs: int, max_requests: int = 100_000) -> tuple[float, int]:
    """(microseconds of CPU per take + answer, slots per block) over ``pairs`` pairs."""
    with tempfile.TemporaryDirectory(prefix="budget-cost-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        budget = RateBudget(engine, "bench", max_requests, 1.0)
        budget.answered(budget.take())  # the first transaction prepares its statements
        started = time.process_time()
        for _ in range(pairs):
            budget.answered(budget.take())
        spent = time.process_time() - started
        engine.dispose()
    return 1e6 * spent / pairs, budget.block


def main() -> None:
    """Run the measurement and print it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=5000, help="takes and answers (5000)")
    args = parser.parse_args()
    per_pair, block = measure(args.pairs)
    say(f"{per_pair:.0f} us of CPU per take + answer on one thread (block {block})")


if __name__ == "__main__":
    main()
