"""What both API clients share: the HTTP session and the base of their errors.

The session: a connection pool, and the environment read once.

``requests`` reads the environment on every request when a session trusts it (the proxy
variables and their ``NO_PROXY`` exceptions, ``~/.netrc``, the CA bundle variables): file
lookups and parsing that cost a writing target about a tenth of its CPU per record. The session
here reads them once, when it is made, for the one API host it talks to; a ``.netrc`` entry is
never applied, since the clients send their own ``Authorization`` header.
"""

from __future__ import annotations

import os

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

#: The variables ``requests`` takes a CA bundle from, in its order.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def pooled_session(base_url: str, *, pool_connections: int, pool_maxsize: int) -> requests.Session:
    """A session for ``base_url`` with the proxies and CA bundle the environment gives it now."""
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=0
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # get_environ_proxies has already applied NO_PROXY to base_url; its "no" entry is not a proxy.
    proxies = get_environ_proxies(base_url)
    session.proxies.update({scheme: url for scheme, url in proxies.items() if scheme != "no"})
    bundle = next((os.environ[v] for v in CA_BUNDLE_VARIABLES if os.environ.get(v)), None)
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


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
