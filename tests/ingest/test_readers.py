import datetime as dt
from pathlib import Path

import openpyxl
import pytest

from rapport.ingest.readers import ReadError, Row, detect_encoding, read_rows


def test_gbk_semicolon_csv_with_chinese_headers(tmp_path: Path) -> None:
    path = tmp_path / "客户.csv"
    text = '姓名;手机号;城市\r\n王小明;13800138000;上海\r\n\r\n李雷;"139;0000";北京\r\n'
    path.write_bytes(text.encode("gbk"))

    assert detect_encoding(path) == "gb18030"
    assert list(read_rows(path)) == [
        Row(2, {"姓名": "王小明", "手机号": "13800138000", "城市": "上海"}),
        Row(4, {"姓名": "李雷", "手机号": "139;0000", "城市": "北京"}),
    ]


def test_utf8_bom_csv_with_multiline_cell_and_short_row(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    text = 'name,email,note\n\nAda,ada@example.com,"two\nlines"\nBob,bob@example.com\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))

    assert detect_encoding(path) == "utf-8-sig"
    assert list(read_rows(path)) == [
        Row(3, {"name": "Ada", "email": "ada@example.com", "note": "two\nlines"}),
        Row(5, {"name": "Bob", "email": "bob@example.com", "note": ""}),
    ]


@pytest.mark.parametrize("delimiter", ["\t", "|"])
def test_tab_and_pipe_delimiters(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "x.txt"
    path.write_text(delimiter.join(["a", "b"]) + "\n" + delimiter.join(["1", "2,5"]) + "\n", encoding="utf-8")
    assert list(read_rows(path)) == [Row(2, {"a": "1", "b": "2,5"})]


def test_single_column_csv_and_trailing_empty_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("phone,\n13800138000,\n", encoding="utf-8")
    assert list(read_rows(path)) == [Row(2, {"phone": "13800138000"})]


def test_read_rows_streams(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("id\n")
        for i in range(10_000):
            fh.write(f"{i}\n")
    rows = read_rows(path)
    assert next(rows) == Row(2, {"id": "0"})
    assert sum(1 for _ in rows) == 9_999


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("", None, "empty file"),
        ("\n \n", None, "empty file: no header row"),
        ("name,,email\nA,B,C\n", 1, "missing header: column 2 has no name"),
        ("\nname,Name,name\n", 2, "duplicate header 'name' (columns 1 and 3)"),
        (
            "name,email\nA,a@x.org\nB,b@x.org,extra\n",
            3,
            "the row has 3 cells but the header has only 2 columns",
        ),
    ],
)
def test_csv_errors(tmp_path: Path, content: str, line: int | None, reason: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ReadError) as caught:
        list(read_rows(path))
    assert (caught.value.path, caught.value.line, caught.value.reason) == (str(path), line, reason)
    where = f"{path}, line {line}" if line else str(path)
    assert str(caught.value) == f"{where}: {reason}"


def test_jsonl_with_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "customers.jsonl"
    path.write_text(
        '{"name": "王小明", "phone": 13800138000, "vip": true, "tags": ["a", "b"], "note": null}\n'
        "\n"
        '{"name": "Ada", "score": 1.5}\n'
        '{"name": "broken"\n'
        '{"name": "never read"}\n',
        encoding="utf-8",
    )
    rows = read_rows(path)
    assert next(rows) == Row(
        1, {"name": "王小明", "phone": "13800138000", "vip": "true", "tags": '["a","b"]', "note": ""}
    )
    assert next(rows) == Row(3, {"name": "Ada", "score": "1.5"})
    with pytest.raises(ReadError) as caught:
        next(rows)
    assert caught.value.line == 4
    assert caught.value.reason.startswith("invalid JSON: ")


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ('{"a": 1}\n[1, 2]\n', 2, "expected a JSON object, got list"),
        ('{"a": 1, "a": 2}\n', 1, "invalid JSON object: duplicate key 'a'"),
        ("\n\n", None, "empty file"),
    ],
)
def test_jsonl_errors(tmp_path: Path, content: str, line: int | None, reason: str) -> None:
    path = tmp_path / "x.ndjson"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ReadError) as caught:
        list(read_rows(path))
    assert (caught.value.line, caught.value.reason) == (line, reason)


def test_xlsx_first_sheet_dates_and_numbers_as_text(tmp_path: Path) -> None:
    path = tmp_path / "customers.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["姓名", "手机", "生日", "积分", "登记时间", "VIP", None])
    sheet.append(["王小明", 13800138000, dt.date(1990, 5, 17), 12.5, dt.datetime(2024, 3, 1, 9, 30), True])
    sheet.append([])
    sheet.append(["李雷", "13900139000", dt.datetime(1985, 1, 2), 3.0, None, False])
    other = workbook.create_sheet("ignored")
    other.append(["not", "read"])
    workbook.save(path)

    assert list(read_rows(path)) == [
        Row(
            2,
            {
                "姓名": "王小明",
                "手机": "13800138000",
                "生日": "1990-05-17",
                "积分": "12.5",
                "登记时间": "2024-03-01 09:30:00",
                "VIP": "true",
            },
        ),
        Row(
            4,
            {
                "姓名": "李雷",
                "手机": "13900139000",
                "生日": "1985-01-02",
                "积分": "3",
                "登记时间": "",
                "VIP": "false",
            },
        ),
    ]


def test_xlsx_errors(tmp_path: Path) -> None:
    path = tmp_path / "dup.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["name", "name"])
    workbook.save(path)
    with pytest.raises(ReadError, match=r"line 1: duplicate header 'name' \(columns 1 and 2\)"):
        list(read_rows(path))

    fake = tmp_path / "fake.xlsx"
    fake.write_bytes(b"not a zip")
    with pytest.raises(ReadError, match=r"not a valid \.xlsx file"):
        list(read_rows(fake))


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    old = tmp_path / "old.xls"
    old.write_bytes(b"x")
    with pytest.raises(ReadError, match=r"unknown file type '\.xls' \(save it as \.xlsx\)"):
        read_rows(old)
    with pytest.raises(ReadError, match="cannot open the file"):
        read_rows(tmp_path / "missing.csv")
