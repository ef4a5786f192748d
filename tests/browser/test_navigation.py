"""A fresh start never lists the raw files of pages/ in the sidebar, even while the demo is loading."""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import start_server, stop_server
from ui.navigation import PAGES

pytestmark = pytest.mark.browser

RAW_NAMES = ("app", "common", "import data", "selection", "overview")  # stems Streamlit would show for pages/*.py
MENU = tuple(p.title for p in PAGES)  # the local lead sees every page of the table


def test_fresh_start_shows_only_the_menu_never_raw_file_names(browser, tmp_path):
    (tmp_path / "no-users.toml").touch()
    proc, url = start_server(tmp_path / "fresh.duckdb",
                             {"QUALITY_DEMO": "1", "QUALITY_USERS_FILE": str(tmp_path / "no-users.toml")})
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(url)
        seen: list[list[str]] = []
        deadline = time.monotonic() + 180
        # Sample the sidebar's page links from the first paint until the demo has loaded.
        while time.monotonic() < deadline:
            # a link's text is its icon's name, then its title
            links = [t.strip().split("\n")[-1] for t in page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()]
            if links:
                seen.append(links)
            if page.get_by_text("Dataset").count() and page.get_by_role("heading", name="Overview").count():
                break
            time.sleep(0.2)
        page.screenshot(path=str(tmp_path / "fresh-start.png"))
        assert seen, "the sidebar never showed a menu"
        for links in seen:
            assert not [n for n in RAW_NAMES if n in links], links  # raw file stems, as Streamlit spells them
            assert set(links) <= set(MENU), links
        assert set(seen[-1]) == set(MENU)
    finally:
        context.close()
        stop_server(proc)
