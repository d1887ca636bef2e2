from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table

from rapport.access.policy import Grant, Role, Scope, grant_for
from rapport.models import Base, ContactPoint, Customer
from rapport.models.base import table_of
from rapport.privacy.classification import (
    INFO_KEY,
    TABLES,
    Category,
    Classification,
    Purpose,
    SensitiveKind,
    identifying_columns,
    not_personal,
    personal_tables,
    pii,
    problems,
)

# In the order the record of processing lists them.
PERSONAL_TABLES = (
    "customer",
    "contact_point",
    "customer_tag",
    "customer_search_term",
    "interaction",
    "task",
    "sales_order",
    "order_line",
    "customer_score",
    "app_user",
    "auth_token",
    "api_key",
    "audit_event",
    "idempotency_record",
    "data_subject_request",
    "consent_event",
    "consent_state",
    "processing_restriction",
    "provision_log",
    "privacy_complaint",
    "portal_challenge",
    "portal_session",
    "user_totp",
    "mfa_recovery_code",
    "oidc_identity",
    "webhook_delivery",
    "customer_merge",
    "customer_alias",
    "dedup_pair",
    "import_change",
    "customer_external_id",
)


def test_every_table_is_declared_personal_or_not() -> None:
    assert set(TABLES) == set(Base.metadata.tables)
    assert set(personal_tables()) == set(PERSONAL_TABLES)


def test_every_column_of_a_personal_table_is_classified() -> None:
    found = [p for table in Base.metadata.tables.values() for p in problems(table)]
    assert found == []


def test_the_check_names_each_unclassified_or_invalid_column() -> None:
    # Declarations built by hand, as a careless edit would, bypassing pii()'s own checks.
    bad_category: dict[str, Any] = {
        INFO_KEY: Classification(True, "identiy", (Purpose.service,))  # type: ignore[arg-type]
    }
    bad_purpose: dict[str, Any] = {
        INFO_KEY: Classification(True, Category.contact, ("spam",))  # type: ignore[arg-type]
    }
    table = Table(
        "customer",
        MetaData(),
        Column("id", Integer, primary_key=True, info=pii("reference", purposes=("service",))),
        Column("nickname", String(50)),
        Column("email", String(50), info=bad_purpose),
        Column("name", String(50), info=bad_category),
        Column(
            "ssn", String(50), info={INFO_KEY: Classification(True, Category.sensitive, (Purpose.service,))}
        ),
        Column("flag", String(50), info={INFO_KEY: Classification(False)}),
        Column("legacy", String(50), info={INFO_KEY: {"category": "identity"}}),
    )
    assert problems(table) == [
        "customer.nickname: not classified (use pii(...) or not_personal(...))",
        "customer.email: unknown purpose 'spam'",
        "customer.name: unknown category 'identiy'",
        "customer.ssn: sensitive data needs a known subtype, not None",
        "customer.flag: not_personal needs a reason",
        "customer.legacy: info['privacy'] is not a Classification",
    ]
    assert problems(Table("newly_added", MetaData(), Column("id", Integer, primary_key=True))) == [
        "newly_added: not declared in TABLES as personal or not"
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"category": "identiy", "purposes": ("service",)}, "'identiy' is not a valid Category"),
        ({"category": "contact", "purposes": ("spam",)}, "'spam' is not a valid Purpose"),
        ({"category": "contact", "purposes": ()}, "personal data needs at least one purpose"),
        (
            {"category": "contact", "purposes": ("service",), "retention": "forever"},
            "'forever' is not a valid",
        ),
        ({"category": "sensitive", "purposes": ("service",)}, "sensitive data needs a known subtype"),
        ({"category": "sensitive", "purposes": ("service",), "subtype": "shoe_size"}, "'shoe_size' is not"),
        ({"category": "contact", "purposes": ("service",), "subtype": "health"}, "only sensitive data takes"),
    ],
)
def test_pii_refuses_unknown_or_incomplete_declarations(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pii(**kwargs)


def test_declarations_are_typed_values() -> None:
    assert pii("sensitive", purposes=("service", "legal_obligation"), subtype="national_id") == {
        INFO_KEY: Classification(
            True,
            Category.sensitive,
            (Purpose.service, Purpose.legal_obligation),
            subtype=SensitiveKind.national_id,
        )
    }
    assert not_personal("  counter ") == {INFO_KEY: Classification(False, note="counter")}
    with pytest.raises(ValueError, match="not_personal needs a reason"):
        not_personal(" ")


def test_identifying_columns_of_customer_and_contact_point() -> None:
    # Exact, so a newly classified identifying column shows up here and in the policy check below.
    assert identifying_columns(table_of(Customer)) == {
        "display_name",
        "family_name",
        "given_name",
        "name_latin",
        "birth_date",
        "attributes",
    }
    assert identifying_columns(table_of(ContactPoint)) == {
        "label",
        "value",
        "value_normalized",
        "district",
        "postal_code",
    }


@pytest.mark.parametrize(("model", "resource"), [(Customer, "customer"), (ContactPoint, "contact_point")])
def test_data_analyst_never_receives_an_identifying_column(model: type[Base], resource: str) -> None:
    hidden = grant_for(Role.data_analyst, resource).hidden
    assert identifying_columns(table_of(model)) - hidden == set()


def test_the_policy_check_would_catch_a_missed_column() -> None:
    # The analyst grant as it stood before custom attributes were classified as free text.
    before = Grant(
        frozenset(),
        Scope.all,
        frozenset({"display_name", "family_name", "given_name", "name_latin", "birth_date"}),
    )
    assert identifying_columns(table_of(Customer)) - before.hidden == {"attributes"}
