"""Data-key versions in the database, sealing of whole rows, rotation and re-encryption.

Which columns are encrypted is declared once, on the columns (``pii(..., protection="encrypted")``);
:func:`sealed_columns` reads it. Every path that writes or reads those columns goes through
:func:`seal_values` / :func:`open_rows` with the row's id, which the ciphertext is bound to.

Code that reads contact_point with its own Core statements (portability, erasure, the privacy
portal, sharing) opens the rows with ``open_rows(session, table, rows)`` or ``Records.open``, and
looks values up by ``crypto.blind_index(kind, normalised)`` against ``value_bidx``, never by
``value_normalized``.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Engine, Table, bindparam, func, insert, inspect, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import TableClause

from rapport.models import Base, EncryptionKey
from rapport.models.base import table_of, utcnow
from rapport.privacy.classification import encrypted_columns
from rapport.security import crypto

KEYS = table_of(EncryptionKey)
ACTIVE, RETIRING, RETIRED = "active", "retiring", "retired"

# Unwrapped data keys by (master key id, version, wrapped bytes): unwrapping may be a KMS call.
_UNWRAPPED: dict[tuple[str, int, bytes], AESGCM] = {}


def _wrap_context(version: int) -> bytes:
    return f"rapport/data-key/{version}".encode()


@dataclass
class Keyring:
    """The key versions of one database, unwrapped."""

    keys: dict[int, AESGCM] = field(default_factory=dict)
    states: dict[int, str] = field(default_factory=dict)
    active: int | None = None
    # Set on a unit's copy of the process cache: a failed open reloads the versions from the
    # database once and retries (a version added by another process, or a stale cache).
    reload: Callable[[], Keyring] | None = field(default=None, repr=False, compare=False)
    fresh: bool = True  # read from the database in this unit (writes need the current active key)

    def aead(self, version: int) -> AESGCM | None:
        return self.keys.get(version)

    def seal(self, table: str, column: str, row_id: int, data: bytes | str | None) -> bytes | None:
        if data is None:
            return None
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if not crypto.encryption_enabled():
            return crypto.plain_bytes(raw)
        if self.active is None:
            raise crypto.CryptoError("no active data key; a write unit creates one")
        return crypto.seal_bytes(self.keys[self.active], self.active, table, column, row_id, raw)

    def seal_many(
        self, table: str, column: str, items: Sequence[tuple[int, str | None]]
    ) -> list[bytes | None]:
        """``seal`` of many (row id, value) pairs of one column, in order."""
        raw = [(row_id, None if data is None else data.encode()) for row_id, data in items]
        if not crypto.encryption_enabled():
            return [None if data is None else crypto.plain_bytes(data) for _, data in raw]
        if self.active is None:
            raise crypto.CryptoError("no active data key; a write unit creates one")
        return crypto.seal_many_bytes(self.keys[self.active], self.active, table, column, raw)

    def open(self, table: str, column: str, row_id: int, blob: bytes | str | None) -> bytes | None:
        if blob is None:
            return None
        try:
            return crypto.open_bytes(
                self.aead, table, column, row_id, blob, allow_plain=not crypto.encryption_enabled()
            )
        except crypto.DecryptionError as exc:
            if self.reload is not None and not isinstance(exc, crypto.PlaintextRefused):
                current, self.reload = self.reload(), None
                self.keys, self.states, self.active, self.fresh = (
                    current.keys,
                    current.states,
                    current.active,
                    True,
                )
                return self.open(table, column, row_id, blob)
            crypto.log.error("field decryption failed: %s", exc.reason)
            raise

    def open_text(self, table: str, column: str, row_id: int, blob: bytes | str | None) -> str | None:
        raw = self.open(table, column, row_id, blob)
        return None if raw is None else raw.decode()


def load_keyring(conn: Connection, provider: crypto.KeyProvider | None = None) -> Keyring:
    provider = provider or crypto.provider()
    ring = Keyring()
    rows = conn.execute(select(KEYS.c.id, KEYS.c.wrapped_key, KEYS.c.master_key_id, KEYS.c.state)).all()
    for version, wrapped, master_id, state in rows:
        if master_id != provider.key_id:
            raise crypto.MasterKeyError(
                f"data key {version} is wrapped by master key {master_id}, this process holds "
                f"{provider.key_id}; set RAPPORT_MASTER_KEY or restore the key file"
            )
        cache_key = (master_id, version, bytes(wrapped))
        aead = _UNWRAPPED.get(cache_key)
        if aead is None:
            aead = _UNWRAPPED[cache_key] = AESGCM(provider.unwrap(bytes(wrapped), _wrap_context(version)))
        ring.keys[version] = aead
        ring.states[version] = state
        if state == ACTIVE:
            ring.active = version
    return ring


def add_key_version(conn: Connection, *, state: str = ACTIVE) -> int:
    """A new random data key, wrapped by the master key; returns its version."""
    top = conn.execute(select(func.max(KEYS.c.id))).scalar()
    version = int(top or 0) + 1
    provider = crypto.provider()
    wrapped = provider.wrap(AESGCM.generate_key(bit_length=256), _wrap_context(version))
    conn.execute(
        insert(KEYS).values(
            id=version, wrapped_key=wrapped, master_key_id=provider.key_id, state=state, created_at=utcnow()
        )
    )
    return version


def _ensure_active(conn: Connection, ring: Keyring) -> Keyring:
    if ring.active is not None or not crypto.encryption_enabled():
        return ring
    if conn.dialect.name == "postgresql":
        # Two first writers must not both create version 1; the loser waits, then sees it.
        conn.execute(text("LOCK TABLE encryption_key IN SHARE ROW EXCLUSIVE MODE"))
        ring = load_keyring(conn)
        if ring.active is not None:
            return ring
    add_key_version(conn)
    return load_keyring(conn)


# Per engine and master key: the versions last read, so a read unit skips the key-table query.
_RINGS: weakref.WeakKeyDictionary[Engine, dict[str, Keyring]] = weakref.WeakKeyDictionary()


def _load_and_cache(conn: Connection) -> Keyring:
    ring = load_keyring(conn)
    _RINGS.setdefault(conn.engine, {})[crypto.provider().key_id] = ring
    return ring


def keyring_for(session: Session | Connection, *, for_write: bool = False) -> Keyring:
    """The keyring of the unit of work.

    Reads start from the process cache and reload only when a value does not open; writes read
    the key table once per unit, so they seal under the version that is active now.
    """
    if not isinstance(session, Session):  # a bare connection outlives units: no memo
        bare = load_keyring(session)
        return _ensure_active(session, bare) if for_write else bare
    info: MutableMapping[str, Any] = session.info
    ring: Keyring | None = info.get("rapport_keyring")
    if ring is None and not for_write:
        conn = session.connection()
        cached = _RINGS.get(conn.engine, {}).get(crypto.provider().key_id)
        if cached is not None:
            ring = info["rapport_keyring"] = Keyring(
                dict(cached.keys),
                dict(cached.states),
                cached.active,
                lambda: _load_and_cache(conn),
                fresh=False,
            )
    if ring is None or (for_write and not ring.fresh):
        ring = info["rapport_keyring"] = _load_and_cache(session.connection())
    if for_write and ring.active is None and crypto.encryption_enabled():
        ring = info["rapport_keyring"] = _ensure_active(session.connection(), ring)
        _RINGS.setdefault(session.connection().engine, {})[crypto.provider().key_id] = ring
    return ring


def forget_keyring(session: Session) -> None:
    session.info.pop("rapport_keyring", None)


# -- rows ------------------------------------------------------------------------------------------


@cache
def sealed_columns(table_name: str) -> tuple[str, ...]:
    table = Base.metadata.tables.get(table_name)
    return encrypted_columns(table) if table is not None else ()


def sealed_tables() -> list[Table]:
    return [t for t in Base.metadata.sorted_tables if sealed_columns(t.name)]


def seal_values(
    session: Session | Connection, table: Table, row_id: int, values: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Encrypt, in place, the sealed columns present in ``values`` for row ``row_id``."""
    columns = [c for c in sealed_columns(table.name) if c in values]
    if not columns:
        return values
    ring = keyring_for(session, for_write=True)
    for c in columns:
        values[c] = ring.seal(table.name, c, row_id, values[c])
    return values


