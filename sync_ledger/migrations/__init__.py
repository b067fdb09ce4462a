"""Alembic migrations of the ledger database (run by :func:`sync_ledger.schema.upgrade`)."""
