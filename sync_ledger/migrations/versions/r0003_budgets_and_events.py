"""The shared request budgets and the webhook listener's events.

``rate_budgets``/``rate_budget_slots`` let processes that share the ledger share an API's rate
limit (sync_ledger.budget); ``webhook_events`` is the listener's durable queue
(sync_ledger.events). A development ledger may already hold them (their modules created them
before this migration existed): those are kept as they are.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the budget and event tables (unless they exist)."""
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "rate_budgets" not in existing:
        op.create_table("rate_budgets", sa.Column("budget", sa.String(255), primary_key=True))
    if "rate_budget_slots" not in existing:
        op.create_table(
            "rate_budget_slots",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("budget", sa.String(255), nullable=False),
            sa.Column("taken_at", sa.Double, nullable=False),
        )
        op.create_index("ix_rate_budget_slots_budget", "rate_budget_slots", ["budget"])
    if "webhook_events" not in existing:
        op.create_table(
            "webhook_events",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("source", sa.String(16), nullable=False),
            sa.Column("dedupe_key", sa.String(255), nullable=False),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("direction", sa.String(32), nullable=False),
            sa.Column("location_id", sa.String(64), nullable=False),
            sa.Column("event_type", sa.String(160), nullable=False),
            sa.Column("record_id", sa.String(255), nullable=True),
            sa.Column("origin", sa.String(64), nullable=True),
            sa.Column("user_id", sa.String(64), nullable=True),
            sa.Column("event_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("run_id", sa.String(64), nullable=True),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
            sa.UniqueConstraint("dedupe_key", name="uq_webhook_events_dedupe_key"),
        )
        op.create_index(
            "ix_webhook_events_lane", "webhook_events", ["status", "direction", "location_id"]
        )
        op.create_index("ix_webhook_events_run", "webhook_events", ["run_id"])
