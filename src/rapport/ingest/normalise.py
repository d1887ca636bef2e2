"""Pure normalisers for imported spreadsheet cells.

Each function takes the raw text of one cell and returns the clean value, or raises
`NormaliseError(field, reason)`. Messages name the field and the problem but never repeat the
cell's value: import reports and logs must not copy personal data (the row and column locate it).

Decisions:

- Full-width characters (１３８, ＋, ＠, ．, Ａ) are folded with NFKC before parsing.
- `phone` refuses numbers with an extension (`ext`, `x`, `#`, `转`, `分机`): a customer's contact
  number is stored as bare E.164, and silently dropping the extension would store a number that
  does not reach the person. The importer reports the cell so a human can decide.
- `email` reuses `rapport.text.normalise_email`, which lower-cases the whole address (as every
  stored address in Rapport is), and never performs DNS lookups.
- `date` with a d/m/y or m/d/y layout follows `day_first` strictly: a first number above 12 with
  `day_first=False` is refused rather than silently swapped, so one column never mixes two
  conventions. Two-digit years are refused. Excel serial numbers (1900 date system) are accepted
  from 61 (1900-03-01) on; earlier serials are ambiguous because of Excel's fictitious 1900-02-29.
- `gender` maps a blank cell to "unknown" (missing information), but refuses values it does not
  recognise.
- `address` splits on province / city / district markers; names of provinces and municipalities
  written without their suffix (广东广州市…, 上海浦东新区…) are returned with it (广东省, 上海市).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
from typing import Literal, TypedDict

from rapport.text import normalise_email, normalise_phone

__all__ = ["Address", "NormaliseError", "address", "date", "email", "gender", "name", "phone"]


class NormaliseError(ValueError):
    """One cell could not be normalised: `field` names the column kind, `reason` the problem."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _fold(text: str) -> str:
    """NFKC (full-width to half-width), invisible format and control characters dropped."""
    folded = unicodedata.normalize("NFKC", text)
    if folded.isprintable():
        # No control, format or surrogate character (none is printable) and no space but " ".
        return " ".join(folded.split())
    out = []
    for ch in folded:
        if ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) not in ("Cc", "Cf", "Cs"):
            out.append(ch)
    return " ".join("".join(out).split())


# --- phone -------------------------------------------------------------------------------------

_EXTENSION = re.compile(r"(?:ext\.?|extn\.?|extension|x|#|转|分机)\s*\d+\s*$", re.IGNORECASE)
_PHONE_CHARS = re.compile(r"^\+?[\d\s().\-/]+$")


def phone(text: str, default_region: str = "CN") -> str:
    """A phone number in any common notation -> E.164 (`+8613812345678`)."""
    raw = _fold(text)
    if not raw:
        raise NormaliseError("phone", "empty")
    if _EXTENSION.search(raw):
        raise NormaliseError("phone", "has an extension (store the main number; extensions are refused)")
    if not _PHONE_CHARS.match(raw):
        raise NormaliseError("phone", "contains characters other than digits, + and separators")
    compact = re.sub(r"[\s().\-/]", "", raw)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    try:
        return normalise_phone(compact, default_region)
    except ValueError as exc:
        raise NormaliseError("phone", str(exc)) from None


# --- email -------------------------------------------------------------------------------------


def email(text: str) -> str:
    """An email address, trimmed, full-width `＠`/`．`/`。` folded, lower case; no network lookups."""
    raw = _fold(text).replace("。", ".").replace("｡", ".")
    if raw.lower().startswith("mailto:"):
        raw = raw[len("mailto:") :]
    raw = raw.strip()
    if not raw:
        raise NormaliseError("email", "empty")
    if " " in raw:
        raise NormaliseError("email", "contains a space")
    try:
        return normalise_email(raw)
    except ValueError as exc:
        raise NormaliseError("email", str(exc)) from None


# --- name --------------------------------------------------------------------------------------

NAME_MAX_LENGTH = 200


def name(text: str) -> str:
    """A person's or organisation's name: NFKC, invisible characters removed, whitespace collapsed.

    NFKC turns full-width Latin into ASCII and leaves Chinese as written (traditional characters
    stay traditional).
    """
    value = _fold(text)
    if not value:
        raise NormaliseError("name", "empty")
    if len(value) > NAME_MAX_LENGTH:
        raise NormaliseError("name", f"longer than {NAME_MAX_LENGTH} characters")
    return value


# --- date --------------------------------------------------------------------------------------

_EXCEL_EPOCH = dt.date(1899, 12, 30)
_EXCEL_FIRST = 61  # 1900-03-01; serials 1-60 straddle Excel's fictitious 1900-02-29
_EXCEL_LAST = (dt.date(9999, 12, 31) - _EXCEL_EPOCH).days
_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_YMD = re.compile(r"^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})" + _TIME + "$")
_YMD_CN = re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]" + _TIME + "$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DMY = re.compile(r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4})" + _TIME + "$")
_SHORT_YEAR = re.compile(r"^\d{1,2}([-/.])\d{1,2}\1\d{2}$")
_SERIAL = re.compile(r"^(\d{1,7})(?:\.0+)?$")


def _make_date(year: int, month: int, day: int, hint: str = "") -> dt.date:
    if not 1 <= year <= 9999:
        raise NormaliseError("date", f"year {year} out of range")
    if not 1 <= month <= 12:
        raise NormaliseError("date", f"month {month} out of range{hint}")
    last = calendar.monthrange(year, month)[1]
    if not 1 <= day <= last:
        raise NormaliseError(
            "date", f"day {day} out of range for {year}-{month:02d} (which has {last} days){hint}"
        )
    return dt.date(year, month, day)


