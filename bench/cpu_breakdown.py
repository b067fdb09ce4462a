"""Where a target's CPU goes, per record: thread CPU time inside its main steps.

Loaded into the target process by ``python -m bench.target_ab --variants current+breakdown``:
:func:`install` wraps the steps below so that each call adds the CPU time of its own thread
(``time.thread_time``: user and system, not time spent waiting) to its step, and the totals
are written to a JSON file when the process ends. Steps nest (the client's call holds the
limiter and the HTTP request), so they do not add up to the total; the process's own CPU is in
the file too. A wrapped call costs ~1 us more, a few per record.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections import Counter, defaultdict
from functools import wraps
from pathlib import Path
from typing import Any

#: (module, class, method, step name): what a record goes through, reader then writer.
STEPS = (
    ("singer_sdk.target_base", "Target", "_process_record_message", "read a record (reader)"),
    ("singer_sdk.mapper", "CustomStreamMap", "transform", "  stream maps"),
    ("sync_ledger.writer", "BatchWriter", "_intents_ahead", "intents ahead (payloads, commit)"),
    ("sync_ledger.writer", "BatchWriter", "_write_one", "write a record (writer threads)"),
    ("sync_ledger.ledger", "IdLedger", "mark_creating", "  ledger: intent"),
    ("sync_ledger.ledger", "IdLedger", "record_written", "  ledger: written row"),
    ("contacts_api.client", "ContactsClient", "_call", "  API call"),
    ("contacts_api.ratelimit", "ContactsRateLimiter", "acquire", "    limiter: acquire"),
    ("sync_ledger.budget", "RateBudget", "take", "      shared budget: take"),
    ("contacts_api.ratelimit", "ContactsRateLimiter", "answered", "    limiter: answered"),
    ("moco_api.client", "MocoClient", "_request", "  MOCO API call (target-moco)"),
    ("moco_api.ratelimit", "AccountLimiter", "acquire", "    MOCO limiter: acquire"),
    ("sync_ledger.http", "HostSession", "request", "    HTTP request and answer"),
)


def install(path: str) -> None:
    """Wrap :data:`STEPS` and write their totals to ``path`` (JSON) at exit."""
    seconds: defaultdict[str, float] = defaultdict(float)
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    for module_name, class_name, method, step in STEPS:
        owner = getattr(__import__(module_name, fromlist=[class_name]), class_name)
        original = getattr(owner, method)

        def timed(*args: Any, _original: Any = original, _step: str = step, **kwargs: Any) -> Any:  # noqa: ANN401  any wrapped method
            start = time.thread_time()
            try:
                return _original(*args, **kwargs)
            finally:
                spent = time.thread_time() - start
                with lock:
                    seconds[_step] += spent
                    calls[_step] += 1

        setattr(owner, method, wraps(original)(timed))

    def report() -> None:
        times = os.times()
        result = {
            "process_cpu_s": times.user + times.system,
            "steps": {s: {"cpu_s": seconds[s], "calls": calls[s]} for s in seconds},
        }
        Path(path).write_text(json.dumps(result), encoding="utf-8")

    atexit.register(report)


def render(path: str, records: int) -> list[str]:
    """The breakdown in ``path`` as lines: ms of CPU per record and us per call of each step."""
    result = json.loads(Path(path).read_text(encoding="utf-8"))
    lines = [f"    process: {1000 * result['process_cpu_s'] / records:.3f} ms CPU per record"]
    for _module, _class, _method, step in STEPS:
        found = result["steps"].get(step)
        if found is None:
            continue
        per_call = 1e6 * found["cpu_s"] / max(1, found["calls"])
        lines.append(
            f"    {step:<36} {1000 * found['cpu_s'] / records:6.3f} ms per record "
            f"({found['calls']:,} calls, {per_call:.0f} us each)"
        )
    return lines
