"""Reproduce Fader, Hardie & Lee (2005) on the CDNOW sample (2,357 customers, 78 weeks).

The data set is not committed: it ships with the ``lifetimes`` package (a dev dependency), read
here from its ``datasets`` module. Published figures: BG/NBD r = 0.243, α = 4.414, a = 0.793,
b = 2.426, LL = -9582.4 ("Counting your customers the easy way", Marketing Science 2005, table 1),
and a customer with x = 2, t_x = 30.43, T = 38.86 is expected to make 1.226 purchases in the next
39 weeks; Gamma-Gamma on the 946 repeat customers' average spend: p = 6.25, q = 3.74, γ = 15.44
(Fader & Hardie, "The Gamma-Gamma model of monetary value", 2013).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rapport.analytics.clv import Summary, expected_purchases, fit_bgnbd, fit_gamma_gamma

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    datasets = pytest.importorskip("lifetimes.datasets")


@pytest.fixture(scope="module")
def cdnow() -> Summary:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = datasets.load_cdnow_summary_data_with_monetary_value()
    return Summary(
        frame.index.to_numpy(),
        frame["frequency"].to_numpy(dtype=np.float64),
        frame["recency"].to_numpy(dtype=np.float64),
        frame["T"].to_numpy(dtype=np.float64),
        frame["monetary_value"].to_numpy(dtype=np.float64),
        time_unit="week",
    )


def test_cdnow_sample_has_the_published_shape(cdnow: Summary) -> None:
    assert len(cdnow) == 2357
    assert int(np.count_nonzero(cdnow.frequency > 0)) == 946
    assert int(cdnow.frequency.sum()) == 2457  # repeat transactions in the calibration period


def test_bgnbd_reproduces_fader_hardie_lee_2005(cdnow: Summary) -> None:
    fit = fit_bgnbd(cdnow)
    # Published to 3 decimals: agree to rounding.
    assert fit.r == pytest.approx(0.243, abs=5e-4)
    assert fit.alpha == pytest.approx(4.414, abs=5e-4)
    assert fit.a == pytest.approx(0.793, abs=5e-4)
    assert fit.b == pytest.approx(2.426, abs=5e-4)
    assert fit.loglik == pytest.approx(-9582.4, abs=0.05)
    expected = expected_purchases(fit, 39, [2], [30.43], [38.86])
    assert float(expected[0]) == pytest.approx(1.226, abs=5e-4)


def test_gamma_gamma_reproduces_the_published_estimates(cdnow: Summary) -> None:
    fit = fit_gamma_gamma(cdnow)
    assert fit.p == pytest.approx(6.25, abs=5e-3)
    assert fit.q == pytest.approx(3.74, abs=5e-3)
    assert fit.gamma == pytest.approx(15.44, abs=1e-2)
    # The implied mean spend per transaction, p γ / (q - 1), is $35.2 in the note.
    assert fit.p * fit.gamma / (fit.q - 1) == pytest.approx(35.2, abs=0.05)
