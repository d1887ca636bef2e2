"""Propose which Rapport customer field each column of an import file holds, from its header.

Headers are compared after normalisation (Unicode NFKC, so full-width letters become ASCII,
case-folded, with spaces, punctuation and symbols removed): "E-Mail", "ｅｍａｉｌ" and "e_mail"
are the same header. A header equal to a known synonym is an exact match (confidence 1.0); a
header containing a synonym of at least two CJK characters or four Latin letters is a partial
match whose confidence is the share of the header the synonym covers ("客户手机" -> phone, 0.5).
No field is proposed for two headers: the better match keeps it (higher confidence, then the
more preferred synonym, e.g. 手机 before 电话, then the earlier column), the other gets None.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FIELDS",
    "SYNONYMS",
    "CustomerField",
    "Proposal",
    "explain_mapping",
    "normalise_header",
    "propose_mapping",
]

CustomerField = Literal[
    "display_name",
    "family_name",
    "given_name",
    "name_latin",
    "phone",
    "email",
    "gender",
    "birth_date",
    "address",
    "region",
    "city",
    "wechat",
    "external_id",
    "occupation",
    "acquisition_source",
    "tags",
    "note",
]

# Synonyms per field, most preferred first (the preference breaks ties between two headers).
SYNONYMS: dict[CustomerField, tuple[str, ...]] = {
    "display_name": (
        "姓名",
        "名字",
        "客户名称",
        "客户姓名",
        "客户名",
        "名称",
        "name",
        "full name",
        "fullname",
        "customer name",
        "display name",
        "contact name",
    ),
    "family_name": ("姓", "姓氏", "surname", "family name", "last name"),
    "given_name": ("名", "given name", "first name", "forename"),
    "name_latin": (
        "拼音",
        "姓名拼音",
        "英文名",
        "英文姓名",
        "pinyin",
        "latin name",
        "english name",
        "romanised name",
        "romanized name",
    ),
    "phone": (
        "手机",
        "手机号",
        "手机号码",
        "移动电话",
        "电话",
        "电话号码",
        "联系电话",
        "联系方式",
        "mobile",
        "mobile phone",
        "mobile number",
        "cell",
        "cellphone",
        "cell phone",
        "phone",
        "phone number",
        "telephone",
        "tel",
    ),
    "email": (
        "邮箱",
        "电子邮件",
        "电子邮箱",
        "邮箱地址",
        "邮件",
        "email",
        "e-mail",
        "email address",
        "e-mail address",
        "mail",
    ),
    "gender": ("性别", "gender", "sex"),
    "birth_date": (
        "生日",
        "出生日期",
        "出生年月日",
        "出生年月",
        "birthday",
        "date of birth",
        "birth date",
        "birthdate",
        "dob",
    ),
    "address": (
        "地址",
        "联系地址",
        "详细地址",
        "通讯地址",
        "住址",
        "家庭住址",
        "收货地址",
        "address",
        "street address",
        "postal address",
    ),
    "region": ("省份", "省", "省区", "地区", "province", "region", "state"),
    "city": ("城市", "市", "所在城市", "city", "town"),
    "wechat": ("微信", "微信号", "微信账号", "wechat", "wechat id", "weixin"),
    "external_id": (
        "外部编号",
        "客户编号",
        "客户号",
        "客户id",
        "编号",
        "external id",
        "customer id",
        "customer number",
        "customer no",
        "id",
    ),
    "occupation": ("职业", "职务", "occupation", "job", "job title", "profession"),
    "acquisition_source": ("来源", "客户来源", "渠道来源", "source", "lead source", "acquisition source"),
    "tags": ("标签", "客户标签", "tags", "tag", "labels", "label"),
    "note": ("备注", "说明", "附注", "备注信息", "note", "notes", "remark", "remarks", "comment", "comments"),
}

FIELDS: tuple[CustomerField, ...] = tuple(SYNONYMS)


@dataclass(frozen=True, slots=True)
class Proposal:
    """The field proposed for one header (None: none), how sure the match is and why."""

    field: CustomerField | None
    confidence: float
    reason: str


def normalise_header(header: str) -> str:
    """NFKC, case-folded, without whitespace, punctuation or symbols: "E-Mail：" -> "email"."""
    text = unicodedata.normalize("NFKC", header).casefold()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PSZC")


def _is_cjk(text: str) -> bool:
    return any(ord(ch) > 0x2E7F for ch in text)


# normalised synonym -> (field, preference rank, synonym as written)
_EXACT: dict[str, tuple[CustomerField, int, str]] = {}
for _field, _words in SYNONYMS.items():
    for _rank, _word in enumerate(_words):
        _EXACT.setdefault(normalise_header(_word), (_field, _rank, _word))
# Too generic to be recognised inside a longer header ("公司名称", "company name", "job title").
_EXACT_ONLY = {"名称", "name", "mail", "cell", "job", "编号", "source", "label", "state", "town", "工作"}
# Synonyms a header may merely contain: short ones ("名", "tel", "id") only ever match exactly.
_PARTIAL = sorted(
    (
        (key, value)
        for key, value in _EXACT.items()
        if len(key) >= (2 if _is_cjk(key) else 4) and key not in _EXACT_ONLY
    ),
    key=lambda item: -len(item[0]),
)
_MIN_PARTIAL = 0.4


def _best(key: str) -> tuple[float, int, CustomerField, str] | None:
    """(confidence, rank, field, synonym) of the best match for a normalised header."""
    if not key:
        return None
    if key in _EXACT:
        field, rank, word = _EXACT[key]
        return 1.0, rank, field, word
    best: tuple[float, int, int, CustomerField, str] | None = None
    for synonym, (field, rank, word) in _PARTIAL:
        position = key.find(synonym)
        if position < 0:
            continue
        confidence = round(len(synonym) / len(key), 2)
        # Higher confidence first; on a tie the synonym starting earlier ("邮箱地址": 邮箱, not 地址).
        candidate = (confidence, -position, -rank, field, word)
        if best is None or candidate[:3] > best[:3]:
            best = candidate
    if best is None or best[0] < _MIN_PARTIAL:
        return None
    return best[0], -best[2], best[3], best[4]


def explain_mapping(headers: Sequence[str]) -> dict[str, Proposal]:
    """A proposal with confidence and reason for every header."""
    candidates = []
    for index, header in enumerate(headers):
        match = _best(normalise_header(header))
        if match is not None:
            confidence, rank, field, word = match
            candidates.append((-confidence, rank, index, header, field, word))
    taken: dict[CustomerField, str] = {}
    result: dict[str, Proposal] = {}
    for neg_confidence, _rank, _index, header, field, word in sorted(candidates):
        confidence = -neg_confidence
        if field in taken:
            reason = f"{field} is already proposed for {taken[field]!r}, a better match"
            result[header] = Proposal(None, confidence, reason)
            continue
        taken[field] = header
        how = "is" if confidence == 1.0 else "contains"
        result[header] = Proposal(field, confidence, f"header {how} {word!r}")
    for header in headers:
        if header not in result:
            result[header] = Proposal(None, 0.0, "no known customer field")
    return {header: result[header] for header in headers}


def propose_mapping(headers: Sequence[str]) -> dict[str, CustomerField | None]:
    """The customer field proposed for each header, None for headers left unmapped."""
    return {header: proposal.field for header, proposal in explain_mapping(headers).items()}
