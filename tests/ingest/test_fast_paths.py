"""The import's fast paths give exactly what the full paths give, value or refusal.

Each test runs both on thousands of generated values, including the edge cases a fast path must
hand over (full-width digits, other whitespace, control and format characters, special top-level
domains, non-mobile numbers) and compares outcome by outcome. A fast path that answered differently
for any of them fails here.
"""

from __future__ import annotations

import random
import sys
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest

from rapport.customers import search
from rapport.ingest import normalise as norm
from rapport.ingest import service
from rapport.ingest.service import fast_email, fast_phone
from rapport.text import clean_text

_ZERO_WIDTH = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}


def _clean_text_reference(value: str, *, multiline: bool = False) -> str:
    """rapport.text.clean_text as it was before its fast path (one category look-up per character)."""
    for ch in value:
        cat = unicodedata.category(ch)
        if cat == "Cs":
            raise ValueError("contains an invalid (unpaired surrogate) character")
        if cat == "Cc" and not (multiline and ch in {"\n", "\r", "\t"}):
            raise ValueError(f"contains a control character (U+{ord(ch):04X})")
    value = unicodedata.normalize("NFC", value).strip()
    if value and all(ch in _ZERO_WIDTH or ch.isspace() for ch in value):
        raise ValueError("contains only invisible characters")
    return value


def _fold_reference(text: str) -> str:
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        if ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) not in ("Cc", "Cf", "Cs"):
            out.append(ch)
    return " ".join("".join(out).split())


def _contact_like_reference(term: str) -> bool:
    return "@" in term or sum(ch.isdigit() for ch in term) >= 5


def _outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn(*args, **kwargs))
    except norm.NormaliseError as exc:
        return ("refused", exc.reason)
    except ValueError as exc:
        return ("refused", str(exc))


def _characters() -> list[str]:
    """Every assigned plane's characters (BMP, SMP, SIP, tags, private use edges, the last)."""
    points = [*range(0x30000), *range(0xE0000, 0xE1000), 0xF0000, 0xFFFFD, 0x100000, sys.maxunicode]
    return [chr(c) for c in points]


def test_clean_text_and_fold_agree_with_the_reference_on_each_character() -> None:
    for ch in _characters():
        value = f"a{ch} b"
        for multiline in (False, True):
            assert _outcome(clean_text, value, multiline=multiline) == _outcome(
                _clean_text_reference, value, multiline=multiline
            ), repr(value)
        assert norm._fold(value) == _fold_reference(value), repr(value)
        assert _outcome(clean_text, ch) == _outcome(_clean_text_reference, ch), repr(ch)


