"""What both API clients share: the HTTP session and the base of their errors.

The session: one API host's connection pool, with the environment read once.

``requests.Session.request`` costs a writing target more CPU than the call it makes: per request
it merges settings, builds cookie jars, runs hooks and, when it trusts the environment, reads the
proxy variables, ``~/.netrc`` and the CA bundle variables again. :class:`HostSession` reads the
environment once, when it is made, for the one API host it talks to (a ``.netrc`` entry is never
applied: the clients send their own ``Authorization`` header), and sends each request straight
to a pool of kept-alive connections. What the clients handle stays ``requests``' own: the answer
is a :class:`requests.Response`, and a failure raises the :class:`requests.RequestException`
that ``requests`` would raise for it (:func:`sent_nothing` tells whether the request provably
never left). Redirects are not followed and cookies are not kept: neither API uses them.

Without a proxy (the usual case) requests to the API's origin go over a lean HTTP/1.1 exchange
on the standard library's sockets (:class:`_Origin`: its own pool, the stale-connection check
urllib3 makes, TLS with the same CA bundle and host name check, chunked, gzip and deflate
answers decoded, ``http.client``'s limits on lines and header fields): a call costs less than
half the CPU of urllib3's request and answer objects, and a writing target makes one call per
record. Through a proxy, and for a URL on another origin, urllib3's pool sends
the request, as ``requests`` itself would.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import os
import re
import select
import socket
import ssl
import threading
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    DEFAULT_CA_BUNDLE_PATH,
    default_headers,
    get_encoding_from_headers,
    get_environ_proxies,
    select_proxy,
)
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    LocationValueError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    URLSchemeUnknown,
)
from urllib3.exceptions import HTTPError as _HTTPError
from urllib3.exceptions import ProxyError as _ProxyError
from urllib3.exceptions import SSLError as _SSLError

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The variables ``requests`` takes a CA bundle from, in its order.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

#: The answer encodings the standard-library path asks for and decodes.
ACCEPT_ENCODING = "gzip, deflate"

#: Request bodies as ``requests`` writes them (``json.dumps(body, allow_nan=False)``). Made once:
#: ``json.dumps`` with any option builds an encoder per call, ~5 us of a request's CPU.
_BODY_ENCODER = jsonlib.JSONEncoder(allow_nan=False)


class NotConnectedError(OSError):
    """The connection to the API could not be made: the request provably never left."""


def sent_nothing(exc: requests.RequestException) -> bool:
    """Whether a failed request provably never left: its connection could not be made."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        # urllib3's: also NameResolutionError and ConnectTimeoutError; ours: _Origin's.
        if isinstance(item, (NewConnectionError, NotConnectedError)):
            return True
        stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
        stack.extend(a for a in item.args if isinstance(a, BaseException))
    return False


