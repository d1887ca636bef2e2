"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 256  # argon2 is deliberately slow; unbounded input would be a cheap DoS.

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters

# Words that make up most leaked passwords; a password built from them is refused outright.
_WEAK_WORDS = (
    "password",
    "passw0rd",
    "qwerty",
    "asdfgh",
    "zxcvbn",
    "letmein",
    "welcome",
    "admin",
    "iloveyou",
    "monkey",
    "dragon",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "master",
    "shadow",
    "superman",
    "trustno1",
    "abc123",
    "woaini",
    "changeme",
    "rapport",
    "secret",
)
_SEQUENCES = (
    "0123456789",
    "9876543210",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
)


def policy_problems(password: str, username: str | None = None) -> list[str]:
    """Reasons the password is refused; empty when it is acceptable."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        problems.append(f"must be at most {MAX_LENGTH} characters long")
    lowered = password.lower()
    core = lowered.rstrip("0123456789!@#$%^&*.?-_ ")
    letters = "".join(ch for ch in lowered if ch.isalpha())
    if len(set(password)) <= 2:
        problems.append("uses too few different characters")
    if any(lowered in seq or (len(core) >= 4 and core in seq) for seq in _SEQUENCES):
        problems.append("is a keyboard or alphabet sequence")
    if letters and any(letters.replace(w, "") == "" for w in _WEAK_WORDS):
        problems.append("is too common")
    if username and len(username) >= 3 and username.lower() in lowered:
        problems.append("must not contain the username")
    return problems


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash or len(password) > MAX_LENGTH:
        # Spend comparable time so response timing does not reveal whether the user exists.
        _hasher.hash("timing-equaliser")
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
