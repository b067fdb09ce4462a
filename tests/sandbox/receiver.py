"""A tiny webhook receiver on 127.0.0.1 for the sandboxes' delivery tests.

It records every POST (path, headers, the exact raw body, arrival time) and answers the statuses
a test scripts, one per request (the last one repeats). ``hold()`` makes it keep requests
waiting until ``release()``: "the API answered while the receiver had not" becomes an event,
not a race.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from typing_extensions import Self

from tests.timing import wait_for


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, statuses: tuple[int, ...] = (200,), delay: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.delay = delay
        self.received: list[Received] = []
        self.waiting = 0  # requests being held right now
        self._lock = threading.Lock()
        self._gate = threading.Event()
        self._gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver._arrive(self.path, dict(self.headers), body)
                # A sender that timed out has hung up already: nothing left to tell it.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def _arrive(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            self.received.append(Received(path, headers, body, time.monotonic()))
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            self.waiting += 1
        self._gate.wait(30)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.waiting -= 1
        return status

    def hold(self) -> None:
        """Keep requests from now on waiting for :meth:`release`."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """At least ``count`` requests received (fails the test after ``timeout`` s)."""
        assert wait_for(lambda: len(self.received) >= count, timeout), (
            f"{len(self.received)} of {count} deliveries arrived"
        )
        return list(self.received)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
