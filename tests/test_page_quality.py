"""AppTest: the Data quality page (cards, tabs, queueing, excluding, label errors, empty states, demo)."""

from __future__ import annotations

import json

import polars as pl
import pytest
from apptest_helpers import run_page, texts
from quality_fixtures import PHONE, build_planted_store
from test_quality_report import expected_counts

PAGE = "pages/data_quality.py"
TITLES = {
    "exact_duplicates": "Exact duplicates",
    "near_duplicates": "Near duplicates",
    "completeness": "Completeness",
    "cleaning": "Cleaning",
    "pii": "Personal data",
    "label_errors": "Label errors",
}


@pytest.fixture(autouse=True)
def _fresh_cache():
    """st.cache_data is process-wide: a result of an earlier test's store must not leak in."""
    import streamlit as st

    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def planted(app_env, tmp_path):
    from core.store import open_store

    return build_planted_store(open_store(app_env), tmp_path, textonly=True)


def _open(dataset: str = "qa"):
    at = run_page(PAGE, session={"dataset_picker": dataset})
    assert not at.exception, at.exception
    return at


def _cards(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric if m.label in TITLES.values()}


def _click(at, key: str):
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def test_cards_equal_core_counts_and_label_errors_on_request(planted):
    at = _open()
    cards = _cards(at)
    expected = expected_counts(planted, "qa")
    assert cards == {**{TITLES[c]: str(n) for c, n in expected.items()}, TITLES["label_errors"]: "—"}
    assert cards[TITLES["exact_duplicates"]] == "2" and cards[TITLES["pii"]] == "1"
    shares = {m.label: m.proto.delta for m in at.metric if m.label in TITLES.values()}
    assert shares[TITLES["pii"]] == f"{1 / 23:.1%} of the dataset"

    _click(at, "dq_label_run")
    assert _cards(at)[TITLES["label_errors"]] == "1"
    frame = next(df.value for df in at.dataframe if "suggested_label" in df.value.columns)
    assert frame["sample_id"].tolist() == ["q07"] and frame["suggested_label"].tolist() == ["refund"]
    assert any("model probabilities of round 1" in t for t in texts(at.caption))


def test_tables_show_the_matched_span_escaped(planted):
    at = _open()
    pii = next(df.value for df in at.dataframe if "masked" in df.value.columns)
    row = pii.iloc[0]
    assert (row["sample_id"], row["match"], row["before"]) == ("q05", PHONE, "请拨打")
    assert "***5678" in row["masked"] and PHONE not in row["masked"]
    cleaning = next(df.value for df in at.dataframe if "cleaned" in df.value.columns)
    assert cleaning.iloc[0]["match"] == "<br>"
    md = texts(at.markdown)
    assert any(r":red-background[\<br\>]" in t for t in md)  # markup in user text is escaped, the span marked
    assert any(f":red-background[{PHONE}]" in t for t in md)
    assert not any("<br>" in t for t in md)
    # near duplicates side by side with the Jaccard similarity and the changed characters marked
    assert any(":red-background[杂]" in t for t in md) and any(":red-background[噪]" in t for t in md)
    assert {m.label: m.value for m in at.metric}["Jaccard similarity (character 3-grams)"].startswith("0.8")


def test_send_selected_rows_to_the_queue(planted):
    at = _open()
    _click(at, "dq_suggest_exact_duplicates")
    assert at.multiselect(key="dq_pick_exact_duplicates").value == ["q21", "q22"]
    _click(at, "dq_send_exact_duplicates")
    assert any("Sent 2 sample(s) to the review queue (Manual)" in t for t in texts(at.success))
    queue = planted.queue("qa")
    assert sorted(queue["sample_id"]) == ["q21", "q22"] and set(queue["reason"]) == {"manual"}
    assert json.loads(queue["detail"][0])["check"] == "exact_duplicates"
    audit = planted.audit_log(dataset="qa", action="queue.add")
    assert audit.height == 1 and audit["actor"].item() == "local-lead"
    assert at.multiselect(key="dq_pick_exact_duplicates").value == []  # selection cleared after the write

    # label errors go in as label_issue, ranked by 1 - self-confidence
    _click(at, "dq_label_run")
    at.multiselect(key="dq_pick_label_errors").set_value(["q07"]).run()
    assert at.selectbox(key="dq_reason_label_errors").value == "label_issue"
    _click(at, "dq_send_label_errors")
    assert any("Sent 1 sample(s)" in t for t in texts(at.success))
    issue = planted.queue("qa", reason="label_issue")
    assert issue["sample_id"].to_list() == ["q07"] and issue["priority"].item() == pytest.approx(0.92)
    assert planted.audit_log(dataset="qa", action="queue.add").height == 2


