"""Both catalogues are complete: every msgid used by the workspace is translated, nothing fuzzy."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from babel.messages.pofile import read_po

from rapport.web import catalogues, i18n


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_catalogue_is_complete(locale: str) -> None:
    with i18n.catalogue_path(locale).open("rb") as f:
        catalog = read_po(f, locale=locale)
    used = catalogues.extracted()
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
    assert sorted(set(used) - ids) == []  # run `make messages` after adding texts
    untranslated = [
        m.id
        for m in catalog
        if m.id and (not m.string or (isinstance(m.string, tuple) and not all(m.string)))
    ]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert untranslated == []
    assert fuzzy == []


def test_language_choice() -> None:
    assert i18n.from_accept_language("en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert i18n.from_accept_language("fr, zh;q=0.5") == "zh-CN"
    assert i18n.from_accept_language("fr") is None
    assert i18n.normalise_language("zh_TW") == "zh-CN"


def test_formatting_per_locale() -> None:
    zh, en = i18n.Formatter("zh-CN"), i18n.Formatter("en")
    day = dt.date(2026, 3, 5)
    assert zh.date(day) == "2026年3月5日"
    assert en.date(day) == "Mar 5, 2026"
    assert zh.money(Decimal("12345.5"), "CNY") == "¥12,345.50"
    assert en.money(Decimal("12345.5"), "CNY") == "CN¥12,345.50"
    assert en.number(1234567) == "1,234,567"
    assert i18n.translations("zh-CN").gettext("Log in") == "登录"
