"""The Contacts sandbox's search index: eventually consistent, with sorted views kept on writes.

The real search is served from an index that "may take a few seconds" to show a write
(reference/reverse-and-realtime.md §1.1). :class:`SearchIndex` emulates that: every write is a
pending operation that becomes visible ``lag`` seconds later on the sandbox's clock; until then a
search sees the previous version (a new document does not exist yet, a deleted one lingers).

What a caller may rely on:

- Documents are never copied here: a writer must hand in a new dict for each version and never
  change one it handed in (the store replaces records instead of editing them), so the version the
  index shows stays what it was when it was written.
- :meth:`SearchIndex.view` gives one location's documents in one order, as a list of keys sorted
  ascending; views are built on first use and updated on every applied change, so a search costs
  ``O(log n + page)`` instead of a sort per request.
- ``version(partition)`` changes whenever a visible document of that partition changes: callers
  may cache what they derived from a view (e.g. the matches of a filter) under it.
"""

from __future__ import annotations

import bisect
import heapq
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable, Iterator

Doc = dict[str, Any]
Key = tuple[Any, ...]


class SortedView:
    """One partition's documents in one order: keys (each ending with the id) sorted ascending."""

    def __init__(self, key_of_doc: Callable[[Doc], Key], docs: dict[str, Doc]) -> None:
        self.key_of_doc = key_of_doc
        self._key_of: dict[str, Key] = {doc_id: key_of_doc(doc) for doc_id, doc in docs.items()}
        self.keys: list[Key] = sorted(self._key_of.values())

    def put(self, doc_id: str, doc: Doc) -> None:
        """Place (or move) ``doc`` at the position of its key."""
        self.remove(doc_id)
        key = self.key_of_doc(doc)
        pos = bisect.bisect_left(self.keys, key)
        self.keys.insert(pos, key)
        self._key_of[doc_id] = key

    def remove(self, doc_id: str) -> None:
        """Take ``doc_id`` out of the order (nothing happens when it is not in it)."""
        key = self._key_of.pop(doc_id, None)
        if key is None:
            return
        pos = bisect.bisect_left(self.keys, key)
        del self.keys[pos]


_NO_VIEWS: dict[Hashable, SortedView] = {}


class SearchIndex:
    """Visible versions of documents per partition (a location), written ``lag`` seconds late.

    ``clock`` gives seconds (the sandbox's clock, so tests move time instead of sleeping).
    """

    def __init__(self, clock: Callable[[], float], lag: float = 0.0) -> None:
        self.clock = clock
        self.lag = lag
        self.clear()

    def clear(self) -> None:
        """Forget every document, pending write and view."""
        self._docs: dict[str, dict[str, Doc]] = {}  # partition -> id -> visible version
        self._partition_of: dict[str, str] = {}
        self._views: dict[str, dict[Hashable, SortedView]] = {}  # partition -> order -> view
        self._versions: dict[str, int] = {}
        # (visible at, sequence, id, partition, version or None for a delete)
        self._pending: list[tuple[float, int, str, str | None, Doc | None]] = []
        self._seq = 0
        self._applied: dict[str, int] = {}  # id -> sequence of the write it shows

    # --- writes -----------------------------------------------------------------------------
    def put(self, doc_id: str, partition: str, doc: Doc, *, immediate: bool = False) -> None:
        """Make ``doc`` the version of ``doc_id`` that searches see, after the lag."""
        self._write(doc_id, partition, doc, immediate=immediate)

    def delete(self, doc_id: str, *, immediate: bool = False) -> None:
        """Take ``doc_id`` out of the searches, after the lag (it lingers until then)."""
        self._write(doc_id, None, None, immediate=immediate)

    def _write(
        self, doc_id: str, partition: str | None, doc: Doc | None, *, immediate: bool
    ) -> None:
        self._seq += 1
        if immediate or self.lag <= 0:
            self._apply(self._seq, doc_id, partition, doc)
        else:
            entry = (self.clock() + self.lag, self._seq, doc_id, partition, doc)
            heapq.heappush(self._pending, entry)

    def load(self, docs: Iterable[tuple[str, str, Doc]]) -> None:
        """Make ``(id, partition, doc)`` visible at once: a bulk :meth:`put` for seeding."""
        for doc_id, partition, doc in docs:
            self._seq += 1
            self._apply(self._seq, doc_id, partition, doc)

    def catch_up(self) -> None:
        """Apply every pending write whose time has come (call before reading)."""
        now = self.clock()
        pending = self._pending
        while pending and pending[0][0] <= now:
            _, seq, doc_id, partition, doc = heapq.heappop(pending)
            self._apply(seq, doc_id, partition, doc)

    def _apply(self, seq: int, doc_id: str, partition: str | None, doc: Doc | None) -> None:
        # a write that became due after a later one (the lag was shortened) is already outdated
        if self._applied.get(doc_id, 0) > seq:
            return
        self._applied[doc_id] = seq
        old_partition = self._partition_of.get(doc_id)
        if old_partition is not None and old_partition != partition:
            del self._docs[old_partition][doc_id]
            del self._partition_of[doc_id]
            for view in self._views.get(old_partition, _NO_VIEWS).values():
                view.remove(doc_id)
            self._bump(old_partition)
        if partition is None or doc is None:
            return
        docs = self._docs.get(partition)
        if docs is None:
            docs = self._docs[partition] = {}
        docs[doc_id] = doc
        self._partition_of[doc_id] = partition
        views = self._views.get(partition)
        if views:
            for view in views.values():
                view.put(doc_id, doc)
        self._versions[partition] = self._versions.get(partition, 0) + 1

    def _bump(self, partition: str) -> None:
        self._versions[partition] = self._versions.get(partition, 0) + 1

    # --- reads ------------------------------------------------------------------------------
    def get(self, doc_id: str) -> Doc | None:
        """The visible version of ``doc_id``, if searches see it."""
        partition = self._partition_of.get(doc_id)
        return None if partition is None else self._docs[partition][doc_id]

    def count(self, partition: str) -> int:
        """How many documents of ``partition`` searches see."""
        return len(self._docs.get(partition, {}))

    def docs(self, partition: str) -> Iterator[Doc]:
        """The visible documents of ``partition``, in no particular order."""
        return iter(self._docs.get(partition, {}).values())

    def version(self, partition: str) -> int:
        """A number that changes whenever a visible document of ``partition`` changes."""
        return self._versions.get(partition, 0)

    def view(self, partition: str, order: Hashable, key_of_doc: Callable[[Doc], Key]) -> SortedView:
        """``partition``'s documents sorted by ``key_of_doc``; ``order`` names that key function."""
        views = self._views.setdefault(partition, {})
        view = views.get(order)
        if view is None:
            view = views[order] = SortedView(key_of_doc, self._docs.get(partition, {}))
        return view