def open_rows(session: Session | Connection, table: Table, rows: Iterable[MutableMapping[str, Any]]) -> None:
    """Decrypt, in place, the sealed columns of ``rows`` (each must carry its ``id``).

    Each column goes through :func:`column_opener`, which decrypts the usual case inline and
    hands anything else to :meth:`Keyring.open_text`.
    """
    openers = [(c, column_opener(session, table, c)) for c in sealed_columns(table.name)]
    for row in rows:
        for c, open_value in openers:
            blob = row.get(c)
            if blob is not None:
                row[c] = open_value(row["id"], blob)


class ColumnOpener:
    """Decrypts one sealed column of ``table``: ``opener(row id, stored value) -> clear text``.

    The usual case (a well-formed sealed value under a held key version) is decrypted inline:
    one AES-GCM call per value with the associated data built from a per-column prefix, the same
    bytes as :func:`crypto.associated_data`. Anything else (a plain value, an unknown version, a
    failed tag, encryption off) goes through :meth:`Keyring.open_text`, which raises or reloads
    the key versions exactly as before; the fast path never accepts what that one would refuse.
    The keyring is looked up on the first value that is not None (a column of NULLs needs none);
    an opener holds per-version AESGCM objects, so it serves one unit of work.
    """

    def __init__(self, session: Session | Connection, table: Table, column: str) -> None:
        self.session = session
        self.table = table.name
        self.column = column
        self.prefix = f"|{table.name}.{column}#".encode()
        self.ring: Keyring | None = None
        self.fast = False
        # Per 5-byte header: the AESGCM of its key version (None: not held, the slow path decides).
        self.aeads: dict[bytes, AESGCM | None] = {}

    def _start(self) -> Keyring:
        if self.ring is None:
            self.ring = keyring_for(self.session)
            self.fast = crypto.encryption_enabled()
        return self.ring

    def _aead(self, header: bytes) -> AESGCM | None:
        if header not in self.aeads:
            self.aeads[header] = self._start().aead(int.from_bytes(header[1:], "big"))
        return self.aeads[header]

    def _slow(self, row_id: Any, blob: Any) -> str | None:
        self.aeads.clear()  # the slow path may reload the key versions
        return self._start().open_text(self.table, self.column, row_id, blob)

    def __call__(self, row_id: Any, blob: Any) -> str | None:
        return self.values(((row_id, blob),), 0, 1)[0]

    def values(self, rows: Iterable[Sequence[Any]], id_at: int, at: int) -> list[str | None]:
        """The clear values of position ``at`` of positional rows whose id is at ``id_at``.

        One loop for the whole batch (a function call per value costs as much as the AES-GCM
        call itself); per value only what the fast path needs.
        """
        out: list[str | None] = []
        append = out.append
        aeads, prefix = self.aeads, self.prefix
        sealed, head, body = crypto.SEALED, crypto.HEADER_LEN, crypto.HEADER_LEN + crypto.NONCE_LEN
        min_len = body + 16  # the GCM tag
        for row in rows:
            blob, row_id = row[at], row[id_at]
            if blob is None:
                append(None)
                continue
            if type(blob) is memoryview:  # PostgreSQL's bytea, depending on the driver
                blob = bytes(blob)
            if type(blob) is bytes and len(blob) >= min_len and blob[0] == sealed and type(row_id) is int:
                if self.ring is None:
                    self._start()
                header = blob[:head]
                aead = aeads.get(header) or self._aead(header)
                if aead is not None and self.fast:
                    try:
                        append(
                            aead.decrypt(
                                blob[head:body], blob[body:], b"%b%b%d" % (header, prefix, row_id)
                            ).decode()
                        )
                        continue
                    except InvalidTag:
                        pass
            append(self._slow(row_id, blob))
        return out


