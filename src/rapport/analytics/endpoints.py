"""/api/v1/analytics: RFM, breakdowns, cohorts and revenue from the last run; a customer's scores.

Roles with the ``analytics`` read permission (admin, team lead, CRM specialist, data analyst) read
aggregates; export needs the ``analytics`` export permission. A customer's scores need both the
customer in the caller's scope (404 otherwise) and the analytics read permission (403).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Query, Request, Response

from rapport.access.policy import Action
from rapport.analytics import service
from rapport.analytics.csvout import frame_to_csv
from rapport.analytics.metrics import BREAKDOWNS
from rapport.analytics.schemas import AnalyticsTable, CustomerScores
from rapport.crud import RecordId, problem_responses
from rapport.deps import Recs
from rapport.http import JSON

router = APIRouter(tags=["analytics"])
_ERRORS = problem_responses(401, 403, 404, 422, 503)

Breakdown = Literal["gender", "age_band", "region", "channel", "stage"]
Distribution = Literal["frequency", "monetary", "recency"]
assert set(BREAKDOWNS) == set(get_args(Breakdown))


def _path(request: Request) -> Path:
    path: Path = request.app.state.settings.resolved_analytics_path
    return path


def _table(request: Request, recs: Recs, name: str) -> JSON:
    frame = service.read_table(recs, _path(request), name)
    computed_at = frame.attrs.get("computed_at")
    return JSON(
        {
            "name": name,
            "computed_at": computed_at.isoformat() + "Z" if computed_at is not None else None,
            "items": service.records_of(frame),
        }
    )


@router.get(
    "/analytics/rfm/segments",
    response_model=AnalyticsTable,
    summary="RFM segments: customers, share, averages and revenue per segment",
    operation_id="analytics_rfm_segments",
    responses=_ERRORS,
)
def rfm_segments(request: Request, recs: Recs) -> Response:
    return _table(request, recs, "rfm_segments")


@router.get(
    "/analytics/rfm/grid",
    response_model=AnalyticsTable,
    summary="RFM grid: customers per recency x frequency score cell",
    operation_id="analytics_rfm_grid",
    responses=_ERRORS,
)
def rfm_grid(request: Request, recs: Recs) -> Response:
    return _table(request, recs, "rfm_grid")


@router.get(
    "/analytics/breakdowns",
    response_model=AnalyticsTable,
    summary="Customers by gender, age band, region, preferred channel or lifecycle stage",
    operation_id="analytics_breakdown",
    responses=_ERRORS,
)
def breakdown(by: Annotated[Breakdown, Query()], request: Request, recs: Recs) -> Response:
    return _table(request, recs, f"breakdown_{by}")


@router.get(
    "/analytics/distributions",
    response_model=AnalyticsTable,
    summary="Purchasers by purchase frequency, spend or recency bucket",
    operation_id="analytics_distribution",
    responses=_ERRORS,
)
def distribution(of: Annotated[Distribution, Query()], request: Request, recs: Recs) -> Response:
    return _table(request, recs, f"distribution_{of}")


@router.get(
    "/analytics/repeat-purchase",
    response_model=AnalyticsTable,
    summary="Repeat-purchase rate: purchasers with two or more purchases",
    operation_id="analytics_repeat_purchase",
    responses=_ERRORS,
)
def repeat_purchase(request: Request, recs: Recs) -> Response:
    return _table(request, recs, "repeat_purchase")


@router.get(
    "/analytics/cohorts",
    response_model=AnalyticsTable,
    summary="Cohort retention by first-purchase month",
    operation_id="analytics_cohorts",
    responses=_ERRORS,
)
def cohorts(request: Request, recs: Recs) -> Response:
    return _table(request, recs, "cohorts")


@router.get(
    "/analytics/revenue",
    response_model=AnalyticsTable,
    summary="Revenue, orders and purchasing customers per month or week",
    operation_id="analytics_revenue",
    responses=_ERRORS,
)
def revenue(
    request: Request, recs: Recs, unit: Annotated[Literal["month", "week"], Query()] = "month"
) -> Response:
    return _table(request, recs, "revenue_monthly" if unit == "month" else "revenue_weekly")


@router.get(
    "/analytics/tables",
    response_model=AnalyticsTable,
    summary="Any aggregate result of the last run as JSON: models, forecasts, rules, clusters, ...",
    operation_id="analytics_table",
    responses=_ERRORS,
)
def table(table: Annotated[service.TableName, Query()], request: Request, recs: Recs) -> Response:
    return _table(request, recs, table.value)


@router.get(
    "/analytics/export",
    response_class=Response,
    summary="One analytics table as CSV (formula-safe; audited)",
    operation_id="analytics_export",
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "UTF-8 CSV"},
        **_ERRORS,
    },
)
def export(table: Annotated[service.TableName, Query()], request: Request, recs: Recs) -> Response:
    name = table.value
    frame = service.read_table(recs, _path(request), name, Action.export)
    headers = {
        "Content-Disposition": f'attachment; filename="{name}.csv"',
        "Cache-Control": "no-store",
    }
    return Response(frame_to_csv(frame), media_type="text/csv; charset=utf-8", headers=headers)


@router.get(
    "/customers/{record_id}/scores",
    response_model=CustomerScores,
    tags=["customers"],
    summary="A customer's analytics scores (RFM segment, value, risk...)",
    operation_id="get_customer_scores",
    responses=problem_responses(401, 403, 404, 422),
)
def customer_scores(record_id: RecordId, recs: Recs) -> Response:
    return JSON({"customer_id": record_id, "items": service.customer_scores(recs, record_id)})
