"""Real-browser tests of identity and roles: login, what a stakeholder can (not) reach, a reviewer's
correction ending in the audit trail (Playwright + Debian's chromium)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# This directory's conftest (the name "conftest" alone may resolve to tests/conftest.py).
_spec = importlib.util.spec_from_file_location("browser_conftest_for_roles", Path(__file__).with_name("conftest.py"))
_bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bc)
ROOT, start_server, stop_server = _bc.ROOT, _bc.start_server, _bc.stop_server

PASSWORDS = {"lead": "lead-password-1", "rita": "rita-password-1", "sam": "sam-password-1"}
ROLES = {"lead": "lead", "rita": "reviewer", "sam": "stakeholder"}


@pytest.fixture(scope="module")
def roles_server(tmp_path_factory):
    """The app with three users (lead, reviewer, stakeholder) on a fresh store with the demo data."""
    from core.auth import hash_password

    base = tmp_path_factory.mktemp("roles")
    users = base / "users.toml"
    users.write_text("".join(f'[users.{name}]\nrole = "{ROLES[name]}"\npassword_hash = "{hash_password(pw)}"\n\n'
                             for name, pw in PASSWORDS.items()), encoding="utf-8")
    db = base / "roles.duckdb"
    proc, url = start_server(db, {"QUALITY_DEMO": "1", "QUALITY_USERS_FILE": str(users)})
    yield url, db
    stop_server(proc)


def log_in(page, url: str, name: str, path: str = "") -> None:
    page.goto(url + path)
    expect(page.get_by_label("User name", exact=True)).to_be_visible(timeout=120_000)
    # a page URL shows the login form at that URL, with no "Page not found" dialog over it
    expect(page.get_by_role("dialog")).to_have_count(0)
    page.get_by_label("User name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORDS[name])
    page.get_by_role("button", name="Log in").click()
    # First login of the server loads the demo data: the overview's cards can take a while.
    expect(page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {name} ({ROLES[name]})")).to_be_visible(
        timeout=180_000)
    expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=180_000)


def test_a_page_url_before_any_login_shows_only_the_login_form(roles_server, page):
    """The first request of a fresh server goes straight to a page URL: no page runs without login."""
    url, _db = roles_server
    page.goto(url + "/import_data")
    expect(page.get_by_label("User name", exact=True)).to_be_visible(timeout=120_000)
    expect(page.get_by_label("Password", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Import")).to_have_count(0)
    expect(page.locator("input[type=file]")).to_have_count(0)
    # the chart and table code preloaded while the user types: drawn, but off-screen and hidden
    preload = page.locator(".st-key-browser-asset-preload")
    expect(preload.locator("[data-testid=stPlotlyChart] .main-svg").first).to_be_attached(timeout=60_000)
    expect(preload.locator("[data-testid=stDataFrame] canvas").first).to_be_attached(timeout=60_000)
    expect(preload).to_be_hidden()
    expect(page.get_by_test_id("stPlotlyChart")).not_to_be_visible()
    # a wrong password is refused
    page.get_by_label("User name", exact=True).fill("sam")
    page.get_by_label("Password", exact=True).fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Wrong user name or password.")).to_be_visible()


def test_stakeholder_finds_no_way_to_write(roles_server, page):
    url, _db = roles_server
    # Logging in on the URL of a page the role may not open: the default page opens instead.
    log_in(page, url, "sam", "/import_data")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_role("heading", name="Import")).to_have_count(0)
    expect(page.locator("input[type=file]")).to_have_count(0)
    nav = page.get_by_test_id("stSidebarNav")
    for title in ("Overview", "Agreement", "Audit"):
        expect(nav.get_by_role("link", name=title)).to_be_visible()
    for title in ("Import", "Review", "Active learning"):
        expect(nav.get_by_role("link", name=title)).to_have_count(0)

    page.get_by_role("link", name="Agreement").click()
    expect(page.get_by_role("heading", name="Agreement")).to_be_visible(timeout=120_000)
    expect(page.get_by_test_id("stMetric").filter(has_text="Fleiss' kappa")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("Your role cannot queue samples for adjudication.")).to_be_visible(timeout=120_000)
    expect(page.get_by_role("button", name=re.compile(r"Queue|Claim|Save|Exclude|Send"))).to_have_count(0)

    page.get_by_test_id("stSidebar").get_by_role("button", name="Log out").click()
    expect(page.get_by_label("User name", exact=True)).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)


def test_reviewer_corrects_a_flagged_sample_and_finds_it_in_the_audit(roles_server, page):
    from core.demo import DEMO_DATASET, DEMO_LABELS
    from core.review import current_label
    from core.store import open_store

    url, db = roles_server
    log_in(page, url, "rita")
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_role("link", name="Review")).to_be_visible()
    expect(nav.get_by_role("link", name="Import")).to_have_count(0)

    # Flag one sample with the highest priority (as a queue rule would), from outside the app.
    store = open_store(db, linger=0)
    try:
        sid = store.samples(DEMO_DATASET)["sample_id"][0]
        before, _source = current_label(store, DEMO_DATASET, sid)
        store.enqueue(DEMO_DATASET, [sid], "manual", "system:browser-test", priority=1e9)
    finally:
        store.close()
    new_label = next(lab for lab in DEMO_LABELS if lab != before)

    nav.get_by_role("link", name="Review").click()
    expect(page.get_by_role("heading", name="Review")).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Claim next").click()
    expect(page.get_by_text(f"Sample {sid}", exact=True)).to_be_visible(timeout=60_000)
    label_box = page.get_by_role("combobox", name="Corrected label")
    label_box.click()
    label_box.fill(new_label)  # the selectbox filters its options as one types; Enter picks the match
    expect(page.get_by_role("option").first).to_have_text(new_label)
    label_box.press("Enter")
    expect(label_box).to_have_value(new_label)
    page.get_by_role("textbox", name="Reason", exact=True).fill("browser test correction")
    page.get_by_role("button", name="Save and next").click()
    # saved; the page claims the next entry (none left here, which replaces the "Saved ..." note)
    expect(page.get_by_text(re.compile(r"Done today:\s*1 · Open:\s*0"))).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile(rf"Saved {re.escape(sid)}: {new_label}|Nothing left to review"))).to_be_visible()

    # the entry left the queue, the review is stored under rita's name
    store = open_store(db, linger=0)
    try:
        q = store.query_df("SELECT status FROM review_queue WHERE dataset = ? AND sample_id = ?", [DEMO_DATASET, sid])
        assert q["status"].to_list() == ["done"]
        assert current_label(store, DEMO_DATASET, sid) == (new_label, "review")
        assert store.reviews(DEMO_DATASET, sid)["reviewer"].to_list() == ["rita"]
    finally:
        store.close()

    nav.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit")).to_be_visible(timeout=120_000)
    page.get_by_role("tab", name="Sample history").click()
    box = page.get_by_role("textbox", name="…or any sample id")
    box.fill(sid)
    box.press("Enter")
    expect(page.get_by_text(f"Sample {sid}", exact=True)).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Reviews (1)")).to_be_visible()
    # The tables are canvas grids: their cells exist in the DOM for accessibility, hidden.
    expect(page.get_by_text("browser test correction").first).to_be_attached()
    expect(page.get_by_text("Review saved").first).to_be_attached()  # the readable name of review.save


def test_reviewer_sees_no_lead_control_and_core_refuses_lead_actions(roles_server, page, monkeypatch):
    import polars as pl

    from core import quality_report, queue
    from core.demo import DEMO_DATASET
    from core.ingest import import_file
    from core.roles import PermissionDenied
    from core.store import open_store

    url, db = roles_server
    # A deep link to a lead's page: after login the reviewer lands on the default page.
    log_in(page, url, "rita", "/import_data")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_role("link", name="Import")).to_have_count(0)
    expect(page.locator("input[type=file]")).to_have_count(0)

    nav.get_by_role("link", name="Review").click()
    expect(page.get_by_role("heading", name="Review")).to_be_visible(timeout=120_000)
    expect(page.get_by_role("button", name="Claim next")).to_be_visible(timeout=60_000)  # reviewer work stays
    expect(page.get_by_text("Fill the queue (team leads)")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Queue low-confidence|Queue disagreements"))).to_have_count(0)
    page.screenshot(path="/tmp/roles_reviewer_review.png")

    nav.get_by_role("link", name="Data quality").click()
    expect(page.get_by_role("heading", name="Data quality")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("Your role is read-only here: sending to the review queue and excluding from export "
                            "are for team leads.").first).to_be_attached(timeout=180_000)
    expect(page.get_by_role("button", name=re.compile("Send to review queue|Exclude from export"))).to_have_count(0)
    page.screenshot(path="/tmp/roles_reviewer_data_quality.png")

    nav.get_by_role("link", name="Iterations").click()
    expect(page.get_by_role("heading", name="Iterations")).to_be_visible(timeout=120_000)
    page.get_by_text("Import rounds evaluated elsewhere").click()
    expect(page.get_by_text(re.compile("Importing or removing evaluation tables needs a role"))).to_be_visible(
        timeout=60_000)
    expect(page.get_by_role("button", name=re.compile("Import evaluation table|Remove imported rounds"))).to_have_count(0)

    nav.get_by_role("link", name="Agreement").click()
    expect(page.get_by_role("heading", name="Agreement")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("Your role cannot queue samples for adjudication.")).to_be_visible(timeout=120_000)

    # Core refuses the same actions, whatever a page shows (this process sees the same users file).
    monkeypatch.setenv("QUALITY_USERS_FILE", str(Path(db).parent / "users.toml"))
    store = open_store(db, linger=0)
    try:
        sid = store.samples(DEMO_DATASET)["sample_id"][0]
        upload = Path(db).parent / "extra.jsonl"
        upload.write_text('{"id": "x1", "text": "hello", "annotator": "a", "label": "refund"}\n', encoding="utf-8")
        lead_actions = {
            "import": lambda: import_file(store, upload, "extra", actor="rita"),
            "settings": lambda: queue.set_confidence_threshold(store, DEMO_DATASET, 0.5, "rita"),
            "queue rules": lambda: queue.queue_low_confidence(store, DEMO_DATASET, "rita", threshold=0.9),
            "disagreements": lambda: queue.queue_disagreement(store, DEMO_DATASET, "rita"),
            "send to review": lambda: quality_report.send_to_review(store, DEMO_DATASET, [sid], "manual", "rita",
                                                                    check="pii"),
            "exclude": lambda: quality_report.exclude_samples(store, DEMO_DATASET, [sid], "rita", check="pii"),
            "evaluation": lambda: store.save_imported_round_metrics(DEMO_DATASET, pl.DataFrame(
                {"round": [9], "n_labeled": [1], "metric": ["macro_f1"], "value": [0.5]}), "rita"),
            "audit row": lambda: store.audit("rita", "forged.note"),
        }
        before = store.audit_log().height
        for what, action in lead_actions.items():
            with pytest.raises(PermissionDenied, match=r"rita \(reviewer\) may not"):
                action()
                pytest.fail(f"{what} was allowed")
        assert store.audit_log().height == before  # nothing written
        assert "extra" not in store.dataset_names()
    finally:
        store.close()


def test_a_stakeholders_data_quality_downloads_hold_no_raw_personal_data(roles_server, page, tmp_path):
    """Issue 15, item 2: the cleaned copy and the report JSON a stakeholder downloads are masked (the demo
    dataset has 30 samples with planted phone numbers, e-mails, ID and card numbers)."""
    from core.quality import find_pii

    url, _db = roles_server
    log_in(page, url, "sam", "/data_quality")
    expect(page.get_by_role("heading", name="Data quality")).to_be_visible(timeout=180_000)
    expect(page.get_by_text("Show personal data")).to_have_count(0)  # the switch is a lead's
    files = {}
    for label in ("Download cleaned JSONL", "Download the report"):
        button = page.get_by_role("button", name=label)
        expect(button).to_be_visible(timeout=180_000)
        with page.expect_download(timeout=180_000) as info:
            button.click()
        path = tmp_path / info.value.suggested_filename
        info.value.save_as(path)
        files[label] = path.read_text(encoding="utf-8")
    for label, text in files.items():
        assert text.strip(), label
        assert find_pii(text) == [], (label, find_pii(text)[:3])
    assert "***" in files["Download the report"]
