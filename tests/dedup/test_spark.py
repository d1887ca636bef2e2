"""The same model definition on Spark (local) and DuckDB: identical clusters on the fixture."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from rapport.dedup import model
from rapport.dedup.repository import load_frame
from tests.dedup.fixture import plant
from tests.factories import Factory

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = model.spark_session(cores=1)
    yield session
    session.stop()


@pytest.mark.timeout(1200)
def test_spark_and_duckdb_find_the_same_clusters(db: Session, factory: Factory, spark: Any) -> None:
    planted = plant(factory)
    frame = load_frame(db)
    duck = model.link(frame, threshold=0.95)
    on_spark = model.link(frame, threshold=0.95, backend="spark", spark=spark)
    expected = planted.expected_clusters()
    assert sorted(duck.clusters.values()) == expected
    assert sorted(on_spark.clusters.values()) == expected
    # Same blocking rules: the same candidate pairs are scored on both engines.
    assert on_spark.compared == duck.compared
    assert list(on_spark.pairs[["left_id", "right_id"]].itertuples(index=False)) == list(
        duck.pairs[["left_id", "right_id"]].itertuples(index=False)
    )