def column_opener(session: Session | Connection, table: Table, column: str) -> ColumnOpener:
    return ColumnOpener(session, table, column)


def allocate_id(conn: Connection, table: Table) -> int:
    """The id the next row of ``table`` will get, known before the insert (the AAD needs it).

    PostgreSQL: the serial sequence. SQLite: max + 1, safe because write units hold the
    database's single-writer lock from BEGIN IMMEDIATE to COMMIT.
    """
    if conn.dialect.name == "postgresql":
        return int(
            conn.execute(
                text("SELECT nextval(pg_get_serial_sequence(:t, 'id'))"), {"t": table.name}
            ).scalar_one()
        )
    return int(conn.execute(select(func.coalesce(func.max(table.c.id), 0) + 1)).scalar_one())


# -- status and rotation ---------------------------------------------------------------------------


def _header_of(version: int) -> bytes:
    return bytes([crypto.SEALED]) + version.to_bytes(4, "big")


def value_counts(conn: Connection) -> dict[str, dict[str, int]]:
    """Per ``table.column``: how many values each key version seals ("plain": unencrypted)."""
    out: dict[str, dict[str, int]] = {}
    for table in sealed_tables():
        for c in sealed_columns(table.name):
            col = table.c[c]
            head = func.substr(col, 1, crypto.HEADER_LEN)
            counts: dict[str, int] = {}
            for prefix, n in conn.execute(
                select(head, func.count()).where(col.is_not(None)).group_by(head)
            ).all():
                version = crypto.key_version_of(bytes(prefix) if not isinstance(prefix, str) else b"")
                name = "plain" if version is None else str(version)
                counts[name] = counts.get(name, 0) + int(n)
            out[f"{table.name}.{c}"] = counts
    return out


