"""Reliability (issue 7, part 6): the CLI against a busy store, SIGKILL in the middle of a bulk
save, and two review sessions claiming at once. (The 8-thread tests are in test_review.py.)

Deterministic: the parent never races a timer against a child. A child tells the parent where
it is by printing a marker line, and the parent holds the store (or kills the child) only after
reading it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from apptest_helpers import run_page, texts
from factories import write_jsonl as _write

from core.ingest import import_file
from core.review import save_review
from core.store import open_store

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["cancel", "refund", "other"]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _samples(path, ids, label="cancel"):
    return _write(path, [{"id": i, "text": f"样本 {i} text", "annotator": "alice", "label": label} for i in ids])


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUALITY_")}
    env.update({"PYTHONPATH": str(ROOT), "QUALITY_DEMO": "0", "QUALITY_DB_LINGER": "0"}, **extra)
    return env


def _read_marker(proc, marker, timeout=600):
    """Block until the child prints ``marker`` on stdout (fails if it exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"child exited ({proc.wait()}) before printing {marker!r}: {proc.stderr.read()}")
        if line.strip() == marker:
            return
    raise AssertionError(f"no {marker!r} from the child within {timeout} s")


# ------------------------------------------------------------------- (a) CLI vs a busy store
def _seed_busy(tmp_path):
    db = tmp_path / "busy.duckdb"
    store = open_store(db, linger=0)
    import_file(store, _samples(tmp_path / "first.jsonl", [f"a{i}" for i in range(10)]), "ds", labels=LABELS)
    save_review(store, "ds", "a0", "refund", "rita", "before the import", 0)
    new = _samples(tmp_path / "second.jsonl", [f"b{i}" for i in range(25)], label="refund")
    return db, store, new


def test_cli_import_waits_for_the_app_transaction_then_lands(tmp_path):
    db, store, new = _seed_busy(tmp_path)
    # `python -m core import ...` run through runpy, after printing a marker once its imports are
    # done: the parent then knows that the next thing the child does is open the (held) store.
    code = textwrap.dedent(f"""
        import runpy, sys
        import core.__main__, core.ingest  # noqa: F401 - heavy imports before the marker
        print("ready", flush=True)
        sys.argv = ["core", "--db", {str(db)!r}, "import", {str(new)!r}, "--dataset", "ds", "--actor", "cli"]
        runpy.run_module("core", run_name="__main__", alter_sys=True)
    """)
    with store.transaction():
        save_review(store, "ds", "a1", "other", "rita", "inside the long transaction", 0)
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=_env(QUALITY_DB_BUSY_TIMEOUT="600"))
        _read_marker(proc, "ready")
        time.sleep(1.0)  # the child is now retrying the lock; keep holding it a little longer
        save_review(store, "ds", "a2", "other", "rita", "still inside", 0)
        released = time.monotonic()
    store.close()  # the app goes idle: the file lock is released
    out, err = proc.communicate(timeout=600)
    waited_until = time.monotonic()
    assert proc.returncode == 0, err
    assert "25 of 25 rows imported (25 new samples" in out
    assert waited_until >= released
    after = open_store(db, linger=0)
    assert after.table_counts()["samples"] == 35
    assert after.reviews("ds").select("sample_id", "new_label").rows() == [
        ("a0", "refund"), ("a1", "other"), ("a2", "other")]
    imports = after.audit_log(dataset="ds", action="import")
    reviews = after.audit_log(dataset="ds", action="review.save")
    assert imports["actor"].to_list()[0] == "cli"
    assert imports["logged_at"].max() > reviews["logged_at"].max()  # landed after the app committed
    after.close()


def test_cli_import_exits_store_busy_when_the_holder_outlasts_its_timeout(tmp_path):
    db, store, new = _seed_busy(tmp_path)
    before = store.table_counts()
    with store.transaction():
        save_review(store, "ds", "a1", "other", "rita", "inside the long transaction", 0)
        proc = subprocess.run([sys.executable, "-m", "core", "--db", str(db), "import", str(new), "--dataset", "ds"],
                              cwd=ROOT, text=True, capture_output=True, timeout=600,
                              env=_env(QUALITY_DB_BUSY_TIMEOUT="1"))
    store.close()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "store busy" in proc.stderr and proc.stderr.count("\n") == 1  # one line, no traceback
    after = open_store(db, linger=0)
    counts = after.table_counts()
    assert counts["samples"] == before["samples"] == 10 and counts["imports"] == before["imports"]
    assert after.reviews("ds")["sample_id"].to_list() == ["a0", "a1"]  # every review kept
    after.close()


