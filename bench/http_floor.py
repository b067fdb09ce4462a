"""What one HTTP call costs this process in CPU, by client library: the floor under item 4.

Every record target-contacts writes is at least one call to the Contacts API, so the CPU one
call costs is the least a record written can cost. This measures it against a local sandbox
(127.0.0.1, no latency, no limits): the same small keep-alive GET, ``--calls`` times per
client, CPU of this process only (the sandbox runs in its own)::

    python -m bench.http_floor --calls 2000

Clients: the project's session (``sync_ledger.http.HostSession``: without a proxy, the standard
library's ``http.client`` with a pool of its own, under requests' answers and errors), a
``requests.Session`` that does not read the environment (what the clients used before),
``urllib3`` directly, and one bare ``http.client`` connection (the standard library).
Prints microseconds of CPU per call.
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import urllib3

from bench.harness import Sandbox, say
from sync_ledger.http import pooled_session

if TYPE_CHECKING:
    from collections.abc import Callable

_PATH = "/api/v1/contacts/people"
_PARAMS = {"term": "nobody", "page": "1", "per_page": "100"}
_HEADERS = {
    "Authorization": "Token token=sandbox-key",
    "Accept": "application/json",
    "User-Agent": "moco-contacts-sync-bench",
}


def cpu_per_call(call: Callable[[], Any], calls: int) -> float:
    """Microseconds of this process's CPU per ``call()``, after one warm-up call."""
    call()
    start = time.process_time()
    for _ in range(calls):
        call()
    return 1e6 * (time.process_time() - start) / calls


def measure(url: str, calls: int) -> dict[str, float]:
    """CPU per call of each client against the sandbox at ``url``."""
    session = pooled_session(url, pool_connections=1, pool_maxsize=1)
    plain = requests.Session()
    plain.trust_env = False
    plain.headers.update(_HEADERS)
    pool = urllib3.PoolManager(maxsize=1)
    host = urlsplit(url).netloc
    conn = http.client.HTTPConnection(host, timeout=30)
    query = "&".join(f"{k}={v}" for k, v in _PARAMS.items())

    def with_http_client() -> Any:  # noqa: ANN401  parsed JSON
        conn.request("GET", f"{_PATH}?{query}", headers=_HEADERS)
        return json.loads(conn.getresponse().read())

    try:
        return {
            "the project's session": cpu_per_call(
                lambda: session.request(
                    "GET", url + _PATH, params=_PARAMS, headers=_HEADERS, timeout=30
                ).json(),
                calls,
            ),
            "requests.Session": cpu_per_call(
                lambda: plain.get(url + _PATH, params=_PARAMS, timeout=30).json(), calls
            ),
            "urllib3": cpu_per_call(
                lambda: json.loads(
                    pool.request(
                        "GET", url + _PATH, fields=_PARAMS, headers=_HEADERS, timeout=30
                    ).data
                ),
                calls,
            ),
            "http.client": cpu_per_call(with_http_client, calls),
        }
    finally:
        session.close()
        plain.close()
        pool.clear()
        conn.close()


def main() -> None:
    """Run :func:`measure` against a fresh MOCO sandbox and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with Sandbox("moco", rate_limit=0, rate_window=1) as moco:
        results = measure(moco.url, args.calls)
    for client, micros in results.items():
        say(f"{client:34} {micros:6.0f} us CPU per call")


if __name__ == "__main__":
    main()
