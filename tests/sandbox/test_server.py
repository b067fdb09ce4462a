"""The shared sandbox machinery: routing, request log, faults, latency, loopback only."""

from __future__ import annotations

import pytest
import requests

from sandbox.server import Request, Response, RunningSandbox, SandboxApp, SlidingWindow, make_server


class EchoApp(SandboxApp):
    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.items: list[dict] = []
        self.add_route("GET", "/items/{item_id}", self.get_item)
        self.add_route("POST", "/items", self.create_item)

    def get_item(self, request: Request) -> Response:
        return Response(200, {"id": request.path_params["item_id"]})

    def create_item(self, request: Request) -> Response:
        self.items.append(request.json())
        return Response(201, {"n": len(self.items)})

    def state(self) -> dict:
        return {"items": self.items}


@pytest.fixture
def echo():
    with RunningSandbox(EchoApp()) as sandbox:
        yield sandbox


def test_routes_path_params_and_404_405(echo):
    assert requests.get(f"{echo.url}/items/abc", timeout=5).json() == {"id": "abc"}
    assert requests.get(f"{echo.url}/nothing", timeout=5).status_code == 404
    assert requests.delete(f"{echo.url}/items", timeout=5).status_code == 405


def test_request_log_redacts_authorization(echo):
    requests.post(
        f"{echo.url}/items",
        json={"a": 1},
        timeout=5,
        headers={"Authorization": "Bearer very-secret"},
    )
    log = requests.get(f"{echo.url}/_sandbox/requests", timeout=5).json()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [("POST", "/items", 201)]
    assert log[0]["headers"]["authorization"] == "Bearer <redacted>"
    assert "very-secret" not in str(log)
    assert log[0]["body"] == {"a": 1}


def test_status_fault_hits_before_the_handler_and_runs_out(echo):
    requests.post(
        f"{echo.url}/_sandbox/faults",
        timeout=5,
        json={
            "faults": [
                {"kind": "status", "method": "POST", "path": "^/items$", "status": 503, "times": 2}
            ]
        },
    )
    codes = [requests.post(f"{echo.url}/items", json={}, timeout=5).status_code for _ in range(3)]
    assert codes == [503, 503, 201]
    assert len(requests.get(f"{echo.url}/_sandbox/state", timeout=5).json()["items"]) == 1


def test_commit_then_status_fault_stores_the_write(echo):
    requests.post(
        f"{echo.url}/_sandbox/faults",
        timeout=5,
        json={"faults": [{"kind": "commit_then_status", "path": "^/items$", "status": 502}]},
    )
    assert requests.post(f"{echo.url}/items", json={"x": 1}, timeout=5).status_code == 502
    assert requests.get(f"{echo.url}/_sandbox/state", timeout=5).json()["items"] == [{"x": 1}]


def test_after_lets_requests_through_first(echo):
    requests.post(
        f"{echo.url}/_sandbox/faults",
        timeout=5,
        json={"faults": [{"kind": "status", "status": 500, "after": 2}]},
    )
    codes = [requests.get(f"{echo.url}/items/1", timeout=5).status_code for _ in range(4)]
    assert codes == [200, 200, 500, 200]


def test_reset_fault_drops_the_connection(echo):
    requests.post(f"{echo.url}/_sandbox/faults", timeout=5, json={"faults": [{"kind": "reset"}]})
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{echo.url}/items/1", timeout=5)
    assert requests.get(f"{echo.url}/items/1", timeout=5).status_code == 200


def test_slow_fault_trips_a_client_timeout(echo):
    requests.post(
        f"{echo.url}/_sandbox/faults", timeout=5, json={"faults": [{"kind": "slow", "delay": 1.0}]}
    )
    with pytest.raises(requests.Timeout):
        requests.get(f"{echo.url}/items/1", timeout=0.3)


def test_unknown_fault_kind_is_refused(echo):
    r = requests.post(f"{echo.url}/_sandbox/faults", timeout=5, json={"faults": [{"kind": "boom"}]})
    assert r.status_code == 422


def test_servers_bind_loopback_only():
    with pytest.raises(ValueError, match="loopback only"):
        make_server(EchoApp(), 0, host="0.0.0.0")  # noqa: S104 - the test: it is refused


def test_sliding_window_counts_only_served_hits():
    window = SlidingWindow(limit=3, window=60)
    results = [window.hit("k")[0] for _ in range(5)]
    assert results == [True, True, True, False, False]
    assert window.hit("other")[0] is True


def test_bare_credential_without_scheme_is_redacted_whole(echo):
    requests.get(f"{echo.url}/items/1", headers={"Authorization": "bare-secret-key"}, timeout=5)
    log = requests.get(f"{echo.url}/_sandbox/requests", timeout=5).json()
    assert log[-1]["headers"]["authorization"] == "<redacted>"
