"""The linkage model: one Splink settings builder, trained without labels, run on DuckDB or Spark.

:func:`settings` is the only model definition; :func:`link` runs it on the embedded DuckDB
(default) or on a Spark session with the same blocking rules, comparisons and training steps:

1. ``probability_two_random_records_match`` from deterministic rules (same phone, or same email,
   with agreeing pinyin names) at an assumed recall of 0.8;
2. u probabilities by random sampling of record pairs (seeded);
3. m probabilities by expectation maximisation over two blocking rules (each comparison is
   estimated in at least one of them): same pinyin name and birth year, then same first phone.

No labels enter training. Predictions are the blocked pairs scored by the trained model;
clusters are the connected components of the pairs at or above the threshold
(:func:`connected_components`).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

Backend = Literal["duckdb", "spark"]

DEFAULT_THRESHOLD = 0.95
# RAPPORT_DEDUP_DEBUG=1 shows Splink's training log (EM iterations, u sampling).
_LOG_LEVEL = logging.INFO if os.environ.get("RAPPORT_DEDUP_DEBUG") else logging.ERROR
DEFAULT_SEED = 42
U_MAX_PAIRS = 2_000_000
# Share of pairs of different people with the same name that share an email address (a name-made
# address such as wei.wang@163.com): an assumption, not trained (EM cannot tell namesakes apart).
EMAIL_NAMESAKE_U = 0.03
# Share of true duplicates whose two known birth dates differ by more than a typo (fixed: see
# the birth date comparison).
BIRTH_ELSE_M = 0.002
PHONE_ELSE_M = 0.05  # share of duplicates with no phone number in common (fixed: see phones)


def settings() -> Any:
    """The Splink model: blocking rules, comparisons and their levels (dialect-neutral)."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator

    name = cl.CustomComparison(
        output_column_name="name",
        comparison_description="Chinese characters (simplified), pinyin and Latin names",
        comparison_levels=[
            cll.NullLevel("name_py"),
            cll.ExactMatchLevel("name_cjk", term_frequency_adjustments=True).configure(
                label_for_charts="same characters"
            ),
            cll.ExactMatchLevel("name_py", term_frequency_adjustments=True).configure(
                label_for_charts="same pinyin / Latin name"
            ),
            cll.ExactMatchLevel("name_chars").configure(label_for_charts="same characters, other order"),
            cll.And(
                cll.CustomLevel("length(name_cjk_l) >= 3 AND length(name_cjk_r) >= 3"),
                cll.LevenshteinLevel("name_cjk", 1),
            ).configure(label_for_charts="one character differs (3+ characters)"),
            cll.JaroWinklerLevel("name_py", 0.92),
            cll.JaroWinklerLevel("name_py", 0.80),
            cll.ElseLevel(),
        ],
    )
    birth = cl.CustomComparison(
        output_column_name="birth_date",
        comparison_levels=[
            cll.NullLevel("birth_str"),
            cll.ExactMatchLevel("birth_str"),
            cll.Or(
                cll.LevenshteinLevel("birth_str", 1),
                cll.CustomLevel(
                    "substr(birth_str_l, 1, 4) = substr(birth_str_r, 1, 4) AND "
                    "substr(birth_str_l, 5, 2) = substr(birth_str_r, 7, 2) AND "
                    "substr(birth_str_l, 7, 2) = substr(birth_str_r, 5, 2)"
                ),
            ).configure(label_for_charts="one digit differs, or day and month swapped"),
            # A day typed one off across a month's end (09-30 / 10-01) differs in several digits.
            cll.AbsoluteDateDifferenceLevel(
                "birth_date", input_is_string=False, threshold=2, metric="day"
            ).configure(label_for_charts="a day or two apart"),
            # Two known birth dates that differ beyond a typo are strong evidence of two people:
            # same-name namesakes often share a name-derived email (wei.wang@...), so "same year"
            # must not count in favour. EM on data where duplicates never carry unrelated dates
            # would learn m = 0 (an infinite penalty), so this one is fixed.
            cll.ElseLevel().configure(m_probability=BIRTH_ELSE_M, fix_m_probability=True),
        ],
    )
    location = cl.CustomComparison(
        output_column_name="location",
        comparison_description="same address (blind index), city or region; moving is common",
        comparison_levels=[
            cll.NullLevel("city"),
            cll.ExactMatchLevel("address_bidx").configure(label_for_charts="same address"),
            cll.ExactMatchLevel("city"),
            cll.ExactMatchLevel("region"),
            cll.ElseLevel(),
        ],
    )

    phones = cl.CustomComparison(
        output_column_name="phones",
        comparison_levels=[
            cll.NullLevel("phones"),
            cll.ArrayIntersectLevel("phones", 1),
            # Fixed: EM estimates phones only within same-name blocks, where namesakes (other
            # numbers) outnumber duplicates as the population grows (it learned 7% at 100k
            # customers, 29% at 1M). People do change numbers: 5% of duplicates have no number
            # in common.
            cll.ElseLevel().configure(m_probability=PHONE_ELSE_M, fix_m_probability=True),
        ],
    )

    # Email addresses are often made from the name (wei.wang@163.com, james.smith@gmail.com), so
    # two namesakes share one far more often than two random records do: the u that random
    # sampling gives (about 1e-5) would count the name twice. When the names agree too, the
    # level's u is fixed at the share of namesake pairs with one address (see EMAIL_NAMESAKE_U).
    emails = cl.CustomComparison(
        output_column_name="emails",
        comparison_levels=[
            cll.NullLevel("emails"),
            cll.And(cll.ArrayIntersectLevel("emails", 1), cll.Not(cll.ExactMatchLevel("name_py"))).configure(
                label_for_charts="same email, names differ"
            ),
            cll.ArrayIntersectLevel("emails", 1).configure(
                label_for_charts="same email and name",
                u_probability=EMAIL_NAMESAKE_U,
                fix_u_probability=True,
            ),
            cll.ElseLevel(),
        ],
    )

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[
            name,
            birth,
            cl.CustomComparison(
                output_column_name="gender",
                comparison_levels=[
                    cll.NullLevel("gender"),
                    cll.ExactMatchLevel("gender"),
                    # Fixed like the birth date's: a wrong gender is a rare typing error (0.5%).
                    cll.ElseLevel().configure(m_probability=0.005, fix_m_probability=True),
                ],
            ),
            location,
            phones,
            emails,
            cl.ExactMatch("external_id"),
        ],
        blocking_rules_to_generate_predictions=BLOCKING_RULES(),
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
        max_iterations=20,
        em_convergence=0.001,
    )


