"""The clients' session: the environment read once for its API host; requests' answers and errors.

A small HTTP server on 127.0.0.1 stands for the API (and, where a test says so, for a proxy: a
proxy receives the absolute URL in the request line).
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
import requests

from contacts_api.auth import StaticTokenAuth
from contacts_api.client import ContactsClient
from moco_api.client import MocoClient
from sync_ledger import http as http_module
from sync_ledger.http import NotConnectedError, pooled_session, sent_nothing
from tests.tls import self_signed

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)


class Recorder(ThreadingHTTPServer):
    """Answers every request with ``answer`` after ``delay`` seconds and keeps what it received."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict[str, Any]] = []
        self.answer: tuple[int, dict[str, str], bytes] = (200, {}, b"{}")
        self.delay = 0.0
        self.close_after_answer = False  # close the connection without saying so
        self.connections = 0
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(
            {
                "method": self.command,
                "target": self.path,
                "headers": dict(self.headers),
                "body": body,
            }
        )
        if self.server.delay:
            threading.Event().wait(self.server.delay)
        status, headers, content = self.server.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
        self.close_connection = self.server.close_after_answer

    do_GET = do_POST = do_PUT = do_DELETE = _any  # noqa: N815 - names the stdlib calls

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    yield recorder
    recorder.shutdown()
    recorder.server_close()


@pytest.fixture
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_proxies_and_ca_bundle_come_from_the_environment_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/company-ca.pem")

    api = pooled_session("https://services.leadconnectorhq.com", pool_connections=1, pool_maxsize=2)
    local = pooled_session("http://127.0.0.1:8080", pool_connections=1, pool_maxsize=2)

    assert api.proxies == {"https": "http://proxy.internal:3128"}
    assert local.proxies == {}  # NO_PROXY is kept
    assert api.verify == "/etc/company-ca.pem"


@pytest.mark.usefixtures("no_proxy_variables")
def test_without_proxy_variables_nothing_is_set() -> None:
    session = pooled_session("https://api.example", pool_connections=1, pool_maxsize=2)
    assert (session.proxies, session.verify) == ({}, True)


def test_a_request_goes_through_the_proxy_the_environment_named_when_the_session_was_made(
    monkeypatch: pytest.MonkeyPatch, server: Recorder
) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    session = pooled_session("http://api.example", pool_connections=1, pool_maxsize=2)
    # Later changes of the environment no longer reach its requests.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")

    response = session.request("GET", "http://api.example/contacts/42", timeout=10)

    assert response.status_code == 200
    assert server.seen[0]["target"] == "http://api.example/contacts/42"


@pytest.mark.usefixtures("no_proxy_variables")
def test_the_request_carries_query_json_and_headers_as_requests_sends_them(
    server: Recorder,
) -> None:
    server.answer = (
        201,
        {
            "Content-Type": "application/json; charset=utf-8",
            "Link": '<http://x/?page=2>; rel="next"',
        },
        json.dumps({"contact": {"id": "c1", "name": "Łukasz"}}).encode(),
    )
    session = pooled_session(server.url, pool_connections=1, pool_maxsize=2)

    response = session.request(
        "POST",
        server.url + "/contacts/",
        params={"locationId": "loc 1", "tags": ["a", "b"], "skip": None, "limit": 10},
        json={"firstName": "Łukasz", "tags": []},
        headers={"Authorization": "Bearer t", "Version": "2021-07-28"},
        timeout=10,
    )

    seen = server.seen[0]
    assert seen["method"] == "POST"
    assert seen["target"] == "/contacts/?locationId=loc+1&tags=a&tags=b&limit=10"
    assert json.loads(seen["body"]) == {"firstName": "Łukasz", "tags": []}
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["headers"]["Authorization"] == "Bearer t"
    assert seen["headers"]["Version"] == "2021-07-28"
    assert seen["headers"]["User-Agent"].startswith("python-requests/")
    assert isinstance(response, requests.Response)
    assert (response.status_code, response.reason) == (201, "Created")
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {"contact": {"id": "c1", "name": "Łukasz"}}
    assert response.links["next"]["url"] == "http://x/?page=2"


