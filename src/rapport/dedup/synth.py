"""Labelled duplicates for measuring the linkage: copies of demo customers with realistic damage.

``plant(session, rate=..., seed=...)`` picks a share of the customers already in the database
(demo data), writes one or two corrupted copies of each as new customers with their contact
points (sealed and blind-indexed like every other write), and returns the truth: new id ->
original id. The same database and seed always give the same copies (one ``random.Random(seed)``,
customers visited in id order).

Damage (one to three kinds per copy, drawn at random):

- a typo in the name (a character of a Chinese given name replaced by a homophone or a
  look-alike, a letter of a Latin name changed);
- given and family name swapped (``Xiaoming Wang`` / ``Wang Xiaoming``, ``小明王``);
- the name in traditional characters, or in pinyin instead of characters;
- missing values (birth date, gender, city, a phone, an email);
- the phone written another way: ``+86 138 1234 5678``, ``0086-138...``, ``138 1234 5678``;
- the email in other case, or with a dot added or removed in the local part;
- a moved city (other city and region), or a typo in the birth date.

Contact values are written as the import path would store them: normalised
(:mod:`rapport.ingest.normalise`), so ``0086 138...`` and ``+86138...`` get the same blind index.
A copy with a dotted email gets a different blind index: the model never sees the clear value.

This module reads clear contact values (to damage them) and writes records: it is for demo and
test databases only (``rapport dedup eval`` and ``bench/dedup.py`` run it in a temporary
database); it is not reachable from the API.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from pypinyin import lazy_pinyin
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session
from zhconv import convert as zh_convert

from rapport.dedup.features import is_cjk, split_cjk
from rapport.demo.chunks import CITIES
from rapport.ingest import normalise
from rapport.models import ContactPoint, Customer
from rapport.models.base import table_of, utcnow
from rapport.security.crypto import blind_index
from rapport.security.keyring import allocate_id, keyring_for, open_rows, sealed_columns

# Characters often confused in given names (same pinyin, or similar shape).
CONFUSABLE: dict[str, str] = {
    "小": "晓", "晓": "小", "明": "鸣", "伟": "玮", "玮": "伟", "丽": "莉", "莉": "丽", "静": "婧",
    "婧": "静", "敏": "珉", "军": "君", "君": "军", "杰": "洁", "洁": "杰", "华": "桦", "芳": "方",
    "方": "芳", "红": "宏", "宏": "红", "刚": "钢", "钢": "刚", "勇": "永", "永": "勇", "磊": "垒",
    "涛": "韬", "斌": "彬", "彬": "斌", "霞": "侠", "燕": "艳", "艳": "燕", "玲": "琳", "琳": "玲",
    "娜": "纳", "颖": "莹", "莹": "颖", "欣": "馨", "馨": "欣", "浩": "皓", "皓": "浩", "宇": "雨",
    "雨": "宇", "婷": "亭", "亭": "婷", "文": "雯", "雯": "文", "辉": "晖", "晖": "辉", "鹏": "朋",
}  # fmt: skip
KINDS = (
    "name_typo",
    "swap_names",
    "traditional",
    "pinyin",
    "missing",
    "phone_format",
    "email_variant",
    "moved",
    "birth_typo",
)


@dataclass
class Person:
    id: int
    display_name: str
    family_name: str | None
    given_name: str | None
    name_latin: str | None
    gender: str | None
    birth_date: dt.date | None
    region: str | None
    city: str | None
    owner_id: int | None = None
    team_id: int | None = None
    phones: list[str] = field(default_factory=list)  # as typed (any format)
    emails: list[str] = field(default_factory=list)
    addresses: list[tuple[str, str | None, str | None, str | None]] = field(default_factory=list)
    damage: tuple[str, ...] = ()


def _pinyin_words(p: Person) -> tuple[str, str]:
    fam, giv = p.family_name or "", p.given_name or ""
    if not (fam and giv):
        fam, giv = split_cjk(p.display_name)
    return "".join(lazy_pinyin(fam)).capitalize(), "".join(lazy_pinyin(giv)).capitalize()


def _latin_typo(text: str, rng: random.Random) -> str:
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    if len(letters) < 4:
        return text
    i = letters[rng.randrange(1, len(letters))]
    ch = text[i]
    roll = rng.random()
    if roll < 0.4:  # substitution by a neighbour in the alphabet
        new = chr(ord("a") + (ord(ch.lower()) - ord("a") + 1) % 26)
        return text[:i] + (new.upper() if ch.isupper() else new) + text[i + 1 :]
    if roll < 0.7 and i + 1 < len(text) and text[i + 1].isalpha():  # transposition
        return text[:i] + text[i + 1] + ch + text[i + 2 :]
    return text[:i] + text[i + 1 :]  # deletion


def _name_typo(p: Person, rng: random.Random) -> Person:
    name = p.display_name
    if any(is_cjk(ch) for ch in name):
        fam, giv = (p.family_name or "", p.given_name or "")
        if not (fam and giv and fam + giv == name):
            fam, giv = split_cjk(name)
        spots = [i for i, ch in enumerate(giv) if ch in CONFUSABLE]
        if not spots:
            return p
        i = spots[rng.randrange(len(spots))]
        giv = giv[:i] + CONFUSABLE[giv[i]] + giv[i + 1 :]
        return replace(p, display_name=fam + giv, family_name=fam, given_name=giv)
    return replace(p, display_name=_latin_typo(name, rng))


def _swap(p: Person, rng: random.Random) -> Person:
    if any(is_cjk(ch) for ch in p.display_name):
        fam, giv = _pinyin_words(p)
        # Pinyin typed family-name-first where the original had it last, or the reverse.
        latin = p.name_latin or f"{giv} {fam}"
        words = latin.split()
        return replace(
            p, display_name=" ".join(reversed(words)), family_name=None, given_name=None, name_latin=None
        )
    words = p.display_name.split()
    return replace(
        p, display_name=" ".join(reversed(words)), family_name=p.given_name, given_name=p.family_name
    )


def _traditional(p: Person, rng: random.Random) -> Person:
    def t(x: str | None) -> str | None:
        return None if x is None else str(zh_convert(x, "zh-hant"))

    return replace(
        p,
        display_name=t(p.display_name) or p.display_name,
        family_name=t(p.family_name),
        given_name=t(p.given_name),
    )


def _pinyin(p: Person, rng: random.Random) -> Person:
    if not any(is_cjk(ch) for ch in p.display_name):
        return replace(
            p, display_name=p.display_name.upper() if rng.random() < 0.5 else p.display_name.lower()
        )
    fam, giv = _pinyin_words(p)
    shown = f"{fam} {giv}" if rng.random() < 0.5 else f"{giv} {fam}"
    if rng.random() < 0.3:
        shown = shown.upper()
    return replace(p, display_name=shown, family_name=None, given_name=None, name_latin=None)


def _missing(p: Person, rng: random.Random) -> Person:
    what = rng.choice(("birth_date", "gender", "city", "phone", "email"))
    if what == "birth_date":
        return replace(p, birth_date=None)
    if what == "gender":
        return replace(p, gender=None)
    if what == "city":
        return replace(p, city=None, region=None)
    if what == "phone" and p.phones:
        return replace(p, phones=p.phones[1:])
    if what == "email" and p.emails:
        return replace(p, emails=p.emails[1:])
    return replace(p, birth_date=None)


def _phone_format(p: Person, rng: random.Random) -> Person:
    out = []
    for e164 in p.phones:
        national = e164.removeprefix("+86")
        style = rng.randrange(6)
        if style == 0:
            out.append(f"+86 {national[:3]} {national[3:7]} {national[7:]}")
        elif style == 1:
            out.append(f"0086{national}")
        elif style == 2:
            out.append(f"0086 {national[:3]}-{national[3:7]}-{national[7:]}")
        elif style == 3:
            out.append(f"{national[:3]} {national[3:7]} {national[7:]}")
        elif style == 4:
            out.append(f"(+86) {national}")
        else:
            out.append(national)
    return replace(p, phones=out)


def _email_variant(p: Person, rng: random.Random) -> Person:
    out = []
    for email in p.emails:
        local, _, domain = email.partition("@")
        if rng.random() < 0.6:
            out.append(email.upper() if rng.random() < 0.5 else local.capitalize() + "@" + domain.upper())
        elif "." in local:
            out.append(local.replace(".", "", 1) + "@" + domain)
        else:
            cut = max(1, len(local) // 2)
            out.append(local[:cut] + "." + local[cut:] + "@" + domain)
    return replace(p, emails=out)


def _moved(p: Person, rng: random.Random) -> Person:
    for _ in range(10):
        city = CITIES.pick(rng)
        if city.city != p.city:
            return replace(p, city=city.city, region=city.region, addresses=[])
    return p


def _birth_typo(p: Person, rng: random.Random) -> Person:
    if p.birth_date is None:
        return p
    b = p.birth_date
    if rng.random() < 0.5 and b.day <= 12 and b.day != b.month:
        return replace(p, birth_date=b.replace(month=b.day, day=b.month))
    shift = rng.choice((1, -1, 10, -10))
    try:
        return replace(p, birth_date=b.replace(day=b.day + shift))
    except ValueError:
        return replace(p, birth_date=b + dt.timedelta(days=1))


_DAMAGE = {
    "name_typo": _name_typo,
    "swap_names": _swap,
    "traditional": _traditional,
    "pinyin": _pinyin,
    "missing": _missing,
    "phone_format": _phone_format,
    "email_variant": _email_variant,
    "moved": _moved,
    "birth_typo": _birth_typo,
}


def corrupt(p: Person, rng: random.Random) -> Person:
    """One damaged copy of ``p``: one to three kinds of damage, drawn with ``rng``."""
    n = 1 if rng.random() < 0.4 else 2 if rng.random() < 0.7 else 3
    kinds = rng.sample(KINDS, n)
    out = p
    for kind in kinds:
        out = _DAMAGE[kind](out, rng)
    return replace(out, damage=tuple(kinds))


def copies(people: Iterable[Person], *, rate: float, seed: int) -> list[tuple[int, Person]]:
    """(original id, damaged copy) for about ``rate`` of ``people``; a fifth get two copies."""
    rng = random.Random(seed)
    out: list[tuple[int, Person]] = []
    for p in people:
        if rng.random() >= rate:
            continue
        for _ in range(2 if rng.random() < 0.2 else 1):
            out.append((p.id, corrupt(p, rng)))
    return out


# -- database glue (demo and test databases only) --------------------------------------------------

_CUSTOMER = table_of(Customer)
_CONTACT = table_of(ContactPoint)


def load_people(session: Session, *, limit: int | None = None) -> list[Person]:
    """Customers with their clear phones, emails and addresses (decrypted: demo data only)."""
    conn = session.connection()
    stmt = select(
        _CUSTOMER.c.id, _CUSTOMER.c.display_name, _CUSTOMER.c.family_name, _CUSTOMER.c.given_name,
        _CUSTOMER.c.name_latin, _CUSTOMER.c.gender, _CUSTOMER.c.birth_date, _CUSTOMER.c.region,
        _CUSTOMER.c.city, _CUSTOMER.c.owner_id, _CUSTOMER.c.team_id,
    ).where(_CUSTOMER.c.deleted_at.is_(None)).order_by(_CUSTOMER.c.id)  # fmt: skip
    if limit is not None:
        stmt = stmt.limit(limit)
    people = {r.id: Person(**r._mapping) for r in conn.execute(stmt)}
    contacts = [
        dict(r._mapping)
        for r in conn.execute(
            select(
                _CONTACT.c.id, _CONTACT.c.customer_id, _CONTACT.c.kind, _CONTACT.c.value_normalized,
                _CONTACT.c.region, _CONTACT.c.city, _CONTACT.c.district,
            ).where(_CONTACT.c.kind.in_(("phone", "email", "address"))).order_by(_CONTACT.c.id)
        )
        if r.customer_id in people
    ]  # fmt: skip
    open_rows(session, _CONTACT, contacts)
    for c in contacts:
        p = people[c["customer_id"]]
        value = c["value_normalized"]
        value = value.decode() if isinstance(value, bytes) else value
        if c["kind"] == "phone":
            p.phones.append(value)
        elif c["kind"] == "email":
            p.emails.append(value)
        else:
            district = c["district"].decode() if isinstance(c["district"], bytes) else c["district"]
            p.addresses.append((value, c["region"], c["city"], district))
    return list(people.values())


def _normalised(kind: str, value: str) -> str | None:
    try:
        return normalise.phone(value) if kind == "phone" else normalise.email(value)
    except normalise.NormaliseError:
        return None


def _allocate(conn: Any, table: Any, n: int) -> list[int]:
    """``n`` ids for ``table`` before the insert (the sealed values are bound to them)."""
    if n == 0:
        return []
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": n},
        )
        return [int(x) for x in rows.scalars()]
    first = allocate_id(conn, table)  # SQLite: max + 1 under the write unit's lock
    return list(range(first, first + n))


def write(session: Session, planted: list[tuple[int, Person]], batch: int = 5000) -> dict[int, int]:
    """Insert the copies as customers with sealed contact points; returns new id -> original id."""
    conn = session.connection()
    ring = keyring_for(session, for_write=True)
    sealed = sealed_columns("contact_point")
    now = utcnow()
    truth: dict[int, int] = {}
    for start in range(0, len(planted), batch):
        part = planted[start : start + batch]
        customer_ids = _allocate(conn, _CUSTOMER, len(part))
        customers: list[dict[str, Any]] = []
        pending: list[tuple[int, str, str, str, dict[str, Any]]] = []
        for cid, (original, p) in zip(customer_ids, part, strict=True):
            truth[cid] = original
            customers.append(
                {
                    "id": cid, "organisation_id": None, "display_name": p.display_name,
                    "family_name": p.family_name, "given_name": p.given_name, "name_latin": p.name_latin,
                    "gender": p.gender, "birth_date": p.birth_date, "region": p.region, "city": p.city,
                    "owner_id": p.owner_id, "team_id": p.team_id, "lifecycle_stage": "lead",
                    "attributes": {"synthetic_copy_of": original}, "created_at": now, "updated_at": now,
                    "version": 1,
                }
            )  # fmt: skip
            for kind, typed in [("phone", x) for x in p.phones] + [("email", x) for x in p.emails]:
                norm = _normalised(kind, typed)
                if norm is not None:
                    pending.append((cid, kind, typed, norm, {}))
            for line, region, city, district in p.addresses:
                extra = {"region": region, "city": city, "district": district, "country": "CN"}
                pending.append((cid, "address", line, line, extra))
        conn.execute(insert(_CUSTOMER), customers)
        contacts: list[dict[str, Any]] = []
        for row_id, (cid, kind, typed, norm, extra) in zip(
            _allocate(conn, _CONTACT, len(pending)), pending, strict=True
        ):
            row: dict[str, Any] = {
                "id": row_id, "customer_id": cid, "kind": kind, "value": typed, "value_normalized": norm,
                "label": None, "district": None, "postal_code": None, "region": None, "city": None,
                "country": None, "is_primary": False, "is_verified": False,
                "created_at": now, "updated_at": now, "version": 1, **extra,
            }  # fmt: skip
            row["value_bidx"] = blind_index(kind, norm)
            for column in sealed:
                row[column] = ring.seal("contact_point", column, row_id, row[column])
            contacts.append(row)
        if contacts:
            conn.execute(insert(_CONTACT), contacts)
    return truth


def plant(session: Session, *, rate: float = 0.05, seed: int = 7, limit: int | None = None) -> dict[int, int]:
    """Damaged copies of about ``rate`` of the customers, written; returns new id -> original id."""
    people = load_people(session, limit=limit)
    return write(session, copies(people, rate=rate, seed=seed))
