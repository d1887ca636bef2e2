"""Bodies of the privacy routes: data-subject requests, consent, sharing, complaints, the portal."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from rapport.privacy.classification import Category
from rapport.privacy.classification import Purpose as ProcessingPurpose
from rapport.privacy.consent import Purpose
from rapport.schemas import Input, Instant, ListParams, Output, Patch, RefId
from rapport.text import Code, Line, LongText, ShortLine, clean_text

Kind = Literal["access", "correct", "delete", "port", "restrict", "withdraw_consent"]
Status = Literal["received", "verified", "in_progress", "completed", "rejected"]
Law = Literal["PIPL", "GDPR"]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class RequestCreate(Input):
    customer_id: RefId
    kind: Kind
    channel: Code = Field(description="How the person asked: email, phone, web, letter, in_person ...")
    details: LongText | None = Field(default=None, description="What the person asked for")
    jurisdiction: Law | None = Field(default=None, description="Defaults to RAPPORT_DSR_JURISDICTION")
    purpose: Code | None = Field(default=None, description="withdraw_consent only: the consent purpose")


class RequestFilters(ListParams):
    status: Status | None = None
    kind: Kind | None = None
    customer_id: RefId | None = None
    assignee_id: RefId | None = None
    overdue: bool = Field(default=False, description="Only open requests past their deadline")


class StatusChange(Input):
    status: Literal["verified", "in_progress", "completed", "rejected"]
    resolution: Reason | None = Field(
        default=None, description="Required to reject (the reason) and to complete a correction"
    )


class Extension(Input):
    reason: Reason


class RequestAssignment(Input):
    assignee_id: RefId


class RequestRead(Output):
    id: int
    customer_id: int | None = None
    kind: str | None = None
    status: str | None = None
    jurisdiction: str | None = None
    channel: str | None = None
    details: str | None = None
    purpose: str | None = None
    received_at: dt.datetime | None = None
    due_at: dt.datetime | None = None
    extended_at: dt.datetime | None = None
    extension_reason: str | None = None
    verified_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    resolution: str | None = None
    assignee_id: int | None = None
    opened_by_id: int | None = None
    overdue_notified_at: dt.datetime | None = None
    export_expires_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None


class CustomerExportIn(Input):
    """A rapport.customer-export/1 document (see rapport.privacy.portability) to import."""

    format: Literal["rapport.customer-export/1"]
    exported_at: str | None = None
    customer: dict[str, Any]
    tags: list[str] = Field(default_factory=list, max_length=50)
    contact_points: list[dict[str, Any]] = Field(default_factory=list, max_length=20)
    interactions: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    tasks: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    orders: list[dict[str, Any]] = Field(
        default_factory=list, description="Carried for the person; not imported"
    )
    consents: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=10_000,
        description="The person's consent history with the exporting controller; not re-granted on import",
    )


ConsentSource = Literal["web_form", "paper_form", "phone", "email", "in_person", "privacy_portal", "import"]
LegalBasis = Literal["consent", "contract", "legal_obligation", "vital_interest", "public_interest"]
TransferMechanism = Literal["standard_contract", "certification", "security_assessment"]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


def _multi(value: str) -> str:
    return clean_text(value, multiline=True)


def _filled(value: str) -> str:
    if not value:
        raise ValueError("must not be blank")
    return value


# Multi-line text: control characters refused (PostgreSQL cannot store NUL), not blank when trimmed.
Evidence = Annotated[
    str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_multi), AfterValidator(_filled)
]
RestrictionReason = Annotated[
    str, StringConstraints(min_length=1, max_length=500), AfterValidator(_multi), AfterValidator(_filled)
]
Narrative = Annotated[
    str, StringConstraints(min_length=1, max_length=10_000), AfterValidator(_multi), AfterValidator(_filled)
]
Details = Annotated[
    str, StringConstraints(min_length=1, max_length=4000), AfterValidator(_multi), AfterValidator(_filled)
]


# -- consent -----------------------------------------------------------------------------------


class ConsentIn(Input):
    """One purpose per record: a body naming several purposes is refused (no bundled consent)."""

    purpose: Purpose = Field(description="Exactly one purpose; record each purpose separately")
    granted: bool
    source: ConsentSource
    evidence: Evidence | None = Field(default=None, description="Reference to the signed form or recording")
    partner_id: RefId | None = Field(
        default=None, description="Required for third_party_sharing and cross_border_transfer"
    )


class WithdrawIn(Input):
    purpose: Purpose
    source: ConsentSource
    evidence: Evidence | None = None
    partner_id: RefId | None = None


class RestrictionIn(Input):
    restricted: bool
    reason: RestrictionReason


class ConsentEventRead(Output):
    id: int
    customer_id: int
    purpose: str
    partner_id: int | None = None
    granted: bool
    source: str
    evidence: str | None = None
    at: dt.datetime
    actor_id: int | None = None
    actor_kind: str
    request_id: str | None = None


class ConsentStateRead(Output):
    purpose: str
    partner_id: int | None = None
    granted: bool
    at: dt.datetime
    event_id: int


class ConsentSummary(Output):
    restricted: bool
    restriction_reason: str | None = None
    current: list[ConsentStateRead]


class ConsentOverview(ConsentSummary):
    customer_id: int
    history: list[ConsentEventRead]


class RestrictionRead(Output):
    customer_id: int
    restricted: bool
    reason: str | None = None


# -- sharing -----------------------------------------------------------------------------------


class PartnerIn(Input):
    name: Line
    country: Country


class PartnerRead(Output):
    id: int
    name: str
    country: str
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None


class PartnerList(Output):
    items: list[PartnerRead]


Purposes = Annotated[list[ProcessingPurpose], Field(min_length=1, max_length=8)]
Categories = Annotated[list[Category], Field(min_length=1, max_length=11)]


class AgreementCreate(Input):
    partner_id: RefId
    title: Line
    purposes: Purposes
    data_categories: Categories
    legal_basis: LegalBasis
    valid_from: Instant
    valid_until: Instant
    cross_border: bool = False
    transfer_mechanism: TransferMechanism | None = Field(
        default=None, description="Required when cross_border (PIPL art. 38)"
    )
    destination_country: Country | None = None
    impact_assessment_ref: Annotated[ShortLine, AfterValidator(_filled)] = Field(
        description="Reference of the personal information protection impact assessment (PIPL art. 55)"
    )


class AgreementUpdate(Patch):
    title: Line | None = None
    purposes: Purposes | None = None
    data_categories: Categories | None = None
    valid_until: Instant | None = None
    transfer_mechanism: TransferMechanism | None = None
    impact_assessment_ref: ShortLine | None = None


class AgreementRead(Output):
    id: int
    partner_id: int | None = None
    title: str | None = None
    purposes: list[str] | None = None
    data_categories: list[str] | None = None
    legal_basis: str | None = None
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    cross_border: bool | None = None
    transfer_mechanism: str | None = None
    destination_country: str | None = None
    impact_assessment_ref: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None


class AgreementFilters(ListParams):
    partner_id: RefId | None = None


class ProvideIn(Input):
    customer_ids: Annotated[list[RefId], Field(min_length=1, max_length=1000)]
    categories: Categories
    purpose: ProcessingPurpose


class ProvisionRead(Output):
    provision_id: int
    agreement_id: int
    partner_id: int
    purpose: str
    categories: list[str]
    customers: list[dict[str, Any]]


# -- complaints --------------------------------------------------------------------------------

ComplaintChannel = Literal["email", "phone", "letter", "in_person", "privacy_portal", "regulator"]


class ComplaintCreate(Input):
    customer_id: RefId | None = None
    channel: ComplaintChannel
    summary: Narrative


class ResolveIn(Input):
    resolution: Narrative


class ComplaintRead(Output):
    id: int
    customer_id: int | None = None
    channel: str | None = None
    summary: str | None = None
    status: str | None = None
    received_at: dt.datetime | None = None
    acknowledge_due_at: dt.datetime | None = None
    resolve_due_at: dt.datetime | None = None
    acknowledged_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    resolution: str | None = None
    handler_id: int | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None


class ComplaintFilters(ListParams):
    status: Literal["received", "acknowledged", "resolved"] | None = None
    customer_id: RefId | None = None


class ComplaintList(Output):
    items: list[ComplaintRead]


# -- privacy portal ----------------------------------------------------------------------------


class ChallengeIn(Input):
    address: Annotated[str, StringConstraints(min_length=3, max_length=254)] = Field(
        description="The email address or phone number Rapport has verified for you"
    )


class ChallengeOut(Output):
    challenge: str = Field(description="Send it back with the code")
    expires_in: int
    message: str


class CodeIn(Input):
    challenge: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    code: Annotated[str, StringConstraints(min_length=1, max_length=12)]


class PortalToken(Output):
    token: str
    token_type: str
    expires_in: int


class PortalWithdrawIn(Input):
    purpose: Purpose
    partner_id: RefId | None = None


class PortalWithdrawOut(Output):
    purpose: str
    partner_id: int | None = None
    granted: bool
    at: dt.datetime


RequestKind = Literal["access", "correct", "delete", "port", "restrict"]


class PortalRequestIn(Input):
    kind: RequestKind
    details: Details | None = None


class PortalRequestOut(Output):
    kind: str
    status: str
    reference: str | None = None


class PortalProfile(Output):
    customer: dict[str, Any]
    contact_points: list[dict[str, Any]]
    consents: ConsentSummary
    consent_history: list[dict[str, Any]]
    orders: dict[str, Any]
    interactions: list[dict[str, Any]]