def date(text: str, day_first: bool = True) -> dt.date:
    """A calendar date from ISO, slashed, dotted, compact, Chinese, d/m/y or m/d/y text, or an Excel serial.

    `day_first` decides how `05/03/2024` reads (True: 5 March; False: May 3).
    """
    raw = _fold(text)
    if not raw:
        raise NormaliseError("date", "empty")
    if m := _YMD.match(raw) or _YMD_CN.match(raw):
        groups = [g for g in m.groups() if g and g.isdigit()]
        return _make_date(int(groups[0]), int(groups[1]), int(groups[2]))
    if m := _COMPACT.match(raw):
        return _make_date(int(m[1]), int(m[2]), int(m[3]))
    if m := _DMY.match(raw):
        first, second, year = int(m[1]), int(m[3]), int(m[4])
        if day_first:
            return _make_date(year, second, first, " (read as day/month/year)")
        return _make_date(year, first, second, " (read as month/day/year)")
    if _SHORT_YEAR.match(raw):
        raise NormaliseError("date", "two-digit year is ambiguous; write the year in full")
    if m := _SERIAL.match(raw):
        serial = int(m[1])
        if not _EXCEL_FIRST <= serial <= _EXCEL_LAST:
            raise NormaliseError("date", f"Excel serial number out of range ({_EXCEL_FIRST}-{_EXCEL_LAST})")
        return _EXCEL_EPOCH + dt.timedelta(days=serial)
    raise NormaliseError("date", "unrecognised date format")


# --- gender ------------------------------------------------------------------------------------

Gender = Literal["female", "male", "unknown"]

_FEMALE = "女 女性 女士 女生 小姐 太太 夫人 f female woman w ms mrs miss"
_MALE = "男 男性 男士 男生 先生 m male man mr"
_UNKNOWN = "未知 不详 不明 保密 unknown u n/a na - ?"
_GENDERS: dict[str, Gender] = {
    **dict.fromkeys(_FEMALE.split(), "female"),
    **dict.fromkeys(_MALE.split(), "male"),
    **dict.fromkeys(_UNKNOWN.split(), "unknown"),
}


def gender(text: str) -> Gender:
    """Map 女/男/女士/先生/F/M/Mrs/Mr/未知… to "female", "male" or "unknown"; blank is "unknown"."""
    key = _fold(text).casefold().rstrip(".").strip()
    if not key:
        return "unknown"
    try:
        return _GENDERS[key]
    except KeyError:
        raise NormaliseError("gender", "not a recognised gender (expected e.g. 女/男/F/M/未知)") from None


# --- address -----------------------------------------------------------------------------------


class Address(TypedDict):
    province: str | None
    city: str | None
    district: str | None
    rest: str | None


_MUNICIPALITIES = ("北京", "天津", "上海", "重庆")
_PROVINCES = (
    "黑龙江", "河北", "山西", "辽宁", "吉林", "江苏", "浙江", "安徽", "福建", "江西", "山东", "河南",
    "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西", "甘肃", "青海", "台湾",
)  # fmt: skip
_REGIONS = {
    "内蒙古": "内蒙古自治区",
    "广西": "广西壮族自治区",
    "西藏": "西藏自治区",
    "宁夏": "宁夏回族自治区",
    "新疆": "新疆维吾尔自治区",
    "香港": "香港特别行政区",
    "澳门": "澳门特别行政区",
}
# A place name: letters other than ASCII (Chinese), no digits, no street or village words.
_PLACE_CHARS = r"[^\W\d_A-Za-z路街巷弄号楼室村]"
_CITY = re.compile(rf"^({_PLACE_CHARS}{{1,10}}?(?:自治州|地区|盟|市))")
_DISTRICT = re.compile(rf"^({_PLACE_CHARS}{{1,10}}?(?:自治县|自治旗|新区|区|县|旗|市))")
_SEPARATORS = " ,，、;；"
# Words ending in 区 that name a housing estate, campus or park, not a district.
_NOT_DISTRICT = ("小区", "社区", "园区", "校区", "景区")


def _take(pattern: re.Pattern[str], text: str) -> tuple[str | None, str]:
    m = pattern.match(text)
    if not m or m[1].endswith(_NOT_DISTRICT):
        return None, text
    return m[1], text[m.end() :].lstrip(_SEPARATORS)


def address(text: str) -> Address:
    """A Chinese address split into province, city, district and the rest; unknown parts are None.

    Nothing is dropped: whatever follows the recognised parts (or the whole text when none is
    recognised) is `rest`.
    """
    rest = _fold(text).strip(_SEPARATORS)
    if not rest:
        raise NormaliseError("address", "empty")
    province: str | None = None
    city: str | None = None
    district: str | None = None

    for short in _MUNICIPALITIES:
        if rest.startswith(short + "市"):
            after = rest[len(short) + 1 :].lstrip(_SEPARATORS)
        elif rest.startswith(short) and _DISTRICT.match(rest[len(short) :].lstrip(_SEPARATORS)):
            after = rest[len(short) :].lstrip(_SEPARATORS)
        else:
            continue
        province = city = short + "市"
        rest = after
        break
    else:
        for short, full in [*((p, p + "省") for p in _PROVINCES), *_REGIONS.items()]:
            if rest.startswith(full):
                province, rest = full, rest[len(full) :]
            elif rest.startswith(short) and not rest.startswith(short + "市"):
                province, rest = full, rest[len(short) :]
            else:
                continue
            rest = rest.lstrip(_SEPARATORS)
            break
        if province is None or not province.endswith("行政区"):
            city, rest = _take(_CITY, rest)

    if not (province and province.endswith("行政区")):
        district, rest = _take(_DISTRICT, rest)
    return Address(province=province, city=city, district=district, rest=rest or None)
