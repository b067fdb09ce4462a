"""The ledger as release 0.1.0 made it: id map, rejects, OAuth tokens.

A ledger made before migrations existed has exactly these tables; it is stamped with this
revision and upgraded from here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the id map, the rejects and the token store."""
    op.create_table(
        "id_map",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(32), primary_key=True),
        sa.Column("source_id", sa.String(255), primary_key=True),
        sa.Column("target_id", sa.String(64), nullable=True, index=True),
        sa.Column("contact_source_id", sa.String(255), nullable=True, index=True),
        sa.Column("payload_hash", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("extra", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "rejects",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(32), primary_key=True),
        sa.Column("source_id", sa.String(255), primary_key=True),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("field", sa.String(255), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "oauth_tokens",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("access_token", sa.Text, nullable=False),
        sa.Column("refresh_token", sa.Text, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scope", sa.Text, nullable=True),
        sa.Column("user_type", sa.String(32), nullable=True),
        sa.Column("company_id", sa.String(64), nullable=True),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("encrypted", sa.Boolean, nullable=False, default=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
