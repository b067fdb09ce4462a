"""The run locks: one writing run at a time per location and target (sync_ledger.runlock).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the run lock table (unless it exists)."""
    if "run_locks" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "run_locks",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("lane", sa.String(64), primary_key=True),
        sa.Column("token", sa.String(36), nullable=True),
        sa.Column("holder", sa.String(255), nullable=True),
        sa.Column("acquired_at", sa.Double, nullable=True),
        sa.Column("heartbeat_at", sa.Double, nullable=True),
        sa.Column("expires_at", sa.Double, nullable=True),
    )
