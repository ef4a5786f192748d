"""Real-browser test of the disputed-samples flow of the Agreement page (Playwright + Debian's chromium)."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_agreement_cards_then_queue_disputed_samples(demo_server, page):
    url, db = demo_server
    page.goto(url)
    expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=120_000)  # the overview is up
    page.get_by_role("link", name="Agreement").click()
    expect(page.get_by_role("heading", name="Agreement")).to_be_visible(timeout=120_000)  # cold: imports, metrics

    # the three metric cards, each with a value and its bootstrap interval
    for label in ("Percent agreement", "Fleiss' kappa", "Krippendorff's alpha"):
        card = page.get_by_test_id("stMetric").filter(has_text=label)
        expect(card).to_be_visible(timeout=120_000)
        expect(card).to_contain_text(re.compile(r"\d\.\d{3}"))
        expect(card).to_contain_text("95% CI")
    # the pairwise kappa heatmap is drawn
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=60_000)

    # queue the disputed samples for adjudication
    button = page.get_by_role("button", name=re.compile(r"Queue [\d,]+ disputed samples for adjudication"))
    expect(button).to_be_visible(timeout=60_000)
    shown = int(re.search(r"Queue ([\d,]+) disputed", button.inner_text()).group(1).replace(",", ""))
    assert shown > 0
    button.click()
    confirmation = page.get_by_text(re.compile(r"Queued [\d,]+ disputed samples for adjudication"))
    expect(confirmation).to_be_visible(timeout=60_000)
    added = int(re.search(r"Queued ([\d,]+) disputed", confirmation.inner_text()).group(1).replace(",", ""))
    assert 0 < added <= shown

    # the queue holds them for the review page, with reason `disagreement`
    from core.demo import DEMO_DATASET
    from core.store import open_store

    store = open_store(db, busy_timeout=60)
    try:
        assert store.queue(DEMO_DATASET, reason="disagreement").height == added
        assert store.audit_log(dataset=DEMO_DATASET, action="queue.add").height >= 1
    finally:
        store.close()
