"""Normalisers of imported spreadsheet cells: exact values and the reasons of refusals."""

from __future__ import annotations

import datetime as dt

import pytest

from rapport.ingest import NormaliseError, address, date, email, gender, name, phone

# --- phone -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+86 138 1234 5678", "+8613812345678"),
        ("0086-138-1234-5678", "+8613812345678"),
        ("13812345678", "+8613812345678"),
        ("138.1234.5678", "+8613812345678"),
        ("(010) 6552-9988", "+861065529988"),
        ("１３８１２３４５６７８", "+8613812345678"),
        ("＋８６ １３８－１２３４－５６７８", "+8613812345678"),
        ("  +44 20 7946 0958 ", "+442079460958"),
        ("138\u200b1234 5678", "+8613812345678"),
    ],
)
def test_phone(text: str, expected: str) -> None:
    assert phone(text) == expected


def test_phone_default_region() -> None:
    assert phone("(415) 555-2671", default_region="US") == "+14155552671"
    assert phone("0044 20 7946 0958", default_region="US") == "+442079460958"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("+1 (415) 555-2671 ext 12", "has an extension"),
        ("021-12345678转123", "has an extension"),
        ("010-65529988 分机 8", "has an extension"),
        ("13812345678#9", "has an extension"),
        ("call me", "contains characters other than digits"),
        ("12345", "not a valid phone number for its region"),
        ("+86 138", "not a valid phone number"),
    ],
)
def test_phone_refused(text: str, reason: str) -> None:
    with pytest.raises(NormaliseError, match=reason) as info:
        phone(text)
    assert info.value.field == "phone"
    assert str(info.value).startswith("phone: ")
    assert isinstance(info.value, ValueError)


def test_error_does_not_repeat_the_value() -> None:
    with pytest.raises(NormaliseError) as info:
        phone("13812345678 ext 99")
    assert "1381234" not in str(info.value)


# --- email -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Zhang.San@Example.COM ", "zhang.san@example.com"),
        ("zhang＠example．com", "zhang@example.com"),
        ("ｌｉ＠ｅｘａｍｐｌｅ．ｃｎ", "li@example.cn"),
        ("a@b。com", "a@b.com"),
        ("mailto:X@Y.cn", "x@y.cn"),
        ("wang\u200b@example.com", "wang@example.com"),
        ("first.last+tag@sub.example.org", "first.last+tag@sub.example.org"),
        ("\tuser@example.com\n", "user@example.com"),
    ],
)
def test_email(text: str, expected: str) -> None:
    assert email(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("mailto:", "empty"),
        ("a b@c.com", "contains a space"),
        ("noat.example.com", "must have an @-sign"),
        ("a@@b.com", "not a valid email address"),
        ("x@localhost", "not a valid email address"),
        ("@example.com", "not a valid email address"),
        ("user@", "not a valid email address"),
    ],
)
def test_email_refused(text: str, reason: str) -> None:
    with pytest.raises(NormaliseError, match=reason) as info:
        email(text)
    assert info.value.field == "email"


# --- name --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  张三  ", "张三"),
        ("Ｊｏｈｎ\u3000\u3000Ｓｍｉｔｈ", "John Smith"),
        ("張\u200b三", "張三"),
        ("陳大文", "陳大文"),
        ("李\t四\n", "李 四"),
        ("\ufeffMary   Ann  O'Neil", "Mary Ann O'Neil"),
        ("阿沛·阿旺晋美", "阿沛·阿旺晋美"),
        ("王\x00五", "王五"),
        ("José\u200e Álvarez", "José Álvarez"),
    ],
)
def test_name(text: str, expected: str) -> None:
    assert name(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("   ", "empty"), ("\u200b\u200d", "empty"), ("a" * 201, "longer than 200 characters")],
)
def test_name_refused(text: str, reason: str) -> None:
    with pytest.raises(NormaliseError, match=reason) as info:
        name(text)
    assert info.value.field == "name"


# --- date --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "day_first", "expected"),
    [
        ("2024-03-05", True, dt.date(2024, 3, 5)),
        ("2024/3/5", True, dt.date(2024, 3, 5)),
        ("2024.3.5", False, dt.date(2024, 3, 5)),
        ("20240305", True, dt.date(2024, 3, 5)),
        ("2024年3月5日", True, dt.date(2024, 3, 5)),
        ("２０２４年３月５日", True, dt.date(2024, 3, 5)),
        ("05.03.2024", True, dt.date(2024, 3, 5)),
        ("05/03/2024", True, dt.date(2024, 3, 5)),
        ("05/03/2024", False, dt.date(2024, 5, 3)),
        ("3/5/2024", False, dt.date(2024, 3, 5)),
        ("45356", True, dt.date(2024, 3, 5)),
        ("45356.0", True, dt.date(2024, 3, 5)),
        ("2024-02-29", True, dt.date(2024, 2, 29)),
        ("2024-03-05 10:30:00", True, dt.date(2024, 3, 5)),
        (" 1990-12-31T08:00 ", True, dt.date(1990, 12, 31)),
    ],
)
def test_date(text: str, day_first: bool, expected: dt.date) -> None:
    assert date(text, day_first=day_first) == expected


