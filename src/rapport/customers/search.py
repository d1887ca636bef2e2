"""Name search terms: CJK suffixes, Latin words and pinyin, matched by indexed prefix range."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from pypinyin import Style, lazy_pinyin

Pinyin = Callable[[str], tuple[list[str], list[str]]]
"""CJK text -> (syllables, first letters), as pypinyin's lazy_pinyin gives them."""


def pinyin_of(cjk: str) -> tuple[list[str], list[str]]:
    return lazy_pinyin(cjk, errors="ignore"), lazy_pinyin(cjk, style=Style.FIRST_LETTER, errors="ignore")


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\U00020000" <= ch <= "\U0003134f"


def terms_for(*names: str | None, pinyin: Pinyin = pinyin_of) -> set[str]:
    """Every fragment a person might type to find this name, each matched as a prefix.

    ``pinyin``: a faster source of the same pinyin may be given (bulk imports cache it per character).
    """
    terms: set[str] = set()
    for name in names:
        if not name:
            continue
        # A name field holding a phone number or an email must not copy it into this plaintext
        # index: contact values are searched through their blind index only.
        text = " ".join(word for word in _norm(name).split() if not _contact_like(word))
        compact = "".join(text.split())
        if not compact:
            continue
        if any(_is_cjk(ch) for ch in compact):
            cjk = "".join(ch for ch in compact if _is_cjk(ch))
            # Suffixes make "小明" and "明" find "王小明" through a prefix scan.
            terms.update(cjk[i:] for i in range(len(cjk)))
            syllables, initials = pinyin(cjk)
            if syllables:
                terms.add("".join(syllables))
                terms.add("".join(s[0] for s in syllables if s))
                if len(syllables) > 1:
                    terms.add("".join(syllables[1:]))
                    terms.add(" ".join(syllables))
            terms.add("".join(initials))
        words = [w for w in text.replace(",", " ").replace(".", " ").split() if w]
        terms.update(words)
        if len(words) > 1:
            terms.add(" ".join(words))
            terms.add("".join(words))
        terms.add(compact)
    return {t[:200] for t in terms if t and not _contact_like(t)}


def _contact_like(term: str) -> bool:
    # map(str.isdigit) counts the same digits as a generator over the characters, at C speed.
    return "@" in term or (len(term) >= 5 and sum(map(str.isdigit, term)) >= 5)


def query_term(q: str) -> str:
    return " ".join(_norm(q).split())


def looks_like_phone(q: str) -> bool:
    digits = sum(ch.isdigit() for ch in q)
    return digits >= 5 and all(ch.isdigit() or ch in "+-() ." for ch in q)