# ------------------------------------------------------------------- (b) SIGKILL mid bulk save
CHILD = """
import sys
from core.review import save_review, save_reviews_bulk
from core.store import open_store

db, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = open_store(db, linger=0)
for i in range(5):  # whole transactions committed before the bulk save
    save_review(store, "ds", f"k{i}", "refund", "pre", None, 0)
if mode == "loop":
    with store.transaction():
        for i in range(5, n):
            save_review(store, "ds", f"k{i}", "other", "bulk", None, 0)
            if i == 55:
                print("mark", flush=True)
        print("all saved, not committed", flush=True)
        sys.stdin.readline()  # still inside the transaction when the parent kills us
else:
    rows = [{"sample_id": f"k{i}", "new_label": "other", "base_version": 0} for i in range(5, n)]
    print("mark", flush=True)
    save_reviews_bulk(store, "ds", rows, "bulk", "bulk save")
    print("committed", flush=True)
    sys.stdin.readline()
"""


@pytest.mark.parametrize("mode, n", [("loop", 600), ("bulk", 20_000)])
def test_sigkill_during_a_bulk_save_leaves_only_whole_transactions(tmp_path, mode, n):
    db = tmp_path / "kill.duckdb"
    store = open_store(db, linger=0)
    import_file(store, _samples(tmp_path / "k.jsonl", [f"k{i}" for i in range(n)]), "ds", labels=LABELS)
    store.close()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(db), mode, str(n)], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        _read_marker(proc, "mark")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=120) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()

    after = open_store(db, linger=0)  # opens cleanly (replays the WAL of committed transactions)
    counts = after.table_counts()
    assert counts["samples"] == n
    reviews = after.reviews("ds")
    audited = after.query_df("SELECT count(*) AS n FROM audit_log WHERE action = 'review.save'")["n"][0]
    assert counts["reviews"] == reviews.height == audited
    by = dict(zip(*reviews.group_by("reviewer").len().sort("reviewer").to_dict(as_series=False).values()))
    assert by.get("pre") == 5
    bulk = by.get("bulk", 0)
    if mode == "loop":
        assert bulk == 0  # the transaction never committed
    else:
        assert bulk in (0, n - 5)  # all of the batch or none of it
    # The store still works: a new save on a sample of the interrupted batch.
    assert save_review(after, "ds", "k10", "cancel", "rita", None, 1 if bulk else 0) == (2 if bulk else 1)
    after.close()


# ------------------------------------------------------------------- (c) two review sessions
def _review_fixture(app_env, tmp_path, n=8):
    store = open_store(app_env)
    import_file(store, _samples(tmp_path / "r.jsonl", [f"r{i}" for i in range(n)]), "ds", labels=LABELS)
    store.enqueue("ds", [f"r{i}" for i in range(n)], "manual", "lead", priority=1.0)  # all equal
    return store


def _shown_sample(at):
    found = [t[len("Sample "):] for t in texts(at.text) if t.startswith("Sample ")]
    return found[0] if found else None


def _click(at, label):
    [b] = [b for b in at.button if b.label == label]
    b.click().run()
    assert not at.exception, at.exception


def test_two_review_sessions_never_get_the_same_sample(app_env, tmp_path):
    store = _review_fixture(app_env, tmp_path)
    a = run_page("pages/review.py", session={"user_name": "rita"})
    b = run_page("pages/review.py", session={"user_name": "sam"})
    _click(a, "Claim next")
    _click(b, "Claim next")
    seen = {"rita": [_shown_sample(a)], "sam": [_shown_sample(b)]}
    assert None not in seen["rita"] + seen["sam"]
    assert seen["rita"][0] != seen["sam"][0]
    for _ in range(3):  # rita saves and moves on, sam skips and moves on, interleaved
        _click(a, "Save and next")
        _click(b, "Skip")
        seen["rita"].append(_shown_sample(a))
        seen["sam"].append(_shown_sample(b))
        assert seen["rita"][-1] != seen["sam"][-1]
    assert not set(seen["rita"]) & set(seen["sam"])
    claimed = store.queue("ds", status=["claimed"])
    assert dict(zip(claimed["claimed_by"], claimed["sample_id"])) == {"rita": seen["rita"][-1],
                                                                     "sam": seen["sam"][-1]}