class HostSession:
    """Requests to one API host over a pool of kept-alive connections.

    ``proxies`` and ``verify`` say what the environment gave when the session was made (the
    proxy for this host, after ``NO_PROXY``; the CA bundle, or True for certifi's). Thread-safe.
    """

    def __init__(self, base_url: str, *, pool_connections: int, pool_maxsize: int) -> None:
        # get_environ_proxies has already applied NO_PROXY to base_url; "no" is not a proxy.
        environ = get_environ_proxies(base_url)
        self.proxies: dict[str, str] = {s: url for s, url in environ.items() if s != "no"}
        bundle = next((os.environ[v] for v in CA_BUNDLE_VARIABLES if os.environ.get(v)), None)
        self.verify: str | bool = bundle or True
        ca = bundle or DEFAULT_CA_BUNDLE_PATH
        tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
        tls["ca_cert_dir" if Path(ca).is_dir() else "ca_certs"] = ca
        # requests' adapter builds the pools: its proxy handling (credentials in the proxy URL,
        # SOCKS) comes with them.
        adapter = HTTPAdapter(pool_connections=pool_connections, pool_maxsize=pool_maxsize)
        proxy = select_proxy(base_url, self.proxies)
        if proxy:
            self._pool: urllib3.PoolManager = adapter.proxy_manager_for(proxy, **tls)
        else:
            adapter.init_poolmanager(pool_connections, pool_maxsize, **tls)
            self._pool = adapter.poolmanager
        self._adapter = adapter
        self._headers = dict(default_headers())
        self._timeouts: dict[float | None, urllib3.Timeout] = {}
        # Without a proxy every request to the API's origin goes over the standard library.
        # (A URL it cannot take leaves this unset: the request then fails as requests would.)
        self._origin: _Origin | None = None
        if not proxy:
            parts = urlsplit(base_url)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.scheme in ("http", "https") and parts.hostname:
                self._origin = _Origin(
                    f"{parts.scheme}://{parts.netloc}",
                    parts.hostname,
                    port,
                    tls=_tls_context(ca) if parts.scheme == "https" else None,
                    maxsize=pool_maxsize,
                )

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,  # noqa: ANN401  any JSON value, as in requests
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> requests.Response:
        """Send one request and read its whole answer; failures raise as ``requests`` would."""
        if params:
            query = urlencode(_pairs(params), doseq=True)
            if query:
                url = f"{url}{'&' if '?' in url else '?'}{query}"
        sent = {**self._headers, **(headers or {})}
        body = None
        if json is not None:
            try:
                body = _BODY_ENCODER.encode(json).encode()
            except ValueError as error:
                raise requests.exceptions.InvalidJSONError(error) from error
            sent.setdefault("Content-Type", "application/json")
        if self._origin is not None and _under(url, self._origin.url):
            sent["Accept-Encoding"] = ACCEPT_ENCODING
            return self._origin.send(method, url, body, sent, timeout)
        limits = self._timeouts.get(timeout)
        if limits is None:
            limits = self._timeouts[timeout] = urllib3.Timeout(connect=timeout, read=timeout)
        try:
            answer = self._pool.urlopen(
                method,
                url,
                body=body,
                headers=sent,
                redirect=False,
                retries=False,
                timeout=limits,
                preload_content=True,
            )
        except (
            ProtocolError,
            OSError,
            ClosedPoolError,
            _ProxyError,
            _SSLError,
            _HTTPError,
        ) as error:
            raise _as_requests_error(error) from error
        fields = CaseInsensitiveDict(answer.headers)  # urllib3 has joined repeated fields
        return _response(url, answer.status, answer.reason, fields, answer.data)

    def close(self) -> None:
        """Close the pooled connections."""
        if self._origin is not None:
            self._origin.close()
        self._adapter.close()


def _response(
    url: str,
    status: int,
    reason: str | None,
    headers: CaseInsensitiveDict[str],
    content: bytes,
) -> requests.Response:
    """The answer as ``requests`` hands it over, its body read whole."""
    response = requests.Response()
    response.status_code = status
    response.headers = headers
    response.encoding = get_encoding_from_headers(response.headers)
    response.reason = reason or ""
    response.url = url
    response._content = content  # noqa: SLF001  the answer is read whole, as requests does
    return response


def _tls_context(ca: str) -> ssl.SSLContext:
    """Certificates checked against ``ca`` (a bundle file or a directory), host names too."""
    if Path(ca).is_dir():
        return ssl.create_default_context(capath=ca)
    return ssl.create_default_context(cafile=ca)


