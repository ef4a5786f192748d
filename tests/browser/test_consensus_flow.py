"""Real-browser test of the Annotators page: switch the consensus method → gold labels change → changed samples queued."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp")


def test_switch_method_then_queue_the_changed_gold_labels(demo_server, page):
    from core.demo import DEMO_DATASET
    from core.gold import dataset_gold
    from core.store import open_store

    url, db = demo_server
    page.goto(url)
    expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=120_000)  # the overview is up
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Annotators").click()
    expect(page.get_by_role("heading", name="Annotators")).to_be_visible(timeout=120_000)

    # the page finds the demo's weaker annotator
    expect(page.get_by_text(re.compile(r"Weakest annotator: chen"))).to_be_visible(timeout=120_000)
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=60_000)
    cards = page.get_by_test_id("stMetric")
    expect(cards.filter(has_text="Majority vote")).to_contain_text("current method")
    would = cards.filter(has_text="Dawid-Skene")
    expect(would).to_contain_text("would change")
    expected = int(would.get_by_test_id("stMetricValue").inner_text().replace(",", ""))
    assert expected > 0
    page.screenshot(path=str(SHOTS / "consensus_1_majority.png"), full_page=True)

    # a lead switches the consensus method of the gold labels
    box = page.get_by_role("combobox", name="Consensus method of gold labels")
    box.click()
    page.get_by_role("option", name="Dawid-Skene", exact=True).click()
    expect(box).to_have_value("Dawid-Skene")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved: gold labels now use Dawid-Skene.")).to_be_visible(timeout=120_000)
    expect(cards.filter(has_text="Dawid-Skene")).to_contain_text("current method", timeout=120_000)
    majority = cards.filter(has_text="Majority vote")
    expect(majority).to_contain_text("would change")
    # the same samples, seen from the other side
    expect(majority.get_by_test_id("stMetricValue")).to_have_text(f"{expected:,}")
    page.screenshot(path=str(SHOTS / "consensus_2_dawid_skene.png"), full_page=True)

    store = open_store(db, busy_timeout=60, linger=0)
    try:
        assert store.get_dataset(DEMO_DATASET).settings["consensus_method"] == "dawid_skene"
        assert store.audit_log(dataset=DEMO_DATASET, action="dataset.setting").height == 1
        sources = set(dataset_gold(store, DEMO_DATASET).labels["source"])
        assert "dawid_skene" in sources and "majority" not in sources
    finally:
        store.close()

    # queue the samples whose gold label depends on the method
    button = page.get_by_role("button", name=re.compile(r"Queue the [\d,]+ changed samples for review"))
    expect(button).to_be_visible(timeout=60_000)
    shown = int(re.search(r"Queue the ([\d,]+) changed", button.inner_text()).group(1).replace(",", ""))
    assert shown >= expected
    button.click()
    done = page.get_by_text(re.compile(r"Queued [\d,]+ changed samples for review \(Low consensus confidence\)"))
    expect(done).to_be_visible(timeout=120_000)
    added = int(re.search(r"Queued ([\d,]+) changed", done.inner_text()).group(1).replace(",", ""))
    page.screenshot(path=str(SHOTS / "consensus_3_queued.png"), full_page=True)

    store = open_store(db, busy_timeout=60, linger=0)
    try:
        queued = store.queue(DEMO_DATASET, reason="low_consensus")
        assert queued.height == added == shown  # nothing in the demo is reviewed yet
    finally:
        store.close()