def test_a_session_claiming_while_other_reviewers_claim_concurrently(app_env, tmp_path):
    """AppTest runs one app at a time per process, so the other reviewers claim through core.queue in
    threads while the session clicks "Claim next": nobody gets a sample twice."""
    from core.queue import claim_next

    store = _review_fixture(app_env, tmp_path, n=12)
    at = run_page("pages/review.py", session={"user_name": "rita"})
    start, others, errors = threading.Event(), {}, []

    def reviewer(name):
        start.wait()
        try:
            for _ in range(3):
                entry = claim_next(store, "ds", name)
                others.setdefault(name, []).append(entry["sample_id"])
                store.set_queue_status(entry["entry_id"], "skipped", name)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reviewer, args=(f"t{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    start.set()
    mine = []
    _click(at, "Claim next")
    mine.append(_shown_sample(at))
    for _ in range(2):
        _click(at, "Skip")
        mine.append(_shown_sample(at))
    for t in threads:
        t.join()
    assert errors == []
    theirs = [sid for ids in others.values() for sid in ids]
    assert None not in mine and len(theirs) == 9
    assert len(set(mine) | set(theirs)) == 12  # twelve claims, twelve different samples


# ------------------------------------------------ (d) four reviewers while a CLI import holds the store
IMPORTER = """
import sys
from core.ingest import import_file
from core.store import open_store

db, path = sys.argv[1], sys.argv[2]
store = open_store(db, linger=0, busy_timeout=60)
with store.cursor():  # like `python -m core import` of a big file: the file stays held from start to end
    print("holding", flush=True)
    import_file(store, path, "bulk", labels=["cancel", "refund", "other"], actor="cli")
    print("imported", flush=True)
    sys.stdin.readline()  # held until the parent has seen every reviewer run into the busy store
store.close()
"""


def test_four_reviewers_saving_while_an_import_holds_the_store_see_no_false_conflicts(tmp_path):
    """Issue 15, item 5. Each reviewer works as the review page does: save, then claim the next entry;
    when the store is busy the reviewer tries the step again. Every reviewer's first save commits just
    before a CLI import (another process) takes the store, so the claim that follows fails with
    StoreBusy and the retry saves the same label on the same base version again: that save committed,
    so it must come back as a success ("changed by rev3 after you loaded version 0" to rev3 itself was
    the bug), nothing is written twice, and no claim is left held out of sight.

    Deterministic: barriers and the importer's marker lines order the steps, no timer races.
    """
    from core.queue import claim_next, held_claims
    from core.review import ReviewConflict, review_item
    from core.store import StoreBusy

    db = tmp_path / "busy4.duckdb"
    store = open_store(db, linger=0, busy_timeout=0.3)
    ids = [f"c{i:02d}" for i in range(40)]
    import_file(store, _samples(tmp_path / "c.jsonl", ids), "ds", labels=LABELS)
    store.enqueue("ds", ids, "manual", "lead", priority=[float(40 - i) for i in range(40)])
    big = _write(tmp_path / "big.jsonl", [{"id": f"b{i}", "text": f"导入 {i}", "annotator": "cli", "label": "other"}
                                           for i in range(20_000)])
    store.close()

    n_rev, per = 4, 5
    saved_first = threading.Barrier(n_rev + 1)   # every reviewer saved its first entry
    busy_seen = threading.Barrier(n_rev + 1)     # ... and then found the store held by the import
    import_holds = threading.Event()
    saves: dict[str, list[tuple[str, int]]] = {f"rev{i}": [] for i in range(n_rev)}
    current: dict[str, str | None] = {}
    errors: list[BaseException] = []

    def reviewer(i: int) -> None:
        name = f"rev{i}"
        try:
            item = review_item(store, "ds", claim_next(store, "ds", name))
            for k in range(per):
                first_try, busy_reported = True, False
                while True:  # one step of the desk: save, then claim the next entry
                    try:
                        version = save_review(store, "ds", item["sample_id"], "refund", name, None,
                                              item["base_version"])
                        if k == 0 and first_try:
                            saved_first.wait(timeout=60)
                            import_holds.wait(timeout=60)
                        first_try = False
                        nxt = claim_next(store, "ds", name)
                        break
                    except StoreBusy:
                        first_try = False
                        if k == 0 and not busy_reported:
                            busy_reported = True
                            busy_seen.wait(timeout=60)
                saves[name].append((item["sample_id"], version))
                item = review_item(store, "ds", nxt) if nxt is not None else None
            current[name] = item["sample_id"] if item else None
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
            for barrier in (saved_first, busy_seen):
                barrier.abort()

    threads = [threading.Thread(target=reviewer, args=(i,)) for i in range(n_rev)]
    for t in threads:
        t.start()
    proc = None
    try:
        saved_first.wait(timeout=60)
        # The reviewers are between their save and their claim, and hold no cursor: the file is free.
        proc = subprocess.Popen([sys.executable, "-c", IMPORTER, str(db), str(big)], cwd=ROOT, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        _read_marker(proc, "holding", timeout=60)
        import_holds.set()
        busy_seen.wait(timeout=60)
        _read_marker(proc, "imported", timeout=60)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        import_holds.set()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert not [e for e in errors if isinstance(e, ReviewConflict)], [str(e) for e in errors]
    assert errors == []

    after = open_store(db, linger=0)
    reviews = after.reviews("ds")
    saved_ids = [sid for got in saves.values() for sid, _v in got]
    assert all(v == 1 for got in saves.values() for _sid, v in got)  # every save is version 1, once
    assert len(saved_ids) == len(set(saved_ids)) == n_rev * per
    assert sorted(reviews["sample_id"].to_list()) == sorted(saved_ids) and set(reviews["version"]) == {1}
    assert dict(zip(reviews["sample_id"], reviews["reviewer"])) == {
        sid: name for name, got in saves.items() for sid, _v in got}
    assert after.audit_log(dataset="ds", action="review.save").height == n_rev * per
    # No claim left held and hidden: each reviewer holds exactly the entry its desk shows next.
    for name in saves:
        held = held_claims(after, name)["sample_id"].to_list()
        assert held == ([current[name]] if current[name] else []), (name, held, current[name])
    assert after.table_counts()["samples"] == 40 + 20_000  # the import landed whole
    after.close()
