"""The run summary: per stream, what was read and what became of it."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

OUTCOMES = ("created", "updated", "unchanged", "rejected")


class RunSummary:
    """Thread-safe counters per stream; ``read`` always equals the sum of the outcomes at the end."""

    def __init__(self, streams: tuple[str, ...] = ("contacts", "tasks", "notes")) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {s: Counter() for s in streams}
        self.reject_examples: dict[str, list[str]] = {}
        self.rejects_by_kind: Counter[str] = Counter()

    def read(self, stream: str, n: int = 1) -> None:
        with self._lock:
            self._counts.setdefault(stream, Counter())["read"] += n

    def outcome(self, stream: str, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        with self._lock:
            self._counts.setdefault(stream, Counter())[outcome] += 1

    def note_reject(self, stream: str, text: str, kind: str = "invalid") -> None:
        """Keep a few example messages per stream and count rejects per kind."""
        with self._lock:
            self.rejects_by_kind[kind] += 1
            examples = self.reject_examples.setdefault(stream, [])
            if len(examples) < 5:
                examples.append(text)

    def as_dict(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                stream: {key: counts.get(key, 0) for key in ("read", *OUTCOMES)}
                for stream, counts in self._counts.items()
            }

    def adds_up(self) -> bool:
        return all(c["read"] == sum(c[o] for o in OUTCOMES) for c in self.as_dict().values())

    def table(self, title: str = "target-contacts summary") -> str:
        """A fixed-width table for people reading the log."""
        rows = self.as_dict()
        header = f"{'stream':<10}{'read':>9}" + "".join(f"{o:>11}" for o in OUTCOMES)
        lines = [title, header]
        for stream, counts in rows.items():
            lines.append(
                f"{stream:<10}{counts['read']:>9}" + "".join(f"{counts[o]:>11}" for o in OUTCOMES)
            )
        if self.rejects_by_kind:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.rejects_by_kind.items()))
            lines.append(f"rejected by kind: {kinds}")
        return "\n".join(lines)

    def to_json(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"streams": self.as_dict(), "adds_up": self.adds_up()}
        if self.reject_examples:
            out["reject_examples"] = self.reject_examples
            out["rejects_by_kind"] = dict(sorted(self.rejects_by_kind.items()))
        if extra:
            out.update(extra)
        return out
