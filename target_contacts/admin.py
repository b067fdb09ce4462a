"""``contacts-admin``: the operator CLI of target-contacts (OAuth login, status, logout).

Settings come from ``--config`` (a JSON file, e.g. the target's own config) and from environment
variables ``TARGET_CONTACTS_<SETTING>`` (upper case), which win over the file. No command prints a
token, a secret or a key. Add a command group with a function like :func:`add_auth_commands`
that registers subparsers whose ``func(args, config) -> int`` does the work.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import queue
import secrets
import sys
import time
import webbrowser
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.fernet import Fernet
from typing_extensions import override

from contacts_api.auth import (
    DEFAULT_BASE_URL,
    PLAINTEXT_TOKENS_WARNING,
    SCOPES,
    check_token_encryption,
    exchange_code,
)
from contacts_api.errors import ConfigError, ContactsAPIError
from sync_ledger.db import DEFAULT_LEDGER_URL, make_engine, redact_url
from sync_ledger.tokens import TokenInfo, TokenStore, TokenStoreError
from target_contacts.rejects import format_rejects, list_rejects, retry_rejects
from target_contacts.sync import FatalSyncError
from target_contacts.target import TargetContacts

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sqlalchemy import Engine

ENV_PREFIX = "TARGET_CONTACTS_"
DEFAULT_AUTHORIZE_URL = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation"

#: Every setting the CLI reads, with its default (None: no default).
SETTINGS: dict[str, Any] = {
    "base_url": DEFAULT_BASE_URL,
    "location_id": None,
    "private_integration_token": None,
    "client_id": None,
    "client_secret": None,
    "token_encryption_key": None,
    "ledger_url": DEFAULT_LEDGER_URL,
    "authorize_url": DEFAULT_AUTHORIZE_URL,
    "redirect_port": 0,
    "agency_token": None,
    "company_id": None,
}
_INT_SETTINGS = {"redirect_port"}


def say(text: str, *, error: bool = False) -> None:
    """Write one line of output for the operator: stdout, or stderr when ``error`` (flushed)."""
    stream = sys.stderr if error else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The settings: defaults, then the JSON file at ``path``, then the environment.

    Other keys in the file are kept; non-empty ``TARGET_CONTACTS_<SETTING>`` variables win.

    Raises :class:`ConfigError` for an unreadable file or a non-integer ``redirect_port``.
    """
    env = os.environ if environ is None else environ
    config: dict[str, Any] = dict(SETTINGS)
    if path:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"--config {path}: cannot read it as JSON ({exc}); fix the file."
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"--config {path}: must hold a JSON object of settings.")
        config.update({k: v for k, v in data.items() if v is not None})
    for name in SETTINGS:
        value = env.get(ENV_PREFIX + name.upper())
        if value:
            config[name] = value
    config.update(_target_settings_from_env(env))
    for name in _INT_SETTINGS:
        config[name] = _integer_setting(config, name)
    return config


def _integer_setting(config: Mapping[str, Any], name: str) -> int:
    try:
        return int(config[name])
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer ({ENV_PREFIX}{name.upper()}).") from None


