"""tap-contacts: the Singer tap class, its settings and its streams."""

from __future__ import annotations

import typing as t
from functools import cached_property
from urllib.parse import urlsplit

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities
from typing_extensions import override

from contacts_api.auth import DEFAULT_BASE_URL
from contacts_api.client import TASKS_SCOPE
from sync_ledger.db import DEFAULT_LEDGER_URL
from tap_contacts.children import TaskRead
from tap_contacts.session import DEFAULT_CONCURRENCY, ReadSession
from tap_contacts.streams import SETTING_DEFAULTS, STREAM_TYPES

if t.TYPE_CHECKING:
    from singer_sdk.helpers.capabilities import CapabilitiesEnum

    from tap_contacts.streams import ChildStream, ContactsStream

__all__ = ["TapContacts"]

_ABOUT = (
    "Singer tap for the HighLevel Contacts API (LeadConnector API v2). Streams, with the API's own "
    "field names: contacts (incremental on dateUpdated through POST /contacts/search, sorted and "
    "paged with searchAfter, so more than 10,000 contacts are read; each run re-reads "
    "lookback_seconds before the bookmark for the search index's lag and emits a version only "
    "once), and per contact its tasks, notes and appointments, each record carrying contactId. "
    "Notes (GET /contacts/{contactId}/notes) and appointments (GET "
    "/contacts/{contactId}/appointments) are always one read per contact: the API has no "
    "location-wide read for them. Tasks follow task_read: auto (the default) uses the "
    "location-wide POST /locations/{locationId}/tasks/search (scope locations/tasks.readonly, one "
    "search per page of contacts) and falls back to GET /contacts/{contactId}/tasks when the "
    "token may not use it; the log says which read ran, and state keeps it as "
    "bookmarks.tasks.task_read_path (see `meltano state get`). Whether adding a task, note or "
    "appointment changes a contact's dateUpdated is unconfirmed, so the children of changed "
    "contacts are read every run and the children of every contact in a full pass every "
    "child_full_pass_hours (the first run is one); child records have no update timestamp, so "
    "unchanged ones are recognised by a content digest kept in state (about 22 bytes per "
    "record). Outside a full pass an unchanged location costs one search request and no "
    "sub-resource read. Requests share one rate budget per location with target-contacts "
    "through the ledger (100 requests / 10 s by default). Deletes: the API lists no deleted "
    "records, so the ids read are kept in state (about 21 characters each) and reported gone as "
    "tombstones (_sdc_deleted_at set, other fields null but id, and contactId for children): a "
    "contact missing from a reconciliation pass (a search of every contact since start_date, "
    "every reconcile_every_hours or when reconcile_now is set) and answered 404 by GET "
    "/contacts/{id}; a task, note or appointment missing from its contact's list whenever that "
    "list is read (a task also answered 404). Nothing is reported from a first or failed read."
)


