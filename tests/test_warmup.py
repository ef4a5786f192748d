"""ui.warmup: the server's background imports wait while a page runs, and import everything once none does."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from ui import warmup


@pytest.fixture
def fake_modules(monkeypatch):
    """Warm-up over three throwaway module names, recording when each was imported."""
    imported: list[tuple[str, float]] = []
    names = tuple(f"warmup_probe_{i}" for i in range(3))

    def fake_import(name):
        imported.append((name, time.monotonic()))
        return sys

    monkeypatch.setattr(warmup, "MODULES", names)
    monkeypatch.setattr(warmup.importlib, "import_module", fake_import)
    return names, imported


def test_warm_up_waits_for_a_running_page_and_then_imports_every_module(fake_modules):
    names, imported = fake_modules
    thread = threading.Thread(target=warmup._warm, daemon=True)
    with warmup.page_running():
        thread.start()
        time.sleep(0.3)
        assert imported == []  # a page is running: nothing imported beside it
        ended = time.monotonic()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert [n for n, _ in imported] == list(names)
    assert all(t >= ended for _, t in imported)
    assert warmup._RUNS == 0


def test_page_running_counts_concurrent_runs_and_survives_a_stop(fake_modules):
    with warmup.page_running():
        with warmup.page_running():
            assert warmup._RUNS == 2
        assert warmup._RUNS == 1
    with pytest.raises(RuntimeError), warmup.page_running():  # st.stop / st.rerun end a run with an exception
        raise RuntimeError("stop")
    assert warmup._RUNS == 0


def test_a_page_run_starting_during_a_warm_up_import_waits_for_it_and_no_import_overlaps_the_run(monkeypatch):
    """Two threads importing modules that import each other deadlock (Python then fails one of the imports: the
    Data quality page once died with KeyError 'core.jobs' so): a page run and a warm-up import never overlap."""
    events: list[tuple[str, str, float]] = []

    def slow_import(name):
        events.append(("import-start", name, time.monotonic()))
        time.sleep(0.3)
        events.append(("import-end", name, time.monotonic()))
        return sys

    monkeypatch.setattr(warmup, "MODULES", ("slow_a", "slow_b"))
    monkeypatch.setattr(warmup.importlib, "import_module", slow_import)
    monkeypatch.setattr(warmup, "_plotly_figure", lambda: None)
    thread = threading.Thread(target=warmup._warm, daemon=True)
    thread.start()
    while not events:  # the warm-up is inside its first import
        time.sleep(0.01)
    with warmup.page_running():
        entered = time.monotonic()
        time.sleep(0.4)
        left = time.monotonic()
    thread.join(timeout=10)
    assert not thread.is_alive()
    first_end = next(t for kind, name, t in events if kind == "import-end" and name == "slow_a")
    second_start = next(t for kind, name, t in events if kind == "import-start" and name == "slow_b")
    assert entered >= first_end      # the run waited for the import under way
    assert second_start >= left      # and the next import waited for the run
    assert warmup._RUNS == 0


def test_page_modules_lists_a_pages_imports_including_project_submodules():
    names = warmup.page_modules("pages/overview.py")
    assert names[:2] == ["plotly.express", "polars"]
    assert "core.privacy" in names and "ui.session" in names  # ``from core import privacy`` is a module
    assert "ui.format.table" not in names and "streamlit" not in names and "__future__" not in names
    assert warmup.page_modules("pages/no_such_page.py") == []


def test_the_page_asked_for_first_is_warmed_first(fake_modules, monkeypatch):
    names, imported = fake_modules
    monkeypatch.setattr(warmup, "page_modules", lambda path: ["page_first", names[1]])
    warmup._warm("pages/some_page.py")
    assert [n for n, _ in imported] == ["page_first", names[1], names[0], names[2]]  # each once, page's first
