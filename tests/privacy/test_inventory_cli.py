from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from rapport.cli.main import app
from tests.privacy.test_classification import PERSONAL_TABLES

runner = CliRunner()

EVERY_READER_BUT_ANALYST = {
    "admin": "all",
    "team_lead": "team",
    "crm_specialist": "all",
    "sales_rep": "team",
    "service_rep": "all",
}


def _record() -> dict[str, Any]:
    result = runner.invoke(app, ["privacy", "inventory", "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _column(record: dict[str, Any], table: str, column: str) -> dict[str, Any]:
    (entry,) = [t for t in record["tables"] if t["table"] == table]
    (found,) = [c for c in entry["columns"] if c["column"] == column]
    return dict(found)


def test_json_lists_personal_tables_then_the_rest_with_reasons() -> None:
    record = _record()
    assert [t["table"] for t in record["tables"]] == list(PERSONAL_TABLES)
    assert [t["table"] for t in record["not_personal"]] == [
        "role_mfa_requirement",
        "webhook_subscription",
        "organisation",
        "product",
        "team",
        "custom_field",
        "sharing_partner",
        "sharing_agreement",
        "encryption_key",
        "segment",
        "dedup_run",
        "dedup_cluster",
        "import_job",
        "import_rejection",
        "dashboard_customer_count",
        "dashboard_order_day",
        "dashboard_task_day",
        "saved_view",
    ]
    assert record["not_personal"][3] == {
        "table": "product",
        "reason": "the catalogue: nothing about any person",
    }
    assert set(record["vocabulary"]) == {"categories", "purposes", "retention", "at_rest"}
    assert record["vocabulary"]["retention"]["security_log"].startswith("at least six months")


def test_contact_value_is_contact_data_hidden_from_analysts() -> None:
    assert _column(_record(), "contact_point", "value") == {
        "column": "value",
        "personal": True,
        "category": "contact",
        "subtype": None,
        "purposes": ["service", "sales", "marketing"],
        "retention": "relationship",
        "note": "kind national_id holds a resident ID number: sensitive (PIPL art. 28)",
        "at_rest": "encrypted",
        "served": True,
        "readers": EVERY_READER_BUT_ANALYST,
        "hidden_from": ["data_analyst"],
        "masked_for": {"service_rep": "contact"},
    }


def test_entries_follow_policy_specs_and_declarations() -> None:
    record = _record()
    assert _column(record, "customer", "region") == {
        "column": "region",
        "personal": True,
        "category": "demographic",
        "subtype": None,
        "purposes": ["service", "sales", "analytics"],
        "retention": "relationship",
        "note": "",
        "at_rest": "plain",
        "served": True,
        "readers": {**EVERY_READER_BUT_ANALYST, "data_analyst": "all"},
        "hidden_from": [],
        "masked_for": {},
    }
    assert _column(record, "customer", "version") == {
        "column": "version",
        "personal": False,
        "category": None,
        "subtype": None,
        "purposes": [],
        "retention": None,
        "note": "optimistic-concurrency counter",
        "at_rest": "plain",
        "served": True,
        "readers": {**EVERY_READER_BUT_ANALYST, "data_analyst": "all"},
        "hidden_from": [],
        "masked_for": {},
    }
    # Never part of a user read: nobody receives it, whatever their grant on users.
    password = _column(record, "app_user", "password_hash")
    assert (password["category"], password["served"], password["readers"], password["hidden_from"]) == (
        "credential",
        False,
        {},
        [],
    )
    email = _column(record, "app_user", "email")
    assert email["readers"] == {
        "admin": "all",
        "team_lead": "team",
        "crm_specialist": "all",
        "sales_rep": "team",
        "service_rep": "team",
    }
    assert email["hidden_from"] == ["data_analyst"]
    ip = _column(record, "audit_event", "ip")
    assert (ip["category"], ip["retention"], ip["readers"]) == (
        "online_identifier",
        "security_log",
        {"admin": "all", "team_lead": "team"},
    )
    term = _column(record, "customer_search_term", "term")
    assert (term["category"], term["retention"], term["served"]) == ("identity", "derived", False)
    (tokens,) = [t for t in record["tables"] if t["table"] == "auth_token"]
    assert (tokens["resource"], tokens["exposure"], tokens["subjects"]) == (
        None,
        "never returned; the database holds digests only",
        ["staff"],
    )


def test_terminal_output_is_a_table_per_personal_table() -> None:
    result = runner.invoke(app, ["privacy", "inventory"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "contact_point: phones, emails, messaging ids, addresses" in out
    assert "value_normalized" in out
    assert "data_analyst/all" in out
    assert "Tables without personal data:" in out
    assert "  product: the catalogue: nothing about any person" in out
    assert not out.lstrip().startswith("{")


def test_inventory_names_the_encrypted_and_blind_indexed_columns() -> None:
    record = _record()
    contact = next(t for t in record["tables"] if t["table"] == "contact_point")
    at_rest = {c["column"]: c["at_rest"] for c in contact["columns"] if c["at_rest"] != "plain"}
    assert at_rest == {
        "label": "encrypted",
        "value": "encrypted",
        "value_normalized": "encrypted",
        "value_bidx": "blind_index",
        "district": "encrypted",
        "postal_code": "encrypted",
    }
    assert _column(record, "idempotency_record", "response_body")["at_rest"] == "encrypted"
    assert _column(record, "customer", "display_name")["at_rest"] == "plain"
    assert record["vocabulary"]["at_rest"]["encrypted"].startswith("AES-256-GCM")
