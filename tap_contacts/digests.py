"""Content digests of child records, so that an unchanged task, note or appointment is not emitted.

Tasks, notes and appointments read per contact carry no update timestamp to bookmark on (notes
have only ``dateAdded``, per-contact tasks nothing), so the tap remembers a digest of each
record's content per record id, in the stream's state, and emits a record only when its digest
differs from the remembered one (or it has none).

What a caller may rely on:

- 16 bytes per remembered record in memory (a 64-bit hash of the id and a 64-bit hash of the
  content, in two ``array('Q')``), about 22 characters each in state (base64).
- A record counts as changed when its id is new or its content differs in any field; a changed
  record is never missed (a 64-bit content collision, odds 1 in 2**64 per change, aside). Two ids
  whose hashes collide are both treated as changed on every read: duplicates, never losses.
- :meth:`DigestMap.dump` after a complete read of every record (a full pass) keeps only what that
  read saw, so deleted records drop out; after a partial read it adds what was seen to what was
  remembered.
- State written by an unknown or damaged format is ignored (every record then counts as changed).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import sys
from array import array
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

_FORMAT = "v1:"
_DIGEST_BYTES = 8
_PAIR_BYTES = 2 * _DIGEST_BYTES


def _hash(data: bytes) -> int:
    return int.from_bytes(
        hashlib.blake2b(data, digest_size=_DIGEST_BYTES).digest(), "little", signed=False
    )


def id_digest(record_id: str) -> int:
    """The 64-bit key a record id is remembered under."""
    return _hash(record_id.encode("utf-8"))


def content_digest(record: Mapping[str, Any]) -> int:
    """A 64-bit digest of a record's content, the same for equal JSON whatever the key order."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return _hash(text.encode("utf-8"))


def _to_bytes(values: array[int]) -> bytes:
    if sys.byteorder == "big":  # pragma: no cover - state is little-endian everywhere
        values = array("Q", values)
        values.byteswap()
    return values.tobytes()


def _from_bytes(data: bytes) -> array[int]:
    values = array("Q")
    values.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover - state is little-endian everywhere
        values.byteswap()
    return values


class DigestMap:
    """Remembered content digests per record id, and what this run has seen so far."""

    def __init__(self, keys: array[int] | None = None, values: array[int] | None = None) -> None:
        # Sorted by key; values[i] belongs to keys[i].
        self._keys: array[int] = keys if keys is not None else array("Q")
        self._values: array[int] = values if values is not None else array("Q")
        self._seen_keys: array[int] = array("Q")
        self._seen_values: array[int] = array("Q")

    @classmethod
    def load(cls, text: object) -> DigestMap:
        """The map :meth:`dump` wrote; an empty one for None or anything it cannot read."""
        if not isinstance(text, str) or not text.startswith(_FORMAT):
            return cls()
        try:
            data = base64.b64decode(text[len(_FORMAT) :].encode("ascii"), validate=True)
        except (binascii.Error, ValueError):
            return cls()
        if len(data) % _PAIR_BYTES:
            return cls()
        half = len(data) // 2
        keys, values = _from_bytes(data[:half]), _from_bytes(data[half:])
        if any(keys[i] >= keys[i + 1] for i in range(len(keys) - 1)):
            return cls()  # not written by dump(): do not trust the lookups
        return cls(keys, values)

    def __len__(self) -> int:
        """How many records are remembered (not counting this run's)."""
        return len(self._keys)

    @property
    def seen(self) -> int:
        """How many records this run has checked."""
        return len(self._seen_keys)

    def changed(self, record_id: str, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` is new or differs from what was remembered; it is seen either way."""
        key, value = id_digest(record_id), content_digest(record)
        self._seen_keys.append(key)
        self._seen_values.append(value)
        pos = bisect.bisect_left(self._keys, key)
        return not (pos < len(self._keys) and self._keys[pos] == key and self._values[pos] == value)

    def dump(self, *, complete: bool) -> str:
        """The map to keep in state: this run's records, plus (unless ``complete``) the old ones.

        ``complete`` means this run read every record (a full pass): records it did not see are
        gone and are forgotten.
        """
        order = sorted(range(len(self._seen_keys)), key=self._seen_keys.__getitem__)
        seen_keys, seen_values = array("Q"), array("Q")
        for i in order:  # the same id seen twice: the later reading wins
            if seen_keys and seen_keys[-1] == self._seen_keys[i]:
                seen_values[-1] = self._seen_values[i]
            else:
                seen_keys.append(self._seen_keys[i])
                seen_values.append(self._seen_values[i])
        if complete:
            keys, values = seen_keys, seen_values
        else:
            keys, values = self._merge(seen_keys, seen_values)
        return _FORMAT + base64.b64encode(_to_bytes(keys) + _to_bytes(values)).decode("ascii")

    def _merge(self, new_keys: array[int], new_values: array[int]) -> tuple[array[int], array[int]]:
        keys, values = array("Q"), array("Q")
        i = j = 0
        old_n, new_n = len(self._keys), len(new_keys)
        while i < old_n or j < new_n:
            if j >= new_n or (i < old_n and self._keys[i] < new_keys[j]):
                keys.append(self._keys[i])
                values.append(self._values[i])
                i += 1
                continue
            if i < old_n and self._keys[i] == new_keys[j]:
                i += 1  # replaced by this run's reading
            keys.append(new_keys[j])
            values.append(new_values[j])
            j += 1
        return keys, values
