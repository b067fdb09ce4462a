"""OAuth tokens in the ledger database: one row per location, encrypted at rest when a key is set.

What a caller may rely on:

- :class:`TokenStore` keeps one row per location (table ``oauth_tokens``). With an encryption key
  the access and refresh tokens are Fernet-encrypted at rest; a row written with a key cannot be
  read without it (:class:`TokenStoreError`).
- :meth:`TokenStore.locked` holds a cross-process lock on a location's row (SQLite: an exclusive
  write transaction; PostgreSQL: ``SELECT ... FOR UPDATE``), so that two runs never spend one
  single-use refresh token twice.
- No token value appears in a ``repr`` or an error message.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Select,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)

from sync_ledger.db import metadata, redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Connection

LOGIN_HINT = "run `contacts-admin login` to authorise the app again"
KEYGEN_HINT = "make one with `contacts-admin genkey`"


class TokenStoreError(Exception):
    """The token store cannot be read: encrypted without the right key, or a bad key configured."""


oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    Column("location_id", String(64), primary_key=True),
    Column("access_token", Text, nullable=False),  # Fernet ciphertext when `encrypted`
    Column("refresh_token", Text, nullable=True),  # Fernet ciphertext when `encrypted`
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("scope", Text, nullable=True),
    Column("user_type", String(32), nullable=True),
    Column("company_id", String(64), nullable=True),
    Column("user_id", String(64), nullable=True),
    Column("encrypted", Boolean, nullable=False, default=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def utcnow() -> datetime:
    """Now, in UTC (every stored time is UTC)."""
    return datetime.now(timezone.utc)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class TokenInfo:
    """What is stored for a location, without the token values (readable without the key)."""

    location_id: str
    expires_at: datetime
    updated_at: datetime
    scope: str | None
    user_type: str | None
    company_id: str | None
    user_id: str | None
    encrypted: bool
    has_refresh_token: bool


@dataclass(frozen=True)
class StoredToken:
    """One location's tokens; ``updated_at`` is when they were issued. Its repr hides the tokens."""

    location_id: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    scope: str | None = None
    user_type: str | None = None
    company_id: str | None = None
    user_id: str | None = None
    updated_at: datetime = field(default_factory=utcnow)

    def info(self, *, encrypted: bool) -> TokenInfo:
        """What :meth:`TokenStore.info` would report for these tokens stored so."""
        return TokenInfo(
            self.location_id,
            self.expires_at,
            self.updated_at,
            self.scope,
            self.user_type,
            self.company_id,
            self.user_id,
            encrypted,
            self.refresh_token is not None,
        )


