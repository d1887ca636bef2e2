from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rapport.dedup import model, service
from rapport.dedup.repository import CLUSTER, PAIR, RUN, load_frame
from rapport.models import ContactPoint
from tests.dedup.fixture import plant
from tests.factories import Factory


def _clusters(result: service.ScanResult) -> list[list[int]]:
    return sorted(c.members for c in result.clusters)


def test_planted_duplicates_form_exactly_the_expected_clusters(db: Session, factory: Factory) -> None:
    planted = plant(factory)
    result = service.scan(db, threshold=0.95)
    assert _clusters(result) == planted.expected_clusters()
    assert result.customers == 131
    # Stored: the run, one open cluster per group, and the pairs at or above the threshold.
    run = db.execute(select(RUN)).mappings().one()
    assert (run["customers"], run["clusters"], run["threshold"]) == (131, 3, 0.95)
    assert run["pairs_compared"] >= run["pairs_matched"] >= 4
    assert db.execute(select(CLUSTER.c.status, func.count()).group_by(CLUSTER.c.status)).all() == [
        ("open", 3)
    ]
    pairs = db.execute(select(PAIR.c.left_id, PAIR.c.right_id, PAIR.c.probability)).all()
    assert all(left < right and 0.95 <= p <= 1 for left, right, p in pairs)
    i = planted.ids
    assert (i["A"], i["A2"]) in {(a, b) for a, b, _ in pairs}


def test_same_common_name_different_people_are_not_matched(db: Session, factory: Factory) -> None:
    planted = plant(factory)
    result = service.scan(db, threshold=0.95)
    linked = {m for c in result.clusters for m in c.members}
    for key in ("Z1", "Z2", "W1", "W2"):
        assert planted.ids[key] not in linked


def test_namesakes_sharing_a_name_made_email_are_not_matched(db: Session, factory: Factory) -> None:
    """Two James Smiths with one family address (james.smith@...), born the same year, other phones."""
    import datetime as dt

    from tests.dedup.fixture import CITIES, _person

    planted = plant(factory)
    first = _person(
        factory,
        "James Smith",
        dt.date(1988, 3, 14),
        "male",
        CITIES[0],
        ("13500000001",),
        ("james.smith@example.net",),
    )
    second = _person(
        factory,
        "James Smith",
        dt.date(1988, 11, 2),
        "male",
        CITIES[0],
        ("13500000002",),
        ("James.Smith@example.net",),
    )
    result = service.scan(db, threshold=0.95)
    assert _clusters(result) == planted.expected_clusters()
    # Not even at 0.5: the shared address is weak evidence between namesakes, the other birth
    # dates and phones are strong evidence against.
    pairs = model.link(load_frame(db), threshold=0.5).pairs
    assert {(first, second), (second, first)}.isdisjoint(
        zip(pairs["left_id"], pairs["right_id"], strict=True)
    )


def test_connected_components_of_matched_pairs() -> None:
    import numpy as np

    left = np.array([5, 1, 9, 2], dtype=np.int64)
    right = np.array([7, 3, 7, 3], dtype=np.int64)
    assert model.connected_components(left, right) == {1: [1, 2, 3], 5: [5, 7, 9]}
    assert model.connected_components(left[:0], right[:0]) == {}


def test_threshold_is_respected(db: Session, factory: Factory) -> None:
    plant(factory)
    low = model.link(load_frame(db), threshold=0.5)
    high = model.link(load_frame(db), threshold=0.999999)
    assert (low.pairs["probability"] >= 0.5).all()
    assert (high.pairs["probability"] >= 0.999999).all()
    assert len(high.pairs) < len(low.pairs)
    with pytest.raises(Exception, match="threshold"):
        service.scan(db, threshold=1.5)


