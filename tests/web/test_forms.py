"""Form errors in the user's language, from the API's own schemas."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request

from rapport.errors import invalid_field
from rapport.web.context import PageContext
from rapport.web.forms import field_errors, form_values


class Sample(BaseModel):
    name: str = Field(min_length=2)
    count: int


def _ctx(language: str) -> PageContext:
    return PageContext(request=Request({"type": "http", "headers": []}), language=language)


def test_pydantic_errors_become_translated_field_messages() -> None:
    with pytest.raises(ValidationError) as info:
        Sample.model_validate(form_values({"name": "x", "count": "abc", "csrf_token": "t"}))
    zh = field_errors(_ctx("zh-CN"), info.value)
    assert zh == {"name": "请至少输入 2 个字符。", "count": "请输入整数。"}
    assert field_errors(_ctx("en"), info.value) == {
        "name": "Enter at least 2 characters.",
        "count": "Enter a whole number.",
    }


def test_blank_fields_are_missing() -> None:
    with pytest.raises(ValidationError) as info:
        Sample.model_validate(form_values({"name": "  ", "count": "3"}))
    assert field_errors(_ctx("en"), info.value) == {"name": "This field is required."}


def test_service_errors_keep_their_field() -> None:
    exc = invalid_field("email", "not an address", "email")
    assert field_errors(_ctx("zh-CN"), exc) == {"email": "请输入有效的电子邮箱地址。"}
