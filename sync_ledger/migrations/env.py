"""Alembic's environment for the ledger's migrations.

Migrations run on the connection it passes in, already inside the transaction that holds the
migration lock (see :func:`sync_ledger.schema.upgrade`).
"""

from __future__ import annotations

from alembic import context

from sync_ledger import budget, events, ledger, tokens  # noqa: F401  their tables
from sync_ledger.db import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    version_table=context.config.attributes["version_table"],
    target_metadata=metadata,
    # SQLite alters tables by copying them; batch mode does that for both engines alike.
    render_as_batch=True,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
