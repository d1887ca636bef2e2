"""Running the Ibis metrics on Spark: a local session and the store tables copied into it.

PySpark is a development dependency (the cross-engine test and bench/rfm.py); nothing in the
server needs it. Spark must use UTC so the store's naive UTC timestamps keep their meaning.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import duckdb


def local_session(cores: int = 1, app_name: str = "rapport-analytics") -> Any:
    from pyspark.sql import SparkSession
    from splink.internals.spark.jar_location import similarity_jar_location

    # Splink's similarity functions ride along: a JVM keeps the classpath of its first session,
    # and duplicate detection on Spark (rapport.dedup) may run in the same process afterwards.
    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.jars", similarity_jar_location())
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(max(1, cores)))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )


def copy_tables(spark: Any, con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> Any:
    """Register each DuckDB table as a Spark temporary view (through Arrow) and return an Ibis backend."""
    import ibis

    for name in tables:
        arrow = con.sql(f"SELECT * FROM {name}").to_arrow_table()  # noqa: S608 (caller's table names)
        spark.createDataFrame(arrow).createOrReplaceTempView(name)
    return ibis.pyspark.connect(spark)
