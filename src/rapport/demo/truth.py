"""The planted truth behind the demo data: what analytics on the demo should find.

Every buying customer belongs to one latent **segment**; inside it, behaviour follows the BG/NBD
and Gamma-Gamma stories exactly (Fader, Hardie & Lee 2005), in days:

* purchase rate while active: ``λ ~ Gamma(shape r, rate alpha)`` per day;
* the first purchase comes ``Exp(mean FIRST_PURCHASE_DAYS)`` days after sign-up; repeat purchases
  follow a Poisson process of rate λ until the anchor date;
* after each *repeat* purchase the customer drops out for good with probability
  ``p ~ Beta(a, b)``;
* spend: each customer has ``ν ~ Gamma(shape q, rate gamma)``; each order's target value is
  ``z ~ Gamma(shape p, rate ν)`` yuan, times the month's :data:`SEASONALITY` factor. Orders are
  filled with catalogue products until they reach about that value, so totals follow the
  Gamma-Gamma story only approximately (prices are discrete).

========== ====== ====== ====== ===== ===== ==== ==== ======  ========================
segment    share  r      alpha  a     b     p    q    gamma   meaning
========== ====== ====== ====== ===== ===== ==== ==== ======  ========================
browsers   0.20   --     --     --    --    --   --   --      sign up, never buy
casual     0.50   0.60   120    1.00  2.50  3.0  4.0  300     ~1.8 orders/yr, drop fast
regular    0.22   2.00   200    0.80  6.00  3.0  5.0  600     ~3.7 orders/yr
loyal      0.08   4.00   100    0.50  12.0  4.0  6.0  900     ~14.6 orders/yr, rarely leave
========== ====== ====== ====== ===== ===== ==== ==== ======  ========================

**Churn driver.** A buyer has a service complaint with probability :data:`COMPLAINT_RATE`, at a
uniform time between the first purchase and the anchor: an inbound call and a high-priority
task "处理客户投诉" due three days later. The complaint stays unresolved (task still open and
overdue) with probability :data:`UNRESOLVED_RATE`. A customer still active at the complaint stops
buying at that moment with probability :data:`CHURN_IF_UNRESOLVED` (unresolved) or
:data:`CHURN_IF_RESOLVED` (resolved). Customers without a complaint churn only through BG/NBD.

**Product affinities.** Categories fall into :data:`AFFINITY_GROUPS`. Each buyer has a home group
(B2B buyers: ``work``, and their orders are worth twice as much); each order line comes from the
home group with probability :data:`HOME_GROUP_SHARE` (uniform category inside it), else from any
category. Categories of one group are therefore bought together (lift > 1), across groups less
than at random.

**Consent.** Each customer records each purpose separately at sign-up (source ``web_form``), with
the probabilities of :data:`CONSENT_SHARES`; the rest never consented, so analytics profiles only
about four in five demo customers and marketing segments depend on the channel consents.

**Seasonality.** Order *values* (not their timing, so the count process stays BG/NBD) are
multiplied by the month factor of :data:`SEASONALITY`: the November shopping festival (双十一),
Spring Festival in January/February and December gifting up, summer down.

History is only written for the :data:`rapport.demo.chunks.HISTORY_DAYS` before the anchor: a
customer who signed up earlier has their older orders cut off, as after a system migration.
Fit models on customers whose first purchase lies inside the window to see the planted values.
The generator records each customer's truth in :attr:`rapport.demo.chunks.Chunk.truth`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    share: float
    buys: bool
    r: float = 0.0
    alpha: float = 1.0  # rate, per day
    a: float = 1.0
    b: float = 1.0
    p: float = 1.0  # Gamma-Gamma: order value shape
    q: float = 2.0  # Gamma-Gamma: shape of the customer's rate ν
    gamma: float = 1.0  # Gamma-Gamma: rate parameter of ν

    @property
    def mean_orders_per_year(self) -> float:
        return 365.0 * self.r / self.alpha if self.buys else 0.0

    @property
    def mean_order_value(self) -> float:
        """E[z] = p * gamma / (q - 1), before seasonality."""
        return self.p * self.gamma / (self.q - 1) if self.buys else 0.0


SEGMENTS: tuple[Segment, ...] = (
    Segment("browsers", 0.20, False),
    Segment("casual", 0.50, True, r=0.60, alpha=120.0, a=1.00, b=2.50, p=3.0, q=4.0, gamma=300.0),
    Segment("regular", 0.22, True, r=2.00, alpha=200.0, a=0.80, b=6.00, p=3.0, q=5.0, gamma=600.0),
    Segment("loyal", 0.08, True, r=4.00, alpha=100.0, a=0.50, b=12.0, p=4.0, q=6.0, gamma=900.0),
)
SEGMENT_INDEX = {s.name: i for i, s in enumerate(SEGMENTS)}

FIRST_PURCHASE_DAYS = 10.0

COMPLAINT_RATE = 0.12
UNRESOLVED_RATE = 0.6
CHURN_IF_UNRESOLVED = 0.7
CHURN_IF_RESOLVED = 0.1
COMPLAINT_TASK = ("处理客户投诉", "客户来电投诉商品质量/物流问题，需三日内回复处理结果。")
COMPLAINT_CALL = (
    "call",
    "inbound",
    "phone",
    "客户投诉",
    "客户来电投诉：收到的商品有质量问题，物流也比承诺晚了四天，要求尽快处理。",
)
# Complaint state in Chunk.truth
NO_COMPLAINT, RESOLVED, UNRESOLVED = 0, 1, 2

# Category indices of rapport.demo.vocab.CATEGORIES, by group.
AFFINITY_GROUPS: dict[str, tuple[int, ...]] = {
    "tech_home": (0, 1, 6),  # 数码电子, 家用电器, 家居日用
    "style": (2, 5, 7),  # 美妆个护, 服饰鞋包, 运动户外
    "family": (3, 4),  # 食品饮料, 母婴用品
    "work": (8, 9),  # 图书文具, 办公设备
}
GROUP_NAMES = tuple(AFFINITY_GROUPS)
GROUP_WEIGHTS = (0.35, 0.35, 0.2, 0.1)  # home group of consumers (B2B: work)
HOME_GROUP_SHARE = 0.8

# Month (1-12) -> multiplier of order value.
SEASONALITY: dict[int, float] = {
    1: 1.25,
    2: 1.15,
    3: 0.95,
    4: 0.95,
    5: 1.0,
    6: 1.05,
    7: 0.85,
    8: 0.85,
    9: 0.95,
    10: 1.0,
    11: 1.45,
    12: 1.2,
}


@dataclass(frozen=True, slots=True)
class CustomerTruth:
    """What the generator planted for one customer (``Chunk.truth`` rows)."""

    customer_id: int
    segment: int  # index into SEGMENTS
    group: int  # index into GROUP_NAMES (-1 for browsers)
    complaint: int  # NO_COMPLAINT, RESOLVED or UNRESOLVED
    churned_by_complaint: bool


# Probability that a demo customer consented to each purpose at sign-up (one record per purpose).
CONSENT_SHARES: tuple[tuple[str, float], ...] = (
    ("profiling", 0.82),
    ("marketing_wechat", 0.55),
    ("marketing_sms", 0.40),
    ("marketing_email", 0.35),
    ("marketing_phone", 0.15),
)
