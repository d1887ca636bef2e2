"""The segment rule language: a JSON tree validated by Pydantic and compiled to parameterised SQL.

A definition is one node; every node has an ``op``:

=====================  ======================================================================
``and`` / ``or``       ``{"op": "and", "rules": [node, ...]}`` (1-50 children)
``not``                ``{"op": "not", "rule": node}`` (set complement: everyone else)
``=`` ``!=`` ``>``     ``{"op": ">", "field": "churn_risk", "value": 0.6}``
``>=`` ``<`` ``<=``
``in``                 ``{"op": "in", "field": "region", "values": ["华东", "华南"]}`` (1-500 values)
``between``            ``{"op": "between", "field": "recency_days", "low": 30, "high": 90}`` (inclusive)
``top``                ``{"op": "top", "field": "clv_12m", "percent": 20}``: the highest-valued 20 %
                       of customers that have a value (0 < percent <= 100; ties share a rank)
``consent``            ``{"op": "consent", "purpose": "marketing_wechat"}``: current consent granted
=====================  ======================================================================

``clv_12m top 20% AND churn_risk > 0.6 AND consent(marketing_wechat)`` is::

    {"op": "and", "rules": [
        {"op": "top", "field": "clv_12m", "percent": 20},
        {"op": ">", "field": "churn_risk", "value": 0.6},
        {"op": "consent", "purpose": "marketing_wechat"}]}

Fields come from a whitelist (:data:`FIELDS`) with a type; values must have that type (numbers for
number fields, strings for text fields, ``true``/``false`` for boolean fields). A missing value
(no score yet, no purchase yet) never satisfies a comparison, and ``not`` takes the complement, so
``not (churn_risk > 0.6)`` includes customers without a churn score. Definitions nest at most
:data:`MAX_DEPTH` levels and hold at most :data:`MAX_NODES` nodes.

Compiled SQL names only whitelisted columns of the ``segment_features`` table (see
:mod:`rapport.segments.features`); every user value travels as a ``?`` parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

FieldType = Literal["number", "text", "bool"]


@dataclass(frozen=True, slots=True)
class FieldInfo:
    type: FieldType
    source: Literal["profile", "behaviour", "score"]
    description: str
    rankable: bool = False  # ``top N%`` allowed (a percentile column exists)


# The whitelist: rule field name -> column of segment_features (same name), with its type.
FIELDS: dict[str, FieldInfo] = {
    # profile (customers table of the analytics store)
    "region": FieldInfo("text", "profile", "province or region"),
    "city": FieldInfo("text", "profile", "city"),
    "gender": FieldInfo("text", "profile", "female, male or unknown"),
    "birth_year": FieldInfo("number", "profile", "year of birth"),
    "preferred_channel": FieldInfo("text", "profile", "preferred contact channel"),
    "preferred_language": FieldInfo("text", "profile", "preferred language"),
    "acquisition_source": FieldInfo("text", "profile", "how the customer was acquired"),
    "lifecycle_stage": FieldInfo("text", "profile", "stage recorded on the customer"),
    "is_b2b": FieldInfo("bool", "profile", "belongs to an organisation"),
    "tenure_days": FieldInfo("number", "profile", "days since the customer record was created"),
    # behaviour (orders, interactions and tasks, as of the last feature build)
    "orders": FieldInfo("number", "behaviour", "purchases ever (paid, shipped, completed)", True),
    "orders_12m": FieldInfo("number", "behaviour", "purchases in the last 12 months", True),
    "spend": FieldInfo("number", "behaviour", "total of purchases ever", True),
    "spend_12m": FieldInfo("number", "behaviour", "total of purchases in the last 12 months", True),
    "avg_order_value": FieldInfo("number", "behaviour", "mean purchase total", True),
    "recency_days": FieldInfo("number", "behaviour", "days since the last purchase (none: missing)"),
    "interactions_90d": FieldInfo("number", "behaviour", "interactions in the last 90 days"),
    "open_tasks": FieldInfo("number", "behaviour", "tasks not done or cancelled"),
    # scores (scores table mirrored into the store by the analytics jobs)
    "rfm_score": FieldInfo("number", "score", "RFM score (kind rfm, value)", True),
    "rfm_segment": FieldInfo("text", "score", "RFM segment name (kind rfm, label)"),
    "clv_12m": FieldInfo("number", "score", "predicted 12-month value (kind clv_12m)", True),
    "p_alive": FieldInfo("number", "score", "probability the customer still buys (kind p_alive)", True),
    "churn_risk": FieldInfo("number", "score", "churn probability (kind churn_risk)", True),
    "predicted_stage": FieldInfo("text", "score", "modelled lifecycle stage (kind lifecycle, label)"),
    "cluster": FieldInfo("text", "score", "behaviour cluster name (kind cluster, label)"),
}

# The purposes of rapport.privacy.consent.Purpose that need no named partner (a test keeps the two in
# step): consent to share with one partner is not a property of a customer group.
ConsentPurpose = Literal[
    "marketing_email",
    "marketing_sms",
    "marketing_wechat",
    "marketing_phone",
    "profiling",
    "sensitive_processing",
]

MAX_DEPTH = 12
MAX_NODES = 200
MAX_IN_VALUES = 500

Scalar = StrictInt | StrictFloat | StrictStr | StrictBool


def _field(name: str) -> FieldInfo:
    info = FIELDS.get(name)
    if info is None:
        raise ValueError(f"unknown field {name!r}; use one of: {', '.join(FIELDS)}")
    return info


def _check_value(name: str, info: FieldInfo, value: Any, what: str = "value") -> None:
    ok = {
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "text": isinstance(value, str),
        "bool": isinstance(value, bool),
    }[info.type]
    if not ok:
        raise ValueError(f"{what} for field {name!r} must be a {info.type}, not {type(value).__name__}")
    if isinstance(value, float) and value != value:  # NaN compares false with everything
        raise ValueError(f"{what} for field {name!r} must be a number, not NaN")


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllOf(_Node):
    op: Literal["and"]
    rules: list[Rule] = Field(min_length=1, max_length=50)


class AnyOf(_Node):
    op: Literal["or"]
    rules: list[Rule] = Field(min_length=1, max_length=50)


class Not(_Node):
    op: Literal["not"]
    rule: Rule


class Compare(_Node):
    op: Literal["=", "!=", ">", ">=", "<", "<="]
    field: str
    value: Scalar

    @model_validator(mode="after")
    def _typed(self) -> Compare:
        info = _field(self.field)
        _check_value(self.field, info, self.value)
        if info.type != "number" and self.op not in ("=", "!="):
            raise ValueError(f"operator {self.op!r} needs a number field; {self.field!r} is {info.type}")
        return self


class In(_Node):
    op: Literal["in"]
    field: str
    values: list[Scalar] = Field(min_length=1, max_length=MAX_IN_VALUES)

    @model_validator(mode="after")
    def _typed(self) -> In:
        info = _field(self.field)
        for v in self.values:
            _check_value(self.field, info, v, "each value")
        return self


class Between(_Node):
    op: Literal["between"]
    field: str
    low: StrictInt | StrictFloat
    high: StrictInt | StrictFloat

    @model_validator(mode="after")
    def _typed(self) -> Between:
        info = _field(self.field)
        if info.type != "number":
            raise ValueError(f"between needs a number field; {self.field!r} is {info.type}")
        _check_value(self.field, info, self.low, "low")
        _check_value(self.field, info, self.high, "high")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class Top(_Node):
    op: Literal["top"]
    field: str
    percent: StrictInt | StrictFloat

    @model_validator(mode="after")
    def _typed(self) -> Top:
        info = _field(self.field)
        if not info.rankable:
            ranked = ", ".join(n for n, i in FIELDS.items() if i.rankable)
            raise ValueError(f"top N% needs a ranked number field ({ranked}), not {self.field!r}")
        if not 0 < self.percent <= 100:
            raise ValueError(f"percent must be above 0 and at most 100, not {self.percent}")
        return self


class Consent(_Node):
    op: Literal["consent"]
    purpose: ConsentPurpose


# Consent first: tools that build an example from the first branch get a valid leaf, not endless nesting.
Rule = Annotated[Consent | Compare | In | Between | Top | AllOf | AnyOf | Not, Field(discriminator="op")]

for _model in (AllOf, AnyOf, Not):
    _model.model_rebuild()


def measure(rule: Rule) -> tuple[int, int]:
    """(depth, nodes) of a definition."""
    if isinstance(rule, AllOf | AnyOf):
        parts = [measure(r) for r in rule.rules]
        return 1 + max(d for d, _ in parts), 1 + sum(n for _, n in parts)
    if isinstance(rule, Not):
        depth, nodes = measure(rule.rule)
        return depth + 1, nodes + 1
    return 1, 1


def check_size(rule: Rule) -> None:
    depth, nodes = measure(rule)
    if depth > MAX_DEPTH:
        raise ValueError(f"rules nest {depth} levels deep; at most {MAX_DEPTH} are allowed")
    if nodes > MAX_NODES:
        raise ValueError(f"rules hold {nodes} nodes; at most {MAX_NODES} are allowed")


class Definition(_Node):
    """A whole definition as stored and sent: one root node, size-checked."""

    rule: Rule

    @model_validator(mode="after")
    def _size(self) -> Definition:
        check_size(self.rule)
        return self


def fields_used(rule: Rule) -> set[str]:
    if isinstance(rule, AllOf | AnyOf):
        return set().union(*(fields_used(r) for r in rule.rules))
    if isinstance(rule, Not):
        return fields_used(rule.rule)
    if isinstance(rule, Consent):
        return set()
    return {rule.field}


@dataclass(frozen=True, slots=True)
class Compiled:
    where: str
    params: list[Any]


# A semi-join (hash join) rather than a correlated EXISTS: one pass over consents per rule.
_CONSENT_SQL = "{}.customer_id IN (SELECT c.customer_id FROM consents c WHERE c.purpose = ? AND c.granted)"
_SQL_OPS = {"=": "=", "!=": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def compile_rule(rule: Rule, alias: str = "f") -> Compiled:
    """A boolean SQL expression over ``segment_features AS <alias>`` and its ``?`` parameters.

    A missing value is simply "no", which makes ``not`` a true complement. Outside any ``not``,
    SQL's NULL already filters a row out like FALSE, so only leaves under a ``not`` are wrapped in
    COALESCE(..., FALSE); bare comparisons elsewhere let DuckDB push them into the scan. Column
    names come from :data:`FIELDS`, never from the input.
    """
    params: list[Any] = []

    def col(name: str) -> str:
        _field(name)  # defence in depth: the models already refused unknown names
        return f"{alias}.{name}"

    def leaf(sql: str, negated: bool) -> str:
        return f"COALESCE({sql}, FALSE)" if negated else sql

    def walk(node: Rule, negated: bool) -> str:
        if isinstance(node, AllOf | AnyOf):
            joiner = " AND " if isinstance(node, AllOf) else " OR "
            return "(" + joiner.join(walk(r, negated) for r in node.rules) + ")"
        if isinstance(node, Not):
            return f"(NOT {walk(node.rule, True)})"
        if isinstance(node, Compare):
            params.append(node.value)
            return leaf(f"{col(node.field)} {_SQL_OPS[node.op]} ?", negated)
        if isinstance(node, In):
            params.extend(node.values)
            marks = ", ".join("?" * len(node.values))
            return leaf(f"{col(node.field)} IN ({marks})", negated)
        if isinstance(node, Between):
            params.extend((node.low, node.high))
            return leaf(f"{col(node.field)} BETWEEN ? AND ?", negated)
        if isinstance(node, Top):
            params.append(float(node.percent) / 100)
            return leaf(f"{col(node.field)}__top <= ?", negated)
        params.append(node.purpose)
        # Never NULL (ids are not null). The alias is the caller's constant; the purpose a parameter.
        return _CONSENT_SQL.format(alias)

    return Compiled(walk(rule, False), params)
