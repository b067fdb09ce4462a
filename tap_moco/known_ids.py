"""The ids a stream has read, kept in its state compactly, so that a later read can tell deletes.

MOCO deletes hard and keeps no tombstones (reference/moco-api.md §8): a record that was read
before and is missing from a complete read of its list is gone. What a caller may rely on:

- :func:`encode_ids` writes a set of non-negative integer ids as one ASCII string: the sorted ids
  as deltas (LEB128 varints), zlib-compressed, base64. Ids close together cost about a byte
  each; 100,000 ids spread over MOCO's nine-digit range stay under 400 kB (tested).
- :func:`decode_ids` reads it back as a sorted ``array('q')``, or returns None for anything
  :func:`encode_ids` did not write (no state yet, another format, damage). None means "nothing is
  known": the caller must then not treat any id as deleted.
- :func:`sorted_ids` and :func:`missing_from` sort and compare id lists without Python sets:
  a set of 100,000 ids costs about 8 MB, an ``array('q')`` 0.8 MB, and the tap's memory should
  not grow with the account (bench item 4).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import zlib
from array import array
from itertools import islice
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

_FORMAT = "d1:"
_SEVEN_BITS = 0x7F
_MORE = 0x80
#: Ids sorted at a time by :func:`sorted_ids` (as a Python list: about 36 bytes each).
RUN_LENGTH = 8192


def sorted_ids(ids: Iterable[int]) -> Iterator[int]:
    """``ids`` in ascending order, each once.

    Sorts runs of :data:`RUN_LENGTH` into compact arrays and merges them, so that no more than
    one run is held as Python integers at a time.
    """
    source = iter(ids)
    runs: list[array[int]] = []
    while run := sorted(islice(source, RUN_LENGTH)):
        runs.append(array("q", run))
    previous: int | None = None
    for value in heapq.merge(*runs):
        if value != previous:
            previous = value
            yield value


def missing_from(known: Iterable[int], seen: Iterable[int]) -> array[int]:
    """The ids of ``known`` that ``seen`` lacks, ascending; both must be ascending."""
    gone: array[int] = array("q")
    others = iter(seen)
    other = next(others, None)
    for value in known:
        while other is not None and other < value:
            other = next(others, None)
        if other != value:
            gone.append(value)
    return gone


def encode_ids(ids: Iterable[int]) -> str:
    """``ids`` (non-negative; duplicates are kept once) as the string :func:`decode_ids` reads."""
    out = bytearray()
    previous = 0
    for value in sorted_ids(ids):
        if value < 0:
            raise ValueError(f"ids must not be negative, got {value}")
        delta = value - previous
        previous = value
        while delta > _SEVEN_BITS:
            out.append((delta & _SEVEN_BITS) | _MORE)
            delta >>= 7
        out.append(delta)
    return _FORMAT + base64.b64encode(zlib.compress(bytes(out), 9)).decode("ascii")


def decode_ids(text: object) -> array[int] | None:
    """The sorted ids :func:`encode_ids` wrote; None for None or anything else."""
    if not isinstance(text, str) or not text.startswith(_FORMAT):
        return None
    try:
        data = zlib.decompress(
            base64.b64decode(text[len(_FORMAT) :].encode("ascii"), validate=True)
        )
    except (binascii.Error, ValueError, zlib.error):
        return None
    ids: array[int] = array("q")
    value = delta = shift = 0
    for byte in data:
        delta |= (byte & _SEVEN_BITS) << shift
        if byte & _MORE:
            shift += 7
            continue
        value += delta
        ids.append(value)
        delta = shift = 0
    if shift:  # cut off inside a number
        return None
    return ids
