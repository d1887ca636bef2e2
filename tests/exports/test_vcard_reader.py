from __future__ import annotations

from pathlib import Path

import pytest

from rapport.ingest.mapping import propose_mapping
from rapport.ingest.readers import ReadError, Row, read_rows
from rapport.ingest.vcard import read_vcards

# As an older Android phone exports it: vCard 2.1, bare parameters, quoted-printable UTF-8 with a
# soft line break, an inline BASE64 photo, two numbers (the PREF one is not first).
V21 = (
    "BEGIN:VCARD\r\n"
    "VERSION:2.1\r\n"
    "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=E7=8E=8B;=E5=B0=8F=E6=98=8E;;;\r\n"
    "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=E7=8E=8B=E5=B0=8F=\r\n"
    "=E6=98=8E\r\n"
    "TEL;HOME:010-6255 1234\r\n"
    "TEL;CELL;PREF:+86 138 1234 5678\r\n"
    "EMAIL;INTERNET:xm@example.com\r\n"
    "ADR;HOME;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:;;=E5=BC=A0=E6=B1=9F=E8=B7=AF1=E5=8F=B7;"
    "=E4=B8=8A=E6=B5=B7=E5=B8=82;=E4=B8=8A=E6=B5=B7=E5=B8=82;200120;\r\n"
    "PHOTO;ENCODING=BASE64;JPEG:/9j/4AAQSkZJRgABAQAAAQABAAD\r\n"
    " AAAAAAAAAAAAAAA\r\n"
    "\r\n"
    "END:VCARD\r\n"
)

# iOS style vCard 3.0: TYPE lists, item groups, a folded NOTE, escaped characters.
V30 = (
    "BEGIN:VCARD\n"
    "VERSION:3.0\n"
    "N:Li;Lei;;;\n"
    "FN:Li Lei\n"
    "ORG:Example Co\\, Ltd;Sales\n"
    "TITLE:Manager\n"
    "item1.EMAIL;type=INTERNET;type=pref:lei@example.com\n"
    "item2.EMAIL;type=INTERNET:lei.li@example.org\n"
    "TEL;type=CELL;type=VOICE:13900001111\n"
    "BDAY:1985-06-01\n"
    "NOTE:first line\\nsecond\\, with comma and a long tail that is folded over the\n"
    "  next line\n"
    "CATEGORIES:vip,重要\n"
    "END:VCARD\n"
)


def _write(tmp_path: Path, text: str, name: str = "contacts.vcf") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_vcard_21_quoted_printable_bare_params_and_photo(tmp_path: Path) -> None:
    rows = list(read_vcards(_write(tmp_path, V21)))
    assert rows == [
        Row(
            1,
            {
                "name": "王小明",
                "family name": "王",
                "given name": "小明",
                "phone": "+86 138 1234 5678",
                "phone 2": "010-6255 1234",
                "email": "xm@example.com",
                "address": "上海市张江路1号",
                "region": "上海市",
                "city": "上海市",
                "postal code": "200120",
            },
        )
    ]


def test_vcard_30_groups_types_folding_and_escapes(tmp_path: Path) -> None:
    rows = list(read_rows(_write(tmp_path, V21 + V30)))  # read_rows knows .vcf
    assert [r.line for r in rows] == [1, 14]
    assert rows[1].values == {
        "name": "Li Lei",
        "family name": "Li",
        "given name": "Lei",
        "organisation": "Example Co, Ltd Sales",
        "occupation": "Manager",
        "email": "lei@example.com",
        "email 2": "lei.li@example.org",
        "phone": "13900001111",
        "birthday": "1985-06-01",
        "note": "first line\nsecond, with comma and a long tail that is folded over the next line",
        "tags": "vip,重要",
    }


def test_vcard_40_tel_uri_gender_and_basic_date(tmp_path: Path) -> None:
    text = (
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:1234\r\nFN:张伟\r\n"
        "TEL;VALUE=uri;PREF=2:tel:+86-10-1234-5678\r\nTEL;VALUE=uri;TYPE=cell;PREF=1:tel:+8613812345678\r\n"
        "GENDER:F\r\nBDAY:19900307\r\nX-WECHAT:wxid_1\r\nEND:VCARD\r\n"
    )
    (row,) = read_vcards(_write(tmp_path, text))
    assert row.values == {
        "name": "张伟",
        "external id": "urn:uuid:1234",
        "phone": "+8613812345678",
        "phone 2": "+86-10-1234-5678",
        "gender": "female",
        "birthday": "1990-03-07",
        "wechat": "wxid_1",
    }


def test_headers_are_understood_by_the_mapping() -> None:
    headers = "name|family name|given name|phone|phone 2|email|address|region|city|gender|birthday"
    headers += "|occupation|tags|note|wechat|external id"
    assert propose_mapping(headers.split("|")) == {
        "name": "display_name",
        "family name": "family_name",
        "given name": "given_name",
        "phone": "phone",
        "phone 2": None,
        "email": "email",
        "address": "address",
        "region": "region",
        "city": "city",
        "gender": "gender",
        "birthday": "birth_date",
        "occupation": "occupation",
        "tags": "tags",
        "note": "note",
        "wechat": "wechat",
        "external id": "external_id",
    }


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("BEGIN:VCARD\nVERSION:3.0\nFN:a\n", 1, "the card has no END:VCARD"),
        ("FN:a\n", 1, "content outside a card (expected BEGIN:VCARD)"),
        ("BEGIN:VCARD\nFN:a\nBEGIN:VCARD\n", 3,
         "BEGIN:VCARD inside the card that starts at line 1 (missing END:VCARD)"),
        ("BEGIN:VCARD\nVERSION:3.0\nthis line has no colon\nEND:VCARD\n", 3,
         "malformed vCard line: expected NAME:value"),
        ("BEGIN:VCARD\nVERSION:5.0\nFN:a\nEND:VCARD\n", 1,
         "unsupported vCard VERSION '5.0' (expected 2.1, 3.0 or 4.0)"),
        ("END:VCARD\n", 1, "END:VCARD without BEGIN:VCARD"),
        ("BEGIN:VCARD\nFN;ENCODING=QUOTED-PRINTABLE;CHARSET=NOPE:=41\nEND:VCARD\n", 2,
         "FN: unknown CHARSET 'NOPE'"),
        ("\n\n", None, "no vCard in the file (expected BEGIN:VCARD)"),
    ],
)  # fmt: skip
def test_malformed_files_name_line_and_reason(
    tmp_path: Path, text: str, line: int | None, reason: str
) -> None:
    with pytest.raises(ReadError) as exc:
        list(read_vcards(_write(tmp_path, text)))
    assert (exc.value.line, exc.value.reason) == (line, reason)
