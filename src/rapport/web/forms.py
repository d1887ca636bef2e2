"""Server-side form validation for pages: the API's Pydantic schemas, errors in the user's language.

    values = form_values(await ctx.request.form())         # or FastAPI Form() parameters
    try:
        body = CustomerCreate.model_validate(values)      # the API's own input schema
        service.create(ctx.recs, body)
    except (ValidationError, InvalidInput) as exc:
        return ctx.render("x.html", {"errors": field_errors(ctx, exc), "values": values}, status=422)

``errors`` maps a field name to one translated message; ``_forms.html`` shows it under the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from rapport.errors import RapportError
from rapport.web.context import PageContext
from rapport.web.nav import N_

# Pydantic / Rapport error types -> msgid (``%(limit)s`` filled from the error's context).
ERROR_TEXT: dict[str, str] = {
    "missing": N_("This field is required."),
    "null": N_("This field is required."),
    "string_too_short": N_("Enter at least %(limit)s characters."),
    "string_too_long": N_("Enter at most %(limit)s characters."),
    "too_short": N_("Enter at least %(limit)s items."),
    "too_long": N_("Enter at most %(limit)s items."),
    "int_parsing": N_("Enter a whole number."),
    "int_type": N_("Enter a whole number."),
    "float_parsing": N_("Enter a number."),
    "decimal_parsing": N_("Enter a number."),
    "greater_than": N_("Enter a number greater than %(limit)s."),
    "greater_than_equal": N_("Enter a number of at least %(limit)s."),
    "less_than_equal": N_("Enter a number of at most %(limit)s."),
    "date_from_datetime_parsing": N_("Enter a date like 2026-03-05."),
    "date_parsing": N_("Enter a date like 2026-03-05."),
    "datetime_parsing": N_("Enter a date and time like 2026-03-05 14:30."),
    "datetime_from_date_parsing": N_("Enter a date and time like 2026-03-05 14:30."),
    "literal_error": N_("Choose one of the values offered."),
    "enum": N_("Choose one of the values offered."),
    "value_error": N_("This value is not valid."),
    "email": N_("Enter a valid email address."),
    "phone": N_("Enter a valid phone number."),
    "not_unique": N_("This value is already taken."),
    "reference": N_("Choose an existing record you may see."),
}
FALLBACK = N_("This value is not valid.")


def form_values(form: Mapping[str, Any], *, multi: tuple[str, ...] = ()) -> dict[str, Any]:
    """Form fields as a dict for Pydantic: blank inputs become absent (None), ``multi`` as lists."""
    out: dict[str, Any] = {}
    getlist = getattr(form, "getlist", None)
    for key in form:
        if key == "csrf_token":
            continue
        if key in multi and getlist is not None:
            out[key] = [v for v in getlist(key) if isinstance(v, str) and v.strip()]
            continue
        value = form[key]
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                continue
        out[key] = value
    return out


def _message(ctx: PageContext, kind: str, context: Mapping[str, Any] | None, fallback: str | None) -> str:
    msgid = ERROR_TEXT.get(kind)
    if msgid is None:
        for key, text in ERROR_TEXT.items():
            if kind.startswith(key) or key in kind:
                msgid = text
                break
    if msgid is None:
        return fallback or ctx.gettext(FALLBACK)
    limit = None
    if context:
        limit = next(
            (context[k] for k in ("min_length", "max_length", "gt", "ge", "le", "lt") if k in context), None
        )
    return ctx.gettext(msgid, limit=limit) if "%(limit)s" in msgid else ctx.gettext(msgid)


def field_errors(ctx: PageContext, exc: ValidationError | RapportError) -> dict[str, str]:
    """One translated message per field (the first error of each field wins)."""
    out: dict[str, str] = {}
    if isinstance(exc, ValidationError):
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
            name = loc[0] if loc else "__all__"
            out.setdefault(name, _message(ctx, str(err.get("type", "")), err.get("ctx"), None))
        return out
    for problem in exc.errors or []:
        name = str(problem.get("field") or "__all__").split(".")[0]
        out.setdefault(name, _message(ctx, str(problem.get("type", "")), None, None))
    if not out:
        out["__all__"] = ctx.gettext(FALLBACK)
    return out
