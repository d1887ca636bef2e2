from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from rapport import migrate
from rapport.db import make_engine, refresh_statistics


def test_refresh_statistics_makes_sqlite_walk_the_primary_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stats.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO team (id, name, version) VALUES (1, 'a', 1), (2, 'b', 1)"))
        conn.execute(
            text(
                "INSERT INTO customer (display_name, lifecycle_stage, team_id, attributes, version) "
                "SELECT 'c' || value, 'lead', 1 + value % 2, '{}', 1 FROM json_each(:ids)"
            ),
            {"ids": "[" + ",".join(str(i) for i in range(2000)) + "]"},
        )
    plan_sql = (
        "EXPLAIN QUERY PLAN SELECT id FROM customer WHERE deleted_at IS NULL "
        "AND (team_id = 1 OR owner_id = 7) ORDER BY id DESC LIMIT 51"
    )
    with engine.connect() as conn:
        before = " ".join(r[3] for r in conn.exec_driver_sql(plan_sql))
    assert "TEMP B-TREE" in before
    assert refresh_statistics(engine, only_if_missing=True) is True
    assert refresh_statistics(engine, only_if_missing=True) is False
    with engine.connect() as conn:
        after = " ".join(r[3] for r in conn.exec_driver_sql(plan_sql))
    assert after == "SCAN customer"
    engine.dispose()
