"""Two-factor authentication: TOTP (RFC 6238) with single-use recovery codes.

Codes are six digits, 30-second steps, SHA-1 (what every authenticator app speaks); one step of
clock drift either way is accepted. A code is accepted at most once: the highest accepted step is
stored and any code of that step or an earlier one is refused, so a code seen over a shoulder or
in a log cannot be replayed within its window. Recovery codes are stored as argon2 hashes and
spent on use. Secrets are sealed with AES-GCM under a key derived from the server secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from rapport.errors import Conflict, NotAuthenticated, RapportError
from rapport.models import AuthToken, RecoveryCode, RoleMfaRequirement, UserTotp
from rapport.models.base import utcnow

# Recovery codes carry ~50 bits of randomness (unlike passwords), so a lighter argon2id cost
# still makes offline guessing hopeless while ten of them hash in well under a second.
_code_hasher = PasswordHasher(time_cost=2, memory_cost=16 * 1024, parallelism=1)


def _hash_code(code: str) -> str:
    return _code_hasher.hash(code)


def _verify_code(stored: str, code: str) -> bool:
    try:
        return _code_hasher.verify(stored, code)
    except (VerificationError, InvalidHashError):
        return False


DIGITS = 6
STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODES = 10
ISSUER = "Rapport"
RESTRICTION_ENROL = "mfa_enrol"

# Tests freeze the clock here.
clock = time.time


class MfaRequired(NotAuthenticated):
    slug, title = "mfa-required", "Second factor required"


class MfaInvalid(NotAuthenticated):
    slug, title = "mfa-invalid", "Wrong or reused second-factor code"


class MfaEnrolmentRequired(RapportError):
    status, slug, title = 403, "mfa-enrolment-required", "Two-factor enrolment required"


# -- sealing the secret ----------------------------------------------------------------------
# Sealed under a key derived from the secret key, not the field-encryption keyring: moving TOTP
# secrets under the keyring (rotation, KMS) is left for later (README, security).


def _key(server_secret: str) -> bytes:
    return hmac.new(server_secret.encode(), b"rapport totp seal v1", hashlib.sha256).digest()


def seal(secret_b32: str, server_secret: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_key(server_secret)).encrypt(nonce, secret_b32.encode(), b"user_totp")
    return "v1:" + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(stored: str, server_secret: str) -> str:
    raw = base64.urlsafe_b64decode(stored.removeprefix("v1:"))
    return AESGCM(_key(server_secret)).decrypt(raw[:12], raw[12:], b"user_totp").decode()


# -- TOTP ------------------------------------------------------------------------------------


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode()


def _totp(secret_b32: str) -> TOTP:
    return TOTP(base64.b32decode(secret_b32), DIGITS, SHA1(), STEP_SECONDS, enforce_key_length=False)  # noqa: S303 (RFC 6238)


def code_at(secret_b32: str, at: float) -> str:
    return _totp(secret_b32).generate(int(at)).decode()


def provisioning_uri(secret_b32: str, account: str) -> str:
    label = quote(f"{ISSUER}:{account}", safe="")
    return (
        f"otpauth://totp/{label}?secret={secret_b32}&issuer={quote(ISSUER)}"
        f"&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}"
    )


def matching_step(secret_b32: str, code: str, at: float) -> int | None:
    """The time step whose code equals ``code`` (within the drift), or None."""
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = _totp(secret_b32)
    now_step = int(at) // STEP_SECONDS
    found = None
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        try:
            totp.verify(code.encode(), step * STEP_SECONDS)
        except InvalidToken:
            continue
        found = step  # no early exit: the same work whether or not a code matches
    return found


# -- recovery codes --------------------------------------------------------------------------

_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def _recovery_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def _normalise_recovery(code: str) -> str:
    raw = code.strip().lower().replace(" ", "").replace("-", "")
    return f"{raw[:5]}-{raw[5:]}" if len(raw) == 10 else raw


def new_recovery_codes(session: Session, user_id: int) -> list[str]:
    """Replace the user's recovery codes; the clear codes are returned once and never stored."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
    session.execute(
        insert(RecoveryCode),
        [{"user_id": user_id, "code_hash": _hash_code(c), "created_at": utcnow()} for c in codes],
    )
    return codes


def _spend_recovery_code(session: Session, user_id: int, code: str) -> bool:
    code = _normalise_recovery(code)
    if len(code) != 11:
        return False
    rows = session.execute(
        select(RecoveryCode.id, RecoveryCode.code_hash).where(
            RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
        )
    ).all()
    for row in rows:
        if _verify_code(row.code_hash, code):
            spent = session.execute(
                update(RecoveryCode)
                .where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
                .values(used_at=utcnow())
            ).rowcount  # type: ignore[attr-defined]
            return bool(spent)
    return False