def start_rotation(conn: Connection) -> int:
    """A new active key version; the previous active one becomes ``retiring``. Returns it."""
    conn.execute(update(KEYS).where(KEYS.c.state == ACTIVE).values(state=RETIRING))
    return add_key_version(conn)


def rotation_in_progress(conn: Connection) -> bool:
    return conn.execute(select(KEYS.c.id).where(KEYS.c.state == RETIRING).limit(1)).first() is not None


def _stale(table: TableClause, columns: Iterable[str], header: bytes) -> Any:
    """Rows of ``table`` with a sealed value not under the key ``header`` names."""
    return or_(
        *(func.substr(table.c[c], 1, crypto.HEADER_LEN) != bindparam(f"h_{c}", header) for c in columns)
    )


def pending_rows(conn: Connection) -> dict[str, int]:
    """Rows per sealed table still holding a value under another key than the active one."""
    ring = load_keyring(conn)
    out: dict[str, int] = {}
    for table in sealed_tables():
        if ring.active is None:
            out[table.name] = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            continue
        stale = _stale(table, sealed_columns(table.name), _header_of(ring.active))
        out[table.name] = int(conn.execute(select(func.count()).select_from(table).where(stale)).scalar_one())
    return out


def reseal_batch(
    conn: Connection,
    ring: Keyring,
    table: TableClause,
    columns: tuple[str, ...],
    after_id: int,
    limit: int,
    *,
    legacy: bool = False,
) -> tuple[int, int]:
    """Re-seal under the active key up to ``limit`` rows after ``after_id`` that are not under it.

    Plain-marked values (stored while encryption was off) are sealed the same way; ``legacy``:
    the values predate encryption (migration 0004) and are raw plaintext. Returns (rows changed,
    last id seen); (0, after_id) when none is left.
    """
    if ring.active is None:
        raise crypto.CryptoError("no active data key")
    header = _header_of(ring.active)
    stmt = (
        select(table.c.id, *(table.c[c] for c in columns))
        .where(table.c.id > after_id, _stale(table, columns, header))
        .order_by(table.c.id)
        .limit(limit)
    )
    rows = conn.execute(stmt, {f"h_{c}": header for c in columns}).all()
    if not rows:
        return 0, after_id
    updates = []
    for row in rows:
        rid = int(row[0])
        values: dict[str, Any] = {"b_id": rid}
        for i, c in enumerate(columns, start=1):
            plain = raw_plaintext(row[i]) if legacy else open_stored(ring, table.name, c, rid, row[i])
            values[c] = ring.seal(table.name, c, rid, plain)
        updates.append(values)
    conn.execute(
        update(table).where(table.c.id == bindparam("b_id")).values({c: bindparam(c) for c in columns}),
        updates,
    )
    return len(rows), int(rows[-1][0])


@dataclass(frozen=True)
class Batch:
    table: str
    rows: int
    last_id: int


def reencrypt_batches(unit: Callable[[], Any], *, batch_size: int = 500) -> Iterator[Batch]:
    """Re-seal every value not under the active key, ``batch_size`` rows per committed unit.

    ``unit`` opens a write unit of work (a context manager yielding a Session that commits on
    exit), so an interruption loses at most one batch and a rerun continues where it stopped:
    rows already under the active key are skipped by the query itself. Readers keep decrypting
    meanwhile, because the retiring key stays in the keyring. Yields after each committed batch.
    """
    for table in sealed_tables():
        columns = sealed_columns(table.name)
        last = 0
        while True:
            with unit() as session:
                forget_keyring(session)
                ring = keyring_for(session, for_write=True)
                n, last = reseal_batch(session.connection(), ring, table, columns, last, batch_size)
            if n == 0:
                break
            yield Batch(table.name, n, last)


