"""Linkage features: one row per customer, built from names, demographics and blind indexes.

Nothing here decrypts a contact value. Phones, emails and addresses enter the model as their
blind indexes (``contact_point.value_bidx``: a keyed digest of the normalised value), so equal
numbers written differently (``+86 138 ...``, ``0086138...``, ``138-...``) agree because the
normaliser made them equal before the digest was taken; the model compares digests for equality
only.

Names are compared three ways:

- ``name_cjk``: the Chinese characters of the name, converted to simplified characters (zhconv,
  MediaWiki's conversion tables), compared character by character (Levenshtein) and as a sorted
  character multiset (``name_chars``: a given and family name written the other way round);
- ``name_py``: the pinyin syllables without tones, family and given name each joined, the two
  words sorted, so ``王小明``, ``王曉明`` (traditional), ``Wang Xiaoming`` and ``Xiaoming Wang`` all
  give ``wang xiaoming``; compared with Jaro-Winkler;
- ``name_latin``-only records (English names) use the same ``name_py`` column: lower-case words,
  sorted.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import pandas as pd
from pypinyin import lazy_pinyin
from zhconv import convert as _zh_convert

# Surnames of two characters: the split of a name typed as one string needs them.
COMPOUND_SURNAMES = frozenset(
    {
        "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
        "夏侯", "轩辕", "令狐", "钟离", "端木", "独孤", "南宫", "西门", "呼延", "万俟", "澹台", "赫连",
    }
)  # fmt: skip

# Columns of the linkage frame, in order (the Spark and DuckDB runs get the same frame).
COLUMNS = (
    "unique_id",
    "name_cjk",
    "name_chars",
    "name_py",
    "gender",
    "birth_date",
    "birth_year",
    "region",
    "city",
    "phones",
    "emails",
    "phone1",
    "email1",
    "address_bidx",
    "external_id",
)


def is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\U00020000" <= ch <= "\U0003134f"


@lru_cache(maxsize=200_000)
def simplified(text: str) -> str:
    """Traditional (or mixed) Chinese -> simplified: 王曉明 -> 王晓明 (zhconv, zh-hans)."""
    if not any(is_cjk(ch) for ch in text):
        return text
    return str(_zh_convert(text, "zh-hans"))


@lru_cache(maxsize=400_000)
def _pinyin(chars: str) -> str:
    return "".join(lazy_pinyin(chars, errors="ignore")).replace("ü", "v")


def _fold(text: str | None) -> str:
    if not text:
        return ""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def split_cjk(name: str) -> tuple[str, str]:
    """A Chinese full name -> (family, given): compound surnames first, else the first character."""
    if len(name) >= 3 and name[:2] in COMPOUND_SURNAMES:
        return name[:2], name[2:]
    return name[:1], name[1:]


@lru_cache(maxsize=400_000)
def name_keys(
    display: str | None, family: str | None, given: str | None, latin: str | None
) -> tuple[str | None, str | None, str | None]:
    """(name_cjk, name_chars, name_py) of one person's name fields."""
    text = _fold(display) or " ".join(x for x in (_fold(family), _fold(given)) if x)
    cjk = simplified("".join(ch for ch in text if is_cjk(ch)))
    if cjk:
        fam = simplified("".join(ch for ch in _fold(family) if is_cjk(ch)))
        giv = simplified("".join(ch for ch in _fold(given) if is_cjk(ch)))
        if not (fam and giv and fam + giv == cjk):
            fam, giv = split_cjk(cjk)
        words = [w for w in (_pinyin(fam), _pinyin(giv)) if w]
        return cjk, "".join(sorted(cjk)), " ".join(sorted(words)) or None
    source = text or _fold(latin)
    words = [
        "".join(ch for ch in w if ch.isalnum()) for w in source.replace(",", " ").replace(".", " ").split()
    ]
    words = [w for w in words if w]
    return None, None, " ".join(sorted(words)) or None


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def build_frame(
    customers: Iterable[Mapping[str, Any]],
    contacts: Iterable[Mapping[str, Any]],
    external_ids: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """The linkage input frame: one row per customer, columns :data:`COLUMNS`.

    ``customers``: id, display_name, family_name, given_name, name_latin, gender, birth_date,
    region, city. ``contacts``: customer_id, kind, value_bidx (and region/city of an address);
    never a clear value.
    """
    phones: dict[int, list[str]] = {}
    emails: dict[int, list[str]] = {}
    address: dict[int, str] = {}
    for c in contacts:
        bidx = c.get("value_bidx")
        if not bidx:
            continue
        cid = int(c["customer_id"])
        kind = c["kind"]
        if kind == "phone":
            phones.setdefault(cid, []).append(bidx)
        elif kind == "email":
            emails.setdefault(cid, []).append(bidx)
        elif kind == "address":
            address.setdefault(cid, bidx)
    ext = external_ids or {}
    rows: list[tuple[Any, ...]] = []
    for c in customers:
        cid = int(c["id"])
        cjk, chars, py = name_keys(
            c.get("display_name"), c.get("family_name"), c.get("given_name"), c.get("name_latin")
        )
        birth = c.get("birth_date")
        if isinstance(birth, str):
            birth = dt.date.fromisoformat(birth)
        gender = c.get("gender")
        ph = sorted(set(phones.get(cid, ())))
        em = sorted(set(emails.get(cid, ())))
        rows.append(
            (
                cid,
                cjk,
                chars,
                py,
                gender if gender in ("female", "male") else None,
                birth,
                birth.year if birth else None,
                _clean(c.get("region")),
                _clean(c.get("city")),
                ph or None,
                em or None,
                ph[0] if ph else None,
                em[0] if em else None,
                address.get(cid),
                _clean(ext.get(cid)),
            )
        )
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    frame["unique_id"] = frame["unique_id"].astype("int64")
    frame["birth_date"] = pd.to_datetime(frame["birth_date"]).astype("datetime64[s]")
    frame["birth_year"] = frame["birth_year"].astype("Int64")
    return frame