@pytest.mark.usefixtures("no_proxy_variables")
def test_a_request_leaves_in_one_write_head_and_body_together(
    server: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each write on a kept-alive connection is a segment the API wakes up for: one per request.
    writes: list[bytes] = []
    original = http_module._Connection.send

    def send(self: http_module._Connection, data: Any) -> None:
        writes.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(http_module._Connection, "send", send)
    session = pooled_session(server.url, pool_connections=1, pool_maxsize=1)

    session.request("POST", server.url + "/contacts/", json={"firstName": "Ada"}, timeout=10)
    session.request("GET", server.url + "/contacts/c1", timeout=10)

    assert len(writes) == 2
    assert writes[0].startswith(b"POST /contacts/ HTTP/1.1\r\n")
    assert writes[0].endswith(b'\r\n\r\n{"firstName": "Ada"}')
    assert writes[1].startswith(b"GET /contacts/c1 HTTP/1.1\r\n")
    assert writes[1].endswith(b"\r\n\r\n")
    assert [json.loads(s["body"]) for s in server.seen[:1]] == [{"firstName": "Ada"}]
    assert [s["body"] for s in server.seen[1:]] == [b""]


@pytest.mark.usefixtures("no_proxy_variables")
def test_tls_trusts_the_ca_bundle_the_environment_names_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, server: Recorder, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    url = server.url.replace("http://", "https://")

    untrusting = pooled_session(url, pool_connections=1, pool_maxsize=2)
    with pytest.raises(requests.exceptions.SSLError):
        untrusting.request("GET", url + "/contacts/1", timeout=5)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    trusting = pooled_session(url, pool_connections=1, pool_maxsize=2)
    response = trusting.request("GET", url + "/contacts/1", timeout=5)

    assert response.status_code == 200
    assert [seen["target"] for seen in server.seen] == ["/contacts/1"]


@pytest.mark.usefixtures("no_proxy_variables")
def test_a_refused_connection_is_a_connection_error_that_provably_sent_nothing() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    session = pooled_session(f"http://127.0.0.1:{port}", pool_connections=1, pool_maxsize=2)

    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        session.request("GET", f"http://127.0.0.1:{port}/contacts/1", timeout=5)

    assert not isinstance(caught.value, requests.exceptions.ConnectTimeout)
    assert isinstance(caught.value.__cause__, NotConnectedError)
    assert sent_nothing(caught.value)


@pytest.mark.usefixtures("no_proxy_variables")
def test_a_slow_answer_is_a_read_timeout(server: Recorder) -> None:
    server.delay = 1.0
    session = pooled_session(server.url, pool_connections=1, pool_maxsize=2)

    with pytest.raises(requests.exceptions.ReadTimeout):
        session.request("POST", server.url + "/contacts/", json={}, timeout=0.2)


@pytest.mark.usefixtures("no_proxy_variables")
@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://api.example/x", requests.exceptions.InvalidSchema),
        ("http:///x", requests.exceptions.InvalidURL),
    ],
)
def test_a_url_it_cannot_send_to_is_named_as_requests_names_it(
    url: str, error: type[Exception]
) -> None:
    session = pooled_session("https://api.example", pool_connections=1, pool_maxsize=2)
    with pytest.raises(error):
        session.request("GET", url, timeout=5)


@pytest.mark.usefixtures("no_proxy_variables")
def test_connections_are_kept_alive_and_one_the_server_closed_while_idle_is_replaced(
    server: Recorder,
) -> None:
    session = pooled_session(server.url, pool_connections=1, pool_maxsize=2)
    for _ in range(3):
        assert session.request("GET", server.url + "/contacts/1", timeout=5).status_code == 200
    assert server.connections == 1

    server.close_after_answer = True  # closed after the next answer, no "Connection: close"
    session.request("GET", server.url + "/contacts/2", timeout=5)
    server.close_after_answer = False
    threading.Event().wait(0.2)  # the close reaches the idle connection
    response = session.request("POST", server.url + "/contacts/", json={"a": 1}, timeout=5)

    assert response.status_code == 200
    assert server.connections == 2
    assert [seen["target"] for seen in server.seen][-2:] == ["/contacts/2", "/contacts/"]


@pytest.mark.usefixtures("no_proxy_variables")
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_answer_is_decoded(server: Recorder, encoding: str) -> None:
    body = json.dumps({"contacts": [{"id": "c1"}] * 50}).encode()
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    headers = {"Content-Encoding": encoding, "Content-Type": "application/json"}
    server.answer = (200, headers, packed)
    session = pooled_session(server.url, pool_connections=1, pool_maxsize=2)

    response = session.request("GET", server.url + "/contacts/", timeout=5)

    assert server.seen[0]["headers"]["Accept-Encoding"] == "gzip, deflate"
    assert response.json() == {"contacts": [{"id": "c1"}] * 50}
    assert response.headers["content-encoding"] == encoding


