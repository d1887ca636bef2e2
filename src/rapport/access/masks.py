"""Partial display of identifiers for roles that may see a record but not the whole value.

Masks keep what staff need to recognise a person on the phone (the last digits, the mail domain)
and drop what would let them copy the identifier out. They are applied by the data-access layer
(:mod:`rapport.access.records`) to every row it returns, so the API, the 360 view and exports
show the same masked values. ``None`` stays ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any


class Mask(StrEnum):
    phone = "phone"  # 13812345678 -> 138****5678 (first 3, last 4)
    email = "email"  # zhang.san@example.com -> z***@example.com
    national_id = "national_id"  # 110101199003071234 -> 1101**********1234 (region prefix, last 4)
    wechat = "wechat"  # wxid_abc12345 -> wx*******45 (first 2, last 2)
    address = "address"  # keeps the first 6 characters (province/city), hides the rest
    contact = "contact"  # a contact point's value: by the row's kind


def _keep(text: str, head: int, tail: int, star_count: int | None = None) -> str:
    if len(text) <= head + tail:
        # Too short to show anything safely: show only the last character.
        return "*" * (len(text) - 1) + text[-1:] if len(text) > 1 else "*"
    stars = "*" * (star_count if star_count is not None else len(text) - head - tail)
    return text[:head] + stars + (text[-tail:] if tail else "")


def mask_phone(value: str) -> str:
    digits_only = value.replace(" ", "").replace("-", "")
    if digits_only.startswith("+86"):
        digits_only = digits_only[3:]
    elif digits_only.startswith("+"):
        return _keep(digits_only, 3, 4, 4)
    return _keep(digits_only, 3, 4, 4)


def mask_email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local:
        return _keep(value, 1, 0, 3)
    return f"{local[0]}***@{domain}"


def mask_national_id(value: str) -> str:
    return _keep(value.strip(), 4, 4)


def mask_wechat(value: str) -> str:
    return _keep(value.strip(), 2, 2)


def mask_address(value: str) -> str:
    return _keep(value, 6, 0, 4)


def _hide(value: str) -> str:
    return "*" * min(len(value), 8)


_BY_KIND: dict[str, Callable[[str], str]] = {
    "phone": mask_phone,
    "email": mask_email,
    "wechat": mask_wechat,
    "address": mask_address,
    "national_id": mask_national_id,
}

_FUNCTIONS: dict[Mask, Callable[[str], str]] = {
    Mask.phone: mask_phone,
    Mask.email: mask_email,
    Mask.national_id: mask_national_id,
    Mask.wechat: mask_wechat,
    Mask.address: mask_address,
}


def apply(mask: Mask, value: Any, row: dict[str, Any]) -> Any:
    if value is None:
        return None
    text = str(value)
    if mask is Mask.contact:
        # Unknown kinds are hidden entirely rather than shown in full.
        return _BY_KIND.get(str(row.get("kind")), _hide)(text)
    return _FUNCTIONS[mask](text)


def masker(mask: Mask) -> Callable[[Any, Any], Any]:
    """``apply`` for one column, chosen once: ``(value, kind) -> masked value``.

    ``kind`` is the row's ``kind`` (only :attr:`Mask.contact` reads it; None when the row has
    none, which hides the value entirely, as ``apply`` does). Bulk readers call this per value
    instead of dispatching on the mask for every field.
    """
    if mask is Mask.contact:

        def by_kind(value: Any, kind: Any) -> Any:
            if value is None:
                return None
            return _BY_KIND.get(str(kind), _hide)(str(value))

        return by_kind
    function = _FUNCTIONS[mask]

    def fixed(value: Any, kind: Any) -> Any:
        return None if value is None else function(str(value))

    return fixed
