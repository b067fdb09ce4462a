"""Shared fixtures: the sandboxes served over HTTP on 127.0.0.1 from a background thread, and a
controlled clock for the rate limiters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from sandbox.server import RunningSandbox, SandboxApp
from tests.timing import install_fake_clock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.timing import FakeClock


def _sandboxes(app_class: type[SandboxApp]) -> Iterator[Callable[..., RunningSandbox]]:
    """A starter of ``app_class`` sandboxes with any constructor options; stops them all after."""
    running: list[RunningSandbox] = []

    def start(**options: Any) -> RunningSandbox:
        sandbox = RunningSandbox(app_class(**options)).start()
        running.append(sandbox)
        return sandbox

    yield start
    for sandbox in running:
        sandbox.stop()


@pytest.fixture
def moco_sandbox_factory() -> Iterator[Callable[..., RunningSandbox]]:
    """Start MOCO sandboxes with any constructor options; all are stopped after the test."""
    from sandbox.moco import MocoSandbox

    yield from _sandboxes(MocoSandbox)


@pytest.fixture
def moco_sandbox(moco_sandbox_factory: Callable[..., RunningSandbox]) -> RunningSandbox:
    """A MOCO sandbox with the default key ``sandbox-key``, no data and a generous rate limit."""
    return moco_sandbox_factory(rate_limit=100_000)


@pytest.fixture
def contacts_sandbox_factory() -> Iterator[Callable[..., RunningSandbox]]:
    """Start Contacts API sandboxes with any constructor options; all are stopped after the test."""
    from sandbox.contacts import ContactsSandbox

    yield from _sandboxes(ContactsSandbox)


@pytest.fixture
def contacts_sandbox(contacts_sandbox_factory: Callable[..., RunningSandbox]) -> RunningSandbox:
    """A Contacts sandbox: location ``sandbox-location``, token ``sandbox-token``, no data."""
    return contacts_sandbox_factory(rate_limit=100_000)


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Both rate limiters run on a clock that moves only when they sleep (or the test says so)."""
    return install_fake_clock(monkeypatch)


@pytest.fixture(scope="session")
def meltano_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's meltano.yml in a scratch folder, its plugins installed from this checkout.

    One ``meltano install`` per test process for the end-to-end and the reliability tests alike
    (the two installed the same project apart before): each of their tests runs with a state id
    or a system database of its own, and a test that edits meltano.yml puts it back.
    """
    from tests.reliability.meltano_runs import install_project

    return install_project(tmp_path_factory.mktemp("meltano-project"))
