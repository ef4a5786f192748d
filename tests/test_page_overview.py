"""AppTest: the Overview page (KPI cards, empty state, activity)."""

import json

from apptest_helpers import run_page, texts


def _small_file(path, n=6):
    rows = []
    for i in range(n):
        for ann, lab in (("alice", "refund"), ("bo", "refund" if i % 3 else "cancel")):
            rows.append({"id": f"s{i}", "text": f"退款请求 {i} refund please", "annotator": ann, "label": lab,
                         "batch": "b1", "round": 1})
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def test_empty_store_shows_empty_state(app_env):
    at = run_page()
    assert not at.exception
    assert any("No dataset yet" in t for t in texts(at.info))


def test_kpi_cards_show_real_counts(app_env, tmp_path):
    from core.ingest import import_file
    from core.store import open_store

    store = open_store(app_env)
    import_file(store, _small_file(tmp_path / "f.jsonl"), "cs")
    store.enqueue("cs", ["s1", "s2"], "manual", actor="test")
    at = run_page()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Samples"] == "6"
    assert metrics["Labeled"] == "6"
    assert metrics["Annotators"] == "2"
    assert metrics["Rounds (incl. current)"] == "1"
    assert metrics["To review"] == "2"
    frames = [df.value for df in at.dataframe]
    activity = next(f for f in frames if "action" in f.columns)
    assert "Queued for review" in set(activity["action"])  # readable, not "queue.add"
    assert "Dataset created" in set(activity["action"])
    assert at.get("plotly_chart")  # samples per batch: b1


def test_no_batches_shows_a_note_and_labels_as_a_list(app_env, tmp_path):
    from core.ingest import import_file
    from core.store import open_store

    rows = [{"id": f"c{i}", "text": f"hello {i}", "annotator": "alice", "label": "a"} for i in range(3)]
    path = tmp_path / "nobatch.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    import_file(open_store(app_env), path, "nb", labels=["a", "b", "c"])
    at = run_page()
    assert not at.exception, at.exception
    assert any("No batches" in t for t in texts(at.caption))
    assert len(at.get("plotly_chart")) == 1  # annotations per label only, no "(none)" bar
    activity = next(d.value for d in at.dataframe if "action" in d.value.columns)
    created = activity[activity["action"] == "Dataset created"].iloc[0]
    assert created["new_value"] == "a, b, c"
