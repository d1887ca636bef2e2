from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from rapport.analytics.charts import forecast_chart, rules_chart
from rapport.analytics.forecast import fit_forecast, forecast_table
from rapport.analytics.rules import mine_rules
from rapport.analytics.synthetic import seasonal_series

PNG = b"\x89PNG\r\n\x1a\n"


def _image(data: bytes) -> Image.Image:
    assert data.startswith(PNG)
    return Image.open(io.BytesIO(data))


def test_forecast_chart_is_a_png_with_the_interval_drawn() -> None:
    y = seasonal_series(np.random.default_rng(0), 36, level=5000, trend=50, amplitude=800, noise=100)
    starts = pd.DatetimeIndex(pd.date_range("2023-01-01", periods=36, freq="MS"))
    table = forecast_table(starts, y, fit_forecast(y, 6, 12, 0.9), "month")
    image = _image(forecast_chart(table, title="Revenue per month", ylabel="CNY", level=0.9)).convert("RGB")
    width, height = image.size
    assert width > 600 and height > 300
    # The interval band is the forecast colour at 18 % over white: some pixels must have that tint.
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    band = (np.abs(pixels - [243, 222, 208]) <= 6).all(axis=1)
    assert band.sum() > 500


def test_rules_chart_with_and_without_rules() -> None:
    baskets = [[1, 2]] * 8 + [[1]] * 2 + [[2, 3]] * 4 + [[4]] * 6
    orders = [n for n, b in enumerate(baskets) for _ in b]
    products = [p for b in baskets for p in b]
    rules = mine_rules(orders, products, min_support=0.1, min_confidence=0.3).rules
    image = _image(rules_chart(rules, names={1: "Green tea", 2: "Tea cups"}))
    assert image.size[0] > image.size[1] > 300
    empty = _image(rules_chart(rules.head(0)))
    assert empty.size[0] > 300


def test_charts_from_the_stored_tables() -> None:
    import duckdb
    import pytest

    from rapport.analytics.charts import forecast_png_from_store, rules_png_from_store
    from rapport.analytics.rules import _stored

    con = duckdb.connect(":memory:")
    y = seasonal_series(np.random.default_rng(1), 30)
    starts = pd.DatetimeIndex(pd.date_range("2023-01-01", periods=30, freq="MS"))
    stored_forecast = forecast_table(starts, y, fit_forecast(y, 3, 12, 0.9), "month")
    con.register("f", stored_forecast)
    con.execute("CREATE TABLE result_forecast_revenue_month AS SELECT * FROM f")
    assert forecast_png_from_store(con, "revenue_month", level=0.9).startswith(PNG)
    with pytest.raises(ValueError, match="unknown series"):
        forecast_png_from_store(con, "revenue_day; DROP TABLE x")
    rules = _stored(mine_rules([1, 1, 2, 2, 3], [5, 6, 5, 6, 5], min_support=0.3, min_confidence=0.3).rules)
    con.register("r", rules)
    con.execute("CREATE TABLE result_rules_rules AS SELECT * FROM r")
    assert rules_png_from_store(con).startswith(PNG)
