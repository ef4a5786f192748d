"""Real-browser tests of the main flows (Playwright + Debian's chromium)."""

import json
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_overview_then_upload_creates_dataset(demo_server, page, tmp_path):
    url, _db = demo_server
    page.goto(url)
    # KPI cards of the demo dataset.
    expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=120_000)
    samples_card = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text("Samples", exact=True))
    expect(samples_card).to_be_visible()
    # The demo store has thousands of samples: the card shows a real count, not zero.
    expect(samples_card.get_by_test_id("stMetricValue")).to_have_text(re.compile(r"^\d{1,3}(,\d{3})+$"))

    # Import a small file through the upload widget.
    f = tmp_path / "browser_upload.jsonl"
    rows = [{"id": f"b{i}", "text": f"请帮我查询订单 {i}", "annotator": "alice", "label": "refund"} for i in range(5)]
    rows.append({"id": "b-bad", "text": "bad label", "annotator": "alice", "label": "not-a-label"})
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    page.get_by_role("link", name="Import").click()
    expect(page.get_by_role("heading", name="Import")).to_be_visible()
    page.locator("input[type=file]").set_input_files(str(f))
    dataset_box = page.get_by_label("New dataset")
    expect(dataset_box).to_be_visible()
    dataset_box.fill("browser-upload")
    dataset_box.press("Tab")
    page.get_by_label("Label set (comma-separated; empty = from the dataset or the file)").fill("refund,cancel")
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("5 of 6 rows imported")).to_be_visible()
    # The error table is a canvas grid: its cells exist in the DOM for accessibility, hidden.
    expect(page.get_by_text("label 'not-a-label' is not in the label set")).to_be_attached()
    # The new dataset is chosen in the sidebar picker.
    expect(page.get_by_test_id("stSidebar").get_by_role("combobox", name="Dataset")).to_have_value("browser-upload")
