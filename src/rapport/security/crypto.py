"""Field encryption at rest: AES-256-GCM under versioned data keys, wrapped by a master key.

Envelope encryption. The master key never enters the database: it is ``RAPPORT_MASTER_KEY`` or
the file ``<data dir>/master.key`` (created on first use with mode 0600), reached through a
:class:`KeyProvider` so a KMS or HSM can take its place. Data keys are random 256-bit keys, one per
key version, stored only wrapped by the master key in the ``encryption_key`` table
(:mod:`rapport.security.keyring`).

A stored value (a *sealed* value) is::

    0xE1 | key version (4 bytes, big-endian) | nonce (12 bytes) | AES-GCM ciphertext and tag

and its associated data is the 5-byte header plus ``table.column#row-id``: a value copied into
another row, another column or another table fails authentication, as does any flipped bit.
Failures raise :class:`DecryptionError` (a 500 problem that names nothing about the value).

Exact-match lookups use a *blind index*: HMAC-SHA256 of ``kind NUL normalised value`` under a key
derived from the master key (separate from every data key), truncated to 128 bits, hex.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rapport.errors import RapportError

log = logging.getLogger("rapport.crypto")

SEALED = 0xE1  # first byte of a ciphertext
PLAIN = 0x50  # "P": first byte of a value stored unencrypted (RAPPORT_FIELD_ENCRYPTION=off only)
HEADER_LEN = 5
NONCE_LEN = 12
KEY_LEN = 32
BLIND_INDEX_BYTES = 16
BLIND_INDEX_LABEL = "blind-index/v1"  # a new label is a new blind-index key (see README)


# -- errors ----------------------------------------------------------------------------------------


class CryptoError(RapportError):
    """Key material or stored ciphertext is unusable. Always a 500: nothing the client did."""

    status, slug, title = 500, "stored-data-unreadable", "Stored data could not be read"
    public = "A stored value could not be decrypted; quote the request id when reporting it."

    def __init__(self, reason: str | None = None) -> None:
        # The client learns only that it failed (``detail``); operators get ``reason`` in the log.
        super().__init__(self.public)
        self.reason = reason or self.title
        self.args = (self.reason,)


class DecryptionError(CryptoError):
    """A sealed value failed authentication: tampered, moved to another row, or garbage."""


class TamperedCiphertext(DecryptionError):
    """The tag did not verify: a changed bit, or a value swapped in from another row/column."""


class UnknownKeyVersion(DecryptionError):
    """The value names a key version this database does not hold."""


class PlaintextRefused(DecryptionError):
    """An unencrypted value where encryption is on (legacy row not yet encrypted, or planted)."""


class MasterKeyError(CryptoError):
    """The master key is missing, malformed or readable by others."""

    public = "Field encryption is not configured correctly; quote the request id when reporting it."


# -- the master key --------------------------------------------------------------------------------


@runtime_checkable
class KeyProvider(Protocol):
    """Holds the master key outside the database. Implement this to use a KMS or an HSM."""

    @property
    def key_id(self) -> str:
        """Public identifier of the master key, stored next to each wrapped data key."""
        ...

    def wrap(self, data_key: bytes, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes: ...

    def derive(self, label: str) -> bytes:
        """A 32-byte key for ``label`` (the blind-index key), stable for this master key."""
        ...


class LocalKeyProvider:
    """A 256-bit master key held in this process (from a file or the environment)."""

    def __init__(self, master: bytes) -> None:
        if len(master) != KEY_LEN:
            raise MasterKeyError(f"the master key must be {KEY_LEN} bytes, not {len(master)}")
        self._aead = AESGCM(master)
        self._master = master
        self._key_id = "local:" + hashlib.sha256(b"rapport master key id\0" + master).hexdigest()[:16]

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        return nonce + self._aead.encrypt(nonce, data_key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:NONCE_LEN], wrapped[NONCE_LEN:], context)
        except InvalidTag:
            raise MasterKeyError("a data key does not unwrap under this master key") from None

    def derive(self, label: str) -> bytes:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=None, info=b"rapport/" + label.encode())
        return hkdf.derive(self._master)


def parse_master_key(text: str) -> bytes:
    """64 hex digits or URL-safe base64 of 32 bytes."""
    text = text.strip()
    try:
        if len(text) == 2 * KEY_LEN:
            return bytes.fromhex(text)
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        raise MasterKeyError("the master key is neither 64 hex digits nor base64 of 32 bytes") from None
    if len(raw) != KEY_LEN:
        raise MasterKeyError("the master key is neither 64 hex digits nor base64 of 32 bytes")
    return raw


def master_key_file(path: Path) -> bytes:
    """Read the key file, creating it (0600, exclusively) on first use; refuse loose permissions."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole to a private temporary file, then linked into place: a concurrent
        # process (another server worker) either wins the link or reads the complete winner.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.urlsafe_b64encode(secrets.token_bytes(KEY_LEN)).decode().rstrip("=") + "\n")
            f.flush()
            os.fsync(f.fileno())  # data sealed under a key lost in a power cut is lost for good
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first; use theirs
        else:
            log.warning("created a new master key at %s: back it up, without it the data is lost", path)
        finally:
            tmp.unlink()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise MasterKeyError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    return parse_master_key(path.read_text())