class _Cipher:
    """Fernet encryption of token values; None key means plaintext."""

    def __init__(self, key: str | None) -> None:
        self._fernet: Fernet | None = None
        if key:
            try:
                self._fernet = Fernet(key.strip().encode("ascii"))
            except (ValueError, UnicodeEncodeError) as exc:
                raise TokenStoreError(
                    "token_encryption_key is not a valid Fernet key (32 url-safe base64-encoded "
                    f"bytes): {KEYGEN_HINT}"
                ) from exc

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def encrypt(self, value: str | None) -> str | None:
        if value is None or self._fernet is None:
            return value
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, value: str, *, location_id: str) -> str:
        if self._fernet is None:
            raise TokenStoreError(
                f"The stored tokens for location {location_id} are encrypted: set "
                "token_encryption_key (TARGET_CONTACTS_TOKEN_ENCRYPTION_KEY) to the key used when "
                f"they were stored, or {LOGIN_HINT}."
            )
        try:
            return self._fernet.decrypt(value.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise TokenStoreError(
                f"The stored tokens for location {location_id} cannot be decrypted with the "
                "configured token_encryption_key: set the key used when they were stored, or "
                f"{LOGIN_HINT}."
            ) from None


def row_query(location_id: str, *, for_update: bool = False) -> Select[Any]:
    """The token row of ``location_id``; ``for_update`` locks it.

    PostgreSQL and MySQL render ``FOR UPDATE``; SQLite renders nothing, its lock is the
    ``BEGIN IMMEDIATE`` of :meth:`TokenStore.locked`.
    """
    query = select(oauth_tokens).where(oauth_tokens.c.location_id == location_id)
    return query.with_for_update() if for_update else query


class TokenStore:
    """OAuth tokens per location in the ledger database (table ``oauth_tokens``).

    ``encryption_key`` is a Fernet key; with it the token values are encrypted at rest. The
    SQLite file itself is 0600 (made so by :func:`sync_ledger.db.make_engine`).
    """

    def __init__(self, engine: Engine, *, encryption_key: str | None = None) -> None:
        self.engine = engine
        self._cipher = _Cipher(encryption_key)

    @property
    def encrypted(self) -> bool:
        """Whether this store encrypts what it writes."""
        return self._cipher.enabled

    def info(self, location_id: str) -> TokenInfo | None:
        """What is stored for ``location_id`` without decrypting anything; None when nothing is."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(oauth_tokens).where(oauth_tokens.c.location_id == location_id))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return TokenInfo(
            location_id,
            _aware(row["expires_at"]),
            _aware(row["updated_at"]),
            row["scope"],
            row["user_type"],
            row["company_id"],
            row["user_id"],
            bool(row["encrypted"]),
            row["refresh_token"] is not None,
        )

    def load(self, location_id: str) -> StoredToken | None:
        """The stored tokens of ``location_id``, decrypted; None when nothing is stored.

        Raises :class:`TokenStoreError` when they are encrypted and the key is missing or wrong.
        """
        with self.engine.connect() as conn:
            return self._read(conn, location_id, for_update=False)

    def save(self, token: StoredToken) -> None:
        """Insert or replace the tokens of ``token.location_id`` in one transaction."""
        with self.engine.begin() as conn:
            self._write(conn, token)

    def delete(self, location_id: str) -> bool:
        """Forget ``location_id``'s tokens; True when something was deleted."""
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(oauth_tokens).where(oauth_tokens.c.location_id == location_id)
            )
        return bool(result.rowcount)

    @contextmanager
    def locked(self, location_id: str) -> Iterator[LockedTokens]:
        """Hold the cross-process lock on ``location_id``'s tokens for the ``with`` block.

        The block sees the row as committed by whoever held the lock before; what it saves is
        committed when the block ends without an exception (rolled back otherwise). SQLite: an
        exclusive write transaction (``BEGIN IMMEDIATE``; other writers wait up to the engine's busy
        timeout). PostgreSQL and others: ``SELECT ... FOR UPDATE`` on the row.
        """
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            handle = LockedTokens(
                partial(self._write, conn), self._read(conn, location_id, for_update=True)
            )
            try:
                yield handle
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    # --- rows ------------------------------------------------------------------------------
    def _read(self, conn: Connection, location_id: str, *, for_update: bool) -> StoredToken | None:
        row = conn.execute(row_query(location_id, for_update=for_update)).mappings().first()
        if row is None:
            return None
        access: str = row["access_token"]  # the column is NOT NULL
        refresh: str | None = row["refresh_token"]
        if row["encrypted"]:
            access = self._cipher.decrypt(access, location_id=location_id)
            if refresh is not None:
                refresh = self._cipher.decrypt(refresh, location_id=location_id)
        return StoredToken(
            location_id=location_id,
            access_token=access,
            refresh_token=refresh,
            expires_at=_aware(row["expires_at"]),
            scope=row["scope"],
            user_type=row["user_type"],
            company_id=row["company_id"],
            user_id=row["user_id"],
            updated_at=_aware(row["updated_at"]),
        )

    def _write(self, conn: Connection, token: StoredToken) -> None:
        values = {
            "access_token": self._cipher.encrypt(token.access_token),
            "refresh_token": self._cipher.encrypt(token.refresh_token),
            "expires_at": token.expires_at,
            "scope": token.scope,
            "user_type": token.user_type,
            "company_id": token.company_id,
            "user_id": token.user_id,
            "encrypted": self._cipher.enabled,
            "updated_at": token.updated_at,
        }
        result = conn.execute(
            update(oauth_tokens)
            .where(oauth_tokens.c.location_id == token.location_id)
            .values(**values)
        )
        if not result.rowcount:
            conn.execute(insert(oauth_tokens).values(location_id=token.location_id, **values))

    def __repr__(self) -> str:
        return f"TokenStore({redact_url(str(self.engine.url))!r}, encrypted={self.encrypted})"


class LockedTokens:
    """The token row while :meth:`TokenStore.locked` holds the lock."""

    def __init__(self, write: Callable[[StoredToken], None], token: StoredToken | None) -> None:
        self._write = write
        self.token = token

    def save(self, token: StoredToken) -> None:
        """Write ``token`` in the locked transaction (committed when the ``with`` block ends)."""
        self._write(token)
        self.token = token
