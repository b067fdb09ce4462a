"""The ids read before, kept in state, so that a later complete read can tell what was deleted.

The Contacts API lists no deleted records, so a contact missing from a complete read of the
search, or a task, note or appointment missing from its contact's list, is gone. What a caller
may rely on:

- :class:`KnownIds` keeps ids per group: the contacts stream uses one group (``""``), the child
  streams one group per contact id. :meth:`KnownIds.dump` writes them as one ASCII string (one
  line per group, ids separated by tabs, zlib, base64): about 21 characters per 20-character
  HighLevel id, close to the 15 bytes of randomness such an id holds.
- :meth:`KnownIds.load` returns None for anything :meth:`KnownIds.dump` did not write (no state
  yet, damage): nothing is known then, and no id may be treated as deleted.
- An id holding a tab or a line break cannot be kept and is left out (never reported deleted).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

_FORMAT = "z1:"
_SEPARATORS = ("\t", "\n")


def _keepable(value: str) -> bool:
    return bool(value) and not any(s in value for s in _SEPARATORS)


class KnownIds:
    """Ids per group (a contact's children, or the one group of contacts)."""

    def __init__(self, groups: Mapping[str, Iterable[str]] | None = None) -> None:
        self.groups: dict[str, frozenset[str]] = {
            group: frozenset(i for i in ids if _keepable(i))
            for group, ids in (groups or {}).items()
            if group == "" or _keepable(group)
        }

    @classmethod
    def load(cls, text: object) -> KnownIds | None:
        """The ids :meth:`dump` wrote; None for None or anything else."""
        if not isinstance(text, str) or not text.startswith(_FORMAT):
            return None
        try:
            raw = zlib.decompress(base64.b64decode(text[len(_FORMAT) :], validate=True))
            lines = raw.decode("utf-8").split("\n") if raw else []
        except (binascii.Error, ValueError, zlib.error):
            return None
        groups: dict[str, list[str]] = {}
        for line in lines:
            group, _tab, ids = line.partition("\t")
            groups[group] = ids.split("\t") if ids else []
        return cls(groups)

    def dump(self) -> str:
        """These ids as the string :meth:`load` reads."""
        lines = (
            "\t".join((group, *sorted(ids))) for group, ids in sorted(self.groups.items()) if ids
        )
        raw = "\n".join(lines).encode("utf-8")
        return _FORMAT + base64.b64encode(zlib.compress(raw, 9)).decode("ascii")

    def of(self, group: str) -> frozenset[str]:
        """The ids known in ``group`` (none when the group is unknown)."""
        return self.groups.get(group, frozenset())

    def __len__(self) -> int:
        """How many ids are known, over all groups."""
        return sum(len(ids) for ids in self.groups.values())
