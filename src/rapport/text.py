"""Validated text and contact-value types shared by every schema.

Text is NFC-normalised; control characters, NUL and lone surrogates are refused (PostgreSQL cannot
store NUL and neither database can store half a surrogate pair). Emoji and right-to-left scripts
are valid names and pass; zero-width characters alone do not make a value.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BeforeValidator, StringConstraints

_ZERO_WIDTH = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}
_ALLOWED_CONTROLS = {"\n", "\r", "\t"}


def clean_text(value: str, *, multiline: bool = False) -> str:
    # str.isprintable() is False for every control (Cc) and surrogate (Cs) character, so a printable
    # value needs no per-character look-up (the common case; a bulk import validates millions).
    for ch in () if value.isprintable() else value:
        cat = unicodedata.category(ch)
        if cat == "Cs":
            raise ValueError("contains an invalid (unpaired surrogate) character")
        if cat == "Cc" and not (multiline and ch in _ALLOWED_CONTROLS):
            raise ValueError(f"contains a control character (U+{ord(ch):04X})")
    value = unicodedata.normalize("NFC", value).strip()
    # Only a value whose first character is invisible can be all invisible (strip() leaves no
    # leading space), so the per-character check runs for those alone.
    if value and value[0] in _ZERO_WIDTH and all(ch in _ZERO_WIDTH or ch.isspace() for ch in value):
        raise ValueError("contains only invisible characters")
    return value


def _not_blank(value: str) -> str:
    if not value:
        raise ValueError("must not be blank")
    return value


def _one_line(value: str) -> str:
    return clean_text(value)


def _multi_line(value: str) -> str:
    return clean_text(value, multiline=True)


Line = Annotated[str, StringConstraints(max_length=200), AfterValidator(_one_line)]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_one_line),
    AfterValidator(_not_blank),
]
ShortLine = Annotated[str, StringConstraints(max_length=100), AfterValidator(_one_line)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
LongText = Annotated[str, StringConstraints(max_length=20_000), AfterValidator(_multi_line)]
Tag = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_one_line),
    AfterValidator(_not_blank),
]
SearchText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100),
    AfterValidator(_one_line),
    AfterValidator(_not_blank),
]


def normalise_email(value: str) -> str:
    try:
        result = validate_email(clean_text(value), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return result.normalized.lower()


def normalise_phone(value: str, region: str = "CN") -> str:
    """Any human way of writing a number -> E.164; raises ValueError when it is not a number."""
    raw = clean_text(value)
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("not a valid phone number for its region")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def normalise_national_id(value: str) -> str:
    """An identity document number: upper case without spaces or hyphens.

    An 18-character PRC resident identity number must carry its ISO 7064 MOD 11-2 check
    character; other documents (passports, older 15-digit numbers) need 5-32 letters or digits.
    """
    raw = "".join(ch for ch in clean_text(value).upper() if ch not in " -")
    if not raw.isascii() or not raw.isalnum() or not 5 <= len(raw) <= 32:
        raise ValueError("not an identity document number (5-32 letters or digits)")
    if len(raw) == 18 and raw[:17].isdigit():
        total = sum(int(d) * w for d, w in zip(raw[:17], _ID_WEIGHTS, strict=True))
        if _ID_CHECK[total % 11] != raw[17]:
            raise ValueError("not a valid resident identity number (check character)")
    return raw


def _reject_non_str(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


Email = Annotated[
    str,
    BeforeValidator(_reject_non_str),
    StringConstraints(max_length=320),
    AfterValidator(normalise_email),
]
