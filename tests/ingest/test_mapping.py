import pytest

from rapport.ingest.mapping import Proposal, explain_mapping, normalise_header, propose_mapping


def test_chinese_headers() -> None:
    headers = [
        "客户编号",
        "姓名",
        "姓",
        "名",
        "手机号",
        "邮箱",
        "性别",
        "出生日期",
        "联系地址",
        "省份",
        "城市",
        "微信号",
        "职业",
        "标签",
        "备注",
        "积分",
    ]
    assert propose_mapping(headers) == {
        "客户编号": "external_id",
        "姓名": "display_name",
        "姓": "family_name",
        "名": "given_name",
        "手机号": "phone",
        "邮箱": "email",
        "性别": "gender",
        "出生日期": "birth_date",
        "联系地址": "address",
        "省份": "region",
        "城市": "city",
        "微信号": "wechat",
        "职业": "occupation",
        "标签": "tags",
        "备注": "note",
        "积分": None,
    }


def test_english_headers_ignore_case_width_spaces_and_punctuation() -> None:
    headers = [
        "Full Name",
        "SURNAME",
        "first_name",
        "E-Mail",
        "ｍｏｂｉｌｅ",
        " Date of Birth ",
        "Sex",
        "Address:",
        "WeChat",
        "Customer ID",
        "Tags",
        "Notes",
        "colour",
    ]
    assert propose_mapping(headers) == {
        "Full Name": "display_name",
        "SURNAME": "family_name",
        "first_name": "given_name",
        "E-Mail": "email",
        "ｍｏｂｉｌｅ": "phone",
        " Date of Birth ": "birth_date",
        "Sex": "gender",
        "Address:": "address",
        "WeChat": "wechat",
        "Customer ID": "external_id",
        "Tags": "tags",
        "Notes": "note",
        "colour": None,
    }


def test_normalise_header() -> None:
    assert normalise_header("  Ｅ－Ｍａｉｌ：") == "email"
    assert normalise_header("手机号（必填）") == "手机号必填"
    assert normalise_header("date_of birth") == "dateofbirth"


def test_a_field_goes_to_the_better_match_only() -> None:
    # Both exact: the preferred synonym wins (mobile before landline), then the earlier column.
    assert propose_mapping(["电话", "手机"]) == {"电话": None, "手机": "phone"}
    assert propose_mapping(["email", "邮箱"]) == {"email": None, "邮箱": "email"}
    assert propose_mapping(["E-mail", "Email"]) == {"E-mail": "email", "Email": None}
    # An exact match beats a partial one wherever it stands.
    assert propose_mapping(["客户手机", "phone"]) == {"客户手机": None, "phone": "phone"}
    explained = explain_mapping(["客户手机", "phone"])
    assert explained["客户手机"] == Proposal(
        None, 0.5, "phone is already proposed for 'phone', a better match"
    )
    assert explained["phone"] == Proposal("phone", 1.0, "header is 'phone'")


def test_partial_matches() -> None:
    assert explain_mapping(["手机号码(必填)", "客户微信", "邮箱地址", "公司名称", "company name", "x"]) == {
        "手机号码(必填)": Proposal("phone", 0.67, "header contains '手机号码'"),
        "客户微信": Proposal("wechat", 0.5, "header contains '微信'"),
        "邮箱地址": Proposal("email", 1.0, "header is '邮箱地址'"),
        "公司名称": Proposal(None, 0.0, "no known customer field"),
        "company name": Proposal(None, 0.0, "no known customer field"),
        "x": Proposal(None, 0.0, "no known customer field"),
    }


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("名字", "display_name"),
        ("客户名称", "display_name"),
        ("name", "display_name"),
        ("电子邮件", "email"),
        ("联系电话", "phone"),
        ("tel", "phone"),
        ("gender", "gender"),
        ("生日", "birth_date"),
        ("DOB", "birth_date"),
        ("birthday", "birth_date"),
        ("地址", "address"),
        ("省", "region"),
        ("市", "city"),
        ("微信", "wechat"),
        ("外部编号", "external_id"),
        ("External ID", "external_id"),
        ("occupation", "occupation"),
        ("姓氏", "family_name"),
        ("客户姓名", "display_name"),
        ("", None),
    ],
)
def test_single_headers(header: str, field: str | None) -> None:
    assert propose_mapping([header]) == {header: field}
