"""``sync-listener``: bind, start, and print ``listening on http://HOST:PORT`` as the first line.

What a caller may rely on: the first line on stdout is ``listening on http://HOST:PORT`` (with the
real port when ``--port 0``), printed and flushed only once the ledger is open and the socket
accepts requests; everything else goes to stderr. Exit status 2 for bad settings, 3 when the
ledger cannot be opened; SIGTERM or SIGINT stop it gracefully (a run in flight is stopped and its
events are handled after the next start).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING

import uvicorn
from typing_extensions import override

from sync_listener import register
from sync_listener.app import Listener
from sync_listener.settings import ListenerSettings, SettingsError, load_settings

if TYPE_CHECKING:
    from collections.abc import Sequence

BAD_SETTINGS = 2
STARTUP_FAILED = 3


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints the listening line once it serves."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self._url = url

    @override
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            sys.stdout.write(f"listening on {self._url}\n")
            sys.stdout.flush()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP by name: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # every answer on a kept-alive connection waits ~40 ms for the sender's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(1024)
    sock.set_inheritable(False)
    return sock


def _url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def serve(settings: ListenerSettings) -> int:
    """Serve until stopped; the exit status."""
    try:
        sock = _bind(settings.host, settings.port)
    except OSError as error:
        logging.getLogger(__name__).error(  # noqa: TRY400
            "cannot listen on %s:%d: %s", settings.host, settings.port, error.strerror or error
        )
        return STARTUP_FAILED
    config = uvicorn.Config(
        Listener(settings).app(),
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=15,
    )
    server = _AnnouncingServer(config, _url(sock, settings.host))
    try:
        await server.serve(sockets=[sock])
    except SystemExit as stop:  # uvicorn exits this way when the lifespan startup fails
        return stop.code if isinstance(stop.code, int) else STARTUP_FAILED
    finally:
        sock.close()
    return 0 if server.started else STARTUP_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the listener with ``argv`` (default: the command line) and the environment.

    ``sync-listener register-moco-webhooks ...`` subscribes the listener to MOCO's events instead
    (:mod:`sync_listener.register`).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["register-moco-webhooks"]:
        return register.main(args[1:])
    try:
        settings = load_settings(args, os.environ)
    except SettingsError as error:
        sys.stderr.write(f"sync-listener: {error}\n")
        return BAD_SETTINGS
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(serve(settings))
