"""The import's fast search terms equal the customer service's on thousands of generated names."""

from __future__ import annotations

import random

from pypinyin.constants import PHRASES_DICT

from rapport.customers.search import terms_for as slow_terms_for
from rapport.demo.chunks import search_terms as slow_search_terms
from rapport.ingest.terms import search_terms, terms_for

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭"
    "曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖单解查仇乐尉迟欧阳上官"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志玉红梅文博浩然子涵欣怡梓轩一诺重行长乐朝阳"
LATIN = ("Li Wei", "Anna-Lena Müller", "J. R. R. Tolkien", "O'Brien, Sean", "ＦＵＬＬ Width")
MIXED = ("Wang", "13800138000", "a@b.cn", "2024", "·")
PHRASES = sorted(p for p in PHRASES_DICT if 2 <= len(p) <= 3)[:5000]


def _names(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.5:
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randrange(1, 4)))
        elif kind < 0.65:
            name = rng.choice(SURNAMES) + rng.choice(PHRASES)
        elif kind < 0.75:
            # Any CJK character, rare ones and extension blocks included.
            block = rng.choice(((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0xF900, 0xFAFF), (0x20000, 0x2A6DF)))
            name = "".join(chr(rng.randrange(*block)) for _ in range(rng.randrange(1, 5)))
        elif kind < 0.85:
            name = rng.choice(LATIN)
        else:
            parts = [rng.choice(SURNAMES) + rng.choice(GIVEN), rng.choice(MIXED)]
            rng.shuffle(parts)
            name = rng.choice((" ", "", "·", ", ")).join(parts)
        out.append(name)
    return out


def test_terms_for_equals_the_customer_services() -> None:
    names = _names(7, 6000)
    for name in names:
        assert terms_for(name) == slow_terms_for(name), name
    for a, b in zip(names[::2], names[1::2], strict=False):
        assert terms_for(a, None, b, "") == slow_terms_for(a, None, b, "")


def test_search_terms_equals_the_demo_ones() -> None:
    for name in _names(11, 2000):
        assert search_terms(name, None, name[:1]) == slow_search_terms(name, None, name[:1])
