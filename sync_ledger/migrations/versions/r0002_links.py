"""One link per pair for both directions; rejects per direction.

The id map (MOCO id -> CRM id, forward only) becomes ``links``: one row per MOCO/CRM pair with a
baseline per direction, so that target-moco reads and writes the same pairs. Every id-map row is
copied as a forward link; rejects gain a ``direction`` (existing ones are forward).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# What each forward stream of release 0.1.0 paired: (MOCO record kind, CRM record kind).
_FORWARD_KINDS = {
    "contacts": ("person", "contact"),
    "tasks": ("todo", "task"),
    "notes": ("comment", "note"),
}
_REJECT_COLUMNS = (
    "location_id",
    "stream",
    "source_id",
    "record",
    "field",
    "reason",
    "kind",
    "attempts",
    "first_seen",
    "last_seen",
)


def upgrade() -> None:
    """Create links from the id map, then move rejects to a table keyed by direction."""
    links = op.create_table(
        "links",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("moco_type", sa.String(16), nullable=False),
        sa.Column("moco_id", sa.String(255), nullable=True),
        sa.Column("crm_type", sa.String(16), nullable=False),
        sa.Column("crm_id", sa.String(255), nullable=True),
        sa.Column("moco_parent", sa.String(255), nullable=True),
        sa.Column("crm_parent", sa.String(255), nullable=True),
        sa.Column("fwd_state", sa.String(16), nullable=True),
        sa.Column("fwd_hash", sa.String(64), nullable=True),
        sa.Column("fwd_extra", sa.Text, nullable=True),
        sa.Column("rev_state", sa.String(16), nullable=True),
        sa.Column("rev_hash", sa.String(64), nullable=True),
        sa.Column("rev_extra", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_links_moco", "links", ["location_id", "moco_type", "moco_id"], unique=True)
    op.create_index("ix_links_crm", "links", ["location_id", "crm_type", "crm_id"])
    op.create_index("ix_links_moco_parent", "links", ["location_id", "moco_parent"])
    op.create_index("ix_links_crm_parent", "links", ["location_id", "crm_parent"])

    bind = op.get_bind()
    id_map = sa.table(
        "id_map",
        *(
            sa.column(name, sa.String)
            for name in (
                "location_id",
                "stream",
                "source_id",
                "target_id",
                "contact_source_id",
                "payload_hash",
                "state",
                "extra",
            )
        ),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    rows = bind.execute(sa.select(id_map)).mappings().all()
    contact_of = {
        (r["location_id"], r["source_id"]): r["target_id"]
        for r in rows
        if r["stream"] == "contacts"
    }
    copied = []
    for r in rows:
        kinds = _FORWARD_KINDS.get(r["stream"])
        if kinds is None:
            continue
        parent = r["contact_source_id"]
        copied.append(
            {
                "location_id": r["location_id"],
                "moco_type": kinds[0],
                "moco_id": r["source_id"],
                "crm_type": kinds[1],
                "crm_id": r["target_id"],
                "moco_parent": parent,
                "crm_parent": contact_of.get((r["location_id"], parent)) if parent else None,
                "fwd_state": r["state"],
                "fwd_hash": r["payload_hash"],
                "fwd_extra": r["extra"],
                "updated_at": r["updated_at"],
            }
        )
    if copied:
        op.bulk_insert(links, copied)
    op.drop_table("id_map")

    op.create_table(
        "rejects_by_direction",
        sa.Column("location_id", sa.String(64), primary_key=True),
        sa.Column("direction", sa.String(16), primary_key=True),
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
    columns = ", ".join(_REJECT_COLUMNS)
    op.execute(
        f"INSERT INTO rejects_by_direction (direction, {columns}) "  # noqa: S608  fixed names
        f"SELECT 'forward', {columns} FROM rejects"
    )
    op.drop_table("rejects")
    op.rename_table("rejects_by_direction", "rejects")