def test_clean_text_fold_and_contact_like_agree_on_generated_text() -> None:
    rng = random.Random(11)
    alphabet = (
        "王小明李 ab@.-_+1２３４5６7８9０\t\n\r\u3000\u00a0\u200b\u200d\ufeff\u0301é\u2028\x00\x1f\x85"
        "\ud800ｘＡ＠．。﹫①²"
    )
    for _ in range(20_000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        for multiline in (False, True):
            assert _outcome(clean_text, value, multiline=multiline) == _outcome(
                _clean_text_reference, value, multiline=multiline
            ), repr(value)
        assert norm._fold(value) == _fold_reference(value), repr(value)
        assert search._contact_like(value) == _contact_like_reference(value), repr(value)


PREFIXES = ["130", "133", "138", "145", "150", "166", "170", "176", "189", "191", "199", "120", "100", "112"]


def _phones(rng: random.Random) -> list[str]:
    out = [
        "",
        " ",
        "12345",
        "+86",
        "86",
        "0086",
        "+8613812345678",
        "8613812345678",
        "008613812345678",
        "+86 138 1234 5678",
        "+86-138-1234-5678",
        "(+86) 13812345678",
        "+1 415 555 2671",
        "010-12345678",
        "+852 9123 4567",
        "13812345678 ext 12",
        "13812345678#3",
        "１３８１２３４５６７８",
        "138１2345678",
        "138\u300012345678",
        "138\u00a012345678",
        "+８６13812345678",
        "138-1234-5678\n",
        "\u200b13812345678",
        "138123456789",
        "1381234567",
        "138 12345 678",
        "138--1234-5678",
        "+86 +86 13812345678",
        "8686 13812345678",
    ]
    for _ in range(4000):
        number = f"{rng.choice(PREFIXES)}{rng.randrange(10**8):08d}"
        head = rng.choice(["", "", "+86", "86", "0086", "+86 ", "+86-", "86-", "0086 ", "+ 86", "(86)"])
        sep = rng.choice(["", "", " ", "-", "  ", "--", ".", "\t"])
        body = rng.choice(
            [
                number,
                f"{number[:3]}{sep}{number[3:7]}{sep}{number[7:]}",
                f"{number[:3]}{sep}{number[3:]}",
                number[:-1],
                number + str(rng.randrange(10)),
            ]
        )
        out.append(rng.choice(["", " ", "\t"]) + head + body + rng.choice(["", " ", "\n"]))
    return out


def test_fast_phone_gives_what_the_full_normaliser_gives() -> None:
    rng = random.Random(5)
    values = _phones(rng)
    for value in values:
        for region in ("CN", "US"):
            assert _outcome(fast_phone, value, region) == _outcome(norm.phone, value, region), repr(value)
    # The comparison covers the fast path itself, not only cells it hands over.
    assert sum(bool(service._CN_MOBILE.match(v.strip())) for v in values) > 1000


def _emails(rng: random.Random) -> list[str]:
    out = [
        "",
        "a@b.co",
        "A.B@Example.COM",
        "user+tag@example.com",
        "user@localhost",
        "user@example.test",
        "user@example.local",
        "user@example.onion",
        "user@example.invalid",
        "user@-example.com",
        "user@example-.com",
        "user@exa_mple.com",
        "user.@example.com",
        ".user@example.com",
        "us..er@example.com",
        "user@example.c",
        "user@example.123",
        "user@123.123.123.123",
        "user@[127.0.0.1]",
        '"quoted"@example.com',
        "not-an-email@",
        "@example.com",
        "user@@example.com",
        "ｕｓｅｒ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        "user@例子.公司",
        "用户@example.com",
        "user@example。com",
        "mailto:user@example.com",
        " user@example.com ",
        "user @example.com",
        "x" * 64 + "@example.com",
        "x" * 65 + "@example.com",
        "u@" + "a" * 63 + ".com",
        "u@" + "a" * 64 + ".com",
        "u@" + ".".join(["abcdefghij"] * 24) + ".com",
        "user%x@example.com",
        "user_x@example.com",
        "user-x@ex-ample.com.cn",
        "u@e.xn--fiqs8s",
    ]
    local = "abcxyzABC019._%+-'!#$&*=?^`{|}~"
    domain = "abcxyz019-."
    for i in range(4000):
        name = "".join(rng.choice(local) for _ in range(rng.randrange(1, 12)))
        host = "".join(rng.choice(domain) for _ in range(rng.randrange(1, 12)))
        tld = rng.choice(["com", "cn", "COM", "io", "x", "test", "local", "c0m", "museum", "中国"])
        out.append(f"{name}@{host}.{tld}")
        out.append(f"u{i}.{rng.randrange(1000)}@example.com")
    return out


def test_fast_email_gives_what_the_full_normaliser_gives() -> None:
    rng = random.Random(9)
    values = _emails(rng)
    for value in values:
        assert _outcome(fast_email, value) == _outcome(norm.email, value), repr(value)
    assert sum(bool(service._PLAIN_EMAIL.match(v.strip().lower())) for v in values) > 4000


def test_seal_many_seals_like_seal_each_value_opens_and_nonces_differ() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from rapport.security import crypto
    from rapport.security.keyring import Keyring

    ring = Keyring(keys={3: AESGCM(AESGCM.generate_key(bit_length=256))}, active=3)
    items: list[tuple[int, str | None]] = [(10, "+8613812345678"), (11, None), (12, "王小明"), (13, "")]
    sealed = ring.seal_many("contact_point", "value", items)
    one = ring.seal("contact_point", "value", 10, "+8613812345678")
    assert one is not None and crypto.encryption_enabled()
    assert sealed[1] is None
    for (row_id, value), blob in zip(items, sealed, strict=True):
        if value is None:
            continue
        assert blob is not None and blob[:5] == one[:5] and len(blob) == len(value.encode()) + len(one) - 14
        assert ring.open("contact_point", "value", row_id, blob) == value.encode()
        # Bound to its row and column like seal's output: elsewhere it does not open.
        with pytest.raises(crypto.DecryptionError):
            ring.open("contact_point", "value", row_id + 100, blob)
        with pytest.raises(crypto.DecryptionError):
            ring.open("contact_point", "value_normalized", row_id, blob)
    nonces = {b[5:17] for b in sealed if b is not None}
    assert len(nonces) == 3
