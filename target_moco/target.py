"""target-moco: writes CRM contacts, notes, tasks and appointments into MOCO."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th
from typing_extensions import override

from sync_ledger.db import DEFAULT_LEDGER_URL
from sync_ledger.merge import POLICIES
from sync_ledger.singer_target import LedgerTarget
from target_moco.sync import STREAMS, MocoSync
from target_moco.wiring import build_moco_sync

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sync_ledger.summary import RunSummary

_ABOUT = (
    "Singer target for MOCO (mocoapp.com, API v1): CRM contacts become MOCO people (matched "
    "through the ledger, else by e-mail or phone, else created; tags only ever added), CRM notes "
    "become comments on the person (their text shown as written, never as markup), and CRM "
    "appointments and tasks become one comment each on the person, updated in place when "
    "rescheduled, cancelled or completed: MOCO's API cannot write to-dos and has no appointment "
    "resource. Input streams contacts, notes, tasks, appointments in MOCO's field names (after "
    "the reverse stream maps); ids are Contacts API ids, linked to MOCO ids in the ledger "
    "target-contacts shares, so a two-way sync never creates a record twice."
)


class TargetMoco(LedgerTarget):  # noqa: D101  its docstring is _ABOUT, kept on one line
    __doc__ = _ABOUT

    name = "target-moco"
    package_name = "moco-contacts-sync"
    streams = STREAMS
    rejects_command = "meltano invoke target-moco:rejects-list"

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            description="MOCO API key with write access (a user key, or an account key with full "
            "access). A user dedicated to the sync lets the webhook listener drop its echoes. "
            "Sent as 'Authorization: Token token=...'; never logged.",
        ),
        th.Property(
            "subdomain",
            th.StringType,
            description="Your MOCO subdomain: 'acme' for https://acme.mocoapp.com. Set this or "
            "base_url.",
        ),
        th.Property(
            "base_url",
            th.StringType,
            description="Root URL of a MOCO-compatible server, e.g. the sandbox's "
            "http://127.0.0.1:PORT (the target appends /api/v1). Wins over subdomain.",
        ),
        th.Property(
            "location_id",
            th.StringType,
            required=True,
            description="The HighLevel location the records come from: the ledger keeps links "
            "per location (the same value as target-contacts' location_id).",
        ),
        th.Property(
            "ledger_url",
            th.StringType,
            secret=True,
            default=DEFAULT_LEDGER_URL,
            description="SQLAlchemy URL of the ledger (links, baselines, rejects): the SAME "
            "ledger as target-contacts in a two-way sync. A SQLite file by default; PostgreSQL "
            "when several machines share one sync.",
        ),
        th.Property(
            "two_way",
            th.BooleanType,
            default=False,
            description="Two-way sync with target-contacts: before a changed record is written, "
            "MOCO's current record is read and only what the merge decides is written (an echo "
            "of MOCO's own change writes nothing; a field changed on both sides follows "
            "conflict_policy); the first run links people both sides already hold. Pairs "
            "target-contacts also syncs are merged either way.",
        ),
        th.Property(
            "conflict_policy",
            th.StringType(allowed_values=list(POLICIES)),
            default="most_recent",
            description="With two_way: who wins a field changed on both sides since the last "
            "sync. most_recent (records' update times; without both, MOCO keeps its value), "
            "moco_wins or contacts_wins. Every conflict is counted in the summary and logged.",
        ),
        th.Property(
            "merge_shared_contacts",
            th.BooleanType,
            default=False,
            description="Off (default): a MOCO person belongs to one CRM contact, so a second "
            "contact with the same e-mail or phone is rejected as shared_identity. On: both "
            "write into the one MOCO person.",
        ),
        th.Property(
            "people_directory",
            th.StringType(allowed_values=["auto", "always", "never"]),
            default="auto",
            description="How CRM contacts not yet linked are matched to MOCO people. auto: a "
            "batch with 20 or more of them reads MOCO's people once (100 per request, kept "
            "fresh every 30 s) when that takes fewer requests than searching for each (two to "
            "three searches per contact) and MOCO holds at most 50,000 people; always: read "
            "them for any such batch; never: search.",
        ),
        th.Property(
            "delete_streams",
            th.ArrayType(
                th.StringType(allowed_values=["contacts", "notes", "tasks", "appointments"])
            ),
            default=[],
            description="Deletes are off by default. Name the streams whose deletions reach "
            "MOCO: a CRM note, task or appointment the tap marks deleted (_sdc_deleted_at) "
            "deletes exactly the MOCO comment linked to it; 'contacts' (separately, since it "
            "deletes people) the linked MOCO person. The dry run lists them.",
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
            "records (from 10 links on) stops instead, deleting nothing.",
        ),
        th.Property(
            "default_gender",
            th.StringType(allowed_values=["F", "M", "U"]),
            default="U",
            description="MOCO requires a gender on new people; the CRM has none, so this one is "
            "used (U: unknown) unless the record maps one. MOCO also requires a last name: a "
            "contact without one gets its first name, else its e-mail's local part.",
        ),
        th.Property(
            "timezone",
            th.StringType,
            default="UTC",
            description="IANA time zone appointments are shown in (and that times without an "
            "offset are read in), e.g. Europe/Berlin: the location's time zone.",
        ),
        th.Property(
            "extra_task_streams",
            th.ArrayType(th.StringType),
            default=["followups"],
            description="More streams written like tasks (one comment marked as a to-do per "
            "record, keyed by its id): stream maps may derive them from other streams, e.g. "
            "the follow-up recipe in docs/mapping.md, which makes 'followups' from contacts.",
        ),
        th.Property(
            "dry_run",
            th.BooleanType,
            default=False,
            description="Plan only: no write reaches MOCO (reads still do). Prints the plan and "
            "writes the planned calls to dry_run_plan_path; the tap's state is not passed on.",
        ),
        th.Property(
            "dry_run_plan_path",
            th.StringType,
            default=".target-moco/dry-run-plan.jsonl",
            description="Where a dry run writes its planned calls (JSON lines).",
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType,
            default=2,
            description="Writes in flight at once (all share the account's rate limit).",
        ),
        th.Property(
            "rate_limit_requests",
            th.IntegerType,
            default=120,
            description="Requests per window for the MOCO account: 120 on standard plans, 1200 "
            "on the unlimited plan. Shared through the ledger with tap-moco when it uses the same "
            "ledger.",
        ),
        th.Property(
            "rate_limit_window_seconds",
            th.NumberType,
            default=120,
            description="Length of MOCO's rate-limit window in seconds (120).",
        ),
        th.Property(
            "request_timeout",
            th.NumberType,
            default=60,
            description="Seconds to wait for one MOCO answer.",
        ),
        th.Property(
            "fail_on_rejects",
            th.BooleanType,
            default=False,
            description="Exit non-zero (and pass no state on) when any record was rejected. "
            "Rejects are always kept in the ledger with their reasons.",
        ),
        th.Property(
            "summary_path",
            th.StringType,
            description="Optional file to write the run summary to (JSON).",
        ),
        th.Property(
            "user_agent",
            th.StringType,
            description="User-Agent header for MOCO requests.",
        ),
    ).to_dict()

    @override
    def writer_stream(self, stream_name: str) -> str:
        extra = self.config.get("extra_task_streams") or []
        return "tasks" if stream_name in extra else stream_name

    @override
    def build_writer(self, config: Mapping[str, Any], summary: RunSummary) -> MocoSync:
        return build_moco_sync(config, summary)