def test_linkage_frame_holds_blind_indexes_never_clear_contact_values(db: Session, factory: Factory) -> None:
    planted = plant(factory)
    frame = load_frame(db)
    assert list(frame.columns) == [
        "unique_id", "name_cjk", "name_chars", "name_py", "gender", "birth_date", "birth_year", "region",
        "city", "phones", "emails", "phone1", "email1", "address_bidx", "external_id",
    ]  # fmt: skip
    # Not the ids: on PostgreSQL the sequences keep counting across runs and reach 138x, 139x. A
    # mobile number is a whole cell of digits; a hex digest may merely start with "138".
    cells = [str(v) for col in frame.columns if col != "unique_id" for v in frame[col].explode().dropna()]
    phone_like = re.compile(r"(\+?86|0086)?1[3-9]\d{9}")
    assert not [
        c
        for c in cells
        if c.startswith(("+86", "0086")) or phone_like.fullmatch(c) or "@" in c or "example" in c
    ]
    digests = [v for col in ("phones", "emails") for v in frame[col].explode().dropna()]
    stored = db.execute(
        select(func.count()).select_from(ContactPoint).where(ContactPoint.kind.in_(("phone", "email")))
    )
    # A2 typed A's number another way: one digit string per person and number.
    assert len(digests) == stored.scalar_one() and all(re.fullmatch(r"[0-9a-f]{32}", d) for d in digests)
    a = frame.set_index("unique_id").loc[planted.ids["A"]]
    assert re.fullmatch(r"[0-9a-f]{32}", a["phone1"])
    # The same number typed "0086 138 1234 5678" has the same blind index.
    assert frame.set_index("unique_id").loc[planted.ids["A2"]]["phone1"] == a["phone1"]
    # One audit event for the whole read, naming the fields, never values.
    events = [e for e in db.info.get("audit", []) if e.action == "linkage_read"]
    assert [(e.resource, e.record_id, e.details["count"], e.actor_kind) for e in events] == [
        ("customer", None, 131, "system")
    ]


def test_names_traditional_pinyin_and_swapped_share_a_key(db: Session, factory: Factory) -> None:
    planted = plant(factory)
    f = load_frame(db).set_index("unique_id")
    i = planted.ids
    assert (
        f.loc[i["A"], "name_py"] == f.loc[i["A2"], "name_py"] == f.loc[i["A3"], "name_py"] == "wang xiaoming"
    )
    assert f.loc[i["A2"], "name_cjk"] == "王晓明"  # simplified


def test_dismissed_cluster_does_not_come_back(db: Session, factory: Factory) -> None:
    planted = plant(factory)
    first = service.scan(db, threshold=0.95)
    b = next(c for c in first.clusters if planted.ids["B"] in c.members)
    db.execute(CLUSTER.update().where(CLUSTER.c.id == b.id).values(status="dismissed"))
    second = service.scan(db, threshold=0.95)
    assert sorted(c.members for c in second.clusters) == [
        c for c in planted.expected_clusters() if planted.ids["B"] not in c
    ]
    statuses = db.execute(
        select(CLUSTER.c.status, func.count()).group_by(CLUSTER.c.status).order_by(CLUSTER.c.status)
    ).all()
    assert statuses == [("dismissed", 1), ("open", 2)]


def test_match_incoming_finds_existing_customers(db: Session, factory: Factory) -> None:
    planted = plant(factory)
    service.scan(db, threshold=0.95)
    import datetime as dt

    rows = [
        {
            "display_name": "王曉明",
            "phone": "+8613812345678",
            "birth_date": dt.date(1985, 3, 2),
            "city": "上海市",
        },
        {
            "display_name": "张伟",
            "phone": "+8613711111111",
            "birth_date": dt.date(1970, 2, 2),
            "city": "北京市",
        },
        {"display_name": "Nana Ouyang", "email": "nana@example.org", "birth_date": dt.date(2000, 6, 15)},
    ]
    matches = service.match_incoming(db, rows, threshold=0.9)
    found = {(m.row, m.customer_id) for m in matches}
    assert found == {
        (0, planted.ids["A"]),
        (0, planted.ids["A2"]),
        (2, planted.ids["C"]),
        (2, planted.ids["C2"]),
    }
    assert all(0.9 <= m.probability <= 1 for m in matches)
