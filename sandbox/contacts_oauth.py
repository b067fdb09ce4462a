"""OAuth 2.0 and tokens of the Contacts API sandbox: consent, code exchange, rotating refresh.

Routes (registered on a :class:`~sandbox.server.SandboxApp` by :meth:`OAuthServer.register`):

- ``GET /v2/oauth/chooselocation?response_type=code&client_id=..&redirect_uri=..&scope=..&state=..``
  (also ``/oauth/chooselocation``, the pre-2026 path the official SDK still builds). Consent is
  approved at once: 302 to ``redirect_uri?code=<code>&state=<state>``. Sandbox extension: an
  optional ``locationId`` picks which of the sandbox's locations is approved (default: the main
  one).
- ``POST /oauth/token`` (form): ``grant_type=authorization_code`` with ``code``, or
  ``grant_type=refresh_token`` with ``refresh_token``; ``client_id`` and ``client_secret`` always.
  Answers the spec's ``GetAccessCodeSuccessfulResponseDto``. Codes are single-use; refresh tokens
  are single-use and rotate (reuse: 400 ``Invalid grant: refresh token is invalid``).
- ``POST /oauth/locationToken`` (form ``companyId``, ``locationId``; ``Authorization: Bearer
  <agency token>``; ``Version`` header): a location access token.

Access tokens expire ``access_token_ttl`` seconds after issue on the real clock. None of these
routes counts against a location's rate limit.
"""

from __future__ import annotations

import random
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from sandbox import openapi
from sandbox.server import HTTPError, Request, Response, SandboxApp

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

DEFAULT_SCOPE = "contacts.readonly contacts.write"
API_VERSION = "2021-07-28"
CODE_TTL = 600.0  # seconds an authorization code stays usable; the real lifetime is UNCONFIRMED
SANDBOX_USER_ID = "sandboxUser000000001"  # the "user who installed the app" in every token answer
# The installed app and its version, as /oauth/locationToken names them (24-hex ids like the spec's)
SANDBOX_APP_ID = "5a4db0c0ffee5a4db0c0ffee"
SANDBOX_VERSION_ID = "5a4db0c0ffee5a4db0c0ff01"

_ALPHABET = string.ascii_letters + string.digits
_RANDOM = random.SystemRandom()


def firebase_id() -> str:
    """A 20-character id of letters and digits, the shape of the Contacts API's ids."""
    return "".join(_RANDOM.choices(_ALPHABET, k=20))


def error(status: int, message: str | list[str], **extra: Any) -> dict[str, Any]:
    """The Contacts API's NestJS error envelope; 401 and 422 carry ``error`` as the API does."""
    body: dict[str, Any] = {"statusCode": status, "message": message}
    reason = {
        401: "Unauthorized",
        404: "Not Found",
        405: "Method Not Allowed",
        422: "Unprocessable Entity",
        500: "Internal Server Error",
    }.get(status)
    if reason:
        body["error"] = reason
    body.update(extra)
    return body


def check_version(request: Request) -> None:
    """401 unless ``Version: 2021-07-28`` is sent (texts observed on the real API)."""
    version = request.headers.get("version")
    if version is None:
        raise HTTPError(401, error(401, "version header was not found."))
    # the real API also took 2021-04-15/2023-02-21/v3 on GET /contacts/ [3P]; the spec's enum has
    # only 2021-07-28, and the strict answer keeps clients on the documented value
    if version != API_VERSION:
        raise HTTPError(401, error(401, "version header is invalid"))


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


@dataclass
class TokenInfo:
    """What a bearer token stands for."""

    kind: str  # "pit" (static private integration token), "access" (OAuth), "agency"
    location_id: str | None
    company_id: str
    scopes: frozenset[str]
    expires_at: float | None = None  # deadline on the registry's clock; None = never

    def expired(self, now: float) -> bool:
        """Whether the token's lifetime is over at ``now``."""
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class OAuthApp:
    """The marketplace app whose tokens the sandbox issues: its client credentials."""

    client_id: str
    client_secret: str


@dataclass(frozen=True)
class Agency:
    """The agency (company) the app is installed for, and the locations it may approve."""

    company_id: str
    default_location: str
    locations: Callable[[], Collection[str]]


@dataclass
class _Grant:
    """An authorization code or a refresh token: what it may be exchanged for."""

    client_id: str
    location_id: str
    scope: str
    redirect_uri: str | None = None
    expires_at: float | None = None


