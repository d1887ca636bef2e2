"""Two teams, North and East, each with one record of every kind."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import insert

from rapport.models import (
    CustomerMerge,
    CustomField,
    DataSubjectRequest,
    DedupCluster,
    DedupPair,
    DedupRun,
    ImportJob,
    Segment,
)
from rapport.models.base import utcnow
from tests.factories import Factory


@dataclass(frozen=True)
class Side:
    """One team's records, keyed by the collection segment that names them in paths."""

    team: int
    rep: int
    records: dict[str, int]


def api_key(factory: Factory, user_id: int, scopes: list[str]) -> int:
    return factory.api_key(user_id, scopes, name="walk key")[0]


def custom_field(factory: Factory) -> int:
    now = utcnow()
    return int(
        factory.conn.execute(
            insert(CustomField)
            .values(
                entity="customer",
                key="loyalty_tier",
                label="Loyalty tier",
                field_type="choice",
                choices=["gold", "silver"],
                required=False,
                created_at=now,
                updated_at=now,
                version=1,
            )
            .returning(CustomField.id)
        ).scalar_one()
    )


def privacy_request(factory: Factory, customer_id: int) -> int:
    now = utcnow()
    return int(
        factory.conn.execute(
            insert(DataSubjectRequest)
            .values(
                customer_id=customer_id,
                kind="access",
                status="received",
                jurisdiction="PIPL",
                channel="email",
                received_at=now,
                due_at=now,
                created_at=now,
                updated_at=now,
                version=1,
            )
            .returning(DataSubjectRequest.id)
        ).scalar_one()
    )


def segment(factory: Factory, owner_id: int, team_id: int) -> int:
    now = utcnow()
    return int(
        factory.conn.execute(
            insert(Segment)
            .values(
                name="WeChat reachable",
                definition={"op": "consent", "purpose": "marketing_wechat"},
                owner_id=owner_id,
                team_id=team_id,
                created_at=now,
                updated_at=now,
                version=1,
            )
            .returning(Segment.id)
        ).scalar_one()
    )


def merge_record(factory: Factory, survivor_id: int) -> int:
    """A merge record of the side's customer (nothing merged: the route's scope is the point)."""
    return int(
        factory.conn.execute(
            insert(CustomerMerge)
            .values(survivor_id=survivor_id, merged_ids=[], status="merged", choices={}, merged_at=utcnow())
            .returning(CustomerMerge.id)
        ).scalar_one()
    )


def dedup_cluster(factory: Factory, left_id: int, right_id: int) -> int:
    """An open review-queue cluster of two of the side's customers."""
    now = utcnow()
    run = factory.conn.execute(
        insert(DedupRun).values(started_at=now, threshold=0.9, backend="duckdb").returning(DedupRun.id)
    ).scalar_one()
    cluster = factory.conn.execute(
        insert(DedupCluster)
        .values(
            run_id=run, status="open", size=2, max_probability=0.99, created_at=now, updated_at=now, version=1
        )
        .returning(DedupCluster.id)
    ).scalar_one()
    factory.conn.execute(
        insert(DedupPair).values(cluster_id=cluster, left_id=left_id, right_id=right_id, probability=0.99)
    )
    return int(cluster)


def import_job(factory: Factory, user_id: int, team_id: int) -> int:
    """A finished import job started by the side's sales rep."""
    now = utcnow()
    return int(
        factory.conn.execute(
            insert(ImportJob)
            .values(
                kind="customers",
                status="done",
                mode="create",
                match_keys=[],
                mapping={},
                options={},
                file_name="x.csv",
                file_path="",
                file_digest="0" * 64,
                created_by=user_id,
                team_id=team_id,
                created_at=now,
                updated_at=now,
                version=1,
                finished_at=now,
            )
            .returning(ImportJob.id)
        ).scalar_one()
    )


def build_side(factory: Factory, product: int, field: int, agreement: int, complaint: int) -> Side:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    customer = factory.customer(owner_id=rep, team_id=team, display_name="北方客户")
    order = factory.order(customer)
    factory.order_line(order, product)
    records = {
        "customers": customer,
        "contact-points": factory.contact(customer, kind="email", value="north@example.com"),
        "organisations": factory.organisation(owner_id=rep, team_id=team),
        "orders": order,
        "interactions": factory.interaction(customer, author_id=rep),
        "tasks": factory.task(customer, assignee_id=rep),
        "users": rep,
        "teams": team,
        "api-keys": api_key(factory, rep, ["customer:read"]),
        "requests": privacy_request(factory, customer),  # /privacy/requests
        "segments": segment(factory, rep, team),
        "merges": merge_record(factory, customer),
        "clusters": dedup_cluster(
            factory, customer, factory.customer(owner_id=rep, team_id=team, display_name="北方客戶")
        ),
        "imports": import_job(factory, rep, team),
        # Global catalogues: the same row on both sides.
        "products": product,
        "custom-fields": field,
        "agreements": agreement,
        "privacy-complaints": complaint,
    }
    return Side(team, rep, records)


@dataclass(frozen=True)
class World:
    north: Side
    east: Side
    product: int


@pytest.fixture
def world(factory: Factory) -> World:
    product, field = factory.product(), custom_field(factory)
    agreement = factory.agreement(factory.partner())
    complaint = factory.complaint()
    return World(
        north=build_side(factory, product, field, agreement, complaint),
        east=build_side(factory, product, field, agreement, complaint),
        product=product,
    )