class _Connection:
    """One kept-alive HTTP/1.1 connection: its socket and the bytes read but not yet used.

    A request leaves in one write, head and body together (``http.client`` writes the head, then
    the body: on a kept-alive connection each write is a segment the server wakes up for, and the
    second one cost a writing target ~0.1 ms of CPU per call). The answer is read from the
    connection's own buffer: ``http.client`` made a file object per answer and parsed its header
    fields with the ``email`` package, ~50 us of a writing target's CPU per call.
    """

    __slots__ = ("_buffer", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        self._buffer = bytearray()

    def send(self, data: bytes) -> None:
        """Write ``data`` whole."""
        if self.sock is None:
            raise http.client.NotConnected
        self.sock.sendall(data)

    @property
    def pending(self) -> bool:
        """Whether bytes the answers did not use wait in the buffer (a confused connection)."""
        return bool(self._buffer)

    def read_head(self) -> list[str]:
        """The lines of an answer's head (status line, header fields), without their ends.

        The blank line that ends the head is read too; [] when the server closed first. Too
        long a head or line fails as ``http.client``'s limits do.
        """
        buffer = self._buffer
        while True:
            end = _head_end(buffer)
            if end >= 0:
                head = bytes(buffer[:end])
                del buffer[:end]
                break
            if len(buffer) > _MAX_HEAD:
                raise http.client.LineTooLong("header line")
            if not self._receive():
                if buffer:
                    raise http.client.RemoteDisconnected("Remote end closed in an answer's head")
                return []
        lines = head.decode("iso-8859-1").split("\n")[:-2]  # the blank line, and after it
        if any(len(line) > _MAX_LINE for line in lines):
            raise http.client.LineTooLong("header line")
        return [line.removesuffix("\r") for line in lines]

    def readline(self) -> bytes:
        """One line with its end (b"" when the server closed first); too long a line fails."""
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n", 0, _MAX_LINE + 1)
            if end >= 0:
                line = bytes(buffer[: end + 1])
                del buffer[: end + 1]
                return line
            if len(buffer) > _MAX_LINE:
                raise http.client.LineTooLong("header line")
            if not self._receive():
                line = bytes(buffer)
                buffer.clear()
                return line

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes; fewer before the server closed is an incomplete read."""
        buffer = self._buffer
        while len(buffer) < size:
            if not self._receive():
                got = bytes(buffer)
                buffer.clear()
                raise http.client.IncompleteRead(got, size - len(got))
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def read_to_end(self) -> bytes:
        """Everything until the server closes the connection."""
        while self._receive():
            pass
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def close(self) -> None:
        """Close the socket (again: no harm)."""
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def _receive(self) -> bool:
        if self.sock is None:
            raise http.client.NotConnected
        chunk = self.sock.recv(_RECEIVE_SIZE)
        self._buffer += chunk
        return bool(chunk)


#: Limits as ``http.client`` keeps them: a line's length and an answer's header fields.
_MAX_LINE = 65536
_MAX_HEAD = _MAX_LINE * 4
_MAX_FIELDS = 100
_RECEIVE_SIZE = 65536
#: Methods whose request carries a body: sent without one, they say so (Content-Length: 0).
_BODY_METHODS = frozenset(("PATCH", "POST", "PUT"))
_METHOD = re.compile(r"[A-Z][A-Z0-9_-]*")
_PATH_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a token (RFC 9110)
_STATUS_CODE = re.compile(r"[1-9][0-9][0-9]")


class _Answer(NamedTuple):
    status: int
    reason: str
    fields: CaseInsensitiveDict[str]
    content: bytes
    will_close: bool


def _request_head(
    method: str, target: str, host: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    """A request's line and header fields, as ``http.client`` writes them.

    A method, path or field that would change the request's lines raises
    :class:`requests.exceptions.InvalidURL` or :class:`requests.exceptions.InvalidHeader`.
    """
    if not _METHOD.fullmatch(method):
        raise requests.exceptions.InvalidURL(f"not a request method: {method!r}")
    if _PATH_FORBIDDEN.search(target):
        raise requests.exceptions.InvalidURL(f"URL can't contain control characters: {target!r}")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method in _BODY_METHODS:
        lines.append("Content-Length: 0")
    for name, value in headers.items():
        text = str(value)
        if not _FIELD_NAME.fullmatch(name):
            raise requests.exceptions.InvalidHeader(f"invalid header name {name!r}")
        if "\r" in text or "\n" in text:
            raise requests.exceptions.InvalidHeader(f"invalid header value for {name!r}")
        lines.append(f"{name}: {text}")
    lines += ["", ""]
    return "\r\n".join(lines).encode("latin-1")


def _read_answer(conn: _Connection, method: str) -> _Answer:
    """One whole answer: status, header fields (repeated ones joined), body, whether it closes."""
    while True:
        lines = conn.read_head()
        if not lines:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not _STATUS_CODE.fullmatch(code):
            raise http.client.BadStatusLine(lines[0])
        fields = _fields(lines[1:])
        if code != "100":  # a "100 Continue" comes before the answer itself
            break
    status = int(code)
    encoding = fields.get("Transfer-Encoding", "")
    chunked = "chunked" in encoding.lower()
    length = None if chunked else _content_length(fields)
    tokens = {t.strip().lower() for t in fields.get("Connection", "").split(",")}
    if version in ("HTTP/1.0", "HTTP/0.9"):
        will_close = "keep-alive" not in tokens and "Keep-Alive" not in fields
    else:
        will_close = "close" in tokens
    if status < 200 or status in (204, 304) or method == "HEAD":  # noqa: PLR2004  no body
        content = b""
    elif chunked:
        content = _read_chunks(conn)
    elif length is not None:
        content = conn.read(length)
    else:  # the body ends where the connection does
        content, will_close = conn.read_to_end(), True
    return _Answer(status, reason.strip(), fields, content, will_close)


def _head_end(buffer: bytearray) -> int:
    """Where the blank line that ends a head ends in ``buffer``, or -1 before it is in."""
    crlf = buffer.find(b"\n\r\n")
    lf = buffer.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf + 2
    return crlf + 3 if crlf >= 0 else -1


class _Fields(CaseInsensitiveDict[str]):
    """``requests``' case-insensitive header fields, made at once from their parsed form.

    ``CaseInsensitiveDict`` fills itself one field at a time through ``MutableMapping.update``:
    ~10 us of a writing target's CPU per answer.
    """

    def __init__(self, store: dict[str, tuple[str, str]]) -> None:
        # requests keeps lowercased name -> (name as sent, value); nothing else to set up.
        self._store = OrderedDict(store)


def _fields(lines: list[str]) -> CaseInsensitiveDict[str]:
    """An answer's header fields from its head's lines; repeated ones joined, folded unfolded."""
    if len(lines) > _MAX_FIELDS:
        raise http.client.HTTPException(f"got more than {_MAX_FIELDS} headers")
    store: dict[str, tuple[str, str]] = {}
    last: str | None = None
    for text in lines:
        if text[:1] in (" ", "\t") and last is not None:  # a folded line continues the field
            name, value = store[last]
            store[last] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if not colon:
            continue  # not a field: skipped, as http.client's parser does
        name, value = name.strip(), value.strip()
        key = name.lower()
        held = store.get(key)
        store[key] = (held[0], f"{held[1]}, {value}") if held else (name, value)
        last = key
    return _Fields(store)


def _content_length(fields: CaseInsensitiveDict[str]) -> int | None:
    value = fields.get("Content-Length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


def _read_chunks(conn: _Connection) -> bytes:
    parts: list[bytes] = []
    while True:
        size_text = conn.readline().split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(parts)) from None
        if size == 0:
            break
        parts.append(conn.read(size))
        conn.read(2)  # the chunk's line end
    while conn.readline() not in (b"\r\n", b"\n", b""):  # trailer fields, unused
        pass
    return b"".join(parts)


class _Origin:
    """Kept-alive HTTP/1.1 connections to one origin (scheme, host, port). Thread-safe.

    A connection is taken for one request and its whole answer, then given back unless the
    answer closes it; at most ``maxsize`` idle ones are kept. One that the server closed while
    it sat idle is noticed before use (it reads as ready: end of stream) and replaced, as
    urllib3 does. Failures become the ``requests`` errors urllib3's would: a connection that
    cannot be made raises :class:`requests.ConnectionError` caused by
    :class:`NotConnectedError` (or :class:`requests.ConnectTimeout`), a timeout after it was
    made :class:`requests.ReadTimeout`, anything else on the way :class:`requests.ConnectionError`.
    """

    def __init__(
        self, url: str, host: str, port: int | None, *, tls: ssl.SSLContext | None, maxsize: int
    ) -> None:
        self.url = url
        default_port = 443 if tls is not None else 80
        self._host, self._port, self._tls = host, port or default_port, tls
        name = f"[{host}]" if ":" in host else host
        self._host_field = name if self._port == default_port else f"{name}:{self._port}"
        self._maxsize = max(1, maxsize)
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> requests.Response:
        """Send one request and read its whole answer."""
        head = _request_head(method, url[len(self.url) :] or "/", self._host_field, headers, body)
        conn = self._connection(timeout)
        try:
            conn.send(head + body if body else head)
            answer = _read_answer(conn, method)
        except TimeoutError as error:
            conn.close()
            raise requests.exceptions.ReadTimeout(error) from error
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            raise requests.exceptions.ConnectionError(error) from error
        if answer.will_close:
            conn.close()
        else:
            self._give_back(conn)
        content = answer.content
        encoding = answer.fields.get("Content-Encoding")
        if content and encoding:
            content = _decoded(content, encoding)
        return _response(url, answer.status, answer.reason, answer.fields, content)

    def close(self) -> None:
        """Close the idle connections (one in use is closed when its request ends)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _connection(self, timeout: float | None) -> _Connection:
        """An idle connection still open, or a new one; connected, with ``timeout`` set."""
        conn = None
        with self._lock:
            while self._idle:
                candidate = self._idle.pop()
                if _dropped(candidate):
                    candidate.close()
                    continue
                conn = candidate
                break
        if conn is not None and conn.sock is not None:  # open: _dropped() said so
            conn.sock.settimeout(timeout)
            return conn
        try:
            sock = socket.create_connection((self._host, self._port), timeout)
        except TimeoutError as error:
            raise requests.exceptions.ConnectTimeout(error) from error
        except OSError as error:
            reason = NotConnectedError(f"cannot connect to {self.url}: {error}")
            raise requests.exceptions.ConnectionError(reason) from reason
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
        except ssl.SSLError as error:
            sock.close()
            raise requests.exceptions.SSLError(error) from error
        except TimeoutError as error:
            sock.close()
            raise requests.exceptions.ConnectTimeout(error) from error
        except OSError as error:
            sock.close()
            reason = NotConnectedError(f"cannot connect to {self.url}: {error}")
            raise requests.exceptions.ConnectionError(reason) from reason
        return _Connection(sock)

    def _give_back(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self._maxsize:
                self._idle.append(conn)
                return
        conn.close()


def _dropped(conn: _Connection) -> bool:
    """Whether an idle kept-alive connection was closed by the server (or has stray bytes)."""
    if conn.sock is None or conn.pending:
        return True
    try:
        if hasattr(select, "poll"):  # no limit on the descriptor's number, unlike select()
            poller = select.poll()
            poller.register(conn.sock, select.POLLIN)
            return bool(poller.poll(0))
        ready, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


def _decoded(content: bytes, encoding: str) -> bytes:
    """The body of an answer sent gzip- or deflate-encoded, as urllib3 decodes it."""
    kind = encoding.strip().lower()
    try:
        if kind in ("gzip", "x-gzip"):
            return zlib.decompress(content, 16 + zlib.MAX_WBITS)
        if kind == "deflate":
            try:
                return zlib.decompress(content)
            except zlib.error:
                return zlib.decompress(content, -zlib.MAX_WBITS)
    except zlib.error as error:
        raise requests.exceptions.ContentDecodingError(error) from error
    return content


def _under(url: str, origin: str) -> bool:
    """Whether ``url`` is on ``origin`` (scheme://host:port), not on a host that begins alike."""
    return url.startswith(origin) and url[len(origin) : len(origin) + 1] in ("", "/", "?")


def _pairs(params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Query pairs as ``requests`` makes them: a list value repeats its key, None is left out."""
    pairs: list[tuple[str, Any]] = []
    for key, value in params.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        pairs.extend((key, v) for v in values if v is not None)
    return pairs


#: urllib3's failures and the ``requests`` errors its adapter turns them into, first match wins.
_REQUESTS_ERRORS: tuple[tuple[type[Exception], type[requests.RequestException]], ...] = (
    (URLSchemeUnknown, requests.exceptions.InvalidSchema),
    (LocationValueError, requests.exceptions.InvalidURL),
    (_ProxyError, requests.exceptions.ProxyError),
    (_SSLError, requests.exceptions.SSLError),
    (NewConnectionError, requests.exceptions.ConnectionError),  # a ConnectTimeoutError too
    (ConnectTimeoutError, requests.exceptions.ConnectTimeout),
    (ReadTimeoutError, requests.exceptions.ReadTimeout),
)


def _as_requests_error(error: Exception) -> requests.RequestException:
    """The error ``requests``' own adapter raises for this urllib3 failure."""
    kind = next(
        (ours for theirs, ours in _REQUESTS_ERRORS if isinstance(error, theirs)),
        requests.exceptions.ConnectionError,
    )
    return kind(error)


def pooled_session(base_url: str, *, pool_connections: int, pool_maxsize: int) -> HostSession:
    """A session for ``base_url`` with the proxies and CA bundle the environment gives it now."""
    return HostSession(base_url, pool_connections=pool_connections, pool_maxsize=pool_maxsize)


class APIError(Exception):
    """A call to one of the APIs failed: the base of ``ContactsAPIError`` and ``MocoAPIError``.

    ``status`` is the HTTP status (None when no answer arrived), ``method`` and ``path`` name the
    request (the concrete path, without query string), ``messages`` the API's own messages, and
    ``record_fault`` whether the API's answer blames the one record the request was about (so
    that the record, not the run, fails). No message or attribute holds a credential.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        messages: list[str] | None = None,
        record_fault: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path
        self.messages: list[str] = list(messages or [])
        self.record_fault = record_fault

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, status={self.status!r})"
