from __future__ import annotations

import datetime as dt

from rapport.ingest.vcard import Card, CardAddress, escape_text, fold_line, write_card


def test_escaping_of_backslash_comma_semicolon_and_newlines() -> None:
    assert escape_text("a\\b,c;d\ne\r\nf\rg") == "a\\\\b\\,c\\;d\\ne\\nf\\ng"


def test_folding_at_75_octets_never_splits_a_utf8_character() -> None:
    ascii_line = "NOTE:" + "x" * 100
    folded = fold_line(ascii_line)
    assert folded == "NOTE:" + "x" * 70 + "\r\n " + "x" * 30 + "\r\n"
    chinese = "FN:" + "王" * 30  # 3 + 90 octets
    out = fold_line(chinese)
    physical = out.split("\r\n")[:-1]
    assert physical == ["FN:" + "王" * 24, " " + "王" * 6]
    assert all(len(p.encode()) <= 75 for p in physical)
    assert fold_line("FN:short") == "FN:short\r\n"


def test_card_exact() -> None:
    card = Card(
        uid="urn:rapport:customer:7",
        fn="王小明, Jr.",
        family_name="王",
        given_name="小明",
        gender="male",
        birthday=dt.date(1990, 3, 7),
        phones=[("+8613812345678", True), ("138****5678", False)],
        emails=[("xm@example.com", True)],
        addresses=[CardAddress("浦东新区张江路1号;3楼", "上海市", "上海市", "200120", "CN", pref=True)],
        wechat=["wxid_abc"],
        organisation="示例公司",
        title="工程师",
        categories=["vip", "a,b"],
        note="line1\nline2",
    )
    assert write_card(card) == (
        "BEGIN:VCARD\r\n"
        "VERSION:4.0\r\n"
        "UID:urn:rapport:customer:7\r\n"
        "FN:王小明\\, Jr.\r\n"
        "N:王;小明;;;\r\n"
        "GENDER:M\r\n"
        "BDAY:19900307\r\n"
        "TEL;VALUE=uri;TYPE=cell;PREF=1:tel:+8613812345678\r\n"
        "TEL;VALUE=text;TYPE=cell:138****5678\r\n"
        "EMAIL;PREF=1:xm@example.com\r\n"
        "ADR;PREF=1:;;浦东新区张江路1号\\;3楼;上海市;上海市;200120;CN\r\n"
        "X-WECHAT:wxid_abc\r\n"
        "ORG:示例公司\r\n"
        "TITLE:工程师\r\n"
        "CATEGORIES:vip,a\\,b\r\n"
        "NOTE:line1\\nline2\r\n"
        "END:VCARD\r\n"
    )