def BLOCKING_RULES() -> list[Any]:  # noqa: N802 (a constant built lazily: splink is imported on use)
    from splink import block_on

    return [
        block_on("phones", arrays_to_explode=["phones"]),
        block_on("emails", arrays_to_explode=["emails"]),
        block_on("name_py", "birth_year"),
        block_on("name_chars", "city"),
        block_on("birth_date", "city"),
        block_on("external_id"),
        block_on("address_bidx"),
    ]


def _train(linker: Any, seed: int) -> None:
    from splink import block_on

    linker.training.estimate_probability_two_random_records_match(
        [
            "l.phone1 = r.phone1 AND l.name_py = r.name_py",
            "l.email1 = r.email1 AND l.name_py = r.name_py",
        ],
        recall=0.8,
    )
    linker.training.estimate_u_using_random_sampling(
        max_pairs=U_MAX_PAIRS, seed=seed, num_chunks=1, min_count_per_level=None
    )
    from splink.internals.exceptions import EMTrainingException

    for rule in (block_on("name_py", "birth_year"), block_on("phone1")):
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True
            )
        except EMTrainingException:
            # No pairs under this rule (a small or duplicate-free population): the m values of
            # the comparisons it would have estimated keep their starting values.
            continue


def connected_components(left: np.ndarray, right: np.ndarray) -> dict[int, list[int]]:
    """Clusters of the matched pairs: smallest member id -> sorted member ids (2 or more).

    Only records in a pair above the threshold can share a cluster, so the graph is the matched
    pairs alone (thousands of edges), not every record: Splink's clustering labels every input
    record with iterated SQL joins, which took most of a scan's time.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as components

    if len(left) == 0:
        return {}
    nodes, index = np.unique(np.concatenate([left, right]), return_inverse=True)
    n = len(nodes)
    graph = coo_matrix(
        (np.ones(len(left), dtype=np.int8), (index[: len(left)], index[len(left) :])), shape=(n, n)
    )
    _, labels = components(graph, directed=False)
    order = np.argsort(labels, kind="stable")  # nodes are sorted, so each group comes out sorted
    groups = np.split(nodes[order], np.flatnonzero(np.diff(labels[order])) + 1)
    return {int(g[0]): [int(x) for x in g] for g in groups if len(g) >= 2}


def without_term_frequencies(trained: dict[str, Any]) -> dict[str, Any]:
    """The model JSON with its levels' term-frequency adjustments removed (a copy).

    Splink takes a name's frequency from the frame it scores. In a batch of candidates that
    were picked for sharing a name with an incoming row, that name is among the most frequent,
    so the adjustment would count a rare name as common; the level's average u is the better
    estimate there.
    """
    out = copy.deepcopy(trained)
    for comparison in out.get("comparisons", []):
        for level in comparison.get("comparison_levels", []):
            level.pop("tf_adjustment_column", None)
            level.pop("tf_adjustment_weight", None)
            level.pop("tf_minimum_u_value", None)
    return out


@dataclass
class LinkResult:
    pairs: pd.DataFrame  # left_id, right_id, probability (>= threshold), left_id < right_id
    clusters: dict[int, list[int]]  # cluster key (smallest member id) -> member ids (>= 2 members)
    compared: int  # blocked pairs scored
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per step
    model: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU time per step (all threads)


@dataclass
class Stopwatch:
    """Wall and CPU time per step; CPU is the process's, so DuckDB's worker threads count too."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - t
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Derived columns the comparisons use (same on every backend)."""
    out = frame.copy()
    out["birth_str"] = out["birth_date"].dt.strftime("%Y%m%d").astype("object")
    out.loc[out["birth_date"].isna(), "birth_str"] = None
    out["birth_date"] = out["birth_date"].dt.date
    return out


def spark_session(cores: int = 2) -> Any:
    """A local Spark session with Splink's similarity functions (jar shipped with Splink)."""
    from pyspark.sql import SparkSession
    from splink.internals.spark.jar_location import similarity_jar_location

    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("rapport-dedup")
        .config("spark.jars", similarity_jar_location())
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(max(1, cores)))
        .config("spark.default.parallelism", str(max(1, cores)))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )


