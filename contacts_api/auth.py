"""Contacts API auth: a static Private Integration Token, or OAuth 2.0 with a secure token store.

What a caller may rely on:

- :class:`StaticTokenAuth` and :class:`OAuthAuth` both satisfy :class:`AuthProvider`, the only
  thing :class:`~contacts_api.client.ContactsClient` needs.
- Tokens live in :class:`sync_ledger.tokens.TokenStore` (the ledger database), encrypted at rest
  when a key is set.
- :class:`OAuthAuth` refreshes before expiry and once after a 401. Refresh tokens are single-use
  and rotate, so a refresh happens under a cross-process lock on the token row, re-reads the row
  first (another run may have refreshed already: its token is reused without calling the token
  endpoint) and commits the rotated tokens before the new access token is handed out.
- No token, secret or code appears in a log line, an exception message or a ``repr``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import requests
from typing_extensions import override

from contacts_api.errors import (
    LOGIN_HINT,
    AuthError,
    ConfigError,
    TokenLostError,
    TransientError,
    response_messages,
)
from sync_ledger.db import DEFAULT_LEDGER_URL, make_engine
from sync_ledger.tokens import StoredToken, TokenStore, utcnow

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy import Engine

logger = logging.getLogger(__name__)

API_VERSION = "2021-07-28"
# Shorter values (an empty form field) would redact ordinary words from messages.
_MIN_SECRET_LENGTH = 4
DEFAULT_BASE_URL = "https://services.leadconnectorhq.com"
SCOPES = "contacts.readonly contacts.write"
TOKEN_PATH = "/oauth/token"  # noqa: S105  an endpoint path, not a secret
LOCATION_TOKEN_PATH = "/oauth/locationToken"  # noqa: S105  an endpoint path, not a secret


@runtime_checkable
class AuthProvider(Protocol):
    """What the client needs from auth."""

    def token(self) -> str:
        """A valid access token (refreshed first when it is about to expire)."""
        ...

    def refresh_after_401(self, rejected_token: str) -> str | None:
        """A new token after the API refused ``rejected_token``, or None when none can be had."""
        ...


class StaticTokenAuth(AuthProvider):
    """A Private Integration Token: sent as it is, never refreshed."""

    def __init__(self, token: str) -> None:
        if not token or not token.strip():
            raise ConfigError(
                "private_integration_token is empty: set the sub-account's Private "
                "Integration Token (Settings > Private Integrations)."
            )
        self._token = token.strip()

    @override
    def token(self) -> str:
        return self._token

    @override
    def refresh_after_401(self, rejected_token: str) -> str | None:
        """A static token cannot be refreshed: always None."""
        return None

    def __repr__(self) -> str:
        return "StaticTokenAuth(<private integration token>)"


def stored_token_from_response(
    data: Mapping[str, Any], *, location_id: str, previous: StoredToken | None = None
) -> StoredToken:
    """Tokens from a ``/oauth/token`` or ``/oauth/locationToken`` answer (issued now)."""
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise AuthError(
            f"The token endpoint answered without an access_token; {LOGIN_HINT}.", method="POST"
        )
    now = utcnow()
    try:
        expires_in = float(data.get("expires_in") or 86399)
    except (TypeError, ValueError):
        expires_in = 86399.0
    refresh = data.get("refresh_token")
    return StoredToken(
        location_id=location_id,
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=now + timedelta(seconds=expires_in),
        scope=data.get("scope") or (previous.scope if previous else None),
        user_type=data.get("userType") or (previous.user_type if previous else "Location"),
        company_id=data.get("companyId") or (previous.company_id if previous else None),
        user_id=data.get("userId") or (previous.user_id if previous else None),
        updated_at=now,
    )


class _GrantRefusedError(Exception):
    """Internal: the token endpoint refused the grant (400 invalid grant)."""


#: Form fields of the token endpoints whose values must never appear in a message.
_SECRET_FORM_FIELDS = ("client_secret", "refresh_token", "code")


def _secret_values(form: Mapping[str, str], headers: Mapping[str, str] | None) -> list[str]:
    values = [form[k] for k in _SECRET_FORM_FIELDS if form.get(k)]
    auth = (headers or {}).get("Authorization", "")
    if auth:
        values.append(auth.removeprefix("Bearer ").strip())
    # Longest first, so that a secret containing another is hidden whole.
    return sorted((v for v in values if len(v) >= _MIN_SECRET_LENGTH), key=len, reverse=True)


def _scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret of the request replaced (token endpoints may echo them)."""
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text


