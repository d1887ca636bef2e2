"""Maintain the workspace's gettext catalogues: ``make messages`` (``python -m rapport.web.catalogues``).

Extracts every msgid from src/rapport/web (templates and Python, keyword ``N_`` included),
merges it into locale/{zh_CN,en}/LC_MESSAGES/messages.po (new ids empty, vanished ids dropped),
English translations are the msgid itself. ``--fill`` takes a Python file defining ``ZH = {msgid:
text}`` and fills the Chinese catalogue. tests/web/test_i18n.py fails while any id is untranslated.
"""

from __future__ import annotations

import argparse
import runpy
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

WEB = Path(__file__).resolve().parent
METHOD_MAP = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def extracted() -> dict[str, tuple[str, ...]]:
    """msgid (or singular) -> the msgid tuple for plurals."""
    out: dict[str, tuple[str, ...]] = {}
    for _file, _line, message, _comments, _ctx in extract_from_dir(
        str(WEB), METHOD_MAP, OPTIONS, KEYWORDS, strip_comment_tags=True
    ):
        parts = (message,) if isinstance(message, str) else tuple(message)
        if parts[0]:
            out[parts[0]] = parts
    return out


def update(fill: dict[str, Any] | None = None) -> None:
    ids = extracted()
    for locale in ("zh_CN", "en"):
        path = WEB / "locale" / locale / "LC_MESSAGES" / "messages.po"
        old: Catalog | None = None
        if path.exists():
            with path.open("rb") as f:
                old = read_po(f, locale=locale)
        cat = Catalog(locale=locale, project="Rapport", domain="messages", fuzzy=False)
        for key, parts in sorted(ids.items()):
            msgid = parts if len(parts) > 1 else key
            previous = old.get(key) if old is not None else None
            if locale == "en":
                string: Any = parts if len(parts) > 1 else key
            elif fill and key in fill:
                string = fill[key]
            elif previous is not None and previous.string:
                string = previous.string
            else:
                string = ("", "") if len(parts) > 1 else ""
            cat.add(msgid, string)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_po(f, cat, width=100, omit_header=False, sort_output=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fill", type=Path)
    args = parser.parse_args()
    update(runpy.run_path(str(args.fill))["ZH"] if args.fill else None)
