"""The HTTP machinery both sandboxes share.

A sandbox is a :class:`SandboxApp`: a list of routes plus the cross-cutting behaviour every
emulated API needs (request log, injected faults, latency, a rate-limit hook). It is served by
the standard library's threading HTTP server on 127.0.0.1 only, so tests and the demo need no
third-party web framework and never listen beyond loopback.

Control routes under ``/_sandbox/`` are common to both sandboxes:

- ``GET /_sandbox/requests``: the request log (``DELETE`` clears it).
- ``POST /_sandbox/faults``: ``{"faults": [Fault, ...]}`` replaces the injected faults
  (``DELETE`` clears them; ``GET`` lists them with what is left of each).
- ``POST /_sandbox/config``: change ``latency`` (seconds; ``latency_max`` above it makes each
  answer wait a uniformly random time in between) and app-specific knobs at run time.
- ``POST /_sandbox/seed``, ``GET /_sandbox/state``, ``POST /_sandbox/reset``: app-specific.

A fault is a dict::

    {"kind": "status" | "slow" | "reset" | "commit_then_status" | "commit_then_slow",
     "method": "POST",            # optional, default any
     "path": "^/contacts/$",      # optional regex on the path, default any
     "status": 503,               # for *status kinds (default 503)
     "body": {...},               # optional body for *status kinds
     "headers": {"Retry-After": "1"},
     "delay": 2.0,                # seconds, for *slow kinds
     "times": 1,                  # how many matching requests it hits (default 1, -1 = forever)
     "after": 0}                  # let this many matching requests through first

``status`` and ``slow`` hit before the handler runs (nothing is stored); ``commit_then_*`` run the
handler (the write is committed) and then answer the error or stall, as real APIs sometimes do.
``reset`` closes the connection without an answer, before the handler runs.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from typing_extensions import Self

JSONValue = Any


def copy_json(value: JSONValue) -> JSONValue:
    """A copy of nested dicts and lists, faster than ``copy.deepcopy`` for JSON data.

    What a handler stores or answers then never shares lists or dicts with another record.
    """
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


@dataclass
class Request:
    """One incoming request, already parsed."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)
    raw_url: str = ""
    base_url: str = ""  # scheme://host:port the client used

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> JSONValue:
        """The body parsed as JSON; raises :class:`HTTPError` 400 when it is not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HTTPError(400, {"message": f"Invalid JSON body: {exc}"}) from exc

    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded``."""
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}


@dataclass
class Response:
    """What a handler answers. ``body`` is JSON-encoded unless it is bytes."""

    status: int = 200
    body: JSONValue = None
    headers: dict[str, str] = field(default_factory=dict)


