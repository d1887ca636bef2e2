from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from scipy.special import hyp2f1

from rapport.analytics.clv import (
    BgNbdParams,
    GammaGammaParams,
    Summary,
    bgnbd_loglik,
    clv,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_loglik,
    group_rows,
    months_to_units,
    prob_alive,
    summarise,
)
from rapport.analytics.simulate import simulate_monetary, simulate_summary

TRUE_BGNBD = (0.25, 4.0, 0.8, 2.5)  # close to the CDNOW estimates (weekly) in Fader, Hardie & Lee
TRUE_GG = (6.0, 4.0, 15.0)
# Relative error allowed on each recovered parameter with 20,000 simulated customers (fixed seed).
# Gamma-Gamma's p, q and γ trade off against each other (only p γ / (q - 1), the mean spend, is sharp),
# so their standard errors are several percent at this size and the tolerance is wider.
BGNBD_RTOL = 0.05
GAMMA_GAMMA_RTOL = 0.12


@pytest.fixture(scope="module")
def simulated() -> Summary:
    rng = np.random.default_rng(20260101)
    n = 20_000
    T = np.round(rng.uniform(20, 80, n))  # weeks observed
    x, tx = simulate_summary(rng, T, *TRUE_BGNBD)
    m = simulate_monetary(rng, x, *TRUE_GG)
    return Summary(np.arange(n), x, tx, T, m, time_unit="week")


def _numeric_gradient(f: object, theta: list[float], eps: float = 1e-6) -> list[float]:
    assert callable(f)
    out = []
    for i in range(len(theta)):
        up, down = list(theta), list(theta)
        up[i] += eps * theta[i]
        down[i] -= eps * theta[i]
        out.append((f(up)[0] - f(down)[0]) / (2 * eps * theta[i]))
    return out


# ---- gradients ------------------------------------------------------------------------------------


