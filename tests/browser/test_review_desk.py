"""Real-browser tests of the review desk (issue 15, item 6): the keyboard flow on a 1400×900 screen with
the record and the form in view together, and two reviewers in bulk review who cannot overwrite each
other (Playwright + Debian's chromium)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# This directory's conftest (the name "conftest" alone may resolve to tests/conftest.py).
_spec = importlib.util.spec_from_file_location("browser_conftest_for_desk", Path(__file__).with_name("conftest.py"))
_bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bc)
start_server, stop_server = _bc.start_server, _bc.stop_server

PASSWORDS = {"rita": "rita-password-1", "lou": "lou-password-1"}
LABELS = ["cancel", "refund", "shipping", "other"]
SHOTS = Path("/tmp")
N_SAMPLES = 14


def _text(i: int) -> str:
    body = "订单 {i}：我想取消这个订单，因为物流太慢了，已经等了两个星期还没有发货。Order {i}: please cancel it, it is late. "
    return body.format(i=i) * (14 if i == 0 else 2)  # t00 is long: the desk must still show the form beside it


@pytest.fixture(scope="module")
def desk_server(tmp_path_factory):
    """Two reviewers, one dataset of 14 tickets with votes and predictions, all queued for low confidence."""
    from factories import write_jsonl

    from core.auth import hash_password
    from core.ingest import import_file
    from core.store import open_store

    base = tmp_path_factory.mktemp("desk")
    users = base / "users.toml"
    users.write_text("".join(f'[users.{name}]\nrole = "reviewer"\npassword_hash = "{hash_password(pw)}"\n\n'
                             for name, pw in PASSWORDS.items()), encoding="utf-8")
    db = base / "desk.duckdb"
    store = open_store(db, linger=0)
    ids = [f"t{i:02d}" for i in range(N_SAMPLES)]
    rows = [{"id": sid, "text": _text(i), "annotator": ann, "label": lab}
            for i, sid in enumerate(ids) for ann, lab in zip(["alice", "bo", "chen"], ["cancel", "cancel", "refund"])]
    import_file(store, write_jsonl(base / "ann.jsonl", rows), "tickets", labels=LABELS)
    preds = [{"id": sid, "pred_round": 1, "probs": {"cancel": 0.5, "refund": 0.3, "shipping": 0.15, "other": 0.05}}
             for sid in ids]
    import_file(store, write_jsonl(base / "pred.jsonl", preds), "tickets")
    store.enqueue("tickets", ids, "low_confidence", "system:test", priority=[float(N_SAMPLES - i) for i in range(N_SAMPLES)])
    store.close()
    proc, url = start_server(db, {"QUALITY_DEMO": "0", "QUALITY_USERS_FILE": str(users)})
    yield url, db
    stop_server(proc)


@pytest.fixture
def screen(browser):
    """A 1400×900 browser window (the issue's screen)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    yield context
    context.close()


def open_desk(context, url: str, name: str):
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url + "/review")
    expect(page.get_by_label("User name", exact=True)).to_be_visible(timeout=120_000)
    page.get_by_label("User name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORDS[name])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Review", exact=True)).to_be_visible(timeout=120_000)
    return page


def read_store(db, fn):
    """Read the server's store from the test process (waits while the server holds the file)."""
    from core.store import open_store

    store = open_store(db, linger=0)
    try:
        return fn(store)
    finally:
        store.close()


def test_keyboard_flow_with_record_and_form_in_view(desk_server, screen):
    url, db = desk_server
    page = open_desk(screen, url, "rita")
    page.get_by_role("button", name="Claim next").click()
    expect(page.get_by_text("Sample t00", exact=True)).to_be_visible(timeout=60_000)

    # One screen: the long record (its end too) beside the evidence and the whole label form.
    record = page.get_by_test_id("stText").filter(has_text="Order 0: please cancel it").first
    save = page.get_by_role("button", name=re.compile(r"^Save and next"))
    for element in (page.get_by_text("Sample t00", exact=True), record, page.get_by_text(re.compile(r"^Votes: ")),
                    page.get_by_role("button", name=re.compile(r"^refund")),
                    page.get_by_role("combobox", name="Corrected label"), save,
                    page.get_by_role("button", name=re.compile(r"^Skip"))):
        expect(element).to_be_in_viewport()
    assert record.bounding_box()["x"] + record.bounding_box()["width"] <= save.bounding_box()["x"]  # side by side
    # The keys are shown on the buttons.
    expect(save).to_contain_text("Enter")
    expect(page.get_by_role("button", name=re.compile(r"^refund"))).to_contain_text("2")
    page.screenshot(path=str(SHOTS / "review_desk_1400x900.png"))

    page.get_by_text("Sample t00", exact=True).click()  # the focus out of any field: keys reach the desk
    page.keyboard.press("2")
    expect(page.get_by_role("combobox", name="Corrected label")).to_have_value("refund")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Saved t00: refund (version 1).")).to_be_visible()
    expect(page.get_by_text("Sample t01", exact=True)).to_be_visible()
    page.screenshot(path=str(SHOTS / "review_desk_after_enter.png"))
    assert read_store(db, lambda s: s.reviews("tickets").select("sample_id", "reviewer", "new_label").rows()) == [
        ("t00", "rita", "refund")]

    page.keyboard.press("s")  # skip t01
    expect(page.get_by_text("Skipped t01.")).to_be_visible()
    expect(page.get_by_text("Sample t02", exact=True)).to_be_visible()
    page.keyboard.press("u")  # undo the skip: t01 is back
    expect(page.get_by_text("Took t01 back from the skipped entries.")).to_be_visible()
    expect(page.get_by_text("Sample t01", exact=True)).to_be_visible()
    held = read_store(db, lambda s: s.claims_of("rita")["sample_id"].to_list())
    assert sorted(held) == ["t01", "t02"]  # both still rita's: t02 comes next, nothing is held out of sight