def raw_plaintext(value: Any) -> bytes | None:
    """A value written before encryption existed: its bytes, whatever they start with."""
    if value is None:
        return None
    return value.encode() if isinstance(value, str) else bytes(value)


def open_stored(ring: Keyring, table: str, column: str, row_id: int, value: Any) -> bytes | None:
    """Plaintext of a sealed or plain-marked value, whether or not encryption is on now
    (rotation, and encrypting what was stored while encryption was off)."""
    if value is None:
        return None
    blob = bytes(value) if not isinstance(value, str) else value.encode()
    if blob[:1] == bytes([crypto.PLAIN]):
        return blob[1:]
    return ring.open(table, column, row_id, blob)


def finish_rotation(conn: Connection) -> list[int]:
    """Mark ``retiring`` versions ``retired`` once no value is left under them; returns them."""
    if any(pending_rows(conn).values()):
        return []
    versions = [int(v) for v in conn.execute(select(KEYS.c.id).where(KEYS.c.state == RETIRING)).scalars()]
    if versions:
        conn.execute(update(KEYS).where(KEYS.c.id.in_(versions)).values(state=RETIRED, retired_at=utcnow()))
    return versions


def key_versions(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(KEYS.c.id, KEYS.c.state, KEYS.c.master_key_id, KEYS.c.created_at, KEYS.c.retired_at).order_by(
            KEYS.c.id
        )
    ).mappings()
    out = []
    for r in rows:
        item = dict(r)
        for k in ("created_at", "retired_at"):
            if isinstance(item[k], dt.datetime):
                item[k] = item[k].isoformat()
        out.append(item)
    return out


def scrub_after_first_encryption(engine: Engine) -> list[str]:
    """Rewrite the sealed tables so no dead plaintext row version survives in their files.

    Migration 0004 encrypts existing rows in place. SQLite zeroes the old pages itself (the
    migration turns on secure_delete); PostgreSQL keeps the old tuple versions in the heap until
    the table is rewritten, which cannot happen in the migration's own transaction. Returns the
    tables rewritten.
    """
    if engine.dialect.name != "postgresql":
        return []
    names = [t.name for t in sealed_tables()]
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text(f"VACUUM FULL {', '.join(names)}"))
    return names


def has_key_table(engine: Engine) -> bool:
    return KEYS.name in inspect(engine).get_table_names()


def rewrap(conn: Connection, old: crypto.KeyProvider, new: crypto.KeyProvider) -> tuple[int, int]:
    """Change the master key: every data key re-wrapped under ``new``, and, because the blind-index
    key derives from the master key, every ``value_bidx`` recomputed. One transaction: run it with
    the servers stopped, then start them with the new master key. Returns (keys, digests).

    The data keys themselves do not change, so no value is re-encrypted.
    """
    keys = 0
    rows = conn.execute(select(KEYS.c.id, KEYS.c.wrapped_key, KEYS.c.master_key_id)).all()
    for version, wrapped, master_id in rows:
        if master_id == new.key_id:
            continue
        if master_id != old.key_id:
            raise crypto.MasterKeyError(f"data key {version} is wrapped by {master_id}, neither key given")
        data_key = old.unwrap(bytes(wrapped), _wrap_context(version))
        conn.execute(
            update(KEYS)
            .where(KEYS.c.id == version)
            .values(wrapped_key=new.wrap(data_key, _wrap_context(version)), master_key_id=new.key_id)
        )
        keys += 1
    ring = load_keyring(conn, new)
    index_mac = crypto.index_mac(new)
    cp = Base.metadata.tables["contact_point"]
    digests, last = 0, 0
    while True:
        batch = conn.execute(
            select(cp.c.id, cp.c.kind, cp.c.value_normalized)
            .where(cp.c.id > last)
            .order_by(cp.c.id)
            .limit(1000)
        ).all()
        if not batch:
            break
        conn.execute(
            update(cp).where(cp.c.id == bindparam("b_id")).values(value_bidx=bindparam("b")),
            [
                {
                    "b_id": r.id,
                    "b": crypto.blind_index_with(
                        index_mac,
                        r.kind,
                        (
                            open_stored(ring, "contact_point", "value_normalized", r.id, r.value_normalized)
                            or b""
                        ).decode(),
                    ),
                }
                for r in batch
            ],
        )
        digests += len(batch)
        last = batch[-1].id
    return keys, digests