def test_exclude_selected_rows(planted):
    at = _open()
    at.multiselect(key="dq_pick_near_duplicates").set_value(["q23"]).run()
    _click(at, "dq_exclude_near_duplicates")
    assert any("Excluded 1 sample(s) from export" in t for t in texts(at.success))
    excluded = planted.samples("qa").filter(pl.col("excluded"))["sample_id"].to_list()
    assert excluded == ["q23"]
    assert planted.audit_log(dataset="qa", action="sample.exclude").height == 1
    cards = _cards(at)
    assert cards[TITLES["near_duplicates"]] == "0"  # excluded samples are no longer checked
    assert cards == {**cards, **{TITLES[c]: str(n) for c, n in expected_counts(planted, "qa").items()}}
    # shown again when excluded samples are included
    at.toggle(key="dq_include_excluded").set_value(True).run()
    assert _cards(at)[TITLES["near_duplicates"]] == "1"


def test_empty_states_without_output_labels_or_predictions(planted):
    at = _open("textonly")
    info = texts(at.info)
    assert any("no **output** field" in t for t in info)
    assert any("No labels in this dataset and no model predictions" in t for t in info)
    assert any("No gold labels yet" in t for t in info)
    assert _cards(at)[TITLES["pii"]] == str(expected_counts(planted, "textonly")["pii"])
    assert not [b for b in at.button if b.key == "dq_label_run"]


def test_read_only_role_hides_write_controls(planted, monkeypatch):
    import ui.session

    monkeypatch.setattr(ui.session, "can_write", lambda: False, raising=False)
    at = _open()
    keys = {b.key for b in at.button}
    assert not {k for k in keys if k and (k.startswith("dq_send_") or k.startswith("dq_exclude_"))}
    assert any("read-only" in t for t in texts(at.caption))


def test_demo_renders_and_finds_the_planted_problems(app_env):
    from core.demo import PLANTED_COUNTS
    from core.seed import load_demo
    from core.store import open_store

    load_demo(open_store(app_env))
    at = run_page(PAGE, timeout=600)
    assert not at.exception, at.exception
    cards = _cards(at)
    assert cards[TITLES["exact_duplicates"]] == str(PLANTED_COUNTS["exact_duplicate"])
    assert cards[TITLES["near_duplicates"]] == str(PLANTED_COUNTS["near_duplicate"])
    assert cards[TITLES["pii"]] == str(PLANTED_COUNTS["pii"])
    assert int(cards[TITLES["completeness"]]) >= PLANTED_COUNTS["empty_output"] + PLANTED_COUNTS["truncated_output"]
    assert int(cards[TITLES["cleaning"]]) >= PLANTED_COUNTS["html"] + PLANTED_COUNTS["url"]
    at.button(key="dq_label_run").click().run(timeout=600)
    assert not at.exception, at.exception
    assert int(_cards(at)[TITLES["label_errors"]]) >= PLANTED_COUNTS["label_error"]


def test_label_errors_fall_back_to_embeddings_with_progress(app_env, tmp_path, monkeypatch):
    from test_quality_report import _fake_encoder

    import core.embeddings
    from core.store import open_store

    store = build_planted_store(open_store(app_env), tmp_path, predictions=False)
    calls: list[int] = []
    fake = _fake_encoder(calls)
    monkeypatch.setattr(core.embeddings, "resolve_model", lambda texts=None, model=None: fake)
    at = _open()
    assert at.radio(key="dq_label_method").options == ["Cross-validated embeddings (logistic regression, 5 folds)"]
    assert any("No model predictions in this dataset" in t for t in texts(at.caption))
    _click(at, "dq_label_run")
    assert calls, "the texts were embedded"
    frame = next(df.value for df in at.dataframe if "suggested_label" in df.value.columns)
    assert "q07" in frame["sample_id"].tolist()
    assert _cards(at)[TITLES["label_errors"]] == str(len(frame))
    assert any("cross-validated logistic regression on sentence embeddings" in t for t in texts(at.caption))
    assert store.table_counts()["embeddings"] > 0  # cached for the next run
