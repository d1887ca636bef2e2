from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field, StringConstraints

from rapport.access.policy import Role
from rapport.schemas import Input, Output
from rapport.text import Line

Secret = Annotated[str, StringConstraints(min_length=1, max_length=256)]
ScopeName = Annotated[str, StringConstraints(pattern=r"^[a-z_*]+:(read|create|update|delete|export|assign)$")]


class TokenOut(Output):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str
    role: str
    restriction: str | None = Field(
        default=None, description="'mfa_enrol': the role requires 2FA; only enrolment routes are open"
    )


class SessionOut(Output):
    csrf_token: str = Field(description="Send as X-CSRF-Token on every unsafe request of this session")
    expires_in: int
    role: str
    restriction: str | None = None


class OtpIn(Input):
    code: Annotated[str, StringConstraints(min_length=6, max_length=32)]


class MfaDisableIn(Input):
    password: Secret
    code: Annotated[str, StringConstraints(min_length=6, max_length=32)]


class EnrolmentOut(Output):
    secret: str = Field(description="Base32 secret, shown once")
    otpauth_uri: str = Field(description="otpauth:// URI for a QR code, shown once")


class RecoveryCodesOut(Output):
    recovery_codes: list[str] = Field(description="Single-use codes, shown once; store them offline")


class MfaStatusOut(Output):
    enrolled: bool
    required_by_role: bool
    recovery_codes_left: int


class RoleRequirementIn(Input):
    role: Role
    required: bool


class RefreshIn(Input):
    refresh_token: Secret


class PasswordChange(Input):
    current_password: Secret
    new_password: Secret


class MeOut(Output):
    id: int
    username: str
    display_name: str
    role: str
    team_id: int | None = None
    preferred_language: str
    permissions: dict[str, list[str]]


class ApiKeyIn(Input):
    name: Annotated[Line, StringConstraints(min_length=1)]
    scopes: list[ScopeName] = Field(min_length=1, max_length=100)
    expires_at: dt.datetime | None = None


class ApiKeyOut(Output):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    created_at: dt.datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="Shown once; Rapport stores only its digest")
