"""A few worker threads for reads started ahead, that never hold the process up at exit.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the interpreter exits, so a run
that fails while reads are in flight would wait for their retries before it could exit.
:class:`ReadAheadPool` runs the same kind of work on daemon threads, with the same futures.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

_Work = tuple["Future[Any]", "Callable[..., Any]", tuple[Any, ...]]


class ReadAheadPool:
    """``workers`` daemon threads running submitted calls in order; see the module docstring."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``call(*args)`` on a worker; its future holds the result or the exception."""
        if self._closed:
            raise RuntimeError("the read-ahead pool is shut down")
        future: Future[Any] = Future()
        self._queue.put((future, call, args))
        return future

    def shutdown(self) -> None:
        """Cancel what has not started and let the workers end (running calls finish alone)."""
        self._closed = True
        while True:
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                break
            if work is not None:
                work[0].cancel()
        for _ in self._threads:
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            future, call, args = work
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call(*args)
            except BaseException as exc:  # noqa: BLE001  handed to whoever takes the result
                future.set_exception(exc)
            else:
                future.set_result(result)
