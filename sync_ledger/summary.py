"""The run summary: per stream, what was read and what became of it."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

OUTCOMES = ("created", "updated", "unchanged", "rejected")
#: A tombstone whose counterpart was deleted (deletes are opt-in; shown only when there are any).
DELETED = "deleted"
#: Reject messages kept per stream as examples for the person reading the summary.
MAX_REJECT_EXAMPLES = 5


class RunSummary:
    """Thread-safe counters per stream; ``read`` equals the sum of the outcomes at the end."""

    def __init__(self, streams: tuple[str, ...] = ("contacts", "tasks", "notes")) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {s: Counter() for s in streams}
        self.reject_examples: dict[str, list[str]] = {}
        self.rejects_by_kind: Counter[str] = Counter()
        #: Two-way conflicts per stream and winner ("source" written, "target" kept).
        self.conflicts: Counter[tuple[str, str]] = Counter()

    def read(self, stream: str, n: int = 1) -> None:
        """Count ``n`` records of ``stream`` as read."""
        with self._lock:
            self._counts.setdefault(stream, Counter())["read"] += n

    def outcome(self, stream: str, outcome: str) -> None:
        """Count one record of ``stream`` with ``outcome`` (one of :data:`OUTCOMES`)."""
        if outcome not in (*OUTCOMES, DELETED):
            raise ValueError(f"unknown outcome {outcome!r}")
        with self._lock:
            self._counts.setdefault(stream, Counter())[outcome] += 1

    def note_reject(self, stream: str, text: str, kind: str = "invalid") -> None:
        """Keep a few example messages per stream and count rejects per kind."""
        with self._lock:
            self.rejects_by_kind[kind] += 1
            examples = self.reject_examples.setdefault(stream, [])
            if len(examples) < MAX_REJECT_EXAMPLES:
                examples.append(text)

    def conflict(self, stream: str, winner: str) -> None:
        """Count a field that changed on both sides (``winner``: "source" or "target")."""
        with self._lock:
            self.conflicts[(stream, winner)] += 1

    def conflicts_by_stream(self) -> dict[str, dict[str, int]]:
        """Conflicts per stream: how often the source's value won, how often the target kept."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (stream, winner), count in sorted(self.conflicts.items()):
                out.setdefault(stream, {"source": 0, "target": 0})[winner] = count
            return out

    def as_dict(self) -> dict[str, dict[str, int]]:
        """A snapshot: per stream, ``read`` and every outcome (0 when none).

        ``deleted`` appears only in streams where something was deleted.
        """
        with self._lock:
            out = {}
            for stream, counts in self._counts.items():
                row = {key: counts.get(key, 0) for key in ("read", *OUTCOMES)}
                if counts.get(DELETED):
                    row[DELETED] = counts[DELETED]
                out[stream] = row
            return out

    def adds_up(self) -> bool:
        """Whether every stream's ``read`` equals the sum of its outcomes."""
        return all(
            c["read"] == sum(c[o] for o in OUTCOMES) + c.get(DELETED, 0)
            for c in self.as_dict().values()
        )

    def table(self, title: str = "target-contacts summary") -> str:
        """A fixed-width table for people reading the log."""
        rows = self.as_dict()
        header = f"{'stream':<10}{'read':>9}" + "".join(f"{o:>11}" for o in OUTCOMES)
        lines = [title, header]
        for stream, counts in rows.items():
            lines.append(
                f"{stream:<10}{counts['read']:>9}"
                + "".join(f"{counts[o]:>11}" for o in OUTCOMES)
                + (f"   {counts[DELETED]} deleted" if DELETED in counts else "")
            )
        for stream, won in self.conflicts_by_stream().items():
            lines.append(
                f"conflicts in {stream}: {won['source']} written from the source, "
                f"{won['target']} kept in the target"
            )
        if self.rejects_by_kind:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.rejects_by_kind.items()))
            lines.append(f"rejected by kind: {kinds}")
        return "\n".join(lines)

    def to_json(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The summary as a JSON-ready dict (counts, adds_up, reject examples) plus ``extra``."""
        out: dict[str, Any] = {"streams": self.as_dict(), "adds_up": self.adds_up()}
        if self.reject_examples:
            out["reject_examples"] = self.reject_examples
            out["rejects_by_kind"] = dict(sorted(self.rejects_by_kind.items()))
        if self.conflicts:
            out["conflicts"] = self.conflicts_by_stream()
        if extra:
            out.update(extra)
        return out
