"""Evaluate compiled segment rules on ``segment_features`` in the analytics store.

Only customers whose ``profiling_allowed`` is true are ever members: a segment over scores and
behaviour is an automated evaluation of the person (PIPL art. 24), so customers who refused
profiling or whose processing is restricted are left out of every segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from rapport.segments.features import FEATURES_TABLE, build_features, has_features
from rapport.segments.rules import Rule, compile_rule


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which customers the caller may see: all, or those of a team and/or an owner (store ids)."""

    team_id: int | None = None
    owner_id: int | None = None
    everyone: bool = True


ALL = Visibility()


@dataclass(frozen=True, slots=True)
class Preview:
    count: int
    first_ids: list[int]


class StoreNotReady(RuntimeError):
    """The analytics store has no segment features yet (run the segments job or `rapport analytics`)."""


def _where(rule: Rule, vis: Visibility) -> tuple[str, list[object]]:
    compiled = compile_rule(rule, "f")
    sql = f"f.profiling_allowed AND {compiled.where}"
    params: list[object] = list(compiled.params)
    if not vis.everyone:
        if vis.team_id is not None:
            sql += " AND (f.team_id = ? OR f.owner_id = ?)"
            params += [vis.team_id, vis.owner_id]
        else:
            sql += " AND f.owner_id = ?"
            params.append(vis.owner_id)
    return sql, params


def _ready(con: duckdb.DuckDBPyConnection) -> None:
    if not has_features(con):
        raise StoreNotReady("segment features are not built yet")


def count(con: duckdb.DuckDBPyConnection, rule: Rule, vis: Visibility = ALL) -> int:
    _ready(con)
    where, params = _where(rule, vis)
    row = con.execute(f"SELECT count(*) FROM {FEATURES_TABLE} f WHERE {where}", params).fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def member_ids(
    con: duckdb.DuckDBPyConnection,
    rule: Rule,
    *,
    after: int | None = None,
    limit: int = 100,
    vis: Visibility = ALL,
) -> list[int]:
    """Customer ids in ascending order after ``after`` (keyset pagination)."""
    _ready(con)
    where, params = _where(rule, vis)
    if after is not None:
        where += " AND f.customer_id > ?"
        params.append(after)
    sql = f"SELECT f.customer_id FROM {FEATURES_TABLE} f WHERE {where} ORDER BY f.customer_id LIMIT ?"  # noqa: S608
    return [int(r[0]) for r in con.execute(sql, [*params, limit]).fetchall()]


def all_member_ids(con: duckdb.DuckDBPyConnection, rule: Rule) -> list[int]:
    """Every member, ascending (for jobs that materialise a segment)."""
    _ready(con)
    where, params = _where(rule, ALL)
    sql = f"SELECT f.customer_id FROM {FEATURES_TABLE} f WHERE {where} ORDER BY f.customer_id"  # noqa: S608
    return [int(r[0]) for r in con.execute(sql, params).fetchall()]


def preview(con: duckdb.DuckDBPyConnection, rule: Rule, vis: Visibility = ALL, first: int = 20) -> Preview:
    """Count and the ``first`` smallest ids in one scan (``min(x, n)`` keeps a top-n heap)."""
    _ready(con)
    where, params = _where(rule, vis)
    sql = f"SELECT count(*), min(f.customer_id, ?) FROM {FEATURES_TABLE} f WHERE {where}"  # noqa: S608
    row = con.execute(sql, [first, *params]).fetchone()
    if row is None:
        return Preview(0, [])
    return Preview(int(row[0]), [int(i) for i in (row[1] or [])])


__all__ = [
    "ALL",
    "Preview",
    "StoreNotReady",
    "Visibility",
    "build_features",
    "count",
    "member_ids",
    "preview",
]