# -- process configuration -------------------------------------------------------------------------


class _Config:
    provider: KeyProvider | None = None
    enabled: bool = True
    factory: Callable[[], tuple[KeyProvider, bool]] | None = None
    index_mac: hmac.HMAC | None = None  # keyed once; each digest works on a copy


_config = _Config()


def configure(provider: KeyProvider, *, enabled: bool = True) -> None:
    """Install the key provider for this process (the app, the CLI and tests call this)."""
    _config.provider = provider
    _config.enabled = enabled
    _config.index_mac = None


def configure_from_settings(settings: object) -> None:
    """Provider from ``RAPPORT_MASTER_KEY`` or the key file in the data dir; lazy until first use."""

    def make() -> tuple[KeyProvider, bool]:
        from rapport.config import Settings

        assert isinstance(settings, Settings)
        if settings.master_key:
            master = parse_master_key(settings.master_key.get_secret_value())
        else:
            master = master_key_file(settings.data_dir / "master.key")
        return LocalKeyProvider(master), settings.field_encryption

    _config.provider = None
    _config.index_mac = None
    _config.factory = make


def provider() -> KeyProvider:
    if _config.provider is None:
        if _config.factory is None:
            from rapport.config import get_settings

            configure_from_settings(get_settings())
        assert _config.factory is not None
        _config.provider, _config.enabled = _config.factory()
    return _config.provider


def encryption_enabled() -> bool:
    provider()
    return _config.enabled


def set_enabled(enabled: bool) -> None:
    """RAPPORT_FIELD_ENCRYPTION=off, for benchmarks comparing the cost; never in production."""
    provider()
    _config.enabled = enabled


# -- sealing values --------------------------------------------------------------------------------


def associated_data(header: bytes, table: str, column: str, row_id: int | str) -> bytes:
    return header + f"|{table}.{column}#{row_id}".encode()


def seal_bytes(aead: AESGCM, version: int, table: str, column: str, row_id: int | str, data: bytes) -> bytes:
    header = bytes([SEALED]) + version.to_bytes(4, "big")
    nonce = os.urandom(NONCE_LEN)
    return header + nonce + aead.encrypt(nonce, data, associated_data(header, table, column, row_id))