def _set_rows_to_hold(page, n: int) -> None:
    box = page.get_by_role("spinbutton", name="Rows to hold")
    box.fill(str(n))
    box.press("Enter")


def _pick_label_in_first_row(page, label: str) -> None:
    """Open the "Corrected label" cell of the first row of the bulk table and choose ``label``."""
    grid = page.get_by_test_id("stForm").get_by_test_id("stDataFrame")
    box = grid.get_by_test_id("data-grid-canvas").bounding_box()
    page.mouse.click(box["x"] + 20, box["y"] + 35 + 17)  # first row, first column (under the header row)
    for _ in range(6):  # Sample, Text, Annotator votes, Model, Confidence, Current label -> Corrected label
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    page.get_by_role("option", name=label, exact=True).click()
    expect(grid.get_by_test_id("glide-cell-6-0")).to_have_text(label)  # the edit is in the grid


def _grid_samples(page) -> set[str]:
    """The sample ids in the bulk table (the grid's accessible cells: column 0 is the sample)."""
    grid = page.get_by_test_id("stForm").get_by_test_id("stDataFrame")
    expect(grid.get_by_test_id("glide-cell-0-0")).to_have_text(re.compile(r"^t\d\d$"))  # drawn
    return {c.text_content().strip() for c in grid.locator("[data-testid^='glide-cell-0-']").all()} - {""}


def test_two_reviewers_in_bulk_review_cannot_overwrite_each_other(desk_server, browser):
    url, db = desk_server
    desks = {}
    contexts = [browser.new_context(viewport={"width": 1400, "height": 900}) for _ in PASSWORDS]
    try:
        for context, name in zip(contexts, PASSWORDS):
            page = open_desk(context, url, name)
            page.get_by_role("tab", name="Bulk review").click()
            _set_rows_to_hold(page, 3)
            page.get_by_role("button", name="Claim rows").click()
            expect(page.get_by_text("3 entries claimed by you")).to_be_visible()
            desks[name] = page
        rows = {name: _grid_samples(page) for name, page in desks.items()}
        assert len(rows["rita"]) == len(rows["lou"]) == 3 and not rows["rita"] & rows["lou"]
        claims = read_store(db, lambda s: s.queue("tickets", status=["claimed"]))
        assert {n: set(claims.filter(claims["claimed_by"] == n)["sample_id"]) for n in PASSWORDS} == rows
        desks["rita"].screenshot(path=str(SHOTS / "review_bulk_rita.png"))

        for name, label in (("rita", "shipping"), ("lou", "other")):
            page = desks[name]
            _pick_label_in_first_row(page, label)
            page.get_by_role("button", name="Save changed rows").click()
            expect(page.get_by_text(re.compile(r"Saved 1 reviews in one transaction\. 2 unchanged rows"))).to_be_visible()
            expect(page.get_by_text(re.compile("not claimed by you|changed since you loaded"))).to_have_count(0)
        desks["lou"].screenshot(path=str(SHOTS / "review_bulk_lou_saved.png"))

        bulk_ids = rows["rita"] | rows["lou"]
        reviews = [r for r in read_store(db, lambda s: s.reviews("tickets").select("sample_id", "reviewer",
                                                                                   "new_label").rows())
                   if r[0] in bulk_ids]
        assert {(r, lab) for _sid, r, lab in reviews} == {("rita", "shipping"), ("lou", "other")}
        assert all(sid in rows[r] for sid, r, _lab in reviews)  # each saved only a row it held
        assert len({sid for sid, _r, _lab in reviews}) == 2  # no sample reviewed by both
        queue = read_store(db, lambda s: s.queue("tickets"))
        status = dict(zip(queue["sample_id"], queue["status"]))
        for name in PASSWORDS:  # the saved row is done, the two unchanged ones are back in the queue
            assert sorted(status[s] for s in rows[name]) == ["done", "open", "open"]
    finally:
        for context in contexts:
            context.close()