@pytest.mark.parametrize("theta", [[0.25, 4.0, 0.8, 2.5], [1.7, 0.3, 3.0, 0.6], [0.05, 40.0, 0.2, 9.0]])
def test_bgnbd_gradient_matches_finite_differences(simulated: Summary, theta: list[float]) -> None:
    s = simulated
    rows = slice(0, 3000)  # includes x = 0 and frequent buyers (max x below is > 20)
    assert s.frequency[rows].max() > 20
    assert np.count_nonzero(s.frequency[rows] == 0) > 100

    def f(th: list[float]) -> tuple[float, np.ndarray]:
        return bgnbd_loglik(th, s.frequency[rows], s.recency[rows], s.T[rows])

    analytic = f(theta)[1]
    np.testing.assert_allclose(analytic, _numeric_gradient(f, theta), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("theta", [[6.0, 4.0, 15.0], [0.7, 12.0, 3.0], [20.0, 1.5, 200.0]])
def test_gamma_gamma_gradient_matches_finite_differences(simulated: Summary, theta: list[float]) -> None:
    keep = simulated.frequency > 0

    def f(th: list[float]) -> tuple[float, np.ndarray]:
        return gamma_gamma_loglik(th, simulated.frequency[keep][:3000], simulated.monetary[keep][:3000])

    np.testing.assert_allclose(f(theta)[1], _numeric_gradient(f, theta), rtol=1e-5, atol=1e-4)


def test_weights_equal_repeated_rows() -> None:
    x, tx, T = np.array([0.0, 2.0, 5.0]), np.array([0.0, 3.0, 9.5]), np.array([4.0, 10.0, 10.0])
    w = np.array([3.0, 1.0, 2.0])
    theta = [0.5, 2.0, 1.2, 3.0]
    weighted = bgnbd_loglik(theta, x, tx, T, w)
    repeated = bgnbd_loglik(theta, np.repeat(x, [3, 1, 2]), np.repeat(tx, [3, 1, 2]), np.repeat(T, [3, 1, 2]))
    assert weighted[0] == pytest.approx(repeated[0], rel=1e-13)
    np.testing.assert_allclose(weighted[1], repeated[1], rtol=1e-12)


def test_bgnbd_loglik_matches_the_closed_form_for_one_customer() -> None:
    r, alpha, a, b = 0.5, 2.0, 1.2, 3.0
    x, tx, T = 2, 3.0, 10.0
    # Straight from eq. (6) of the paper, without the log-sum-exp rewrite.
    beta = math.gamma(a) * math.gamma(b) / math.gamma(a + b)
    b1 = math.gamma(a) * math.gamma(b + x) / math.gamma(a + b + x)
    b2 = math.gamma(a + 1) * math.gamma(b + x - 1) / math.gamma(a + b + x)
    common = math.gamma(r + x) * alpha**r / math.gamma(r)
    expected = math.log(
        b1 / beta * common / (alpha + T) ** (r + x) + b2 / beta * common / (alpha + tx) ** (r + x)
    )
    assert bgnbd_loglik([r, alpha, a, b], [x], [tx], [T])[0] == pytest.approx(expected, rel=1e-12)
    # Without repeat purchases only the first term remains and reduces to (α / (α + T))^r.
    only = r * math.log(alpha / (alpha + T))
    assert bgnbd_loglik([r, alpha, a, b], [0], [0], [T])[0] == pytest.approx(only, rel=1e-12)


def test_gamma_gamma_loglik_matches_the_closed_form_for_one_customer() -> None:
    p, q, g, x, m = 6.0, 4.0, 15.0, 3.0, 17.5
    expected = math.log(
        math.gamma(p * x + q)
        / (math.gamma(p * x) * math.gamma(q))
        * g**q
        * m ** (p * x - 1)
        * x ** (p * x)
        / (g + m * x) ** (p * x + q)
    )
    assert gamma_gamma_loglik([p, q, g], [x], [m])[0] == pytest.approx(expected, rel=1e-12)


# ---- fitting --------------------------------------------------------------------------------------


def test_bgnbd_recovers_simulated_parameters(simulated: Summary) -> None:
    fit = fit_bgnbd(simulated)
    for got, true in zip((fit.r, fit.alpha, fit.a, fit.b), TRUE_BGNBD, strict=True):
        assert got == pytest.approx(true, rel=BGNBD_RTOL)
    # The maximum beats the truth (it is the maximum), but not by an implausible margin.
    at_truth = bgnbd_loglik(TRUE_BGNBD, simulated.frequency, simulated.recency, simulated.T)[0]
    assert 0 < fit.loglik - at_truth < 10


def test_gamma_gamma_recovers_simulated_parameters(simulated: Summary) -> None:
    fit = fit_gamma_gamma(simulated)
    for got, true in zip((fit.p, fit.q, fit.gamma), TRUE_GG, strict=True):
        assert got == pytest.approx(true, rel=GAMMA_GAMMA_RTOL)
    # The population mean spend p γ / (q - 1) is much better determined than p, q, γ apart.
    assert fit.p * fit.gamma / (fit.q - 1) == pytest.approx(6.0 * 15.0 / 3.0, rel=0.02)


def test_grouped_fit_equals_ungrouped() -> None:
    rng = np.random.default_rng(5)
    n = 8000
    T = np.round(rng.uniform(10, 60, n))
    x, tx = simulate_summary(rng, T, *TRUE_BGNBD)
    m = np.round(simulate_monetary(rng, x, *TRUE_GG), 0)  # coarse amounts so (x, m) pairs repeat
    s = Summary(np.arange(n), x, np.floor(tx), T, m)  # a week grid, as summarise() produces
    assert len(group_rows(s.frequency, s.recency, s.T)[1]) < n / 3
    keep = (x > 0) & (m > 0)
    assert len(group_rows(x[keep], m[keep])[1]) < np.count_nonzero(keep) / 2

    grouped, plain = fit_bgnbd(s), fit_bgnbd(s, grouped=False)
    for field in ("r", "alpha", "a", "b"):
        assert getattr(grouped, field) == pytest.approx(getattr(plain, field), rel=1e-6)
    assert grouped.loglik == pytest.approx(plain.loglik, rel=1e-12)
    gg, gg_plain = fit_gamma_gamma(s), fit_gamma_gamma(s, grouped=False)
    for field in ("p", "q", "gamma"):
        assert getattr(gg, field) == pytest.approx(getattr(gg_plain, field), rel=1e-6)
    assert gg.loglik == pytest.approx(gg_plain.loglik, rel=1e-12)


def test_group_rows_counts_and_inverse() -> None:
    a = np.array([2.0, 1.0, 2.0, 1.0, 2.0])
    b = np.array([5.0, 5.0, 5.0, 4.0, 6.0])
    (ua, ub), counts, inverse = group_rows(a, b)
    assert ua.tolist() == [1.0, 1.0, 2.0, 2.0]
    assert ub.tolist() == [4.0, 5.0, 5.0, 6.0]
    assert counts.tolist() == [1.0, 1.0, 2.0, 1.0]
    assert inverse.tolist() == [2, 1, 2, 0, 3]


def test_fits_reject_data_without_information() -> None:
    empty = Summary(np.array([]), np.array([]), np.array([]), np.array([]), np.array([]))
    with pytest.raises(ValueError, match="no customers"):
        fit_bgnbd(empty)
    none_repeat = Summary(np.arange(3), np.zeros(3), np.zeros(3), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"at least 2 customers with repeat purchases.*found 0"):
        fit_gamma_gamma(none_repeat)
    ageless = Summary(np.arange(2), np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="every customer has T = 0"):
        fit_bgnbd(ageless)


def test_summary_rejects_inconsistent_arrays() -> None:
    with pytest.raises(ValueError, match="recency exceeds T"):
        Summary(np.arange(1), np.array([1.0]), np.array([5.0]), np.array([4.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="frequency must hold whole numbers"):
        Summary(np.arange(1), np.array([1.5]), np.array([1.0]), np.array([4.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="monetary has shape"):
        Summary(np.arange(2), np.zeros(2), np.zeros(2), np.ones(2), np.zeros(3))


# ---- predictions ----------------------------------------------------------------------------------

PARAMS = BgNbdParams(r=0.25, alpha=4.0, a=0.8, b=2.5, loglik=0.0)
GG = GammaGammaParams(p=6.0, q=4.0, gamma=15.0, loglik=0.0)


def test_prob_alive_matches_hand_computation() -> None:
    # 1 / (1 + a/(b+x-1) ((α+T)/(α+t_x))^(r+x)) = 1 / (1 + 0.8/3.5 × (44/24)^2.25)
    expected = 1 / (1 + 0.8 / 3.5 * (44 / 24) ** 2.25)
    got = prob_alive(PARAMS, [2, 0, 3], [20, 0, 40], [40, 40, 40])
    assert got[0] == pytest.approx(expected, rel=1e-13)
    assert got[1] == 1.0  # never repeated: the model has no chance to have seen a dropout
    assert 0.6 < got[2] < got[1]  # bought recently: most likely alive, but less certain than x = 0


def test_expected_purchases_matches_the_papers_form() -> None:
    r, alpha, a, b = PARAMS.r, PARAMS.alpha, PARAMS.a, PARAMS.b
    x, tx, T, t = np.array([0.0, 1.0, 4.0]), np.array([0.0, 5.0, 30.0]), np.array([32.0, 32.0, 32.0]), 26.0
    z = t / (alpha + T + t)
    direct = (
        (a + b + x - 1)
        / (a - 1)
        * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z))
    )
    death = np.where(x > 0, a / (b + np.maximum(x, 1) - 1) * ((alpha + T) / (alpha + tx)) ** (r + x), 0)
    np.testing.assert_allclose(expected_purchases(PARAMS, t, x, tx, T), direct / (1 + death), rtol=1e-10)


def test_expected_purchases_for_a_new_customer_matches_simulation() -> None:
    # A customer just acquired (x = 0, T = 0) follows the unconditional E[X(t)], which the model's own
    # simulation estimates; 200,000 draws give a standard error near 0.5%.
    rng = np.random.default_rng(11)
    horizon = 52.0
    x, _ = simulate_summary(rng, np.full(200_000, horizon), *TRUE_BGNBD)
    predicted = float(expected_purchases(PARAMS, horizon, [0], [0], [0])[0])
    assert predicted == pytest.approx(float(x.mean()), rel=0.02)


def test_expected_spend_blends_customer_and_population_means() -> None:
    got = expected_spend(GG, [0, 3], [0, 20])
    assert got[0] == pytest.approx(6.0 * 15.0 / 3.0, rel=1e-14)  # population mean p γ / (q - 1)
    assert got[1] == pytest.approx(6.0 * (15.0 + 3 * 20.0) / (6.0 * 3 + 3.0), rel=1e-14)


def test_clv_sums_discounted_monthly_increments() -> None:
    x, tx, T, m = [0, 2, 2, 5], [0, 10, 10, 30], [40, 40, 40, 52], [0, 25, 25, 12]
    spend = expected_spend(GG, x, m)
    month = months_to_units(1, "week")
    assert month == pytest.approx(365.2425 / 12 / 7)
    # Undiscounted, the sum telescopes to the whole horizon's expected purchases.
    flat = clv(PARAMS, GG, x, tx, T, m, months=12, monthly_discount_rate=0.0, time_unit="week")
    np.testing.assert_allclose(flat, expected_purchases(PARAMS, 12 * month, x, tx, T) * spend, rtol=1e-12)
    # Discounted by hand, customer by customer (no grouping).
    d = 0.01
    manual = np.zeros(4)
    previous = np.zeros(4)
    for k in range(1, 13):
        cumulative = expected_purchases(PARAMS, k * month, x, tx, T)
        manual += (cumulative - previous) / (1 + d) ** k
        previous = cumulative
    got = clv(PARAMS, GG, x, tx, T, m, months=12, monthly_discount_rate=d, time_unit="week")
    np.testing.assert_allclose(got, manual * spend, rtol=1e-12)
    assert got[1] == got[2]
    assert np.all(got < flat)
    with pytest.raises(ValueError, match="months must be at least 1"):
        clv(PARAMS, GG, x, tx, T, m, months=0)
    with pytest.raises(ValueError, match="monthly_discount_rate"):
        clv(PARAMS, GG, x, tx, T, m, monthly_discount_rate=-0.1)


# ---- summarise ------------------------------------------------------------------------------------


def _d(day: int) -> dt.date:
    return dt.date(2024, 1, day)


def test_summarise_hand_made_transactions_by_day() -> None:
    ids = ["bob", "ann", "ann", "ann", "bob", "cy", "ann"]
    dates = [_d(3), _d(1), _d(1), _d(5), _d(3), _d(9), _d(11)]
    amounts = [10.0, 5.0, 7.0, 20.0, 2.5, 8.0, 40.0]
    s = summarise(ids, dates, amounts, end=_d(15), time_unit="day")
    assert s.customer_ids.tolist() == ["ann", "bob", "cy"]
    # ann: days 1 (5+7), 5 (20), 11 (40) → 2 repeats, recency 10, T 14, mean repeat (20+40)/2
    # bob: two purchases on day 3 merge into one period → no repeats; cy: one purchase on day 9
    assert s.frequency.tolist() == [2.0, 0.0, 0.0]
    assert s.recency.tolist() == [10.0, 0.0, 0.0]
    assert s.T.tolist() == [14.0, 12.0, 6.0]
    assert s.monetary.tolist() == [30.0, 0.0, 0.0]
    assert s.end == _d(15)
    assert s.time_unit == "day"


def test_summarise_by_monday_to_sunday_weeks_and_default_end() -> None:
    # 2024-01-01 is a Monday: days 1-7 are week 0, 8-14 week 1, 15-21 week 2.
    ids = [1, 1, 1, 2, 2]
    dates = np.array(
        ["2024-01-01", "2024-01-07", "2024-01-08", "2024-01-02", "2024-01-16"], dtype="datetime64[D]"
    )
    s = summarise(ids, dates, [3.0, 4.0, 6.0, 1.0, 9.0], time_unit="week")
    assert s.end == _d(16)
    assert s.customer_ids.tolist() == [1, 2]
    assert s.frequency.tolist() == [1.0, 1.0]
    assert s.recency.tolist() == [1.0, 2.0]
    assert s.T.tolist() == [2.0, 2.0]
    assert s.monetary.tolist() == [6.0, 9.0]


def test_summarise_without_amounts_and_with_datetimes() -> None:
    times = [dt.datetime(2024, 1, 1, 23, 59), dt.datetime(2024, 1, 3, 0, 1)]
    s = summarise(["a", "a"], times, None, end=_d(4))
    assert (s.frequency.tolist(), s.recency.tolist(), s.T.tolist()) == ([1.0], [2.0], [3.0])
    assert s.monetary.tolist() == [0.0]


@pytest.mark.parametrize(
    ("ids", "dates", "amounts", "end", "unit", "message"),
    [
        ([], [], [], None, "day", "no transactions"),
        (
            ["a", "b"],
            [_d(1), _d(2)],
            [1.0, -0.5],
            None,
            "day",
            "amounts must be non-negative; 1 are negative",
        ),
        (["a", "b"], [_d(1), _d(2)], [1.0, math.nan], None, "day", "amounts must be finite; 1 are NaN"),
        (
            ["a", "b"],
            [_d(1), _d(9)],
            [1.0, 2.0],
            _d(5),
            "day",
            r"1 transaction date\(s\) fall after end 2024-01-05",
        ),
        (["a", "b"], [_d(1), _d(6)], [1.0, 2.0], _d(5), "week", r"1 transaction date\(s\) fall after end"),
        (["a", "b"], [_d(1)], [1.0, 2.0], None, "day", r"customer_ids \(2\) and dates \(1\)"),
        (
            ["a", "b"],
            [_d(1), _d(2)],
            [1.0],
            None,
            "day",
            r"amounts \(1\) must have one value per transaction",
        ),
        (["a"], [_d(1)], [1.0], None, "month", "time_unit must be one of day, week, not 'month'"),
        (["a"], ["yesterday"], [1.0], None, "day", "dates must be dates or ISO date strings"),
        (["a"], [_d(1)], ["ten"], None, "day", "amounts must be numbers"),
        (
            ["a", "b"],
            np.array(["2024-01-01", "NaT"], dtype="datetime64[D]"),
            [1.0, 2.0],
            None,
            "day",
            "1 are NaT",
        ),
        (
            ["a", None],
            [_d(1), _d(2)],
            [1.0, 2.0],
            None,
            "day",
            "customer_ids must all be of one comparable type",
        ),
    ],
)
def test_summarise_rejects_bad_input(
    ids: list[str], dates: list[object], amounts: list[object], end: dt.date | None, unit: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        summarise(ids, dates, amounts, end=end, time_unit=unit)  # type: ignore[arg-type]


def test_summarise_integer_ids_dense_and_sparse_match_string_ids() -> None:
    rng = np.random.default_rng(8)
    n = 5000
    base = rng.integers(0, 300, n)
    dates = np.datetime64("2024-01-01") + rng.integers(0, 400, n).astype("timedelta64[D]")
    amounts = np.round(rng.uniform(1, 100, n), 2)
    as_text = summarise([f"c{i:04d}" for i in base], dates, amounts, dt.date(2025, 3, 1))
    for ids in (base, base * 10**12 + 7):  # a compact range (presence table) and a sparse one (sort)
        s = summarise(ids, dates, amounts, dt.date(2025, 3, 1))
        assert s.customer_ids.tolist() == sorted(set(ids.tolist()))
        for name in ("frequency", "recency", "T"):
            np.testing.assert_array_equal(getattr(s, name), getattr(as_text, name))
        np.testing.assert_allclose(s.monetary, as_text.monetary, rtol=1e-12)


def test_group_rows_on_fractional_values_uses_the_general_path() -> None:
    a = np.array([0.5, 1.0, 0.5, 1.0])
    b = np.array([2.25, 3.0, 2.25, 1.0])
    (ua, ub), counts, inverse = group_rows(a, b)
    assert ua.tolist() == [0.5, 1.0, 1.0]
    assert ub.tolist() == [2.25, 1.0, 3.0]
    assert counts.tolist() == [2.0, 1.0, 1.0]
    assert inverse.tolist() == [0, 2, 0, 1]
