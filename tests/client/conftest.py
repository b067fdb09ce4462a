"""Fixtures for the client, limiter and auth tests: sandboxes whose request logs must conform.

Every Contacts sandbox a test here starts is checked when the test ends: each request recorded in
its ``/_sandbox/requests`` log must validate against the official OpenAPI files
(``sandbox.openapi.validate_request``). The browser's consent page is not an API route and is left
out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import requests

from contacts_api.auth import StaticTokenAuth
from contacts_api.client import ContactsClient
from contacts_api.ratelimit import ContactsRateLimiter
from sandbox.openapi import validate_request

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sandbox.server import RunningSandbox

LOCATION = "sandbox-location"
PIT = "sandbox-token"
NOT_API = ("/v2/oauth/chooselocation", "/oauth/chooselocation")


def request_log(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    """The sandbox's request log."""
    return requests.get(f"{sandbox.url}/_sandbox/requests", timeout=10).json()


def spec_problems(sandbox: RunningSandbox) -> list[str]:
    """Everything in the sandbox's request log that breaks the official spec."""
    problems = []
    for entry in request_log(sandbox):
        if entry["path"] in NOT_API:
            continue
        problems.extend(
            validate_request(
                entry["method"],
                entry["path"],
                entry["headers"],
                entry.get("body"),
                query=entry.get("query"),
            )
        )
    return problems


@pytest.fixture
def contacts_sandbox_factory(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> Iterator[Callable[..., RunningSandbox]]:
    """The root factory, plus the spec check of every request each sandbox received."""
    started: list[RunningSandbox] = []

    def start(**options: Any) -> RunningSandbox:
        sandbox = contacts_sandbox_factory(**options)
        started.append(sandbox)
        return sandbox

    yield start
    problems = [p for sandbox in started for p in spec_problems(sandbox)]
    assert not problems, "requests that break the official spec:\n" + "\n".join(problems)


@pytest.fixture
def sandbox(contacts_sandbox_factory: Callable[..., RunningSandbox]) -> RunningSandbox:
    """A Contacts sandbox with a generous rate limit."""
    return contacts_sandbox_factory(rate_limit=100_000)


@pytest.fixture
def make_client() -> Iterator[Callable[..., ContactsClient]]:
    """Clients with a private limiter (so tests do not share budgets) and fast retries."""
    made: list[ContactsClient] = []

    def make(
        sandbox: RunningSandbox,
        *,
        token: str = PIT,
        location_id: str = LOCATION,
        limiter: ContactsRateLimiter | None = None,
        **kwargs: Any,
    ) -> ContactsClient:
        kwargs.setdefault("retry_base_seconds", 0.01)
        kwargs.setdefault("auth", StaticTokenAuth(token))
        client = ContactsClient(
            sandbox.url, location_id, limiter=limiter or ContactsRateLimiter(10_000, 10.0), **kwargs
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
        client.limiter.close()


def set_faults(sandbox: RunningSandbox, *faults: dict[str, Any]) -> None:
    response = requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"faults": list(faults)}, timeout=10
    )
    response.raise_for_status()


def configure(sandbox: RunningSandbox, **settings: Any) -> None:
    response = requests.post(f"{sandbox.url}/_sandbox/config", json=settings, timeout=10)
    response.raise_for_status()


def seed(sandbox: RunningSandbox, **data: Any) -> dict[str, list[str]]:
    response = requests.post(f"{sandbox.url}/_sandbox/seed", json=data, timeout=10)
    response.raise_for_status()
    return response.json()


def state(sandbox: RunningSandbox) -> dict[str, Any]:
    return requests.get(f"{sandbox.url}/_sandbox/state", timeout=10).json()