def _db_api(backend: Backend, spark: Any | None) -> Any:
    if backend == "spark":
        from splink import SparkAPI

        if spark is None:
            spark = spark_session()
        checkpoint = "/tmp/rapport-splink-checkpoints"  # noqa: S108 (local scratch of a local session)
        spark.sparkContext.setCheckpointDir(checkpoint)
        return SparkAPI(spark_session=spark, break_lineage_method="persist")
    import duckdb
    from splink import DuckDBAPI

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    return DuckDBAPI(connection=con)


def _input(db_api: Any, backend: Backend, frame: pd.DataFrame, spark: Any | None) -> Any:
    if backend == "spark":
        import pyarrow as pa

        sdf = db_api.spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False).to_pandas())
        return db_api.register(sdf)
    import pyarrow as pa

    # Copied once into a DuckDB table through Arrow. Registered as a pandas frame, every query of
    # training and prediction would scan the Python objects again (lists of blind indexes, dates)
    # under the GIL, on one thread.
    con = db_api.duckdb_con
    con.register("rapport_input_arrow", pa.Table.from_pandas(frame, preserve_index=False))
    con.execute("CREATE TABLE rapport_input AS SELECT * FROM rapport_input_arrow")
    con.unregister("rapport_input_arrow")
    return db_api.register("rapport_input")


def link(
    frame: pd.DataFrame,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    backend: Backend = "duckdb",
    spark: Any | None = None,
    seed: int = DEFAULT_SEED,
    trained: dict[str, Any] | None = None,
    cluster: bool = True,
    term_frequencies: bool = True,
) -> LinkResult:
    """Train (unless ``trained`` model JSON is given), predict and cluster one frame.

    ``term_frequencies=False`` scores a trained model without term-frequency adjustments: for a
    frame that is a sample (an import batch and its candidates), where every name is frequent.
    """
    from splink import Linker

    logging.getLogger("splink").setLevel(_LOG_LEVEL)
    watch = Stopwatch()
    with watch.step("load"):
        data = prepare(frame)
        db_api = _db_api(backend, spark)
        sdf = _input(db_api, backend, data, spark)
        if trained is not None and not term_frequencies:
            trained = without_term_frequencies(trained)
        linker = Linker(
            sdf,
            trained if trained is not None else settings(),
            log_level=_LOG_LEVEL,
        )
    if trained is None and len(data) >= 2:
        with watch.step("train"):
            _train(linker, seed)
    with watch.step("predict"):
        predictions = linker.inference.predict()
        name = predictions.physical_name
        count_sql = f"SELECT count(*) AS n FROM {name}"  # noqa: S608 (Splink's own table name)
        compared = int(linker.misc.query_sql(count_sql, output_type="pandas")["n"][0])
        pairs = linker.misc.query_sql(
            f"SELECT unique_id_l, unique_id_r, match_probability FROM {name} "  # noqa: S608 (splink's table)
            f"WHERE match_probability >= {float(threshold)!r}",
            output_type="pandas",
        )
    left = pairs["unique_id_l"].astype("int64").to_numpy()
    right = pairs["unique_id_r"].astype("int64").to_numpy()
    out = pd.DataFrame(
        {
            "left_id": np.minimum(left, right),
            "right_id": np.maximum(left, right),
            "probability": pairs["match_probability"].astype("float64").to_numpy(),
        }
    )
    with watch.step("cluster"):
        clusters = (
            connected_components(out["left_id"].to_numpy(), out["right_id"].to_numpy()) if cluster else {}
        )
    out = out.sort_values(["left_id", "right_id"]).reset_index(drop=True)
    return LinkResult(out, clusters, compared, watch.wall, linker.misc.save_model_to_json(), watch.cpu)
