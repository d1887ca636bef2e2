"""Browser test of the duplicate review queue: a planted cluster is listed, opened side by side,
merged into the chosen survivor, and the merge is undone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rapport.dedup import service
from tests.dedup.fixture import plant
from tests.factories import Factory
from tests.web.conftest import LiveServer, needs_browser

pytestmark = needs_browser


def test_merge_a_planted_cluster_from_the_queue_and_undo(
    page_as: Callable[..., Any], live_server: LiveServer, shot: Callable[[Any, str], Path]
) -> None:
    with live_server.database.unit(write=True) as session:
        planted = plant(Factory(session.connection()))
        result = service.scan(session, threshold=0.95)
    b, b2 = planted.ids["B"], planted.ids["B2"]
    cluster = next(c.id for c in result.clusters if b in c.members)
    members = next(c.members for c in result.clusters if b in c.members)
    assert b2 in members
    page = page_as("crm_specialist")
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/dedup")
    assert page.is_visible(f"[data-testid=cluster-{cluster}]")
    shot(page, "dedup-queue")
    page.click(f"[data-testid=cluster-{cluster}] a >> nth=0")
    page.wait_for_url(f"**/dedup/{cluster}")
    page.click(f"[data-testid=choose-{b2}]")
    page.wait_for_url(f"**/dedup/{cluster}?survivor={b2}")
    assert page.input_value("input[name=survivor_id]") == str(b2)
    shot(page, "dedup-cluster")
    page.click("[data-testid=merge]")
    page.wait_for_selector("[data-testid=merge-done]")
    assert page.get_attribute("[data-testid=cluster-status]", "data-status") == "merged"
    shot(page, "dedup-merged")
    page.click("[data-testid=merge-link]")
    page.wait_for_url("**/dedup/merges/*")
    page.click("[data-testid=undo-merge]")
    page.wait_for_selector("[data-testid=merge-status][data-status=undone]")
    shot(page, "dedup-undone")
