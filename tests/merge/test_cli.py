from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import Engine, select
from typer.testing import CliRunner

from rapport.models import Customer, Order
from tests.factories import Factory

runner = CliRunner()


def test_merge_and_undo_from_the_command_line(
    fresh_url: Callable[[], str], engines: Callable[[str], Engine]
) -> None:
    from rapport.cli.main import app

    url = fresh_url()
    engine = engines(url)
    with engine.begin() as conn:
        factory = Factory(conn)
        team = factory.team()
        s = factory.customer(None, team, display_name="李雷", city="上海")
        m = factory.customer(None, team, display_name="李雷", city="北京")
        factory.order(m)
    merged = runner.invoke(
        app, ["merge", "customers", str(s), str(m), "--prefer", f"city={m}", "--json", "--url", url]
    )
    assert merged.exit_code == 0, merged.output
    record = json.loads(merged.output)
    assert (record["survivor_id"], record["merged_ids"], record["moved"]["sales_order"]) == (s, [m], 1)
    with engine.connect() as conn:
        assert conn.execute(select(Customer.city).where(Customer.id == s)).scalar() == "北京"
        assert conn.execute(select(Order.customer_id)).scalar() == s
    bad = runner.invoke(app, ["merge", "customers", str(s), str(m), "--url", url])
    assert bad.exit_code == 1
    assert f"customer {m} was already merged into customer {s}" in bad.output
    undone = runner.invoke(app, ["merge", "undo", str(record["id"]), "--url", url])
    assert undone.exit_code == 0, undone.output
    with engine.connect() as conn:
        assert conn.execute(select(Customer.city).where(Customer.id == s)).scalar() == "上海"
        assert conn.execute(select(Order.customer_id)).scalar() == m
