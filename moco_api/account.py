"""Where and how to reach a MOCO account: its API root, the key's header, the key kept out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

# Shorter keys (an empty or placeholder setting) would redact ordinary words from messages.
_MIN_REDACTED_KEY_LENGTH = 4


def authorization(api_key: str) -> str:
    """The ``Authorization`` header value MOCO expects for ``api_key``."""
    return f"Token token={api_key}"


def redact_api_key(text: str, api_key: str) -> str:
    """``text`` with ``api_key`` replaced by ``<api_key>`` (a key under 4 characters stays)."""
    return text.replace(api_key, "<api_key>") if len(api_key) >= _MIN_REDACTED_KEY_LENGTH else text


def api_root(config: Mapping[str, Any]) -> str:
    """The API root for ``config``: ``base_url`` + ``/api/v1`` if set, else the subdomain's.

    ``base_url`` wins over ``subdomain``; a ``base_url`` that already ends in ``/api/v1`` is kept
    as it is, and a subdomain given as ``acme.mocoapp.com`` or with ``https://`` is reduced to
    ``acme``. Raises ``ValueError`` when neither is set (the tap's config validation reports that
    earlier, with a clearer message).
    """
    base_url = (config.get("base_url") or "").strip().rstrip("/")
    if base_url:
        return base_url if base_url.endswith("/api/v1") else base_url + "/api/v1"
    subdomain = (config.get("subdomain") or "").strip().lower()
    subdomain = subdomain.removeprefix("https://").removeprefix("http://").split("/")[0]
    subdomain = subdomain.removesuffix(".mocoapp.com")
    if subdomain:
        return f"https://{subdomain}.mocoapp.com/api/v1"
    msg = "Set either subdomain or base_url."
    raise ValueError(msg)
