"""What both API clients share: the HTTP session and the base of their errors.

The session: one API host's connection pool, with the environment read once.

``requests.Session.request`` costs a writing target more CPU than the call it makes: per request
it merges settings, builds cookie jars, runs hooks and, when it trusts the environment, reads the
proxy variables, ``~/.netrc`` and the CA bundle variables again. :class:`HostSession` reads the
environment once, when it is made, for the one API host it talks to (a ``.netrc`` entry is never
applied: the clients send their own ``Authorization`` header), and sends each request straight
to urllib3, the pool ``requests`` uses underneath. What the clients handle stays ``requests``'
own: the answer is a :class:`requests.Response`, and a failure raises the
:class:`requests.RequestException` that ``requests`` would raise for it. Redirects are not
followed and cookies are not kept: neither API uses them.
"""

from __future__ import annotations

import json as jsonlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
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
        # Without a proxy every request goes to the one pool of the API's origin: the pool
        # manager's per-request URL parsing and pool lookup are skipped. (A URL the pool
        # manager cannot take leaves this unset: the request then fails as requests would.)
        self._direct: tuple[str, urllib3.HTTPConnectionPool] | None = None  # (origin, pool)
        if not proxy:
            parts = urlsplit(base_url)
            try:
                pool = self._pool.connection_from_url(base_url)
            except (_HTTPError, ValueError):
                pass
            else:
                self._direct = (f"{parts.scheme}://{parts.netloc}", pool)

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
                body = jsonlib.dumps(json, allow_nan=False).encode()
            except ValueError as error:
                raise requests.exceptions.InvalidJSONError(error) from error
            sent.setdefault("Content-Type", "application/json")
        limits = self._timeouts.get(timeout)
        if limits is None:
            limits = self._timeouts[timeout] = urllib3.Timeout(connect=timeout, read=timeout)
        send: Any = self._pool.urlopen  # the pool manager's, or one pool's: same keywords
        target, same_host = url, {}
        if self._direct is not None and _under(url, self._direct[0]):
            origin, pool = self._direct
            send, target = pool.urlopen, url[len(origin) :] or "/"
            same_host = {"assert_same_host": False}
        try:
            answer = send(
                method,
                target,
                body=body,
                headers=sent,
                redirect=False,
                retries=False,
                timeout=limits,
                preload_content=True,
                **same_host,
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
        response = requests.Response()
        response.status_code = answer.status
        response.headers = CaseInsensitiveDict(answer.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.reason = answer.reason or ""
        response.url = url
        response._content = answer.data  # noqa: SLF001  the answer is read whole, as requests does
        return response

    def close(self) -> None:
        """Close the pooled connections."""
        self._adapter.close()


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