def seal_many_bytes(
    aead: AESGCM, version: int, table: str, column: str, items: Sequence[tuple[int, bytes | None]]
) -> list[bytes | None]:
    """``seal_bytes`` of many values of one column (None stays None), for bulk writes.

    The same format, nonce size and associated data as one ``seal_bytes`` per value; the nonces
    come from one ``os.urandom`` call instead of one each (the same random source, one system call).
    """
    header = bytes([SEALED]) + version.to_bytes(4, "big")
    pool = os.urandom(NONCE_LEN * len(items))
    prefix = associated_data(header, table, column, "")
    encrypt = aead.encrypt
    out: list[bytes | None] = []
    for i, (row_id, data) in enumerate(items):
        if data is None:
            out.append(None)
            continue
        nonce = pool[i * NONCE_LEN : (i + 1) * NONCE_LEN]
        out.append(header + nonce + encrypt(nonce, data, prefix + str(row_id).encode()))
    return out


def plain_bytes(data: bytes) -> bytes:
    return bytes([PLAIN]) + data


def key_version_of(blob: bytes) -> int | None:
    """The key version a stored value is sealed under; None for an unencrypted value."""
    if len(blob) >= HEADER_LEN and blob[0] == SEALED:
        return int.from_bytes(blob[1:HEADER_LEN], "big")
    return None


def open_bytes(
    keys: Callable[[int], AESGCM | None],
    table: str,
    column: str,
    row_id: int | str,
    blob: bytes | str,
    *,
    allow_plain: bool,
) -> bytes:
    where = f"{table}.{column} row {row_id}"
    if isinstance(blob, str) or (blob and blob[0] == PLAIN):
        if not allow_plain:
            raise PlaintextRefused(f"{where}: unencrypted value while field encryption is on")
        return blob.encode() if isinstance(blob, str) else bytes(blob[1:])
    blob = bytes(blob)
    if len(blob) < HEADER_LEN + NONCE_LEN + 16 or blob[0] != SEALED:
        raise TamperedCiphertext(f"{where}: not a sealed value")
    version = int.from_bytes(blob[1:HEADER_LEN], "big")
    aead = keys(version)
    if aead is None:
        raise UnknownKeyVersion(f"{where}: sealed under key version {version}, which is not held")
    header = blob[:HEADER_LEN]
    nonce = blob[HEADER_LEN : HEADER_LEN + NONCE_LEN]
    try:
        return aead.decrypt(
            nonce, blob[HEADER_LEN + NONCE_LEN :], associated_data(header, table, column, row_id)
        )
    except InvalidTag:
        raise TamperedCiphertext(
            f"{where}: authentication failed (value altered or moved from another row)"
        ) from None


# -- blind index -----------------------------------------------------------------------------------


def blind_index(kind: str, normalized_value: str) -> str:
    """Keyed HMAC-SHA256 of ``kind`` and the normalised value, truncated to 128 bits, as hex.

    Equal inputs give equal outputs under one master key, so an indexed column of these answers
    exact-match lookups and duplicate detection without storing the value; without the key the
    digest cannot be recomputed from a guessed phone number.
    """
    keyed = _config.index_mac
    if keyed is None:
        keyed = _config.index_mac = index_mac(provider())
    return blind_index_with(keyed, kind, normalized_value)


def blind_index_key() -> bytes:
    """The blind-index key of this process, for a helper process it starts (``use_blind_index_key``)."""
    return provider().derive(BLIND_INDEX_LABEL)


def use_blind_index_key(key: bytes) -> None:
    """In a helper process: compute blind indexes under ``key`` (from its parent's ``blind_index_key``)
    without a key provider of its own."""
    _config.index_mac = hmac.new(key, digestmod=hashlib.sha256)


def index_mac(key_provider: KeyProvider) -> hmac.HMAC:
    """The blind-index HMAC keyed for ``key_provider``'s master key (copy it per digest)."""
    return hmac.new(key_provider.derive(BLIND_INDEX_LABEL), digestmod=hashlib.sha256)


def blind_index_with(keyed: hmac.HMAC, kind: str, normalized_value: str) -> str:
    mac = keyed.copy()
    mac.update(kind.encode() + b"\0" + normalized_value.encode())
    return mac.digest()[:BLIND_INDEX_BYTES].hex()
