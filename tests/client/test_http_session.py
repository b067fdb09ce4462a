"""The clients' session reads the environment once, when it is made, for its one API host."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contacts_api.auth import StaticTokenAuth
from contacts_api.client import ContactsClient
from moco_api.client import MocoClient
from sync_ledger.http import pooled_session

if TYPE_CHECKING:
    import pytest


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
    # Later changes of the environment (or a ~/.netrc entry) no longer reach its requests.
    assert api.trust_env is False
    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere:1")
    settings = api.merge_environment_settings(
        "https://services.leadconnectorhq.com/contacts/", {}, None, None, None
    )
    assert settings["proxies"] == {"https": "http://proxy.internal:3128"}


def test_without_proxy_variables_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    session = pooled_session("https://api.example", pool_connections=1, pool_maxsize=2)
    assert (session.proxies, session.verify) == ({}, True)


def test_both_clients_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    moco = MocoClient("https://firma.mocoapp.com/api/v1", "key")
    contacts = ContactsClient(
        "https://services.leadconnectorhq.com", "loc", StaticTokenAuth("pit-token")
    )
    for session in (moco.session, contacts.session):
        assert session.trust_env is False
        assert session.proxies.get("https") == "http://proxy.internal:3128"