@dataclass
class TokenRegistry:
    """Every bearer token the sandbox accepts: static ones plus issued OAuth access tokens.

    ``clock`` tells the time lifetimes are measured on (default :func:`time.time`).
    """

    static: dict[str, TokenInfo] = field(default_factory=dict)
    issued: dict[str, TokenInfo] = field(default_factory=dict)
    clock: Callable[[], float] = time.time

    def lookup(self, token: str | None) -> TokenInfo | None:
        """The token's info, or ``None`` when it is unknown or expired."""
        if not token:
            return None
        info = self.static.get(token) or self.issued.get(token)
        if info is None or info.expired(self.clock()):
            return None
        return info

    def issue(self, location_id: str, company_id: str, scope: str, ttl: float) -> str:
        """A new access token for ``location_id`` that lives ``ttl`` seconds."""
        token = "at-" + secrets.token_urlsafe(24)
        self.issued[token] = TokenInfo(
            "access", location_id, company_id, frozenset(scope.split()), self.clock() + ttl
        )
        return token


class OAuthServer:
    """The OAuth part of the Contacts sandbox. All state is guarded by its own lock."""

    def __init__(
        self,
        registry: TokenRegistry,
        app: OAuthApp,
        agency: Agency,
        *,
        agency_token: str | None,
        access_token_ttl: float,
    ) -> None:
        self.registry = registry
        self.client_id = app.client_id
        self.client_secret = app.client_secret
        self.company_id = agency.company_id
        self.default_location = agency.default_location
        self.locations = agency.locations
        self.access_token_ttl = access_token_ttl
        self._codes: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        if agency_token:
            registry.static[agency_token] = TokenInfo(
                "agency", None, agency.company_id, frozenset({"oauth.write", "oauth.readonly"})
            )

    def register(self, app: SandboxApp) -> None:
        """Add the OAuth routes to ``app``."""
        app.add_route("GET", "/v2/oauth/chooselocation", self.choose_location)
        app.add_route("GET", "/oauth/chooselocation", self.choose_location)
        app.add_route("POST", "/oauth/token", self.token)
        app.add_route("POST", "/oauth/locationToken", self.location_token)

    @staticmethod
    def is_oauth_path(path: str) -> bool:
        """Whether ``path`` is one of these routes (they are not rate limited)."""
        return path.startswith(("/oauth/", "/v2/oauth/"))

    # --- consent --------------------------------------------------------------------------
    def choose_location(self, request: Request) -> Response:
        """The consent page: approves at once and redirects with a code and the state."""
        if request.arg("response_type") != "code":
            raise HTTPError(400, error(400, "Invalid parameter: response_type"))
        if request.arg("client_id") != self.client_id:
            raise HTTPError(400, error(400, "Invalid parameter: client_id"))
        redirect_uri = request.arg("redirect_uri")
        if not redirect_uri or not urlsplit(redirect_uri).scheme:
            raise HTTPError(400, error(400, "Invalid parameter: redirect_uri"))
        location_id = request.arg("locationId") or self.default_location
        if location_id not in self.locations():
            raise HTTPError(400, error(400, "Invalid parameter: locationId"))
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Grant(
                self.client_id,
                location_id,
                request.arg("scope") or DEFAULT_SCOPE,
                redirect_uri,
                self.registry.clock() + CODE_TTL,
            )
        params = {"code": code}
        if request.arg("state") is not None:
            params["state"] = request.arg("state") or ""
        parts = urlsplit(redirect_uri)
        query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
        return Response(302, None, {"Location": urlunsplit(parts._replace(query=query))})

    # --- token endpoint -------------------------------------------------------------------
    def token(self, request: Request) -> Response:
        """``POST /oauth/token``: a code or a refresh token exchanged for new tokens."""
        form = _form_or_json(request)
        messages = openapi.validate_body("POST", "/oauth/token", form)
        if messages:
            raise HTTPError(422, error(422, messages))
        if form["client_id"] != self.client_id or not secrets.compare_digest(
            form["client_secret"], self.client_secret
        ):
            # exact text UNCONFIRMED; worded like the oauth2-server library the API's messages match
            raise HTTPError(401, error(401, "Invalid client: client credentials are invalid"))
        if form.get("user_type", "Location") != "Location":
            # the sandbox has no Company installs; a Company token would be refused on every route
            raise HTTPError(400, error(400, "Invalid parameter: user_type"))
        grant_type = form["grant_type"]
        with self._lock:
            if grant_type == "authorization_code":
                grant = self._take_code(form)
            elif grant_type == "refresh_token":
                grant = self._take_refresh_token(form)
            else:
                raise HTTPError(400, error(400, "Unsupported grant type: grant_type is invalid"))
            return Response(200, self._tokens_for(grant))

    def _take_code(self, form: dict[str, str]) -> _Grant:
        code = form.get("code")
        if not code:
            raise HTTPError(400, error(400, "Missing parameter: code"))
        grant = self._codes.pop(code, None)  # single-use even when the exchange fails below
        if (
            grant is None
            or grant.client_id != form["client_id"]
            or (grant.expires_at is not None and self.registry.clock() >= grant.expires_at)
        ):
            raise HTTPError(400, error(400, "Invalid grant: authorization code is invalid"))
        if form.get("redirect_uri") and form["redirect_uri"] != grant.redirect_uri:
            raise HTTPError(400, error(400, "Invalid request: `redirect_uri` is invalid"))
        return grant

    def _take_refresh_token(self, form: dict[str, str]) -> _Grant:
        token = form.get("refresh_token")
        if not token:
            raise HTTPError(400, error(400, "Missing parameter: refresh_token"))
        grant = self._refresh.get(token)
        if grant is None or grant.client_id != form["client_id"]:
            raise HTTPError(400, error(400, "Invalid grant: refresh token is invalid"))
        del self._refresh[token]  # rotation: the old token is spent, with no grace window
        return grant

    def _tokens_for(self, grant: _Grant) -> dict[str, Any]:
        access = self.registry.issue(
            grant.location_id, self.company_id, grant.scope, self.access_token_ttl
        )
        refresh = "rt-" + secrets.token_urlsafe(24)
        self._refresh[refresh] = _Grant(grant.client_id, grant.location_id, grant.scope)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl,
            "refresh_token": refresh,
            "scope": grant.scope,
            "userType": "Location",
            "locationId": grant.location_id,
            "companyId": self.company_id,
            "userId": SANDBOX_USER_ID,
        }

    # --- agency -> location token ---------------------------------------------------------
    def location_token(self, request: Request) -> Response:
        """``POST /oauth/locationToken``: an agency token exchanged for a location token."""
        check_version(request)
        info = self.registry.lookup(bearer(request))
        if info is None:
            raise HTTPError(401, error(401, "Invalid token: access token is invalid"))
        if info.kind != "agency":
            raise HTTPError(
                401,
                error(
                    401,
                    "This authClass type is not allowed to access this "
                    "scope. Please reach out to the Platform team to get "
                    "it added.",
                ),
            )
        form = _form_or_json(request)
        messages = openapi.validate_body("POST", "/oauth/locationToken", form)
        if messages:
            raise HTTPError(422, error(422, messages))
        # both answers below are UNCONFIRMED: the spec documents no error text for them
        if form["companyId"] != info.company_id:
            raise HTTPError(403, error(403, "The token does not have access to this company"))
        if form["locationId"] not in self.locations():
            raise HTTPError(400, error(400, "Location not found"))
        with self._lock:
            tokens = self._tokens_for(_Grant(self.client_id, form["locationId"], DEFAULT_SCOPE))
        # v2's response DTO lists no refresh_token; v3's copy does. Whether v2 sends one is
        # UNCONFIRMED: the sandbox sends it (usable with this sandbox's client credentials)
        body = {
            k: tokens[k]
            for k in (
                "access_token",
                "token_type",
                "expires_in",
                "scope",
                "locationId",
                "userId",
                "refresh_token",
            )
        }
        # planId is left out: it names the plan of a paid app, and the sandbox's app is free
        body.update(appId=SANDBOX_APP_ID, versionId=SANDBOX_VERSION_ID)
        return Response(200, body)


def _form_or_json(request: Request) -> dict[str, Any]:
    """The body as a dict: form-encoded per the spec, JSON also taken as NestJS parses both."""
    ctype = request.headers.get("content-type", "")
    if "json" in ctype:
        body = request.json()
        return body if isinstance(body, dict) else {}
    return request.form()
