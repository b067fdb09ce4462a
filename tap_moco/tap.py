"""tap-moco: the Singer tap class, its settings and its streams."""

from __future__ import annotations

import typing as t
from functools import cached_property

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from typing_extensions import override

from moco_api.account import redact_api_key
from moco_api.ratelimit import RequestRateLimiter
from tap_moco.client import SETTING_DEFAULTS, setting
from tap_moco.streams import STREAM_TYPES

if t.TYPE_CHECKING:
    from tap_moco.client import MocoStream

__all__ = ["TapMoco"]

_ABOUT = (
    "Singer tap for MOCO (mocoapp.com, API v1). Streams, in sync order: companies, contacts, "
    "notes (MOCO comments on contacts, with a plain-text rendering of their HTML) and tasks "
    "(MOCO to-dos on contacts), all with MOCO's own field names and incremental on updated_at. "
    "MOCO's API has no appointment resource (no meetings, calls or calendar entries), so this "
    "tap has no appointments stream. Requests stay within the configured MOCO rate limit "
    "(120 per 2 minutes on standard plans, 1,200 on the unlimited plan). Deletes: MOCO deletes "
    "hard and keeps no trace, so the ids read are kept in state (a few bytes each) and, after "
    "a complete read of a list, every id read before and missing now is emitted once as a "
    "tombstone (_sdc_deleted_at set, other fields null but id and updated_at): tasks on every "
    "run (MOCO's to-do list is read whole anyway), contacts and notes on a reconciliation pass "
    "(a read without updated_after) every reconcile_every_hours or when reconcile_now is set. "
    "A first read, or a list that changed while it was paged, reports nothing deleted."
)


class TapMoco(Tap):  # noqa: D101  its docstring is _ABOUT, kept on one line for --about
    # The description shown by --about: one line, so that the markdown rendering stays intact.
    __doc__ = _ABOUT

    name = "tap-moco"
    # The distribution that ships tap-moco (for --version and --about).
    package_name = "moco-contacts-sync"

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            description=(
                "MOCO API key: a user key (Profile > Integrations) or an account key "
                "(Settings > Extensions > API & Webhooks). Sent as 'Authorization: Token "
                "token=...'; never logged."
            ),
        ),
        th.Property(
            "subdomain",
            th.StringType,
            description=(
                "Your MOCO account's subdomain: 'acme' for https://acme.mocoapp.com. "
                "Set this or base_url."
            ),
        ),
        th.Property(
            "base_url",
            th.URIType,
            description=(
                "Root URL of a MOCO-compatible server, e.g. http://127.0.0.1:8765 for the "
                "sandbox; the tap appends /api/v1. Wins over subdomain."
            ),
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "Only records updated at or after this moment are read on the first run "
                "(ISO-8601, e.g. 2024-01-01T00:00:00Z). Empty: everything."
            ),
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=100),
            default=int(SETTING_DEFAULTS["page_size"]),
            description="Records per page (MOCO's per_page, 1 to 100).",
        ),
        th.Property(
            "rate_limit_requests",
            th.IntegerType(minimum=1),
            default=int(SETTING_DEFAULTS["rate_limit_requests"]),
            description=(
                "Requests allowed per rate_limit_window_seconds, shared by all streams: 120 on "
                "MOCO's standard plans, 1200 on the unlimited plan."
            ),
        ),
        th.Property(
            "rate_limit_window_seconds",
            th.NumberType(exclusive_minimum=0),
            default=SETTING_DEFAULTS["rate_limit_window_seconds"],
            description="Length of the rate-limit window in seconds (MOCO: 120).",
        ),
        th.Property(
            "overlap_seconds",
            th.IntegerType(minimum=0),
            default=int(SETTING_DEFAULTS["overlap_seconds"]),
            description=(
                "Each incremental run re-reads this many seconds before the bookmark (whether "
                "MOCO's updated_after is strict is unconfirmed, and clocks drift); record "
                "versions already emitted are not emitted again."
            ),
        ),
        th.Property(
            "reconcile_every_hours",
            th.NumberType(minimum=0),
            default=SETTING_DEFAULTS["reconcile_every_hours"],
            description=(
                "Every this many hours contacts and notes are read whole (no updated_after) and "
                "the records deleted in MOCO since are emitted as tombstones (_sdc_deleted_at); "
                "other runs read only what changed. 0: every run. Costs one request per 100 "
                "records of each list."
            ),
        ),
        th.Property(
            "reconcile_now",
            th.BooleanType,
            default=False,
            description=(
                "Make this run a reconciliation pass whatever reconcile_every_hours says "
                "(TAP_MOCO_RECONCILE_NOW=true; the webhook listener sets it for a run that "
                "covers a MOCO delete event)."
            ),
        ),
        th.Property(
            "user_agent",
            th.StringType,
            description="User-Agent header for MOCO requests (default: tap-moco/<version>).",
        ),
        th.Property(
            "request_timeout",
            th.IntegerType(minimum=1),
            default=int(SETTING_DEFAULTS["request_timeout"]),
            description="Seconds to wait for one MOCO answer before retrying the request.",
        ),
    ).to_dict()

    @cached_property
    def request_limiter(self) -> RequestRateLimiter:
        """The one request budget all streams of this tap share."""
        return RequestRateLimiter(
            int(setting(self.config, "rate_limit_requests")),
            setting(self.config, "rate_limit_window_seconds"),
        )

    @override
    def discover_streams(self) -> list[MocoStream]:
        return [stream_type(self, limiter=self.request_limiter) for stream_type in STREAM_TYPES]

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Validate against the schema, then require subdomain or base_url.

        Messages never repeat the API key, even when the schema check quotes a value.
        """
        errors = super()._validate_config(raise_errors=False)
        api_key = str(self.config.get("api_key") or "")
        errors = [redact_api_key(error, api_key) for error in errors]
        if not (self.config.get("base_url") or self.config.get("subdomain")):
            errors.append(
                "Set either 'subdomain' (your MOCO account, as in https://SUBDOMAIN.mocoapp.com) "
                "or 'base_url' (e.g. the sandbox's http://127.0.0.1:PORT) for tap-moco."
            )
        if errors and raise_errors:
            msg = "Config validation failed"
            raise ConfigValidationError(msg, errors=errors, schema=self.config_jsonschema)
        return errors
