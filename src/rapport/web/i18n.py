"""Languages of the workspace: gettext catalogues (Babel) and locale-aware formatting.

The catalogues are the committed ``locale/<locale>/LC_MESSAGES/messages.po`` files; they are
compiled in memory when first used, so a checkout needs no build step. Locale choice: the
language-switch cookie, else the user's profile preference, else the browser's Accept-Language,
else Chinese.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import os
from decimal import Decimal
from gettext import GNUTranslations
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, dates, numbers
from babel.messages import mofile, pofile
from starlette.requests import Request

LOCALE_DIR = Path(__file__).parent / "locale"
LANG_COOKIE = "rapport_lang"
# Language tags as stored in user profiles and cookies -> catalogue locale names.
LANGUAGES: dict[str, str] = {"zh-CN": "zh_CN", "en": "en"}
LANGUAGE_NAMES: dict[str, str] = {"zh-CN": "中文", "en": "English"}
DEFAULT_LANGUAGE = "zh-CN"
# Times are stored in UTC and shown (and typed) in this zone.
DISPLAY_TZ = ZoneInfo(os.environ.get("RAPPORT_TIMEZONE", "Asia/Shanghai"))


def local_deadline(text: str) -> dt.datetime:
    """A date typed in a form (``2026-03-05``) is due at 18:00 local time; a local date-time as typed."""
    if len(text) == 10:
        day = dt.date.fromisoformat(text)
        return dt.datetime.combine(day, dt.time(18, 0), DISPLAY_TZ)
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=DISPLAY_TZ)


def catalogue_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"


@functools.cache
def translations(language: str) -> GNUTranslations:
    """The compiled catalogue of a language tag (``zh-CN`` or ``en``)."""
    locale = LANGUAGES[language]
    with catalogue_path(locale).open("rb") as f:
        catalog = pofile.read_po(f, locale=locale)
    buf = io.BytesIO()
    mofile.write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return GNUTranslations(buf)


def normalise_language(value: str | None) -> str | None:
    """``zh``, ``zh-cn``, ``zh_CN``, ``en-GB``... -> a supported tag, or None."""
    if not value:
        return None
    v = value.strip().replace("_", "-").lower()
    if v.startswith("zh"):
        return "zh-CN"
    if v.startswith("en"):
        return "en"
    return None


def from_accept_language(header: str) -> str | None:
    best: tuple[float, str] | None = None
    for part in header.split(","):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = normalise_language(tag)
        if lang and q > 0 and (best is None or q > best[0]):
            best = (q, lang)
    return best[1] if best else None


def choose_language(request: Request, preference: str | None) -> str:
    return (
        normalise_language(request.cookies.get(LANG_COOKIE))
        or normalise_language(preference)
        or from_accept_language(request.headers.get("accept-language", ""))
        or DEFAULT_LANGUAGE
    )


@functools.lru_cache(maxsize=4096)
def _format_date(value: dt.date, fmt: str, language: str) -> str:
    # Lists show many rows of few distinct days: formatting each day once is enough.
    return dates.format_date(value, fmt, locale=Locale.parse(LANGUAGES[language]))


class Formatter:
    """Dates, numbers and money for one language (Babel's CLDR data)."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.locale = Locale.parse(LANGUAGES[language])

    def date(self, value: dt.date | dt.datetime | None, fmt: str = "medium") -> str:
        if value is None:
            return ""
        if isinstance(value, dt.datetime):
            value = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(DISPLAY_TZ).date()
        return _format_date(value, fmt, self.language)

    def datetime(self, value: dt.datetime | None, fmt: str = "medium") -> str:
        if value is None:
            return ""
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return dates.format_datetime(value, fmt, tzinfo=DISPLAY_TZ, locale=self.locale)

    def number(self, value: float | int | Decimal | None, digits: int | None = None) -> str:
        if value is None:
            return ""
        if digits is not None:
            return numbers.format_decimal(
                value, format=f"#,##0.{'0' * digits}" if digits else "#,##0", locale=self.locale
            )
        return numbers.format_decimal(value, locale=self.locale)

    def money(self, value: float | int | Decimal | str | None, currency: str | None = "CNY") -> str:
        if value is None or value == "":
            return ""
        return numbers.format_currency(Decimal(str(value)), currency or "CNY", locale=self.locale)

    def percent(self, value: float | None) -> str:
        if value is None:
            return ""
        return numbers.format_percent(value, locale=self.locale)
