"""Name search terms for imports: exactly ``rapport.demo.chunks.search_terms``, computed faster.

``rapport.customers.search.terms_for`` asks pypinyin for the pinyin of each name, which segments the
name into dictionary phrases first (a phrase may read differently from its characters). Person
names rarely contain a phrase, and names repeat by character far more than as a whole, so here the
pinyin of a name without any dictionary phrase of two or more characters is put together from the
pinyin of its single characters (cached); any name holding a phrase goes to pypinyin whole. The
rest of the term logic is ``terms_for``'s own (it takes the pinyin function);
tests/ingest/test_terms.py compares both on thousands of generated names (Chinese, rare CJK,
phrases, Latin, digits, emails).
"""

from __future__ import annotations

from functools import lru_cache

from pypinyin import Style, lazy_pinyin
from pypinyin.constants import PHRASES_DICT

from rapport.customers import search


@lru_cache(maxsize=65_536)
def _char(ch: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(normal pinyin, first letters) of one character, as lazy_pinyin gives them."""
    return (
        tuple(lazy_pinyin(ch, errors="ignore")),
        tuple(lazy_pinyin(ch, style=Style.FIRST_LETTER, errors="ignore")),
    )


def _has_phrase(cjk: str) -> bool:
    n = len(cjk)
    return any(cjk[i:j] in PHRASES_DICT for i in range(n - 1) for j in range(i + 2, n + 1))


def _pinyin(cjk: str) -> tuple[list[str], list[str]]:
    if _has_phrase(cjk):
        return (
            lazy_pinyin(cjk, errors="ignore"),
            lazy_pinyin(cjk, style=Style.FIRST_LETTER, errors="ignore"),
        )
    syllables: list[str] = []
    initials: list[str] = []
    for ch in cjk:
        normal, first = _char(ch)
        syllables.extend(normal)
        initials.extend(first)
    return syllables, initials


def terms_for(*names: str | None) -> set[str]:
    """``rapport.customers.search.terms_for`` with the per-character pinyin above."""
    return search.terms_for(*names, pinyin=_pinyin)


@lru_cache(maxsize=100_000)
def _terms_one(name: str) -> frozenset[str]:
    return frozenset(terms_for(name))


def search_terms(*names: str | None) -> set[str]:
    """What ``rapport.demo.chunks.search_terms`` gives (the customer service's index), cached per name."""
    out: set[str] = set()
    for name in names:
        if name:
            out |= _terms_one(name)
    return out
