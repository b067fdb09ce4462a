"""Free heap pages go back to the OS after each batch a target writes (sync_ledger/heap.py).

Real memory, no fakes: the resident size is read from ``/proc`` (this suite runs on Linux).
"""

from __future__ import annotations

import os
import platform
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync_ledger import heap, writer
from sync_ledger.db import make_engine
from sync_ledger.ledger import IdLedger
from target_contacts.sync import ContactsSync

if TYPE_CHECKING:
    import pytest

GLIBC = platform.libc_ver()[0] == "glibc"


def resident_bytes() -> int:
    pages = Path("/proc/self/statm").read_text().split()[1]
    return int(pages) * os.sysconf("SC_PAGE_SIZE")


def test_scattered_free_memory_goes_back_to_the_os() -> None:
    # 80 MB in 2 KB blocks (past Python's small-object allocator, so malloc's), freed from
    # another thread, as a writer frees what the reader made, with every 8th block kept: the
    # kept ones pin the freed ones inside the heap, where only a trim can release them.
    blocks: list[bytes] = []

    def allocate() -> None:
        blocks.extend(os.urandom(1) * 2048 for _ in range(40_000))

    maker = threading.Thread(target=allocate)
    maker.start()
    maker.join()
    kept = blocks[::8]
    blocks.clear()
    before = resident_bytes()
    released = heap.release_free_memory()
    after = resident_bytes()
    assert len(kept) == 5_000
    if GLIBC:
        assert released
        assert before - after > 40 * 2**20, (before, after)
    else:  # no malloc_trim in this C library: a no-op that says so
        assert not released


def test_the_writer_releases_free_memory_after_each_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    class Client:
        def __init__(self) -> None:
            self.created = 0

        def create_contact(self, body: dict[str, Any]) -> dict[str, Any]:
            self.created += 1
            return {"id": f"crm-{body['email']}", **body}

    client = Client()
    monkeypatch.setattr(writer, "release_free_memory", lambda: calls.append(client.created))
    ledger = IdLedger(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"), "loc")
    sync = ContactsSync(client, ledger, location_id="loc", concurrency=4)
    for batch in range(2):
        sync.write_batch(
            "contacts",
            [{"id": f"{batch}-{i}", "email": f"p{batch}-{i}@example.com"} for i in range(30)],
        )
    sync.close()
    # Once per batch, after its last record was written.
    assert calls == [30, 60]
