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
from collections.abc import Iterable, Mapping, Sequence
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


CUSTOMER_KEYS = (
    "id",
    "display_name",
    "family_name",
    "given_name",
    "name_latin",
    "gender",
    "birth_date",
    "region",
    "city",
)


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
    rows = list(customers)
    columns = {k: [c.get(k) for c in rows] for k in CUSTOMER_KEYS}
    triples = [(c["customer_id"], c["kind"], c.get("value_bidx")) for c in contacts]
    return build_frame_columns(columns, triples, external_ids)


def build_frame_columns(
    customers: Mapping[str, Sequence[Any]],
    contacts: Iterable[tuple[Any, str, str | None]],
    external_ids: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """:func:`build_frame` from columns (``customers[key]`` for :data:`CUSTOMER_KEYS`) and
    (customer_id, kind, value_bidx) tuples: a million customers without a dict per row.

    Each distinct value (a name, a city) is worked out once: names repeat a lot.
    """
    by_kind: dict[str, dict[int, list[str]]] = {"phone": {}, "email": {}, "address": {}}
    for cid, kind, bidx in contacts:
        if bidx:
            found = by_kind[kind].get(cid)
            if found is None:
                by_kind[kind][cid] = [bidx]
            else:
                found.append(bidx)
    ids = [int(x) for x in customers["id"]]
    names = list(
        zip(
            customers["display_name"],
            customers["family_name"],
            customers["given_name"],
            customers["name_latin"],
            strict=True,
        )
    )
    keys = {n: name_keys(*n) for n in dict.fromkeys(names)}
    per_row = [keys[n] for n in names]
    births = [dt.date.fromisoformat(b) if isinstance(b, str) else b for b in customers["birth_date"]]

    def cleaned(values: Sequence[Any]) -> list[str | None]:
        distinct = {v: _clean(v) for v in dict.fromkeys(values)}
        return [distinct[v] for v in values]

    def sorted_sets(lists: dict[int, list[str]]) -> list[list[str] | None]:
        out: list[list[str] | None] = []
        for i in ids:
            found = lists.get(i)
            out.append(None if found is None else found if len(found) == 1 else sorted(set(found)))
        return out

    ph = sorted_sets(by_kind["phone"])
    em = sorted_sets(by_kind["email"])
    address = by_kind["address"]
    ext = external_ids or {}

    def obj(values: list[Any]) -> pd.Series:
        # Python objects, not pandas' Arrow-backed strings: the frame goes to Arrow once, later.
        return pd.Series(values, dtype="object")

    frame = pd.DataFrame(
        {
            "unique_id": pd.Series(ids, dtype="int64"),
            "name_cjk": obj([k[0] for k in per_row]),
            "name_chars": obj([k[1] for k in per_row]),
            "name_py": obj([k[2] for k in per_row]),
            "gender": obj([g if g in ("female", "male") else None for g in customers["gender"]]),
            "birth_date": obj(births),
            "birth_year": pd.array([b.year if b else None for b in births], dtype="Int64"),
            "region": obj(cleaned(customers["region"])),
            "city": obj(cleaned(customers["city"])),
            "phones": obj(ph),
            "emails": obj(em),
            "phone1": obj([x[0] if x else None for x in ph]),
            "email1": obj([x[0] if x else None for x in em]),
            "address_bidx": obj([address[i][0] if i in address else None for i in ids]),
            "external_id": obj([_clean(ext.get(i)) for i in ids] if ext else [None] * len(ids)),
        },
        columns=list(COLUMNS),
    )
    frame["birth_date"] = pd.to_datetime(frame["birth_date"]).astype("datetime64[s]")
    return frame