def _target_settings_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The target's other settings from ``TARGET_CONTACTS_<SETTING>`` (as Meltano passes them).

    Typed by the target's config schema, so `rejects retry` writes with the same settings.
    """
    out: dict[str, Any] = {}
    for name, schema in TargetContacts.config_jsonschema["properties"].items():
        value = env.get(ENV_PREFIX + name.upper())
        if not value or name in SETTINGS:
            continue
        types = schema.get("type", "string")
        types = set(types if isinstance(types, list) else [types])
        try:
            if types & {"object", "array"}:
                out[name] = json.loads(value)
            elif "boolean" in types:
                out[name] = value.strip().lower() in ("1", "true", "yes", "on")
            elif "integer" in types:
                out[name] = int(value)
            elif "number" in types:
                out[name] = float(value)
            else:
                out[name] = value
        except ValueError:
            raise ConfigError(
                f"{ENV_PREFIX}{name.upper()} cannot be read as {'/'.join(sorted(types))}."
            ) from None
    return out


def require(config: Mapping[str, Any], *names: str) -> None:
    """Raise :class:`ConfigError` naming every setting of ``names`` that is not set."""
    missing = [n for n in names if not config.get(n)]
    if missing:
        hint = ", ".join(f"{n} ({ENV_PREFIX}{n.upper()})" for n in missing)
        raise ConfigError(f"Missing settings: {hint}; set them in --config or the environment.")


def open_ledger(config: Mapping[str, Any]) -> Engine:
    """The ledger database of ``ledger_url`` (created when missing; a SQLite file is 0600)."""
    return make_engine(str(config.get("ledger_url") or DEFAULT_LEDGER_URL))


def token_store(config: Mapping[str, Any], engine: Engine | None = None) -> TokenStore:
    """The token store in the ledger database, with ``token_encryption_key`` when set.

    Raises :class:`ConfigError` when tokens would be stored in plain text although
    ``require_token_encryption`` is set; otherwise says so loudly on stderr.
    """
    if check_token_encryption(config):
        say(f"WARNING: {PLAINTEXT_TOKENS_WARNING}.", error=True)
    return TokenStore(
        engine or open_ledger(config), encryption_key=config.get("token_encryption_key") or None
    )


def _when(moment: datetime) -> str:
    left = (moment - datetime.now(timezone.utc)).total_seconds()
    stamp = moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    span = _duration(abs(left))
    return f"{stamp} (in {span})" if left >= 0 else f"{stamp} (expired {span} ago)"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


# --- login -------------------------------------------------------------------------------------
class _CallbackServer:
    """A one-shot HTTP server on 127.0.0.1 that receives the OAuth redirect at ``/callback``."""

    def __init__(self, port: int) -> None:
        results: queue.Queue[dict[str, str]] = queue.Queue()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/callback":
                    self.send_error(404)
                    return
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if params.get("code") and not params.get("error"):
                    message = "Authorised. You can close this tab and return to the terminal."
                else:
                    message = "Authorisation failed: " + (
                        params.get("error_description") or params.get("error") or "no code"
                    )
                page = f"<!doctype html><title>contacts-admin</title><p>{html.escape(message)}</p>"
                payload = page.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)
                results.put(params)

            @override
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the query string holds the authorization code."""

        try:
            self.httpd = HTTPServer(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise ConfigError(
                f"Cannot listen on 127.0.0.1:{port} ({exc.strerror}): set "
                "redirect_port (or --port) to a free port."
            ) from None
        self.port = self.httpd.server_address[1]
        self.redirect_uri = f"http://127.0.0.1:{self.port}/callback"
        self._results = results

    def wait(self, timeout: float) -> dict[str, str] | None:
        """The callback's query parameters, or None when ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    return self._results.get_nowait()
                except queue.Empty:
                    pass
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.httpd.timeout = min(remaining, 1.0)
                self.httpd.handle_request()
        finally:
            self.httpd.server_close()


def consent_url(authorize_url: str, *, client_id: str, redirect_uri: str, state: str) -> str:
    """The consent page URL for the authorization-code flow with the contacts scopes."""
    query = urlencode(
        {
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "scope": SCOPES,
            "state": state,
        }
    )
    return f"{authorize_url}{'&' if '?' in authorize_url else '?'}{query}"


def cmd_login(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Authorise the app in a browser and store the tokens for the granted location."""
    require(config, "client_id", "client_secret")
    store = token_store(config)  # fail on a bad key or database before the browser step
    port = args.port if args.port is not None else int(config["redirect_port"])
    server = _CallbackServer(port)
    state = secrets.token_urlsafe(32)
    url = consent_url(
        str(config["authorize_url"]),
        client_id=str(config["client_id"]),
        redirect_uri=server.redirect_uri,
        state=state,
    )
    say("Open this URL in a browser and approve the app for the sub-account:\n")
    say(f"  {url}\n")
    if not args.no_browser:
        webbrowser.open(url)
    say(f"Waiting for the redirect to {server.redirect_uri} (up to {args.timeout:.0f} s)...")
    params = server.wait(args.timeout)
    if params is None:
        say(
            f"error: no redirect arrived within {args.timeout:.0f} s; nothing was stored. Run "
            "`contacts-admin login` again (--timeout for longer).",
            error=True,
        )
        return 1
    if not secrets.compare_digest(params.get("state", ""), state):
        say(
            "error: the redirect's state does not match this login (a stale or forged "
            "redirect); nothing was stored. Run `contacts-admin login` again.",
            error=True,
        )
        return 1
    if params.get("error") or not params.get("code"):
        reason = params.get("error_description") or params.get("error") or "no code in the redirect"
        say(f"error: the consent was not granted ({reason}); nothing was stored.", error=True)
        return 1
    token = exchange_code(
        store,
        base_url=str(config["base_url"]),
        client_id=str(config["client_id"]),
        client_secret=str(config["client_secret"]),
        code=params["code"],
        redirect_uri=server.redirect_uri,
        location_id=config.get("location_id") or None,
    )
    say(f"Logged in to location {token.location_id}.")
    _print_info(token.info(encrypted=store.encrypted), config)
    return 0


def _print_info(info: TokenInfo, config: Mapping[str, Any]) -> None:
    say(f"  scopes:        {info.scope or '(not reported)'}")
    say(f"  user type:     {info.user_type or '(not reported)'}")
    say(f"  access token:  expires {_when(info.expires_at)}")
    say(f"  refresh token: {'stored' if info.has_refresh_token else 'none'}")
    say(f"  issued:        {info.updated_at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
    say(f"  stored in:     {redact_url(str(config.get('ledger_url') or DEFAULT_LEDGER_URL))}")
    if info.encrypted:
        say("  encrypted:     yes")
    else:
        say("  encrypted:     NO - PLAIN TEXT (set token_encryption_key to encrypt them)")


def cmd_status(_args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Show what is stored for ``location_id``; exit 1 when OAuth is configured but nothing is."""
    require(config, "location_id")
    location = str(config["location_id"])
    say(f"location: {location}")
    if config.get("private_integration_token"):
        say("auth:     private integration token (configured; the value is not shown)")
    store = token_store(config)
    info = store.info(location)
    if info is None:
        say("OAuth:    no tokens stored; run `contacts-admin login`")
        return 0 if config.get("private_integration_token") else 1
    say("OAuth:    tokens stored")
    _print_info(info, config)
    if info.encrypted:
        try:
            store.load(location)  # proves the configured key opens them
        except TokenStoreError as exc:
            say(f"  problem:       {exc}")
            return 1
    return 0


def cmd_logout(_args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Delete the stored tokens of ``location_id`` (the app stays installed in the CRM)."""
    require(config, "location_id")
    location = str(config["location_id"])
    if token_store(config).delete(location):
        say(
            f"Deleted the stored OAuth tokens of location {location}. (The app stays installed "
            "in the sub-account; uninstall it there to revoke its access.)"
        )
    else:
        say(f"No OAuth tokens were stored for location {location}.")
    return 0


def add_auth_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register ``login``, ``status`` and ``logout``."""
    login = sub.add_parser(
        "login",
        parents=[common],
        help="authorise the app (OAuth) in a browser",
        description=cmd_login.__doc__,
    )
    login.add_argument(
        "--no-browser",
        action="store_true",
        help="only print the consent URL; do not open a browser",
    )
    login.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the redirect (default 300)",
    )
    login.add_argument(
        "--port",
        type=int,
        default=None,
        help="loopback port for the redirect (default: redirect_port; 0 = a free one)",
    )
    login.set_defaults(func=cmd_login)
    status = sub.add_parser(
        "status",
        parents=[common],
        help="show the stored OAuth tokens' state",
        description=cmd_status.__doc__,
    )
    status.set_defaults(func=cmd_status)
    logout = sub.add_parser(
        "logout",
        parents=[common],
        help="delete the stored OAuth tokens",
        description=cmd_logout.__doc__,
    )
    logout.set_defaults(func=cmd_logout)


def cmd_rejects_list(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """List the rejected records of the location: stream, source id, attempts, field, reason."""
    say(format_rejects(list_rejects(config, args.stream)))
    return 0


def cmd_rejects_retry(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Send the rejected records again with the current settings (after fixing the cause).

    Exits 0 when none is left rejected, 1 when some still are (they stay in the ledger).
    """
    try:
        summary = retry_rejects(config, args.stream)
    except FatalSyncError as exc:
        say(f"error: {exc}", error=True)
        return 1
    say(summary.table("rejects retry"))
    left = list_rejects(config, args.stream)
    if left:
        say(format_rejects(left))
        return 1
    say("No rejected records are left.")
    return 0


def cmd_genkey(_args: argparse.Namespace, _config: dict[str, Any]) -> int:
    """Print a new Fernet key for token_encryption_key (keep it in a secret store, not in git)."""
    say(Fernet.generate_key().decode("ascii"))
    return 0


def add_rejects_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register ``rejects list`` and ``rejects retry``."""
    rejects = sub.add_parser("rejects", parents=[common], help="rejected records: list or retry")
    actions = rejects.add_subparsers(dest="rejects_command", required=True, metavar="ACTION")
    for name, func in (("list", cmd_rejects_list), ("retry", cmd_rejects_retry)):
        action = actions.add_parser(
            name, parents=[common], help=_summary(func), description=func.__doc__
        )
        action.add_argument(
            "--stream", choices=("contacts", "tasks", "notes"), help="only this stream"
        )
        action.set_defaults(func=func)


def _summary(command: Callable[..., int]) -> str:
    """The first line of a command's docstring: its help in the command list."""
    return (command.__doc__ or "").partition("\n")[0]


def build_parser() -> argparse.ArgumentParser:
    """The ``contacts-admin`` parser with every command group registered."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS keeps a --config given before the command from being reset by the subparser
    common.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help=f"JSON settings file ({ENV_PREFIX}<SETTING> variables win over it)",
    )
    parser = argparse.ArgumentParser(
        prog="contacts-admin",
        description=__doc__.splitlines()[0].replace("``", ""),
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_auth_commands(sub, common)
    add_rejects_commands(sub, common)
    genkey = sub.add_parser("genkey", parents=[common], help=_summary(cmd_genkey))
    genkey.set_defaults(func=cmd_genkey)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 failed, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(getattr(args, "config", None))
        return int(args.func(args, config))
    except ConfigError as exc:
        say(f"error: {exc}", error=True)
        return 2
    except (ContactsAPIError, TokenStoreError) as exc:
        say(f"error: {exc}", error=True)
        return 1
    except KeyboardInterrupt:
        say("interrupted; nothing more was stored.", error=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
