"""The ``segments`` analytics job: rebuild the feature table, then score saved segments' members."""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd
from pydantic import TypeAdapter

from rapport.analytics.jobs import JobContext, JobResult, ScoreRow
from rapport.segments import evaluate
from rapport.segments.features import build_features
from rapport.segments.rules import Rule

_RULE: TypeAdapter[Rule] = TypeAdapter(Rule)


class SegmentsJob:
    """``ctx.params["segments"]``: {segment id: definition} of the saved segments to materialise.

    Writes one score ``segment:<id>`` (value 1.0) per member; members are profiling-allowed
    customers only (see :mod:`rapport.segments.evaluate`). The runner reads the
    definitions of the live segments from the records database and passes them here.
    """

    name = "segments"
    model_version = "rules-1"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult:
        rows = build_features(con, ctx.as_of)
        definitions: dict[Any, Any] = dict(ctx.params.get("segments", {}))
        scores: list[ScoreRow] = []
        counts = []
        for n, (segment_id, definition) in enumerate(sorted(definitions.items())):
            ctx.progress(n / len(definitions), f"segment {segment_id}")
            ids = evaluate.all_member_ids(con, _RULE.validate_python(definition))
            scores += [ScoreRow(cid, f"segment:{segment_id}", 1.0, None, None) for cid in ids]
            counts.append({"segment_id": int(segment_id), "members": len(ids)})
        table = pd.DataFrame(counts, columns=["segment_id", "members"])
        return JobResult(
            scores=scores,
            tables={"counts": table},
            metrics={"features": float(rows), "segments": float(len(definitions))},
        )
