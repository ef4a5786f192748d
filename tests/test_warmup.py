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
    assert warmup._wait_for_idle(timeout=0.1)


def test_a_run_left_hanging_holds_the_warm_up_only_until_the_limit(fake_modules, monkeypatch):
    names, imported = fake_modules
    monkeypatch.setattr(warmup, "MAX_WAIT_S", 0.05)
    with warmup.page_running():
        assert not warmup._wait_for_idle()  # timed out
        warmup._warm()  # returns: each import waited at most the limit
    assert [n for n, _ in imported] == list(names)