@pytest.mark.parametrize(
    ("text", "day_first", "reason"),
    [
        ("", True, "empty"),
        ("2023-02-29", True, r"day 29 out of range for 2023-02 \(which has 28 days\)"),
        ("2024-13-01", True, "month 13 out of range"),
        ("2024-04-31", True, "day 31 out of range for 2024-04"),
        ("25/12/2024", False, r"month 25 out of range \(read as month/day/year\)"),
        ("12/25/2024", True, r"month 25 out of range \(read as day/month/year\)"),
        ("05/03/24", True, "two-digit year is ambiguous"),
        ("20240230", True, "day 30 out of range"),
        ("0000-01-01", True, "year 0 out of range"),
        ("30", True, "Excel serial number out of range"),
        ("next Tuesday", True, "unrecognised date format"),
        ("2024-03/05", True, "unrecognised date format"),
    ],
)
def test_date_refused(text: str, day_first: bool, reason: str) -> None:
    with pytest.raises(NormaliseError, match=reason) as info:
        date(text, day_first=day_first)
    assert info.value.field == "date"


# --- gender ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("男", "male"),
        ("女", "female"),
        ("男性", "male"),
        ("女性", "female"),
        ("先生", "male"),
        ("女士", "female"),
        ("M", "male"),
        ("f", "female"),
        ("Male", "male"),
        ("FEMALE", "female"),
        ("Mr.", "male"),
        ("Mrs", "female"),
        ("Ms.", "female"),
        ("ｍ", "male"),
        ("Ｆｅｍａｌｅ", "female"),
        (" 未知 ", "unknown"),
        ("保密", "unknown"),
        ("", "unknown"),
    ],
)
def test_gender(text: str, expected: str) -> None:
    assert gender(text) == expected


@pytest.mark.parametrize("text", ["x", "其他", "男女", "mister", "1", "mx"])
def test_gender_refused(text: str) -> None:
    with pytest.raises(NormaliseError, match="not a recognised gender") as info:
        gender(text)
    assert info.value.field == "gender"


# --- address -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("北京市朝阳区建国路88号", ("北京市", "北京市", "朝阳区", "建国路88号")),
        ("上海市浦东新区世纪大道100号", ("上海市", "上海市", "浦东新区", "世纪大道100号")),
        ("上海浦东新区张江路", ("上海市", "上海市", "浦东新区", "张江路")),
        (
            "广西壮族自治区南宁市青秀区民族大道1号",
            ("广西壮族自治区", "南宁市", "青秀区", "民族大道1号"),
        ),
        ("广东省广州市天河区体育西路191号", ("广东省", "广州市", "天河区", "体育西路191号")),
        ("广东广州市天河区", ("广东省", "广州市", "天河区", None)),
        ("江苏省苏州市昆山市玉山镇", ("江苏省", "苏州市", "昆山市", "玉山镇")),
        ("内蒙古自治区鄂尔多斯市鄂托克旗", ("内蒙古自治区", "鄂尔多斯市", "鄂托克旗", None)),
        ("重庆市石柱土家族自治县南宾镇", ("重庆市", "重庆市", "石柱土家族自治县", "南宾镇")),
        ("吉林省延边朝鲜族自治州延吉市", ("吉林省", "延边朝鲜族自治州", "延吉市", None)),
        ("吉林市船营区", (None, "吉林市", "船营区", None)),
        ("黑龙江省哈尔滨市道里区", ("黑龙江省", "哈尔滨市", "道里区", None)),
        ("广东省 深圳市，南山区 科技园", ("广东省", "深圳市", "南山区", "科技园")),
        ("香港特别行政区中环", ("香港特别行政区", None, None, "中环")),
        ("浙江省西湖区文三路", ("浙江省", None, "西湖区", "文三路")),
        ("阳光小区3栋", (None, None, None, "阳光小区3栋")),
        ("北京路123号", (None, None, None, "北京路123号")),
        ("123 Main St, Springfield", (None, None, None, "123 Main St, Springfield")),
        ("ＸＸ省", (None, None, None, "XX省")),
    ],
)
def test_address(text: str, expected: tuple[str | None, ...]) -> None:
    province, city, district, rest = expected
    assert address(text) == {"province": province, "city": city, "district": district, "rest": rest}


@pytest.mark.parametrize("text", ["", "   ", "，、", "\u200b"])
def test_address_refused(text: str) -> None:
    with pytest.raises(NormaliseError, match="address: empty"):
        address(text)


def test_address_keeps_every_character() -> None:
    text = "四川省成都市武侯区人民南路四段9号 3单元 1201室"
    parts = address(text)
    assert "".join(v for v in parts.values() if v).replace(" ", "") == text.replace(" ", "")