def test_both_clients_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    moco = MocoClient("https://firma.mocoapp.com/api/v1", "key")
    contacts = ContactsClient(
        "https://services.leadconnectorhq.com", "loc", StaticTokenAuth("pit-token")
    )
    for session in (moco.session, contacts.session):
        assert session.proxies.get("https") == "http://proxy.internal:3128"


class RawServer:
    """Answers the requests of one connection after another with the raw bytes it is given.

    ``answers`` are sent in order, one per request received (an answer of None closes the
    connection instead; so does the last answer, after it is sent); the heads of the requests
    are kept in ``heads``.
    """

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = list(answers)
        self.heads: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                received = b""
                while self.answers:
                    while b"\r\n\r\n" not in received:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        received += chunk
                    if b"\r\n\r\n" not in received:
                        break
                    head, _, received = received.partition(b"\r\n\r\n")
                    self.heads.append(head)
                    length = next(
                        (
                            int(line.split(b":", 1)[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        0,
                    )
                    while len(received) < length:
                        received += conn.recv(65536)
                    received = received[length:]
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)
                if self.answers:
                    continue
                return

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def raw_server() -> Iterator[Any]:
    started: list[RawServer] = []

    def start(answers: list[bytes | None]) -> RawServer:
        started.append(RawServer(answers))
        return started[-1]

    yield start
    for each in started:
        each.close()


@pytest.mark.usefixtures("no_proxy_variables")
def test_answers_are_read_as_http_1_1_frames_them(raw_server: Any) -> None:
    # Chunked with an extension and a trailer; folded and repeated fields; a "100 Continue"
    # before the answer: each leaves the connection ready for the next request.
    server = raw_server(
        [
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Rate: 1\r\nx-rate: 2\r\n"
                b"X-Folded: first\r\n  second\r\n\r\n"
                b'5;ext=1\r\n{"a":\r\n3\r\n 1}\r\n0\r\nTrailer: t\r\n\r\n'
            ),
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ]
    )
    session = pooled_session(server.url, pool_connections=1, pool_maxsize=1)

    first = session.request("GET", server.url + "/contacts/1", timeout=5)
    second = session.request("POST", server.url + "/contacts/", json={"b": 2}, timeout=5)
    third = session.request("DELETE", server.url + "/contacts/1", timeout=5)

    assert first.json() == {"a": 1}
    assert first.headers["x-rate"] == "1, 2"
    assert first.headers["X-Folded"] == "first second"
    assert (second.status_code, second.reason, second.json()) == (201, "Created", {})
    assert (third.status_code, third.content) == (204, b"")
    assert server.connections == 1
    host = server.url.removeprefix("http://").encode()
    assert server.heads[1].split(b"\r\n")[:3] == [
        b"POST /contacts/ HTTP/1.1",
        b"Host: " + host,
        b"Content-Length: 8",
    ]
    assert b"Content-Length" not in server.heads[2]  # a DELETE without a body says nothing


@pytest.mark.usefixtures("no_proxy_variables")
def test_an_answer_that_ends_with_its_connection_is_read_to_the_end(raw_server: Any) -> None:
    server = raw_server([b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"x": 1}'])
    session = pooled_session(server.url, pool_connections=1, pool_maxsize=1)

    answer = session.request("GET", server.url + "/x", timeout=5)

    assert answer.json() == {"x": 1}


@pytest.mark.usefixtures("no_proxy_variables")
@pytest.mark.parametrize(
    "answer",
    [
        None,  # closed without a word
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",  # closed four-fifths short
        b"SMTP ready\r\n\r\n",  # not HTTP
        b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n",  # too many header fields
    ],
)
def test_a_broken_answer_is_a_connection_error(raw_server: Any, answer: bytes | None) -> None:
    server = raw_server([answer])
    session = pooled_session(server.url, pool_connections=1, pool_maxsize=1)

    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        session.request("GET", server.url + "/x", timeout=5)

    assert not sent_nothing(caught.value)  # the request did leave


@pytest.mark.usefixtures("no_proxy_variables")
@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/x HTTP/1.1\r\nX-Injected: 1", {}),
        ("/x", {"X-Token": "a\r\nX-Injected: 1"}),
        ("/x", {"Bad Name": "1"}),
    ],
)
def test_a_request_that_would_smuggle_a_line_is_refused_before_it_leaves(
    server: Recorder, url: str, headers: dict[str, str]
) -> None:
    session = pooled_session(server.url, pool_connections=1, pool_maxsize=1)

    with pytest.raises((requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader)):
        session.request("GET", server.url + url, headers=headers, timeout=5)

    assert server.seen == []
