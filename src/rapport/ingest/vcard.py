"""vCard files: write vCard 4.0 (RFC 6350) cards, read the 2.1, 3.0 and 4.0 cards phones export.

Writing (`Card`, `write_card`): UTF-8, CRLF line ends, lines folded at 75 octets (never inside a
UTF-8 sequence), text values escaped (backslash, comma, semicolon, newline), components of N and
ADR separated by unescaped semicolons, TEL as a ``tel:`` URI (``VALUE=text`` for a masked number,
which is no longer a dialable URI).

Reading (`read_vcards`): one `Row` per card, ``line`` being the line of its ``BEGIN:VCARD``, with
values keyed by headers `rapport.ingest.mapping.propose_mapping` understands: ``name``,
``family name``, ``given name``, ``phone`` (``phone 2``, ... for more), ``email`` (``email 2``, ...),
``address`` (region, city and street in Chinese order), ``region``, ``city``, ``postal code``,
``country``, ``gender``, ``birthday``, ``organisation``, ``occupation``, ``tags``, ``note``,
``wechat`` and ``external id`` (the UID). Preferred numbers and addresses come first. Handles
folded lines, vCard 2.1 bare parameters (``TEL;CELL;PREF:``), ``QUOTED-PRINTABLE`` values with
their soft line breaks and ``CHARSET``, inline BASE64 photos (skipped), ``TYPE``/``PREF``
parameters and item groups (``item1.EMAIL``). A malformed file raises `ReadError` with the line.
"""

from __future__ import annotations

import datetime as dt
import os
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rapport.ingest.readers import ReadError, Row, detect_encoding

__all__ = ["Card", "CardAddress", "escape_text", "fold_line", "read_vcards", "write_card"]

CRLF = "\r\n"
_MAX_OCTETS = 75
_VERSIONS = ("2.1", "3.0", "4.0")


# --- writing -------------------------------------------------------------------------------------


@dataclass(slots=True)
class CardAddress:
    street: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None
    pref: bool = False


@dataclass(slots=True)
class Card:
    """The fields of one vCard 4.0 card; lists keep their order (the preferred value first)."""

    uid: str
    fn: str
    family_name: str | None = None
    given_name: str | None = None
    gender: str | None = None  # male | female | other | unknown
    birthday: dt.date | None = None
    phones: list[tuple[str, bool]] = field(default_factory=list)  # (value, preferred)
    emails: list[tuple[str, bool]] = field(default_factory=list)
    addresses: list[CardAddress] = field(default_factory=list)
    wechat: list[str] = field(default_factory=list)
    organisation: str | None = None
    title: str | None = None
    categories: list[str] = field(default_factory=list)
    note: str | None = None


_GENDER_CODES = {"male": "M", "female": "F", "other": "O", "unknown": "U"}


