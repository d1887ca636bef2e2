"""Field errors of a form in the user's language.

Services validate with the API's own schemas and rules and report ``errors`` entries
(``field``, ``type``, ``message``, optional ``ctx``) exactly as the API does; this module turns
each into a short sentence from the catalogue, keyed by form field, for ``_forms.html`` to show
next to the field. The English service message is never shown: it may not match the language.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rapport.web.context import PageContext
from rapport.web.nav import N_

# (field, type) first, then type alone.
FIELD_TEXT: dict[tuple[str, str], str] = {
    ("username", "string_pattern_mismatch"): N_(
        "Use 3 to 64 lower-case letters, digits, dots, underscores or hyphens."
    ),
    ("email", "value_error"): N_("Enter a valid email address."),
    ("username", "unique"): N_("This username is taken."),
    ("name", "unique"): N_("This name is already used."),
    ("team_id", "reference"): N_("Choose one of the teams offered."),
    ("actor", "unknown_user"): N_("There is no user with this username."),
}
TYPE_TEXT: dict[str, str] = {
    "missing": N_("This field is required."),
    "string_too_short": N_("This field is required."),
    "string_too_long": N_("This is too long."),
    "string_pattern_mismatch": N_("This is not in the expected format."),
    "enum": N_("Choose one of the options offered."),
    "literal_error": N_("Choose one of the options offered."),
    "int_parsing": N_("Enter a whole number."),
    "int_type": N_("Enter a whole number."),
    "bool_parsing": N_("Choose one of the options offered."),
    "greater_than_equal": N_("This number is too small."),
    "less_than_equal": N_("This number is too large."),
    "datetime_parsing": N_("Enter a valid date and time."),
    "datetime_from_date_parsing": N_("Enter a valid date and time."),
    "timezone_aware": N_("Enter a valid date and time."),
    "password_policy": N_("Use at least 12 characters that are not a common password or your username."),
    "unique": N_("This value is already used."),
    "reference": N_("Choose an existing record."),
    "range": N_("The end must be after the start."),
    "inactive": N_("This record is disabled."),
}
FALLBACK = N_("This value is not valid.")


def translate(ctx: PageContext, field: str, kind: str) -> str:
    msgid = FIELD_TEXT.get((field, kind)) or TYPE_TEXT.get(kind) or FALLBACK
    return ctx.gettext(msgid)


def field_errors(
    ctx: PageContext, errors: Iterable[Mapping[str, Any]] | None, known: Iterable[str] = ()
) -> dict[str, str]:
    """field -> translated message (the first error of each field). Errors about fields the form
    does not show (``known`` given) are filed under ``__all__`` so they are never lost."""
    shown = set(known)
    out: dict[str, str] = {}
    for err in errors or ():
        field = str(err.get("field") or "").split(".")[0] or "__all__"
        if shown and field not in shown:
            field = "__all__"
        out.setdefault(field, translate(ctx, field, str(err.get("type") or "")))
    return out
