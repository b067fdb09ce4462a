"""Hooks on an in-process sandbox: run a test's action at the moment a request arrives.

A hook makes "while the client is between two requests" an event instead of a race: the action
runs in the sandbox's handler thread, before (or after) the request it waits for is handled.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import Request, Response, RunningSandbox


class SandboxHook:
    """Wraps an in-process sandbox's API handling (``_handle_api``) until :meth:`uninstall`.

    Hooks may be stacked; each calls the handling it replaced. A subclass sets up its own
    attributes first and calls this ``__init__`` last: requests may arrive as soon as it returns.
    """

    def __init__(self, sandbox: RunningSandbox) -> None:
        self.app = sandbox.app
        self._original = self.app._handle_api
        self._stacked = "_handle_api" in self.app.__dict__  # another hook is installed already
        self.app._handle_api = self._handle  # type: ignore[method-assign]

    def _handle(self, request: Request) -> Response:
        return self._original(request)

    def uninstall(self) -> None:
        if self._stacked:
            self.app._handle_api = self._original  # type: ignore[method-assign]
        else:
            self.app.__dict__.pop("_handle_api", None)


class Hook(SandboxHook):
    """Run ``action(request)`` once, for the first request ``matches`` picks: ``when="after"``
    the sandbox has computed (and committed) its answer, which is sent after the action;
    ``when="before"`` the action runs first, then the request is handled."""

    def __init__(
        self,
        sandbox: RunningSandbox,
        matches: Callable[[Request], bool],
        action: Callable[[Request], None],
        *,
        when: str = "after",
    ) -> None:
        self.matches = matches
        self.action = action
        self.when = when
        self.done = threading.Event()
        self._lock = threading.Lock()
        super().__init__(sandbox)

    def _fire(self, request: Request) -> bool:
        with self._lock:
            fire = not self.done.is_set() and self.matches(request)
            if fire:
                self.done.set()
        return fire

    def _handle(self, request: Request) -> Response:
        if self.when == "before" and self._fire(request):
            self.action(request)
            return self._original(request)
        response = self._original(request)
        if self.when == "after" and self._fire(request):
            self.action(request)
        return response