class TapContacts(Tap):  # noqa: D101  its docstring is _ABOUT, kept on one line for --about
    # The description shown by --about: one line, so that the markdown rendering stays intact.
    __doc__ = _ABOUT

    name = "tap-contacts"
    # The distribution that ships tap-contacts (for --version and --about).
    package_name = "moco-contacts-sync"
    # Not ACTIVATE_VERSION: a child stream is synced once per contact, so its version message
    # would tell a target to drop every other contact's records. Not BATCH: untested here.
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "base_url",
            th.StringType,
            default=DEFAULT_BASE_URL,
            description="Contacts API root URL. Point it at the local sandbox "
            "(http://127.0.0.1:PORT) for the demo and tests.",
        ),
        th.Property(
            "location_id",
            th.StringType,
            required=True,
            description="The HighLevel location (sub-account) id whose contacts are read.",
        ),
        th.Property(
            "private_integration_token",
            th.StringType,
            secret=True,
            description="A Private Integration Token of the location (scopes contacts.readonly, "
            f"and {TASKS_SCOPE} for the location-wide task read). Use it, or OAuth (client_id, "
            "client_secret and `contacts-admin login`).",
        ),
        th.Property(
            "client_id",
            th.StringType,
            description="OAuth app client id (Marketplace app). Tokens come from the token store "
            "in the ledger, shared with target-contacts (filled by `contacts-admin login`).",
        ),
        th.Property(
            "client_secret", th.StringType, secret=True, description="OAuth app client secret."
        ),
        th.Property(
            "token_encryption_key",
            th.StringType,
            secret=True,
            description="Fernet key that encrypts the stored OAuth tokens at rest; the same key "
            "as target-contacts' (both use one token store). Make one with "
            "`contacts-admin genkey`.",
        ),
        th.Property(
            "require_token_encryption",
            th.BooleanType,
            default=False,
            description="Refuse to use OAuth tokens stored without token_encryption_key. Off: "
            "plain-text storage is allowed, with a loud warning.",
        ),
        th.Property(
            "agency_token",
            th.StringType,
            secret=True,
            description="Optional agency (company) token with oauth.write: if the stored refresh "
            "token is lost, a location token is minted through POST /oauth/locationToken instead "
            "of failing.",
        ),
        th.Property(
            "company_id",
            th.StringType,
            description="Agency (company) id, needed with agency_token.",
        ),
        th.Property(
            "ledger_url",
            th.StringType,
            secret=True,
            default=DEFAULT_LEDGER_URL,
            description="SQLAlchemy URL of the ledger database shared with target-contacts: its "
            "OAuth token store (so that the two plugins never spend one refresh token twice) and "
            "the location's request budget (so that the two stay within the rate limit together "
            "when they run at once). A SQLite file by default; PostgreSQL when several machines "
            "share one sync. An in-memory SQLite URL shares nothing.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="Only contacts updated at or after this moment are read (ISO-8601, e.g. "
            "2024-01-01T00:00:00Z), with their tasks, notes and appointments. Empty: all.",
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=500),
            default=int(SETTING_DEFAULTS["page_size"]),
            description="Contacts per search page (the search's pageLimit, 1 to 500; whether the "
            "API honours more than 100 with searchAfter is unconfirmed). Also the number of "
            "contacts whose tasks one location-wide task search reads.",
        ),
        th.Property(
            "lookback_seconds",
            th.IntegerType(minimum=0),
            default=int(SETTING_DEFAULTS["lookback_seconds"]),
            description="Each run re-reads this many seconds before the bookmark: the search "
            "index may show a change seconds after it happened. Versions already emitted are not "
            "emitted again. Keep it above the index's lag.",
        ),
        th.Property(
            "child_full_pass_hours",
            th.NumberType(minimum=0),
            default=SETTING_DEFAULTS["child_full_pass_hours"],
            description="Every this many hours, tasks, notes and appointments are read for every "
            "contact, not only for changed ones (adding one may not change the contact's "
            "dateUpdated; unconfirmed). 0: every run. Unchanged records are not emitted again.",
        ),
        th.Property(
            "reconcile_every_hours",
            th.NumberType(minimum=0),
            default=SETTING_DEFAULTS["reconcile_every_hours"],
            description="Every this many hours the search reads every contact (since start_date) "
            "and the contacts deleted since are emitted as tombstones (_sdc_deleted_at); other "
            "runs read only what changed. 0: every run. Costs one search request per page of "
            "contacts, and one GET per contact found gone. Deleted tasks, notes and appointments "
            "show whenever their contact's list is read (child_full_pass_hours).",
        ),
        th.Property(
            "reconcile_now",
            th.BooleanType,
            default=False,
            description="Make this run a reconciliation pass and a full pass of the child "
            "streams, whatever the hours say (TAP_CONTACTS_RECONCILE_NOW=true; the webhook "
            "listener sets it for a run that covers a Contacts API *Delete event).",
        ),
        th.Property(
            "task_read",
            th.StringType,
            default=TaskRead.AUTO.value,
            allowed_values=[read.value for read in TaskRead],
            description="How tasks are read. auto: location-wide (POST "
            f"/locations/{{locationId}}/tasks/search, scope {TASKS_SCOPE}) when the token may, "
            "else one GET /contacts/{contactId}/tasks per contact (logged). location: "
            "location-wide only, a refusal stops the run. per_contact: one read per contact.",
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType(minimum=1, maximum=32),
            default=DEFAULT_CONCURRENCY,
            description="Sub-resource reads in flight at once (all share the rate limit).",
        ),
        th.Property(
            "rate_limit_requests",
            th.IntegerType(minimum=1),
            default=100,
            description="Requests allowed per rate-limit window and location, shared with "
            "target-contacts through the ledger (HighLevel: 100 per 10 s).",
        ),
        th.Property(
            "rate_limit_window_seconds",
            th.NumberType(exclusive_minimum=0),
            default=10,
            description="Length of the rate-limit window in seconds.",
        ),
        th.Property(
            "daily_quota_reserve",
            th.IntegerType(minimum=0),
            default=100,
            description="Stop cleanly when the location's daily quota has this many requests "
            "left, so that other integrations keep working.",
        ),
        th.Property(
            "request_timeout",
            th.NumberType(exclusive_minimum=0),
            default=30,
            description="Seconds to wait for one Contacts API answer.",
        ),
    ).to_dict()

    @cached_property
    def session(self) -> ReadSession:
        """The run's Contacts API client and child reader (built on first use)."""
        return ReadSession(self.config)

    @override
    def discover_streams(self) -> list[ContactsStream | ChildStream]:
        return [stream_type(self, session=self.session) for stream_type in STREAM_TYPES]

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Validate against the schema, then check base_url and that some auth is configured."""
        errors = super()._validate_config(raise_errors=False)
        secrets = [
            str(self.config.get(name) or "")
            for name in (
                "private_integration_token",
                "client_secret",
                "agency_token",
                "token_encryption_key",
            )
        ]
        errors = [_redact(error, secrets) for error in errors]
        base_url = str(self.config.get("base_url") or DEFAULT_BASE_URL)
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors.append(
                f"base_url {base_url!r} is not an http(s) URL (TAP_CONTACTS_BASE_URL): use "
                f"{DEFAULT_BASE_URL}, or the sandbox's http://127.0.0.1:PORT"
            )
        if not self.config.get("private_integration_token") and not (
            self.config.get("client_id") and self.config.get("client_secret")
        ):
            errors.append(
                "Set private_integration_token (TAP_CONTACTS_PRIVATE_INTEGRATION_TOKEN), or "
                "client_id and client_secret for OAuth (then run `contacts-admin login`)."
            )
        if errors and raise_errors:
            msg = "Config validation failed"
            raise ConfigValidationError(msg, errors=errors, schema=self.config_jsonschema)
        return errors


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4:  # noqa: PLR2004  shorter values would hide ordinary words
            text = text.replace(secret, "<redacted>")
    return text