class _TokenEndpoint:
    """The form-encoded OAuth endpoints: answers as dicts, failures as typed errors."""

    def __init__(self, base_url: str, session: requests.Session | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    def post(
        self, path: str, form: Mapping[str, str], *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        url = self.base_url + path
        # A refresh that reached the server may have spent the refresh token although no answer
        # came back; the stored one is left as it was, and the next attempt finds out.
        spent = (
            "; if the next run says the refresh token is no longer valid, the token "
            f"endpoint rotated it before failing: {LOGIN_HINT} (or configure agency_token and "
            "company_id)"
            if form.get("grant_type") == "refresh_token"
            else ""
        )
        try:
            response = self.session.post(
                url,
                data=dict(form),
                timeout=self.timeout,
                headers={"Accept": "application/json", **(headers or {})},
            )
        except requests.RequestException as exc:
            raise TransientError(
                f"POST {path} failed before an answer ({type(exc).__name__}); the stored tokens "
                f"are unchanged: run again shortly{spent}.",
                method="POST",
                path=path,
            ) from None
        secrets = _secret_values(form, headers)
        messages = [_scrub(m, secrets) for m in response_messages(response)]
        text = "; ".join(messages) or _scrub(response.reason or "", secrets)
        if response.status_code == HTTPStatus.OK:
            try:
                data = response.json()
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise AuthError(
                    f"POST {path} answered 200 without a JSON object.",
                    status=200,
                    method="POST",
                    path=path,
                )
            return data
        if response.status_code == HTTPStatus.BAD_REQUEST and "invalid grant" in text.lower():
            raise _GrantRefusedError(text)
        if response.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise TransientError(
                f"POST {path} answered {response.status_code}: {text}; the stored tokens are "
                f"unchanged: run again shortly{spent}.",
                status=response.status_code,
                method="POST",
                path=path,
                messages=messages,
            )
        if response.status_code == HTTPStatus.UNAUTHORIZED and path == TOKEN_PATH:
            hint = "check client_id and client_secret (the app's credentials in the Marketplace)"
        elif response.status_code in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
            hint = "check agency_token and company_id"
        elif "not active" in text.lower():
            hint = "the sub-account is paused or suspended; the stored refresh token stays valid"
        else:
            hint = LOGIN_HINT
        raise AuthError(
            f"POST {path} answered {response.status_code}: {text}; {hint}.",
            status=response.status_code,
            method="POST",
            path=path,
            messages=messages,
        )


def exchange_code(  # noqa: PLR0913  keyword options; tests/ and contacts-admin pass them by name
    store: TokenStore,
    *,
    base_url: str,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    location_id: str | None = None,
    session: requests.Session | None = None,
    timeout: float = 30.0,
) -> StoredToken:
    """Exchange an authorization code for tokens and store them; returns what was stored.

    Raises :class:`AuthError` (nothing stored) when the code is refused, when the token is not a
    sub-account (Location) token, or when ``location_id`` is given and differs from the one granted.
    """
    endpoint = _TokenEndpoint(base_url, session, timeout)
    try:
        data = endpoint.post(
            TOKEN_PATH,
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "user_type": "Location",
            },
        )
    except _GrantRefusedError as exc:
        raise AuthError(
            f"The authorization code was refused ({exc}): run `contacts-admin login` "
            "again and finish the consent within a few minutes.",
            status=400,
            method="POST",
            path=TOKEN_PATH,
        ) from None
    if data.get("userType", "Location") != "Location":
        raise AuthError(
            "The app was authorised for an agency (Company) but the Contacts API needs "
            "a sub-account (Location) token: run `contacts-admin login` again and "
            "choose a sub-account.",
            method="POST",
            path=TOKEN_PATH,
        )
    granted = data.get("locationId")
    if not isinstance(granted, str) or not granted:
        raise AuthError(
            "The token endpoint named no locationId: run `contacts-admin login` again "
            "and choose a sub-account.",
            method="POST",
            path=TOKEN_PATH,
        )
    if location_id and granted != location_id:
        raise AuthError(
            f"The consent granted location {granted} but location_id is {location_id}: "
            "choose that sub-account on the consent page, or change location_id.",
            method="POST",
            path=TOKEN_PATH,
        )
    token = stored_token_from_response(data, location_id=granted)
    store.save(token)
    logger.info("Stored OAuth tokens for location %s (scope: %s).", granted, token.scope)
    return token


class OAuthAuth(AuthProvider):
    """OAuth 2.0 access tokens of one location, refreshed from the :class:`TokenStore`.

    Thread-safe and safe across processes sharing one store (see the module docstring). A token
    is refreshed when less than ``refresh_margin_seconds`` (at most half its lifetime) is left.
    When the refresh token is refused and ``agency_token`` and ``company_id`` are set, a location
    token is minted with ``POST /oauth/locationToken`` instead; otherwise :class:`TokenLostError`.
    """

    def __init__(  # noqa: PLR0913  keyword options; tests/ and wiring pass them by name
        self,
        store: TokenStore,
        *,
        base_url: str,
        location_id: str,
        client_id: str,
        client_secret: str,
        refresh_margin_seconds: float = 300,
        agency_token: str | None = None,
        company_id: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not client_id or not client_secret:
            raise ConfigError(
                "OAuth needs client_id and client_secret (TARGET_CONTACTS_CLIENT_ID, "
                "TARGET_CONTACTS_CLIENT_SECRET), or set private_integration_token."
            )
        self.store = store
        self.location_id = location_id
        self.client_id = client_id
        self._client_secret = client_secret
        self.refresh_margin_seconds = refresh_margin_seconds
        self._agency_token = agency_token or None
        self.company_id = company_id or None
        self._endpoint = _TokenEndpoint(base_url, session, timeout)
        self._lock = threading.Lock()
        self._cached: StoredToken | None = None

    @override
    def token(self) -> str:
        cached = self._cached
        if cached is not None and not self._expiring(cached):
            return cached.access_token
        with self._lock:
            cached = self._cached
            if cached is not None and not self._expiring(cached):
                return cached.access_token
            stored = self.store.load(self.location_id)  # another run may have refreshed already
            if stored is None:
                raise self._not_logged_in()
            if not self._expiring(stored):
                self._cached = stored
                return stored.access_token
            return self._refresh(rejected=None).access_token

    @override
    def refresh_after_401(self, rejected_token: str) -> str | None:
        with self._lock:
            return self._refresh(rejected=rejected_token).access_token

    def granted_scopes(self) -> frozenset[str] | None:
        """The scopes the stored tokens were granted; None when unknown (nothing stored)."""
        info = self.store.info(self.location_id)
        if info is None or not info.scope:
            return None
        return frozenset(info.scope.split())

    # --- internals ---------------------------------------------------------------------------
    def _expiring(self, token: StoredToken) -> bool:
        lifetime = (token.expires_at - token.updated_at).total_seconds()
        # A margin longer than the token's life would refresh on every call.
        margin = min(self.refresh_margin_seconds, max(lifetime / 2, 0.0))
        return utcnow() >= token.expires_at - timedelta(seconds=margin)

    def _refresh(self, *, rejected: str | None) -> StoredToken:
        with self.store.locked(self.location_id) as row:
            current = row.token
            if current is None:
                raise self._not_logged_in()
            reusable = not self._expiring(current) and (
                rejected is None or current.access_token != rejected
            )
            if reusable:
                logger.info(
                    "Using the tokens another run refreshed for location %s.", self.location_id
                )
                new = current
            else:
                new = self._fetch_new(current)
                row.save(new)  # committed when the block ends, before the token is used
        self._cached = new
        return new

    def _fetch_new(self, current: StoredToken) -> StoredToken:
        agency = self._agency
        if current.refresh_token:
            try:
                data = self._endpoint.post(
                    TOKEN_PATH,
                    {
                        "grant_type": "refresh_token",
                        "client_id": self.client_id,
                        "client_secret": self._client_secret,
                        "refresh_token": current.refresh_token,
                        "user_type": "Location",
                    },
                )
            except _GrantRefusedError:
                if agency is None:
                    raise self._token_lost() from None
                logger.warning(
                    "The refresh token for location %s was refused; getting a location "
                    "token with the agency token.",
                    self.location_id,
                )
                return self._location_token(current, agency)
            logger.info("Refreshed the OAuth access token for location %s.", self.location_id)
            token = stored_token_from_response(data, location_id=self.location_id, previous=current)
            if token.refresh_token is None:
                # Without a new one the old (now spent) refresh token would be kept: say so later.
                logger.warning(
                    "The token endpoint sent no new refresh token for location %s.",
                    self.location_id,
                )
            return token
        if agency is not None:
            return self._location_token(current, agency)
        raise AuthError(
            f"No refresh token is stored for location {self.location_id}: {LOGIN_HINT}.",
            method="POST",
            path=TOKEN_PATH,
        )

    @property
    def _agency(self) -> tuple[str, str] | None:
        """The agency token and company id (they replace a lost refresh token), or None."""
        if self._agency_token and self.company_id:
            return self._agency_token, self.company_id
        return None

    def _location_token(self, current: StoredToken | None, agency: tuple[str, str]) -> StoredToken:
        agency_token, company_id = agency
        try:
            data = self._endpoint.post(
                LOCATION_TOKEN_PATH,
                {"companyId": company_id, "locationId": self.location_id},
                headers={"Authorization": f"Bearer {agency_token}", "Version": API_VERSION},
            )
        except _GrantRefusedError:
            raise AuthError(
                "The agency token was refused by POST /oauth/locationToken: check "
                f"agency_token and company_id, or {LOGIN_HINT}.",
                status=400,
                method="POST",
                path=LOCATION_TOKEN_PATH,
            ) from None
        granted = data.get("locationId") or self.location_id
        if granted != self.location_id:
            raise AuthError(
                f"POST /oauth/locationToken granted location {granted}, not "
                f"{self.location_id}: check location_id and company_id.",
                method="POST",
                path=LOCATION_TOKEN_PATH,
            )
        token = stored_token_from_response(data, location_id=self.location_id, previous=current)
        if token.company_id is None:
            token = replace(token, company_id=company_id)
        logger.info("Got a location token for location %s from the agency token.", self.location_id)
        return token

    def _not_logged_in(self) -> AuthError:
        return AuthError(
            f"No OAuth tokens are stored for location {self.location_id}: "
            f"{LOGIN_HINT} (or set private_integration_token)."
        )

    def _token_lost(self) -> TokenLostError:
        return TokenLostError(
            f"The stored refresh token for location {self.location_id} is no longer valid (the "
            "token endpoint refused it: it was already used, has expired or was revoked). Run "
            "`contacts-admin login` again to authorise the app. To recover automatically next "
            "time, also configure agency_token and company_id.",
            status=400,
            method="POST",
            path=TOKEN_PATH,
        )

    def __repr__(self) -> str:
        return f"OAuthAuth(location_id={self.location_id!r}, client_id={self.client_id!r})"


PLAINTEXT_TOKENS_WARNING = (
    "OAuth tokens are stored in PLAIN TEXT in the ledger database: whoever can read it can act "
    "as the app on this location. Set token_encryption_key (make one with `contacts-admin "
    "genkey`) to encrypt them at rest"
)


def check_token_encryption(
    config: Mapping[str, Any], *, env_prefix: str = "TARGET_CONTACTS"
) -> bool:
    """Whether OAuth tokens of ``config`` would be stored in plain text (warned about in the log).

    Raises :class:`ConfigError` instead when ``require_token_encryption`` is set (the ``prod``
    environment sets it): a user opts out by setting it to false. ``env_prefix`` names the
    plugin's environment variables in the message (``TAP_CONTACTS`` for tap-contacts).
    """
    if config.get("token_encryption_key") or not config.get("client_id"):
        return False  # encrypted, or no OAuth app configured (a private integration token)
    if config.get("require_token_encryption"):
        raise ConfigError(
            "require_token_encryption is set but token_encryption_key is not: OAuth tokens "
            "would be stored in plain text. Set token_encryption_key "
            f"({env_prefix}_TOKEN_ENCRYPTION_KEY; make one with `contacts-admin genkey`), or "
            "set require_token_encryption to false to accept plain-text tokens"
        )
    logger.warning("%s.", PLAINTEXT_TOKENS_WARNING)
    return True


def auth_from_config(
    config: Mapping[str, Any],
    engine: Engine | None = None,
    *,
    session: requests.Session | None = None,
    env_prefix: str = "TARGET_CONTACTS",
) -> AuthProvider:
    """The auth provider the settings ask for.

    A Private Integration Token when ``private_integration_token`` is set, else OAuth with the
    token store in the ledger database. Raises :class:`ConfigError` naming the missing settings
    (and their environment variables, ``env_prefix`` + ``_`` + the setting in capitals).
    """
    location_id = config.get("location_id")
    if not location_id:
        raise ConfigError(
            f"location_id is not set ({env_prefix}_LOCATION_ID): the sub-account "
            "whose contacts are read or written."
        )
    pit = config.get("private_integration_token")
    if pit:
        return StaticTokenAuth(str(pit))
    if not config.get("client_id") or not config.get("client_secret"):
        raise ConfigError(
            "Set private_integration_token, or client_id and client_secret for OAuth "
            "(then run `contacts-admin login`)."
        )
    check_token_encryption(config, env_prefix=env_prefix)
    if engine is None:
        engine = make_engine(config.get("ledger_url") or DEFAULT_LEDGER_URL)
    store = TokenStore(engine, encryption_key=config.get("token_encryption_key") or None)
    return OAuthAuth(
        store,
        base_url=config.get("base_url") or DEFAULT_BASE_URL,
        location_id=str(location_id),
        client_id=str(config["client_id"]),
        client_secret=str(config["client_secret"]),
        agency_token=config.get("agency_token") or None,
        company_id=config.get("company_id") or None,
        session=session,
    )
