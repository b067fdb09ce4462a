"""``sync-listener register-moco-webhooks``: subscribe the listener to the MOCO events it needs.

MOCO sends webhooks only to subscriptions made through ``/account/web_hooks`` (one per target and
event). This command makes sure each (target, event) the sync reads has an enabled subscription
to the listener's public URL: it creates the missing ones and enables disabled ones, and changes
nothing else. Running it twice registers nothing new. HighLevel's webhook URL is set in the
Marketplace app's settings instead (see docs/operations.md).

Settings: ``--url`` (the listener's public ``.../webhooks/moco``), and the MOCO account from
``--moco-api-key``/``SYNC_LISTENER_MOCO_API_KEY`` with ``--moco-subdomain`` or ``--moco-base-url``
(``SYNC_LISTENER_MOCO_SUBDOMAIN``, ``SYNC_LISTENER_MOCO_BASE_URL``). The key is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from moco_api.account import api_root, redact_api_key
from moco_api.client import MocoClient
from moco_api.errors import MocoAPIError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: The subscriptions the sync needs: people and their comments, every change.
SUBSCRIPTIONS = tuple(
    (target, event) for target in ("Contact", "Comment") for event in ("create", "update", "delete")
)
ENV = "SYNC_LISTENER_"
BAD_SETTINGS = 2
FAILED = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sync-listener register-moco-webhooks",
        description="Subscribe the listener to MOCO's Contact and Comment events (idempotent).",
    )
    parser.add_argument("--url", help="the listener's public URL of /webhooks/moco (https)")
    parser.add_argument("--moco-api-key", help=f"MOCO API key ({ENV}MOCO_API_KEY)")
    parser.add_argument("--moco-subdomain", help=f"MOCO subdomain ({ENV}MOCO_SUBDOMAIN)")
    parser.add_argument("--moco-base-url", help=f"MOCO root URL ({ENV}MOCO_BASE_URL)")
    return parser


def register(client: MocoClient, url: str) -> list[str]:
    """Create or enable the subscriptions :data:`SUBSCRIPTIONS` to ``url``; what was done."""
    done: list[str] = []
    existing = [h for h in client.web_hooks() if h.get("hook") == url]
    for target, event in SUBSCRIPTIONS:
        mine = [h for h in existing if h.get("target") == target and h.get("event") == event]
        if not mine:
            client.create_web_hook(target, event, url)
            done.append(f"registered {target} {event}")
        elif all(h.get("disabled") for h in mine):
            client.enable_web_hook(str(mine[0]["id"]))
            done.append(f"enabled {target} {event} (it was disabled)")
    return done


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the command; exit status 0 when every subscription is in place."""
    env = os.environ if environ is None else environ
    args = _parser().parse_args(argv)
    url = args.url or env.get(f"{ENV}PUBLIC_URL")
    key = args.moco_api_key or env.get(f"{ENV}MOCO_API_KEY") or ""
    account = {
        "subdomain": args.moco_subdomain or env.get(f"{ENV}MOCO_SUBDOMAIN"),
        "base_url": args.moco_base_url or env.get(f"{ENV}MOCO_BASE_URL"),
    }
    if not url or not url.startswith(("https://", "http://")):
        sys.stderr.write("error: --url must be the listener's public URL of /webhooks/moco\n")
        return BAD_SETTINGS
    if not key:
        sys.stderr.write(f"error: set --moco-api-key or {ENV}MOCO_API_KEY\n")
        return BAD_SETTINGS
    try:
        root = api_root(account)
    except ValueError:
        sys.stderr.write(f"error: set --moco-subdomain ({ENV}MOCO_SUBDOMAIN) or --moco-base-url\n")
        return BAD_SETTINGS
    client = MocoClient(root, key, user_agent="sync-listener (moco-contacts-sync)")
    try:
        done = register(client, url)
    except MocoAPIError as error:
        sys.stderr.write(f"error: {redact_api_key(str(error), key)}\n")
        return FAILED
    finally:
        client.close()
    for line in done or ["every subscription is in place already; nothing registered"]:
        sys.stdout.write(line + "\n")
    return 0