# -- state -----------------------------------------------------------------------------------


def enrolled(session: Session, user_id: int) -> bool:
    return (
        session.execute(
            select(UserTotp.user_id).where(UserTotp.user_id == user_id, UserTotp.confirmed_at.is_not(None))
        ).first()
        is not None
    )


def role_requires_mfa(session: Session, role: str) -> bool:
    return bool(
        session.execute(select(RoleMfaRequirement.required).where(RoleMfaRequirement.role == role)).scalar()
    )


def set_role_requirement(session: Session, role: str, required: bool) -> None:
    done = session.execute(
        update(RoleMfaRequirement)
        .where(RoleMfaRequirement.role == role)
        .values(required=required, updated_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    if not done:
        session.execute(insert(RoleMfaRequirement).values(role=role, required=required, updated_at=utcnow()))


def role_requirements(session: Session) -> dict[str, bool]:
    return {r.role: r.required for r in session.execute(select(RoleMfaRequirement)).scalars()}


def begin_enrolment(session: Session, user_id: int, username: str, server_secret: str) -> tuple[str, str]:
    """A fresh secret (replacing an unconfirmed one); returns (secret, otpauth URI), shown once."""
    if enrolled(session, user_id):
        raise Conflict("two-factor authentication is already on; turn it off first to re-enrol")
    secret = new_secret()
    session.execute(delete(UserTotp).where(UserTotp.user_id == user_id))
    session.execute(
        insert(UserTotp).values(
            user_id=user_id, secret=seal(secret, server_secret), last_step=0, created_at=utcnow()
        )
    )
    return secret, provisioning_uri(secret, username)


def pending_secret(session: Session, user_id: int, server_secret: str) -> str | None:
    """The secret of an enrolment started but not confirmed yet (to show it again after a wrong
    code); None when there is none."""
    row = session.execute(
        select(UserTotp.secret).where(UserTotp.user_id == user_id, UserTotp.confirmed_at.is_(None))
    ).scalar_one_or_none()
    return None if row is None else unseal(row, server_secret)


def confirm_enrolment(session: Session, user_id: int, code: str, server_secret: str) -> list[str]:
    """Switch 2FA on once a code from the new secret matches; returns the recovery codes."""
    row = session.execute(select(UserTotp).where(UserTotp.user_id == user_id)).scalar_one_or_none()
    if row is None or row.confirmed_at is not None:
        raise Conflict("no enrolment in progress; start one with POST /auth/2fa/enrol")
    step = matching_step(unseal(row.secret, server_secret), code, clock())
    if step is None:
        raise MfaInvalid("the code does not match; check the device clock and try the next code")
    row.confirmed_at = utcnow()
    row.last_step = step
    # Sessions limited to enrolment end here: the person logs in again with the second factor.
    session.execute(
        update(AuthToken)
        .where(
            AuthToken.user_id == user_id,
            AuthToken.restriction == RESTRICTION_ENROL,
            AuthToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    return new_recovery_codes(session, user_id)


def disable(session: Session, user_id: int) -> None:
    session.execute(delete(UserTotp).where(UserTotp.user_id == user_id))
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))


def verify_second_factor(session: Session, user_id: int, code: str, server_secret: str) -> str | None:
    """Accept a TOTP code (once) or a recovery code (once); returns "totp", "recovery" or None."""
    row = session.execute(
        select(UserTotp.secret, UserTotp.last_step).where(
            UserTotp.user_id == user_id, UserTotp.confirmed_at.is_not(None)
        )
    ).first()
    if row is None:
        return None
    code = code.strip().replace(" ", "")
    if len(code) == DIGITS and code.isdigit():
        step = matching_step(unseal(row.secret, server_secret), code, clock())
        if step is None or step <= row.last_step:
            return None
        # Conditional: of two concurrent logins with one code, exactly one wins.
        won = session.execute(
            update(UserTotp)
            .where(UserTotp.user_id == user_id, UserTotp.last_step < step)
            .values(last_step=step)
        ).rowcount  # type: ignore[attr-defined]
        return "totp" if won else None
    return "recovery" if _spend_recovery_code(session, user_id, code) else None


def remaining_recovery_codes(session: Session, user_id: int) -> int:
    return len(
        session.execute(
            select(RecoveryCode.id).where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        ).all()
    )
