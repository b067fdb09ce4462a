"""The HTTP side: Starlette routes that verify, store and answer 202 fast.

Why Starlette on uvicorn: a receiver spends its time waiting (on the socket, the database, the
child runs), which asyncio does with one thread and no locks of ours; Starlette gives streaming
request bodies (so an oversized body is refused at the limit, not after reading it) and a
lifespan hook for the run coordinator, and uvicorn is the most used, well-kept ASGI server, with
graceful shutdown on SIGTERM. Both are small, typed (py.typed) and widely deployed; the
request parsing is h11's, not ours.

Routes and answers (bodies are small JSON, never a secret or a payload value):

- ``POST /webhooks/moco``, ``POST /webhooks/contacts``: 202 once the event is committed to the
  ledger; 400 wrong content type or malformed; 401 unsigned, forged or outside the time window;
  403 another location; 409 already received; 413 body over ``max_body_bytes`` (refused by its
  Content-Length or at the limit, never read further); 503 (MOCO) or 429 (HighLevel, which
  retries only on 429) when the ledger could not store it in ``store_timeout_seconds``; 503 on
  ``/webhooks/moco`` when no MOCO key is configured.
- ``GET /healthz``: 200 ``{"ok": true, "pending": N, "runs_in_flight": N, "lanes": {...}}``, or
  503 ``{"ok": false}`` when the ledger cannot be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from sync_ledger.db import make_engine, redact_url, sqlite_path
from sync_ledger.events import PENDING, EventStore, Lane, NewEvent
from sync_listener.coordinator import Coordinator
from sync_listener.deletes import ClaimedDeletes
from sync_listener.intake import contacts_event, moco_event
from sync_listener.runner import CommandRunner
from sync_listener.verify import (
    BAD_REQUEST,
    CONFLICT,
    TOO_LARGE,
    ContactsVerifier,
    MocoVerifier,
    Refused,
)
from sync_listener.writer import EventWriter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy import Engine
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from starlette.requests import Request

    from sync_listener.settings import ListenerSettings

log = logging.getLogger(__name__)

ACCEPTED = 202
TOO_MANY_REQUESTS = 429
UNAVAILABLE = 503
#: How often settled events past ``retention_days`` are deleted.
_PRUNE_EVERY_SECONDS = 3600.0
_JSON_TYPES = ("application/json",)


def open_ledger(url: str, store_timeout_seconds: float) -> Engine:
    """The ledger engine, tuned for the listener.

    A SQLite commit survives a power cut (``synchronous=FULL``: a 202 promises the event is kept,
    and no sender resends after one), and a locked database makes a store fail after
    ``store_timeout_seconds`` instead of 60 s.
    """
    engine = make_engine(url)  # its migrations create the webhook_events table
    if sqlite_path(url) is not None:
        busy_ms = int(store_timeout_seconds * 1000)

        @event.listens_for(engine, "connect")
        def _listener_pragmas(dbapi_connection: DBAPIConnection, _record: object) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        engine.dispose()  # connections made before the listener was added get the pragmas too
    return engine


def _refusal(error: Refused) -> JSONResponse:
    return JSONResponse({"error": error.reason}, status_code=error.status)


class Listener:
    """The routes of one listener process and what they share (verifiers, store, coordinator)."""

    def __init__(self, settings: ListenerSettings) -> None:
        self.settings = settings
        moco_tolerance = settings.moco_timestamp_tolerance_seconds
        self._moco = (
            MocoVerifier(
                settings.moco_webhook_secret,
                moco_tolerance
                if moco_tolerance is not None
                else settings.timestamp_tolerance_seconds,
            )
            if settings.moco_webhook_secret
            else None
        )
        self._contacts = ContactsVerifier(
            settings.contacts_public_key,
            settings.contacts_legacy_public_key,
            settings.timestamp_tolerance_seconds,
            location_id=settings.location_id,
        )
        self._store: EventStore | None = None
        self._writer: EventWriter | None = None
        self._coordinator: Coordinator | None = None

    def app(self) -> Starlette:
        """The ASGI application."""
        return Starlette(
            routes=[
                Route("/webhooks/moco", self.moco_webhook, methods=["POST"]),
                Route("/webhooks/contacts", self.contacts_webhook, methods=["POST"]),
                Route("/healthz", self.healthz, methods=["GET"]),
            ],
            lifespan=self.lifespan,
        )

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        """Open the ledger, give back the events of unfinished runs, resume their lanes."""
        settings = self.settings
        try:
            engine = await asyncio.to_thread(
                open_ledger, settings.ledger_url, settings.store_timeout_seconds
            )
            store = EventStore(engine)
            recovered = await asyncio.to_thread(store.recover)
            lanes = await asyncio.to_thread(store.pending_lanes)
        except SQLAlchemyError as error:
            log.error(  # noqa: TRY400  (the class and message say it; a traceback adds nothing)
                "cannot open the ledger at %s: %s", redact_url(settings.ledger_url), error
            )
            raise
        if recovered:
            log.warning("%d event(s) of runs that never finished are pending again", recovered)
        if self._moco is None:
            log.warning("moco_webhook_secret not set: /webhooks/moco answers 503")
        elif settings.moco_sync_user_id is None:
            log.warning("moco_sync_user_id not set: the sync's own MOCO writes start runs too")
        self._store = store
        writer = EventWriter(store)
        writer.start()
        self._writer = writer
        coordinator = Coordinator(
            store,
            settings,
            CommandRunner(settings.run_directory),
            covers_delete=ClaimedDeletes(engine),
        )
        self._coordinator = coordinator
        coordinator.start(lanes)
        pruner = asyncio.get_running_loop().create_task(self._prune_forever(store))
        try:
            yield
        finally:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            await writer.stop()
            await coordinator.stop()
            engine.dispose()

    async def _prune_forever(self, store: EventStore) -> None:
        while True:
            cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(
                days=self.settings.retention_days
            )
            try:
                pruned = await asyncio.to_thread(store.prune, cutoff)
            except SQLAlchemyError as error:
                log.warning("pruning old events failed: %s", type(error).__name__)
            else:
                if pruned:
                    log.info("pruned %d settled event(s) older than the retention", pruned)
            await asyncio.sleep(_PRUNE_EVERY_SECONDS)

    async def moco_webhook(self, request: Request) -> JSONResponse:
        """``POST /webhooks/moco``."""
        if self._moco is None:
            return JSONResponse({"error": "MOCO webhooks are not configured"}, UNAVAILABLE)
        verifier = self._moco
        try:
            body = await self._read_body(request)
            delivery = verifier.verify(request.headers, body, dt.datetime.now(dt.timezone.utc))
        except Refused as error:
            return self._refused("moco", request, error)
        return await self._store_event(moco_event(delivery, self.settings), request, UNAVAILABLE)

    async def contacts_webhook(self, request: Request) -> JSONResponse:
        """``POST /webhooks/contacts``."""
        try:
            body = await self._read_body(request)
            delivery = self._contacts.verify(
                request.headers, body, dt.datetime.now(dt.timezone.utc)
            )
        except Refused as error:
            return self._refused("contacts", request, error)
        new = contacts_event(delivery, self.settings)
        return await self._store_event(new, request, TOO_MANY_REQUESTS)

    async def healthz(self, _request: Request) -> JSONResponse:
        """``GET /healthz``."""
        if self._store is None or self._coordinator is None:
            return JSONResponse({"ok": False}, UNAVAILABLE)
        try:
            pending = await asyncio.to_thread(self._store.count_pending)
        except SQLAlchemyError:
            return JSONResponse({"ok": False, "error": "ledger unreachable"}, UNAVAILABLE)
        return JSONResponse(
            {
                "ok": True,
                "pending": pending,
                "runs_in_flight": self._coordinator.runs_in_flight,
                "lanes": self._coordinator.lanes(),
            }
        )

    async def _read_body(self, request: Request) -> bytes:
        """The raw body, refused (413) by its declared length or as soon as it passes the limit."""
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type not in _JSON_TYPES and not media_type.endswith("+json"):
            raise Refused(BAD_REQUEST, "Content-Type must be application/json")
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise Refused(BAD_REQUEST, "Content-Length is not a number") from None
            if length > limit:
                raise Refused(TOO_LARGE, f"body over {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(TOO_LARGE, f"body over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _store_event(self, new: NewEvent, request: Request, busy_status: int) -> JSONResponse:
        writer, coordinator = self._writer, self._coordinator
        if writer is None or coordinator is None:
            return JSONResponse({"error": "starting up"}, busy_status)
        try:
            row_id = await asyncio.wait_for(writer.add(new), self.settings.store_timeout_seconds)
        except (SQLAlchemyError, asyncio.TimeoutError) as error:
            log.error(  # noqa: TRY400  (the class says it; a traceback could show data)
                "could not store %s event %s: %s; asked the sender to retry",
                new.source,
                new.event_type,
                type(error).__name__,
            )
            headers = {"Retry-After": "60"} if busy_status == TOO_MANY_REQUESTS else None
            return JSONResponse({"error": "cannot store the event now"}, busy_status, headers)
        if row_id is None:
            return self._refused(new.source, request, Refused(CONFLICT, "already received"))
        if new.status == PENDING:
            coordinator.notify(Lane(new.direction, new.location_id))
        log.info(
            "event %d: %s %s record %s stored as %s",
            row_id,
            new.source,
            new.event_type,
            new.record_id or "-",
            new.status,
        )
        return JSONResponse({"status": new.status, "event": row_id}, ACCEPTED)

    def _refused(self, source: str, request: Request, error: Refused) -> JSONResponse:
        client = request.client.host if request.client is not None else "-"
        log.warning(
            "refused %s delivery from %s: %d %s", source, client, error.status, error.reason
        )
        return _refusal(error)
