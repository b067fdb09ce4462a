"""Fixtures for the tap-contacts tests: a Contacts sandbox over HTTP on 127.0.0.1."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import RunningSandbox


@pytest.fixture
def sandbox(contacts_sandbox_factory: Callable[..., RunningSandbox]) -> RunningSandbox:
    """A Contacts sandbox without a practical rate limit, no data."""
    return contacts_sandbox_factory(rate_limit=100_000)