class HTTPError(Exception):
    """Raised by handlers to answer an error status with a JSON body."""

    def __init__(self, status: int, body: JSONValue, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.response = Response(status, body, headers or {})


Handler = Callable[[Request], Response]


@dataclass
class Fault:
    """One injected fault; see the module docstring for the fields."""

    kind: str
    method: str | None = None
    path: str | None = None
    status: int = 503
    body: JSONValue = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1
    after: int = 0
    seen: int = 0

    KINDS = ("status", "slow", "reset", "commit_then_status", "commit_then_slow")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """A fault from its JSON form; 422 for an unknown field or kind."""
        known = {"kind", "method", "path", "status", "body", "headers", "delay", "times", "after"}
        unknown = set(data) - known
        if unknown:
            raise HTTPError(422, {"message": f"unknown fault fields: {sorted(unknown)}"})
        if data.get("kind") not in cls.KINDS:
            raise HTTPError(422, {"message": f"fault kind must be one of {cls.KINDS}"})
        return cls(**data)

    def matches(self, request: Request) -> bool:
        """Whether ``request`` is one this fault hits (method and path regex)."""
        if self.method and self.method.upper() != request.method:
            return False
        return not (self.path and not re.search(self.path, request.path))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``GET /_sandbox/faults`` lists, with what is left of the fault."""
        return {
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "delay": self.delay,
            "times": self.times,
            "after": self.after,
            "seen": self.seen,
        }


class _ConnectionResetError(Exception):
    """Internal: drop the connection without answering."""


class SandboxApp:
    """Routes plus request log, faults, latency and a rate-limit hook.

    Subclasses register routes in ``__init__`` with :meth:`add_route` and override
    :meth:`check_rate_limit`, :meth:`rate_limit_headers`, :meth:`seed`, :meth:`state`,
    :meth:`reset` and :meth:`configure` as they need.
    """

    name = "sandbox"

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        # With latency_max above latency, each answer waits uniform(latency, latency_max).
        self.latency_max: float | None = None
        self.lock = threading.RLock()  # guards the app's data; handlers run under it
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._faults: list[Fault] = []
        self._fault_lock = threading.Lock()
        self.log_bodies = True
        self.add_route("GET", "/_sandbox/requests", self._get_requests)
        self.add_route("DELETE", "/_sandbox/requests", self._clear_requests)
        self.add_route("GET", "/_sandbox/faults", self._get_faults)
        self.add_route("POST", "/_sandbox/faults", self._set_faults)
        self.add_route("DELETE", "/_sandbox/faults", self._clear_faults)
        self.add_route("POST", "/_sandbox/config", self._configure)
        self.add_route("POST", "/_sandbox/seed", lambda r: Response(200, self.seed(r.json() or {})))
        self.add_route("GET", "/_sandbox/state", lambda _: Response(200, self.state()))
        self.add_route("POST", "/_sandbox/reset", self._reset)

    # --- routing -------------------------------------------------------------------------
    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` and a path pattern with ``{name}`` parameters."""
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$"
        self._routes.append((method.upper(), re.compile(regex), handler))

    def _match(self, request: Request) -> Handler:
        path_matched = False
        for method, regex, handler in self._routes:
            m = regex.match(request.path)
            if not m:
                continue
            path_matched = True
            if method == request.method:
                request.path_params = m.groupdict()
                return handler
        if path_matched:
            raise HTTPError(405, self.error_body(405, "Method Not Allowed"))
        raise HTTPError(404, self.error_body(404, f"Cannot {request.method} {request.path}"))

    # --- hooks for subclasses --------------------------------------------------------------
    def error_body(self, status: int, message: str) -> JSONValue:  # noqa: ARG002 - overrides use it
        """The API's usual error envelope for ``status`` with ``message``."""
        return {"message": message}

    def check_rate_limit(self, request: Request) -> Response | None:  # noqa: ARG002 - overrides use it
        """Count the request; return a 429 response when it is over the limit."""
        return None

    def rate_limit_headers(self, request: Request) -> dict[str, str]:  # noqa: ARG002 - overrides use it
        """Headers added to every API answer (after counting)."""
        return {}

    def seed(self, data: dict[str, Any]) -> JSONValue:  # noqa: ARG002 - overrides use it
        """Load ``data`` as ``POST /_sandbox/seed`` does; answers what was loaded."""
        raise HTTPError(404, {"message": "seeding is not supported"})

    def state(self) -> JSONValue:
        """Everything stored, as ``GET /_sandbox/state`` answers it."""
        return {}

    def reset(self) -> None:
        """Forget all data (not the configuration)."""

    def configure(self, settings: dict[str, Any]) -> None:
        """Apply app-specific settings from ``POST /_sandbox/config``."""
        unknown = set(settings)
        if unknown:
            raise HTTPError(422, {"message": f"unknown settings: {sorted(unknown)}"})

    def log_entry_extra(self, request: Request) -> dict[str, Any]:  # noqa: ARG002 - overrides use it
        """Extra fields for the request log (e.g. the location a token belongs to)."""
        return {}

    def close(self) -> None:
        """Stop background work (e.g. webhook delivery) when the server stops serving."""

    # --- control routes --------------------------------------------------------------------
    def _get_requests(self, request: Request) -> Response:
        with self._log_lock:
            entries = list(self._log)
        since = request.arg("since")
        if since is not None:
            entries = entries[int(since) :]
        return Response(200, entries)

    def _clear_requests(self, _request: Request) -> Response:
        with self._log_lock:
            self._log.clear()
        return Response(200, {"cleared": True})

    def _get_faults(self, _request: Request) -> Response:
        with self._fault_lock:
            return Response(200, {"faults": [f.to_dict() for f in self._faults]})

    def _set_faults(self, request: Request) -> Response:
        body = request.json() or {}
        items = body.get("faults", []) if isinstance(body, dict) else body
        faults = [Fault.from_dict(item) for item in items]
        with self._fault_lock:
            self._faults = faults
        return Response(200, {"faults": [f.to_dict() for f in faults]})

    def _clear_faults(self, _request: Request) -> Response:
        with self._fault_lock:
            self._faults = []
        return Response(200, {"faults": []})

    def _configure(self, request: Request) -> Response:
        settings = dict(request.json() or {})
        if "latency" in settings:
            self.latency = float(settings.pop("latency"))
            self.latency_max = None
        if "latency_max" in settings:
            self.latency_max = float(settings.pop("latency_max"))
        if "log_bodies" in settings:
            self.log_bodies = bool(settings.pop("log_bodies"))
        with self.lock:
            self.configure(settings)
        return Response(200, {"ok": True})

    def _reset(self, _request: Request) -> Response:
        with self.lock:
            self.reset()
        with self._log_lock:
            self._log.clear()
        with self._fault_lock:
            self._faults = []
        return Response(200, {"ok": True})

    # --- dispatch --------------------------------------------------------------------------
    def _take_fault(self, request: Request) -> Fault | None:
        with self._fault_lock:
            for fault in self._faults:
                if fault.times == 0 or not fault.matches(request):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                if fault.times > 0:
                    fault.times -= 1
                return fault
        return None

    def handle(self, request: Request) -> Response:
        """Answer one request: control routes directly, API routes with all the behaviours."""
        if request.path.startswith("/_sandbox/"):
            try:
                return self._match(request)(request)
            except HTTPError as exc:
                return exc.response
        started = time.monotonic()
        response = self._handle_api(request)
        entry = {
            "time": time.time(),
            "duration": round(time.monotonic() - started, 4),
            "method": request.method,
            "path": request.path,
            "query": {k: v if len(v) > 1 else v[0] for k, v in request.query.items()},
            "headers": _redact_headers(request.headers),
            "status": response.status,
        }
        if self.log_bodies:
            entry["body"] = _loggable_body(request)
        entry.update(self.log_entry_extra(request))
        with self._log_lock:
            self._log.append(entry)
        return response

    def _handle_api(self, request: Request) -> Response:
        delay = self.latency
        if self.latency_max is not None and self.latency_max > delay:
            delay = random.uniform(delay, self.latency_max)  # noqa: S311 - jitter, not security
        if delay > 0:
            time.sleep(delay)
        limited = self.check_rate_limit(request)
        if limited is not None:
            return limited
        extra_headers = self.rate_limit_headers(request)
        fault = self._take_fault(request)
        if fault and fault.kind == "reset":
            raise _ConnectionResetError
        if fault and fault.kind == "slow":
            time.sleep(fault.delay)
            fault = None  # then answer normally
        if fault and fault.kind == "status":
            return self._fault_response(fault, extra_headers)
        try:
            handler = self._match(request)
            with self.lock:
                response = handler(request)
        except HTTPError as exc:
            response = exc.response
        if fault and fault.kind == "commit_then_status":
            return self._fault_response(fault, extra_headers)
        if fault and fault.kind == "commit_then_slow":
            time.sleep(fault.delay)
        response.headers = {**extra_headers, **response.headers}
        return response

    def _fault_response(self, fault: Fault, extra_headers: dict[str, str]) -> Response:
        body = (
            fault.body
            if fault.body is not None
            else self.error_body(fault.status, "Injected fault")
        )
        return Response(fault.status, body, {**extra_headers, **fault.headers})


def _redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """Keep header names and non-secret values; secrets are reduced to their scheme."""
    out = {}
    for name, value in headers.items():
        if name in ("authorization", "proxy-authorization"):
            # Keep only a scheme word ("Bearer", "Token"); a bare credential is redacted whole.
            scheme, sep, _rest = (value or "").partition(" ")
            out[name] = f"{scheme} <redacted>" if sep and scheme else "<redacted>"
        else:
            out[name] = value
    return out


_SECRET_FORM_FIELDS = {"client_secret", "refresh_token", "code", "password", "access_token"}


def _loggable_body(request: Request) -> JSONValue:
    if not request.body:
        return None
    ctype = request.headers.get("content-type", "")
    if "x-www-form-urlencoded" in ctype:
        return {
            k: ("<redacted>" if k in _SECRET_FORM_FIELDS else v) for k, v in request.form().items()
        }
    try:
        return json.loads(request.body)
    except ValueError:
        return request.body.decode("utf-8", "replace")[:2000]


class _Handler(BaseHTTPRequestHandler):
    app: SandboxApp  # set on the subclass made by make_server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm and the client's delayed
    # ACK that costs ~40 ms per answer on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib names it
        """Quiet: the request log lives in /_sandbox/requests."""

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw_url=self.path,
            base_url=f"http://{host}",
        )
        try:
            response = self.app.handle(request)
        except _ConnectionResetError:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            return
        except Exception as exc:  # noqa: BLE001 - any bug in a handler must still get an answer
            sys.stderr.write(f"sandbox {self.app.name}: handler error: {exc!r}\n")
            response = Response(500, self.app.error_body(500, "Internal Server Error"))
        try:
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its timeout during a slow fault): nothing left to tell it.
            self.close_connection = True

    def _send(self, response: Response) -> None:
        if isinstance(response.body, bytes):
            payload = response.body
            ctype = response.headers.get("Content-Type", "application/octet-stream")
        elif response.body is None and response.status in (204, 302, 303):
            payload = b""
            ctype = None
        else:
            payload = json.dumps(response.body, ensure_ascii=False).encode("utf-8")
            ctype = "application/json; charset=utf-8"
        self.send_response(response.status)
        headers = dict(response.headers)
        if ctype and "Content-Type" not in headers:
            headers["Content-Type"] = ctype
        headers["Content-Length"] = str(len(payload))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch  # noqa: N815 - names the stdlib calls


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def make_server(app: SandboxApp, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A server for ``app`` bound to loopback (any other host is refused)."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("sandboxes listen on loopback only")
    handler = type("Handler", (_Handler,), {"app": app})
    return _Server((host, port), handler)


class RunningSandbox:
    """A sandbox served from a background thread; use as a context manager."""

    def __init__(self, app: SandboxApp, port: int = 0) -> None:
        self.app = app
        self.server = make_server(app, port)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # A short poll interval makes stopping quick, which adds up over a test suite.
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True, name=f"sandbox-{app.name}"
        )

    def start(self) -> Self:
        """Serve from the background thread; returns the sandbox for chaining."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.server.shutdown()
        self.server.server_close()
        self.app.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(app: SandboxApp, port: int) -> None:
    """Serve ``app`` in the foreground; prints the URL (port 0 picks a free one)."""
    server = make_server(app, port)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    sys.stdout.write(f"{app.name} sandbox listening on {url}\n")  # the contract: URL first
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.close()


UNLIMITED = 1_000_000_000  # what a window with no limit reports as its size and remaining count


class SlidingWindow:
    """Counts hits per key over a sliding window: the rule both APIs' limits follow here.

    ``hit`` records one request and says whether it was within ``limit`` per ``window`` seconds;
    a refused hit is not counted (the real services count only served requests). ``clock`` gives
    the current time in seconds (default :func:`time.monotonic`; tests pass one they control).
    """

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> list[float]:
        hits = self._hits.setdefault(key, [])
        cutoff = now - self.window
        drop = 0
        while drop < len(hits) and hits[drop] <= cutoff:
            drop += 1
        if drop:
            del hits[:drop]
        return hits

    def hit(self, key: str) -> tuple[bool, int, float]:
        """Count one request; returns (allowed, remaining, seconds until a slot frees)."""
        now = self.clock()
        with self._lock:
            hits = self._trim(key, now)
            if self.limit <= 0:  # no limit: say so with a remaining count no client waits for
                return True, UNLIMITED, 0.0
            if len(hits) >= self.limit:
                return False, 0, max(0.0, hits[0] + self.window - now)
            hits.append(now)
            reset = hits[0] + self.window - now
            return True, self.limit - len(hits), reset

    def reset(self) -> None:
        """Forget every counted hit."""
        with self._lock:
            self._hits.clear()
