"""Customer files prepared in a second process: the same batches, the same import, errors reported."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import random
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from rapport.access.principal import SYSTEM
from rapport.config import get_settings
from rapport.db import Database
from rapport.ingest import jobs
from rapport.ingest.readers import ReadError, read_rows
from rapport.ingest.schemas import CustomerImportRow
from rapport.ingest.service import (
    CustomerPreparer,
    Incoming,
    PreparedCustomers,
    prepare_customers,
    proposed_mapping,
)
from rapport.ingest.workers import WorkerFailed, prepared_batches
from rapport.models import (
    ContactPoint,
    Customer,
    CustomerExternalId,
    CustomerSearchTerm,
    CustomerTag,
    Organisation,
)
from rapport.models.base import table_of
from rapport.security import crypto
from rapport.security.keyring import open_rows
from tests.ingest.helpers import children_running, queue_upsert

HEADER = ["客户编号", "姓名", "手机", "邮箱", "性别", "生日", "地址", "标签", "公司"]


def _file(tmp_path: Path, rows: int, seed: int = 3) -> Path:
    """Varied rows: phone notations, full-width digits, emails, dates, addresses, tags, bad cells,
    and repeats of an email (refused as "same email as line ...")."""
    rng = random.Random(seed)
    lines = [",".join(HEADER)]
    for i in range(rows):
        number = f"13{rng.randrange(10**9):09d}"
        phone = rng.choice(
            (
                number,
                f"{number[:3]} {number[3:7]} {number[7:]}",
                f"+86-{number}",
                "１３９１２３４５６７８",
                "12345",
            )
        )
        email = rng.choice((f"p{i}@example.com", "", "Mixed.Case@Example.COM" if i % 50 == 0 else "", "bad@"))
        birth = rng.choice(("1980-02-03", "1990/3/4", "2001年5月6日", "1985-02-30", "", "2999-01-01"))
        address = rng.choice(("上海市浦东新区世纪大道1号", "广东省广州市天河区体育西路2号", ""))
        tags = ";".join(rng.sample(["VIP", "新客", "门店"], rng.randrange(0, 3)))
        name = rng.choice(("张三", "李四", "王小明", "Ann Lee", "", "欧阳娜娜"))
        org = rng.choice(("", "", "星辰贸易有限公司"))
        gender = rng.choice(("男", "女", "F", "", "未知"))
        lines.append(",".join([f"W{i:05d}", name, phone, email, gender, birth, address, tags, org]))
    path = tmp_path / "people.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _mapping(path: Path) -> dict[str, str | None]:
    return proposed_mapping("customers", jobs.headers_of(path))


def test_the_child_prepares_exactly_what_the_job_process_would(tmp_path: Path) -> None:
    path = _file(tmp_path, 900)
    mapping = _mapping(path)
    preparer = CustomerPreparer(mapping, day_first=True, region="CN")
    expected = [
        prepare_customers(preparer, batch, crypto.blind_index)
        for batch in jobs.batches((r for r in read_rows(path) if r.line > 41), 70)
    ]
    with prepared_batches(
        path,
        after_line=41,
        batch_size=70,
        mapping=mapping,
        day_first=True,
        region="CN",
        index_key=crypto.blind_index_key(),
    ) as stream:
        got = list(stream)
    assert [(b.last_line, b.rows) for b in got] == [
        (min(41 + 70 * (n + 1), 901), min(70, 901 - 41 - 70 * n)) for n in range(len(expected))
    ]
    unpacked = [PreparedCustomers.unpack(b.data) for b in got]
    assert unpacked == expected
    # Every row after the checkpoint judged: valid or refused, and plenty of both.
    refused = {r.line for p in unpacked for r in p.rejections}
    valid = [line for p in unpacked for line, _row in p.items]
    assert sorted([*refused, *valid]) == list(range(42, 902))
    assert len(refused) > 200 and len(valid) > 200


def test_a_read_error_in_the_child_is_the_same_error(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    good = [
        json.dumps({"external_id": f"J{i}", "display_name": f"客户{i}"}, ensure_ascii=False) for i in range(5)
    ]
    path.write_text("\n".join([*good, "{broken", *good]) + "\n", encoding="utf-8")
    with (
        prepared_batches(
            path,
            after_line=0,
            batch_size=2,
            mapping={"external_id": "external_id", "display_name": "display_name"},
            day_first=True,
            region="CN",
            index_key=crypto.blind_index_key(),
        ) as stream,
        pytest.raises(ReadError) as caught,
    ):
        list(stream)
    reason = "invalid JSON: Expecting property name enclosed in double quotes (column 2)"
    assert (caught.value.line, caught.value.reason) == (6, reason)


def test_a_child_that_dies_fails_the_stream(tmp_path: Path) -> None:
    path = _file(tmp_path, 3000)
    with (  # noqa: PT012
        pytest.raises(WorkerFailed, match="ended without finishing the file"),
        prepared_batches(
            path,
            after_line=0,
            batch_size=10,
            mapping=_mapping(path),
            day_first=True,
            region="CN",
            index_key=crypto.blind_index_key(),
        ) as stream,
    ):
        assert next(stream).rows == 10
        (child,) = children_running("rapport.ingest.workers", os.getpid())
        os.kill(child, signal.SIGKILL)
        for _batch in stream:
            pass
    assert children_running("rapport.ingest.workers", os.getpid()) == []


_IDS_AND_TIMES = ("id", "created_at", "updated_at", "organisation_id")


def _state(database: Database, job_id: int) -> dict[str, Any]:
    """Everything an import wrote, keyed by external id (ids differ between databases)."""
    c, ext, cp = table_of(Customer), table_of(CustomerExternalId), table_of(ContactPoint)
    terms, tags = table_of(CustomerSearchTerm), table_of(CustomerTag)
    with database.unit(write=False) as s:
        by_id = {int(r.customer_id): r.external_id for r in s.execute(select(ext))}
        # Ids differ between the two databases (PostgreSQL's sequences outlive rolled-back tests):
        # organisations by name, customers by external id.
        org_names = {int(r.id): r.name for r in s.execute(select(table_of(Organisation)))}
        customers = {
            by_id[int(r["id"])]: {
                **{k: v for k, v in r.items() if k not in _IDS_AND_TIMES},
                "organisation": org_names.get(r["organisation_id"]),
            }
            for r in s.execute(select(c)).mappings()
        }
        contacts = [dict(r) for r in s.execute(select(cp)).mappings()]
        open_rows(s, cp, contacts)
        for r in contacts:
            customers[by_id[r["customer_id"]]].setdefault("contacts", set()).add(
                (
                    r["kind"],
                    r["value"],
                    r["value_normalized"],
                    r["value_bidx"],
                    r["region"],
                    r["district"],
                    r["is_primary"],
                )
            )
        for r in s.execute(select(terms)):
            customers[by_id[r.customer_id]].setdefault("terms", set()).add(r.term)
        for r in s.execute(select(tags)):
            customers[by_id[r.customer_id]].setdefault("tags", set()).add(r.tag)
        rejected = [
            (r["line"], r["column"], r["field"], _by_external_id(r["reason"], by_id))
            for r in jobs.rejection_list(s, job_id)
        ]
    return {"customers": customers, "rejected": rejected}


def _by_external_id(reason: str, by_id: dict[int, str]) -> str:
    return re.sub(r"customer (\d+)", lambda m: f"customer {by_id.get(int(m[1]), m[1])}", reason)


def _import(database: Database, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    job_id = queue_upsert(database, SYSTEM, path, batch_size=45, match_keys=("external_id", "email", "phone"))
    return jobs.run_job(database, job_id), _state(database, job_id)


def test_an_import_prepared_in_a_second_process_stores_what_one_process_stores(
    tmp_path: Path, database: Database, committed_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, 400, seed=5)
    job = {"kind": "customers"}
    base = get_settings()
    monkeypatch.setattr(
        jobs, "get_settings", lambda: base.model_copy(update={"import_prepare_process": "never"})
    )
    assert not jobs.use_prepare_process(job, path)
    # The committing database first: on PostgreSQL the audit chain's advisory lock, once taken by
    # the test's own open transaction, would make the other database's import wait for it.
    one_summary, one = _import(committed_db, path)
    monkeypatch.setattr(
        jobs, "get_settings", lambda: base.model_copy(update={"import_prepare_process": "always"})
    )
    assert jobs.use_prepare_process(job, path)
    two_summary, two = _import(database, path)

    assert {k: v for k, v in one_summary.items() if k != "job_id"} == {
        k: v for k, v in two_summary.items() if k != "job_id"
    }
    assert one_summary["status"] == "done" and one_summary["rows"] == 400
    assert one_summary["created"] == len(one["customers"]) > 80
    assert one_summary["created"] + one_summary["rejected"] == 400
    assert len({r[0] for r in one["rejected"]}) == one_summary["rejected"]
    assert one == two
    # Not only equal: filled in (contacts decrypted, terms and tags there).
    sample = next(v for v in one["customers"].values() if v.get("tags") and len(v["contacts"]) >= 2)
    assert sample["terms"] and all(isinstance(c[1], str) for c in sample["contacts"])


def test_incoming_is_customer_import_row_field_for_field() -> None:
    assert tuple(f.name for f in dataclasses.fields(Incoming)) == tuple(CustomerImportRow.model_fields)
    row = CustomerImportRow.model_validate(
        {
            "display_name": "王小明",
            "birth_date": dt.date(1990, 3, 4),
            "phones": ["+8613912345678"],
            "emails": [],
            "tags": ["VIP"],
            "address": {
                "value": "上海市浦东新区",
                "region": "上海市",
                "city": "上海市",
                "district": "浦东新区",
            },
            "gender": "male",
        }
    )
    incoming = Incoming.of(row)
    assert Incoming.unpack(incoming.packed()) == incoming
    assert incoming.model_dump() == row.model_dump()
    assert incoming.model_dump(mode="json", exclude_defaults=True) == row.model_dump(
        mode="json", exclude_defaults=True
    )
    bare = CustomerImportRow.model_validate({"display_name": "Ann"})
    assert Incoming.of(bare).model_dump(mode="json", exclude_defaults=True) == bare.model_dump(
        mode="json", exclude_defaults=True
    )
