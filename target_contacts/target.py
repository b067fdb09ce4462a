"""target-contacts: writes contacts, tasks, notes and tags to the Contacts API (HighLevel v2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th
from typing_extensions import override

from sync_ledger.db import DEFAULT_LEDGER_URL
from sync_ledger.merge import POLICIES
from sync_ledger.singer_target import LedgerTarget
from target_contacts.sinks import STREAMS, ContactsApiSink
from target_contacts.wiring import DEFAULT_BASE_URL, build_sync

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sync_ledger.summary import RunSummary
    from target_contacts.sync import ContactsSync


class TargetContacts(LedgerTarget):
    """Upserts contacts, tasks and notes (and adds tags) through the HighLevel Contacts API.

    Input streams: ``contacts`` (id, firstName, lastName, email, phone, companyName, address1,
    city, postalCode, country, website, dateOfBirth, source, tags[], custom_properties),
    ``tasks`` (taskId, contactId, title, dueDate, status open|completed, body) and ``notes``
    (notesId, contactId, content, createdAt); ids are source ids, mapped to Contacts API ids in
    the ledger. Unchanged records cost no call; rejected records are kept in the ledger with
    their reason (``contacts-admin rejects list``).
    """

    name = "target-contacts"
    default_sink_class = ContactsApiSink
    streams = STREAMS
    rejects_command = "contacts-admin rejects list"

    config_jsonschema = th.PropertiesList(
        th.Property(
            "base_url",
            th.StringType,
            default=DEFAULT_BASE_URL,
            description="Contacts API root URL. Point it at the local sandbox "
            "(http://127.0.0.1:PORT) for the demo, tests and dry runs.",
        ),
        th.Property(
            "location_id",
            th.StringType,
            required=True,
            description="The HighLevel location (sub-account) id the contacts belong to.",
        ),
        th.Property(
            "private_integration_token",
            th.StringType,
            secret=True,
            description="A Private Integration Token of the location. Use it, or OAuth "
            "(client_id, client_secret and `contacts-admin login`).",
        ),
        th.Property(
            "client_id",
            th.StringType,
            description="OAuth app client id (Marketplace app). Tokens come from the "
            "token store, filled by `contacts-admin login`.",
        ),
        th.Property(
            "client_secret", th.StringType, secret=True, description="OAuth app client secret."
        ),
        th.Property(
            "token_encryption_key",
            th.StringType,
            secret=True,
            description="Fernet key that encrypts the stored OAuth tokens at rest. "
            "Make one with `contacts-admin genkey`.",
        ),
        th.Property(
            "require_token_encryption",
            th.BooleanType,
            default=False,
            description="Refuse to store OAuth tokens without token_encryption_key (the prod "
            "environment sets this; set it to false there to accept plain-text tokens). Off: "
            "plain-text storage is allowed, with a loud warning.",
        ),
        th.Property(
            "agency_token",
            th.StringType,
            secret=True,
            description="Optional agency (company) token with oauth.write: if the stored "
            "refresh token is lost, a location token is minted through "
            "POST /oauth/locationToken instead of failing.",
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
            description="SQLAlchemy URL of the ledger (id map, hashes, rejects, tokens). "
            "A SQLite file by default; use PostgreSQL when several machines "
            "or CI runners share one sync.",
        ),
        th.Property(
            "dry_run",
            th.BooleanType,
            default=False,
            description="Plan only: no write reaches the API. Prints the plan and writes "
            "the planned calls to dry_run_plan_path.",
        ),
        th.Property(
            "dry_run_plan_path",
            th.StringType,
            default=".target-contacts/dry-run-plan.jsonl",
            description="Where a dry run writes its planned calls (JSON lines).",
        ),
        th.Property(
            "default_phone_region",
            th.StringType,
            description="ISO country code (e.g. DE) for phone numbers without a "
            "+country prefix; phones are sent in E.164.",
        ),
        th.Property(
            "custom_fields",
            th.ObjectType(additional_properties=th.StringType),
            description="Maps MOCO custom_properties names to Contacts API custom field "
            'ids, e.g. {"Line of business": "kJ2..."}; the record must '
            "carry custom_properties (pass it through the stream map).",
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType,
            default=8,
            description="Writes in flight at once (all share one rate limiter).",
        ),
        th.Property(
            "rate_limit_requests",
            th.IntegerType,
            default=100,
            description="Requests allowed per rate-limit window and location "
            "(HighLevel: 100 per 10 s).",
        ),
        th.Property(
            "rate_limit_window_seconds",
            th.NumberType,
            default=10,
            description="Length of the rate-limit window in seconds.",
        ),
        th.Property(
            "daily_quota_reserve",
            th.IntegerType,
            default=100,
            description="Stop cleanly when the location's daily quota has this many "
            "requests left, so other integrations keep working.",
        ),
        th.Property(
            "request_timeout",
            th.NumberType,
            default=30,
            description="Seconds to wait for one Contacts API answer.",
        ),
        th.Property(
            "fail_on_rejects",
            th.BooleanType,
            default=False,
            description="Exit non-zero (and pass no state on) when any record was "
            "rejected. Rejects are always kept in the ledger.",
        ),
        th.Property(
            "two_way",
            th.BooleanType,
            default=False,
            description="Two-way sync with target-moco over the same ledger: before a changed "
            "record is written, the CRM's current record is read and only what the merge decides "
            "is written (an echo of the CRM's own change writes nothing; a field changed on both "
            "sides follows conflict_policy); the first run links people both sides already hold "
            "instead of overwriting. Off: MOCO's mapped values overwrite (one read less per "
            "change). Pairs target-moco also syncs are merged either way.",
        ),
        th.Property(
            "conflict_policy",
            th.StringType(allowed_values=list(POLICIES)),
            default="most_recent",
            description="With two_way: who wins a field changed on both sides since the last "
            "sync. most_recent: the side whose record changed last (records' update times; "
            "without both, the CRM keeps its value); moco_wins; contacts_wins. Every conflict is "
            "counted in the summary and logged.",
        ),
        th.Property(
            "delete_streams",
            th.ArrayType(th.StringType(allowed_values=["contacts", "tasks", "notes"])),
            default=[],
            description="Deletes are off by default. Name the streams whose deletions reach the "
            "CRM: a record the tap marks deleted (_sdc_deleted_at) deletes exactly the CRM "
            "contact, task or note linked to it, nothing else. The dry run lists them.",
        ),
        th.Property(
            "max_deletes",
            th.IntegerType,
            default=100,
            description="A run that would delete more records of one stream stops instead, "
            "deleting nothing.",
        ),
        th.Property(
            "max_delete_share",
            th.NumberType,
            default=0.5,
            description="A run that would delete more than this share of one stream's linked "
            "records (from 10 links on; e.g. after the source answered an empty list) stops "
            "instead, deleting nothing.",
        ),
        th.Property(
            "merge_shared_contacts",
            th.BooleanType,
            default=False,
            description="Off (default): a CRM contact belongs to one source record, so a second "
            "record with the same email or phone (e.g. a shared info@ address) is rejected as "
            "shared_identity, naming the record that owns the contact, and its tasks and notes "
            "wait. On: such records are written into the one CRM contact the Contacts API's "
            "duplicate rules match (the last one written wins its fields; tags add up).",
        ),
        th.Property(
            "summary_path",
            th.StringType,
            description="Optional file to write the run summary to (JSON).",
        ),
    ).to_dict()

    @override
    def build_writer(self, config: Mapping[str, Any], summary: RunSummary) -> ContactsSync:
        return build_sync(config, summary)
