"""The ledger's schema is migrated in place: a ledger made by release 0.1.0 (before migrations)
upgrades with nothing lost, a fresh one gets every table, and runs that start together migrate
once. Each test runs on SQLite and on PostgreSQL (``ledger_url``, tests/ledger/conftest.py)."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
from typing import TYPE_CHECKING, Any

from alembic import command
from sqlalchemy import create_engine, inspect, text

from sync_ledger import schema
from sync_ledger.db import make_engine
from sync_ledger.ledger import Direction, IdLedger
from sync_ledger.tokens import TokenStore

if TYPE_CHECKING:
    from pathlib import Path

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc)


def release_010_ledger(url: str) -> None:
    """A ledger exactly as release 0.1.0 left it: its tables, its rows, no version table."""
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), schema.BASELINE)
        conn.execute(text(f"DROP TABLE {schema.VERSION_TABLE}"))
        rows = [
            ("loc", "contacts", "5", "crm-5", None, "h5", "written", {"tags": ["moco"]}),
            ("loc", "contacts", "6", None, None, None, "creating", None),
            ("loc", "tasks", "50", "task-50", "5", "h50", "written", {"completed": True}),
            ("loc", "notes", "70", "note-70", "5", "h70", "written", None),
            ("other", "contacts", "5", "crm-other", None, "hx", "written", None),
        ]
        for loc, stream, sid, tid, parent, digest, state, extra in rows:
            conn.execute(
                text(
                    "INSERT INTO id_map (location_id, stream, source_id, target_id, "
                    "contact_source_id, payload_hash, state, extra, updated_at) VALUES "
                    "(:l, :s, :sid, :tid, :p, :h, :st, :x, :u)"
                ),
                {
                    "l": loc,
                    "s": stream,
                    "sid": sid,
                    "tid": tid,
                    "p": parent,
                    "h": digest,
                    "st": state,
                    "x": json.dumps(extra) if extra else None,
                    "u": NOW,
                },
            )
        conn.execute(
            text(
                "INSERT INTO rejects (location_id, stream, source_id, record, field, reason, kind, "
                "attempts, first_seen, last_seen) VALUES ('loc', 'notes', '71', '{\"notesId\": "
                "\"71\"}', 'content', 'is empty', 'invalid', 2, :u, :u)"
            ),
            {"u": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO oauth_tokens (location_id, access_token, refresh_token, expires_at, "
                "encrypted, updated_at) VALUES ('loc', 'at-1', 'rt-1', :u, FALSE, :u)"
            ),
            {"u": NOW},
        )
    engine.dispose()


def test_a_release_010_ledger_upgrades_in_place_with_nothing_lost(ledger_url: str) -> None:
    release_010_ledger(ledger_url)
    engine = make_engine(ledger_url)
    tables = set(inspect(engine).get_table_names())
    assert {"links", "rejects", "oauth_tokens", schema.VERSION_TABLE} <= tables
    assert "id_map" not in tables
    with engine.connect() as conn:
        assert schema.current(conn) == schema.head()

    forward = IdLedger(engine, "loc")
    contact = forward.get("contacts", "5")
    assert contact is not None
    assert (contact.target_id, contact.payload_hash, contact.state) == ("crm-5", "h5", "written")
    assert contact.extra == {"tags": ["moco"]}
    intent = forward.get("contacts", "6")
    assert intent is not None
    assert intent.state == "creating"
    assert not intent.written
    task = forward.get("tasks", "50")
    assert task is not None
    assert (task.target_id, task.contact_source_id, task.extra) == (
        "task-50",
        "5",
        {"completed": True},
    )
    assert forward.target_ids_for_contact("notes", "5") == {"note-70"}
    assert IdLedger(engine, "other").get("contacts", "5").target_id == "crm-other"  # type: ignore[union-attr]
    # The reverse direction sees the same pairs from the CRM side, the note on its contact.
    reverse = IdLedger(engine, "loc", Direction.REVERSE)
    assert reverse.get("contacts", "crm-5").target_id == "5"  # type: ignore[union-attr]
    assert reverse.target_ids_for_contact("notes", "crm-5") == {"70"}

    (kept,) = forward.rejects()
    assert (kept.stream, kept.source_id, kept.field, kept.attempts) == ("notes", "71", "content", 2)
    assert IdLedger(engine, "loc", Direction.REVERSE).rejects() == []
    token = TokenStore(engine).load("loc")
    assert token is not None
    assert (token.access_token, token.refresh_token) == ("at-1", "rt-1")

    # Opening it again is a no-op.
    again = make_engine(ledger_url)
    assert IdLedger(again, "loc").get("contacts", "5") == contact


def _open(url: str, together: multiprocessing.synchronize.Barrier) -> None:
    together.wait(30)  # every process has imported everything: they migrate at the same moment
    make_engine(url)


def test_runs_that_start_together_migrate_once(ledger_url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    together = spawn.Barrier(4)
    procs = [spawn.Process(target=_open, args=(ledger_url, together)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    engine = make_engine(ledger_url)
    with engine.connect() as conn:
        versions = conn.execute(text(f"SELECT version_num FROM {schema.VERSION_TABLE}")).all()  # noqa: S608
    assert [v[0] for v in versions] == [schema.head()]


def test_a_fresh_ledger_gets_every_table(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    assert {
        "links",
        "rejects",
        "oauth_tokens",
        "rate_budgets",
        "rate_budget_slots",
        "webhook_events",
    } <= set(inspect(engine).get_table_names())


def test_the_head_known_without_alembic_is_the_migrations_head() -> None:
    assert schema.head() == schema.HEAD


def test_the_ledger_shares_a_database_with_meltanos_own_alembic_version(ledger_url: str) -> None:
    # Meltano's system database keeps its revision in alembic_version; the ledger keeps its own.
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('c0efb3c314eb')"))
    engine.dispose()
    ledger = make_engine(ledger_url)
    with ledger.connect() as conn:
        assert schema.current(conn) == schema.head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "c0efb3c314eb"
        )


def test_a_ledger_that_kept_its_revision_in_alembic_version_is_adopted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0002")
        conn.execute(text(f"ALTER TABLE {schema.VERSION_TABLE} RENAME TO alembic_version"))
    engine.dispose()
    ledger = make_engine(url)  # 0002 -> head, without creating the links table again
    with ledger.connect() as conn:
        assert schema.current(conn) == schema.head()
    assert "rate_budgets" in inspect(ledger).get_table_names()


def _schema_of(url: str) -> dict[str, Any]:
    """Every table of the database: columns, primary key, indexes, unique constraints, keys."""
    engine = create_engine(url)
    found = inspect(engine)
    described = {
        name: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in found.get_columns(name)
            ],
            "primary_key": found.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in found.get_indexes(name)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in found.get_unique_constraints(name)
            ),
            "foreign_keys": found.get_foreign_keys(name),
        }
        for name in sorted(found.get_table_names())
    }
    engine.dispose()
    return described


def test_a_new_ledger_is_made_as_the_migrations_make_it(ledger_url: str) -> None:
    # A new ledger's tables come from the code's definitions at the head revision, without
    # Alembic: they must be what running every migration from an empty database builds.
    made = make_engine(ledger_url)
    with made.connect() as conn:
        assert schema.current(conn) == schema.head()
    made.dispose()
    direct = _schema_of(ledger_url)
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        for name in direct:
            conn.execute(text(f"DROP TABLE {name}"))
        assert inspect(conn).get_table_names() == []
        command.upgrade(schema._config(conn), "head")
    engine.dispose()
    migrated = _schema_of(ledger_url)
    assert set(direct) == set(migrated)
    for name, shape in migrated.items():
        assert direct[name] == shape, name