def escape_text(value: str) -> str:
    """RFC 6350 3.4: backslash, comma and semicolon escaped; every line break becomes ``\\n``."""
    return (
        value.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace(";", "\\;")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def fold_line(line: str) -> str:
    """One content line with its CRLF, folded so no physical line exceeds 75 octets (RFC 6350 3.2)."""
    data = line.encode("utf-8")
    if len(data) <= _MAX_OCTETS:
        return line + CRLF
    parts: list[bytes] = []
    start, limit = 0, _MAX_OCTETS
    while len(data) - start > limit:
        cut = start + limit
        while data[cut] & 0xC0 == 0x80:  # never split a multi-octet character
            cut -= 1
        parts.append(data[start:cut])
        start, limit = cut, _MAX_OCTETS - 1  # continuation lines start with one space
    parts.append(data[start:])
    return (b"\r\n ".join(parts) + b"\r\n").decode("utf-8")


def _pref(preferred: bool) -> str:
    return ";PREF=1" if preferred else ""


def write_card(card: Card) -> str:
    """The card as vCard 4.0 text (folded, CRLF line ends)."""
    lines = ["BEGIN:VCARD", "VERSION:4.0", f"UID:{escape_text(card.uid)}", f"FN:{escape_text(card.fn)}"]
    if card.family_name or card.given_name:
        n = ";".join(escape_text(p or "") for p in (card.family_name, card.given_name, "", "", ""))
        lines.append(f"N:{n}")
    if card.gender in _GENDER_CODES:
        lines.append(f"GENDER:{_GENDER_CODES[card.gender]}")
    if card.birthday is not None:
        lines.append(f"BDAY:{card.birthday:%Y%m%d}")
    for value, preferred in card.phones:
        if value.startswith("+") and "*" not in value:
            lines.append(f"TEL;VALUE=uri;TYPE=cell{_pref(preferred)}:tel:{value}")
        else:  # a masked number (138****5678) is no longer a URI
            lines.append(f"TEL;VALUE=text;TYPE=cell{_pref(preferred)}:{escape_text(value)}")
    for value, preferred in card.emails:
        lines.append(f"EMAIL{_pref(preferred)}:{escape_text(value)}")
    for a in card.addresses:
        adr = ";".join(
            escape_text(p or "") for p in ("", "", a.street, a.city, a.region, a.postal_code, a.country)
        )
        lines.append(f"ADR{_pref(a.pref)}:{adr}")
    for value in card.wechat:
        lines.append(f"X-WECHAT:{escape_text(value)}")
    if card.organisation:
        lines.append(f"ORG:{escape_text(card.organisation)}")
    if card.title:
        lines.append(f"TITLE:{escape_text(card.title)}")
    if card.categories:
        lines.append("CATEGORIES:" + ",".join(escape_text(c) for c in card.categories))
    if card.note:
        lines.append(f"NOTE:{escape_text(card.note)}")
    lines.append("END:VCARD")
    return "".join(fold_line(line) for line in lines)


# --- reading -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Property:
    line: int
    name: str
    params: dict[str, list[str]]
    value: str


# vCard 2.1 allows parameter values without a name: TEL;CELL;PREF:..., ADR;HOME;ENCODING=...
_BARE_ENCODINGS = {"QUOTED-PRINTABLE", "BASE64", "8BIT", "7BIT", "B"}
_NAME = re.compile(r"^(?:[A-Za-z0-9-]+\.)?([A-Za-z0-9-]+)$")


def _split_unquoted(text: str, sep: str) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    out.append("".join(current))
    return out


def _colon(text: str) -> int:
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == ":" and not quoted:
            return i
    return -1


def _parse(path: Path, line: int, text: str) -> _Property:
    colon = _colon(text)
    if colon <= 0:
        raise ReadError(path, line, "malformed vCard line: expected NAME:value")
    head, value = text[:colon], text[colon + 1 :]
    name_part, *param_parts = _split_unquoted(head, ";")
    m = _NAME.match(name_part.strip())
    if m is None:
        raise ReadError(path, line, f"malformed vCard property name {name_part.strip()[:40]!r}")
    params: dict[str, list[str]] = {}
    for part in param_parts:
        key, eq, raw = part.partition("=")
        if not eq:  # vCard 2.1 bare value
            raw, key = key, ("ENCODING" if key.strip().upper() in _BARE_ENCODINGS else "TYPE")
        values = [v.strip().strip('"') for v in _split_unquoted(raw, ",")]
        params.setdefault(key.strip().upper(), []).extend(v for v in values if v)
    return _Property(line, m[1].upper(), params, value)


def _decode(path: Path, prop: _Property) -> str | None:
    """The property's text (quoted-printable and charset decoded); None for binary values."""
    encoding = (prop.params.get("ENCODING") or [""])[0].upper()
    if encoding in ("BASE64", "B"):
        return None
    if encoding != "QUOTED-PRINTABLE":
        return prop.value
    charset = (prop.params.get("CHARSET") or ["UTF-8"])[0]
    try:
        raw = quopri.decodestring(prop.value.encode("ascii"))
    except (UnicodeEncodeError, ValueError) as exc:
        raise ReadError(path, prop.line, f"{prop.name}: invalid QUOTED-PRINTABLE value") from exc
    try:
        return raw.decode(charset)
    except LookupError:
        raise ReadError(path, prop.line, f"{prop.name}: unknown CHARSET {charset!r}") from None
    except UnicodeDecodeError:
        raise ReadError(path, prop.line, f"{prop.name}: value is not valid {charset}") from None


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append("\n" if nxt in "nN" else nxt)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _components(value: str) -> list[str]:
    """Split a structured value (N, ADR) on unescaped semicolons, then unescape each part."""
    parts, current, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            current.append(value[i : i + 2])
            i += 2
            continue
        if ch == ";":
            parts.append(_unescape("".join(current)).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append(_unescape("".join(current)).strip())
    return parts


def _list_values(value: str) -> list[str]:
    """Split a multi-valued text (CATEGORIES) on unescaped commas."""
    parts, current, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            current.append(value[i : i + 2])
            i += 2
            continue
        if ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return [t for t in (_unescape(p).strip() for p in parts) if t]


def _is_preferred(prop: _Property) -> bool:
    if "PREF" in prop.params:  # 4.0: PREF=1 (most preferred) .. 100
        return (prop.params["PREF"] or ["1"])[0] == "1"
    return any(t.lower() == "pref" for t in prop.params.get("TYPE", ()))


def _numbered(values: dict[str, str], key: str, items: list[tuple[bool, str]]) -> None:
    ordered = [v for _, v in sorted(items, key=lambda item: not item[0])]  # stable: preferred first
    for n, value in enumerate(ordered, start=1):
        values[key if n == 1 else f"{key} {n}"] = value


_GENDERS = {"M": "male", "F": "female", "O": "other", "N": "unknown", "U": "unknown"}
_BASIC_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def _birthday(value: str) -> str:
    text = value.strip()
    m = _BASIC_DATE.match(text)
    if m:
        return f"{m[1]}-{m[2]}-{m[3]}"
    return text[:10] if re.match(r"^\d{4}-\d{2}-\d{2}T", text) else text


def _card_values(path: Path, begin: int, version: str | None, props: list[_Property]) -> dict[str, str]:
    values: dict[str, str] = {}
    phones: list[tuple[bool, str]] = []
    emails: list[tuple[bool, str]] = []
    wechat: list[tuple[bool, str]] = []
    addresses: list[tuple[bool, list[str]]] = []
    tags: list[str] = []
    notes: list[str] = []
    if version is not None and version not in _VERSIONS:
        raise ReadError(path, begin, f"unsupported vCard VERSION {version!r} (expected 2.1, 3.0 or 4.0)")
    for prop in props:
        text = _decode(path, prop)
        if text is None:
            continue
        name = prop.name
        if name == "FN":
            values.setdefault("name", _unescape(text).strip())
        elif name == "N":
            parts = [*_components(text), "", ""]
            if parts[0]:
                values.setdefault("family name", parts[0])
            if parts[1]:
                values.setdefault("given name", parts[1])
        elif name == "TEL":
            number = _unescape(text).strip()
            number = number[4:] if number.lower().startswith("tel:") else number
            number = number.split(";", 1)[0]  # tel:+86...;ext=12 keeps the number part
            if number:
                phones.append((_is_preferred(prop), number))
        elif name == "EMAIL":
            email = _unescape(text).strip()
            if email:
                emails.append((_is_preferred(prop), email))
        elif name == "ADR":
            parts = [*_components(text), *[""] * 7][:7]
            if any(parts):
                addresses.append((_is_preferred(prop), parts))
        elif name in ("X-WECHAT", "X-WEIXIN"):
            wechat.append((_is_preferred(prop), _unescape(text).strip()))
        elif name == "IMPP":
            handle = _unescape(text).strip()
            scheme, colon, rest = handle.partition(":")
            if colon and scheme.lower() in ("weixin", "wechat", "x-wechat"):
                wechat.append((_is_preferred(prop), rest.lstrip("/")))
        elif name == "GENDER" or name == "X-GENDER":
            code = _components(text)[0].strip()
            values.setdefault("gender", _GENDERS.get(code.upper(), code))
        elif name == "BDAY":
            values.setdefault("birthday", _birthday(_unescape(text)))
        elif name == "ORG":
            org = " ".join(p for p in _components(text) if p)
            if org:
                values.setdefault("organisation", org)
        elif name == "TITLE":
            values.setdefault("occupation", _unescape(text).strip())
        elif name == "CATEGORIES":
            tags.extend(_list_values(text))
        elif name == "NOTE":
            notes.append(_unescape(text).strip())
        elif name == "UID":
            values.setdefault("external id", _unescape(text).strip())
    if "name" not in values or not values["name"]:
        # 2.1 cards may carry only N: the display name is family + given (Chinese order).
        joined = values.get("family name", "") + values.get("given name", "")
        if joined:
            values["name"] = joined
        else:
            values.pop("name", None)
    _numbered(values, "phone", phones)
    _numbered(values, "email", emails)
    _numbered(values, "wechat", wechat)
    if addresses:
        _pobox, ext, street, city, region, postal, country = next(
            parts for _, parts in sorted(addresses, key=lambda item: not item[0])
        )
        place = region + (city if city != region else "")
        line = " ".join(p for p in (street, ext) if p)
        values["address"] = place + line
        for key, value in (("region", region), ("city", city), ("postal code", postal), ("country", country)):
            if value:
                values[key] = value
    if tags:
        values["tags"] = ",".join(dict.fromkeys(tags))
    if notes:
        values["note"] = "\n".join(n for n in notes if n)
    return values


def _quoted_printable(content: str) -> bool:
    return "QUOTED-PRINTABLE" in content[: max(_colon(content), 0)].upper()


def _logical_lines(path: Path, text: str) -> Iterator[tuple[int, str]]:
    """(line number, content line) with folding and quoted-printable soft breaks undone."""
    current: str | None = None
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw[:1] in (" ", "\t") and current is not None:
            current += raw[1:]
            continue
        if current is not None and current.endswith("=") and _quoted_printable(current):
            current = current[:-1] + raw  # soft line break of a quoted-printable value
            continue
        if current is not None:
            yield start, current
        current, start = raw, number
    if current is not None:
        yield start, current


def read_vcards(path: str | os.PathLike[str]) -> Iterator[Row]:
    """Yield one `Row` per card of a .vcf file (see the module docstring for the keys)."""
    file = Path(path)
    return _read(file)


def _read(file: Path) -> Iterator[Row]:
    encoding = detect_encoding(file)
    try:
        text = file.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise ReadError(file, None, f"text is neither UTF-8 nor GBK/GB18030: {exc.reason}") from exc
    begin: int | None = None
    version: str | None = None
    props: list[_Property] = []
    cards = 0
    in_binary = False
    for line, content in _logical_lines(file, text):
        if not content.strip():
            in_binary = False  # a blank line ends a vCard 2.1 BASE64 block
            continue
        upper = content.strip().upper()
        if upper == "BEGIN:VCARD":
            if begin is not None:
                reason = f"BEGIN:VCARD inside the card that starts at line {begin} (missing END:VCARD)"
                raise ReadError(file, line, reason)
            begin, version, props, in_binary = line, None, [], False
            continue
        if upper == "END:VCARD":
            if begin is None:
                raise ReadError(file, line, "END:VCARD without BEGIN:VCARD")
            values = _card_values(file, begin, version, props)
            cards += 1
            if values:
                yield Row(begin, values)
            begin = None
            continue
        if begin is None:
            raise ReadError(file, line, "content outside a card (expected BEGIN:VCARD)")
        if in_binary and _colon(content) < 0:
            continue  # vCard 2.1 BASE64 data continued without folding
        prop = _parse(file, line, content)
        in_binary = (prop.params.get("ENCODING") or [""])[0].upper() in ("BASE64", "B")
        if prop.name == "VERSION":
            version = prop.value.strip()
        else:
            props.append(prop)
    if begin is not None:
        raise ReadError(file, begin, "the card has no END:VCARD")
    if cards == 0:
        raise ReadError(file, None, "no vCard in the file (expected BEGIN:VCARD)")
