"""The ledger every plugin shares: one SQLAlchemy database (a SQLite file or PostgreSQL).

It holds the id map (which record became which on the other side, with the hash of what was
last written), rejected records with their reasons (:mod:`sync_ledger.ledger`), and OAuth tokens
(:mod:`sync_ledger.tokens`). :func:`sync_ledger.db.make_engine` opens it and creates its tables.
"""
