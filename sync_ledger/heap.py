"""Give the heap's free pages back to the operating system after each batch a target writes.

A target's writer threads allocate and free request bodies, answers and ledger rows all run
long. With several writers, glibc's malloc keeps what they freed as free chunks scattered among
live ones, and the process's resident size creeps up with every record although its live memory
stays flat (bench item 4: ~150 bytes per record written with 8 writers, none with one; Python's
own traced memory and SQLite's page caches do not grow; ``docs/benchmarks.md``).
``malloc_trim(0)`` hands the free pages inside the heap back to the kernel, as Dask's workers do
for the same reason. Where the C library has no ``malloc_trim`` (macOS, musl, Windows) this is a
no-op.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim`` (glibc), or None when it has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the interpreter's own C library
    except (OSError, AttributeError, TypeError):  # TypeError: Windows takes no None
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS; False where the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
