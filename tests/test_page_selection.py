"""AppTest: the Active learning page (pool, strategies, empty states, picks table, map, queue, downloads)."""

from __future__ import annotations

import json

import pytest
import streamlit as st
from apptest_helpers import run_page, texts

PAGE = "pages/selection.py"
LABELS = ["refund", "shipping", "invoice"]
TOPICS = [("退款", "refund"), ("快递", "shipping"), ("发票", "invoice")]


@pytest.fixture(autouse=True)
def _jobs_finish_in_the_run(monkeypatch):
    """The page's pool is the stored result of job selection_pool, computed by the background worker; a page
    run waits for it here, so what the test sees does not depend on how busy the machine is."""
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "120")


def _rows(n: int = 24, with_probs: bool = True, labeled: int = 6) -> list[dict]:
    rows = []
    for i in range(n):
        word, label = TOPICS[i % 3]
        row = {"id": f"s{i:02d}", "text": f"请问我的{word}问题 {i} 怎么处理", "batch": "b1" if i < 12 else "b2",
               "round": 1}
        if with_probs:
            top = 0.40 + 0.02 * i  # s00 is the least certain, margins fall as i grows
            rest = (1 - top) / 2
            row["probs"] = {lab: (top if lab == label else rest) for lab in LABELS}
            row["pred_round"] = 1
        if i < labeled:
            row.update(annotator="ann1", label=label)
        rows.append(row)
    return rows


def _load(app_env, tmp_path, rows, name="ds"):
    from core.ingest import import_file
    from core.store import open_store

    f = tmp_path / f"{name}.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    store = open_store(app_env)
    import_file(store, f, name, labels=LABELS)
    return store


def _open(session=None):
    st.cache_data.clear()
    at = run_page(PAGE, session=session)
    assert not at.exception, at.exception
    return at


def _button(at, key):
    return at.button(key=key)


def _select(at):
    _button(at, "sel_run").click().run()
    assert not at.exception, at.exception
    return at


def test_margin_picks_table_queue_and_downloads(app_env, tmp_path):
    store = _load(app_env, tmp_path, _rows())
    at = _open()
    assert at.selectbox(key="sel_strategy").value == "margin"
    assert "18** samples in the pool" in " ".join(texts(at.markdown))  # 24 minus 6 with a gold label
    at.number_input(key="sel_k").set_value(3).run()
    _select(at)
    picks = at.dataframe[0].value
    # unlabeled pool = s06..s23; the least certain first
    assert list(picks["sample_id"]) == ["s06", "s07", "s08"]
    # the real margin: s06 is predicted at 0.52 against 0.24 for the next label
    assert next(iter(picks["reason"])) == "margin 0.28 between the top two labels"
    assert round(float(picks["confidence"][0]), 2) == 0.52
    assert list(picks["rank"]) == [1, 2, 3]
    assert len(at.get("plotly_chart")) == 1
    assert len(at.get("download_button")) == 2

    _button(at, "sel_queue").click().run()
    assert not at.exception, at.exception
    assert any("Queued 3 samples for review" in t for t in texts(at.success))
    q = store.queue("ds", reason="active_learning")
    assert sorted(q["sample_id"].to_list()) == ["s06", "s07", "s08"]
    assert (q["created_by"] == "local-lead").all()
    log = store.audit_log(dataset="ds", action="queue.add")
    assert log.height == 1 and log["new_value"][0] == "active_learning"

    # a new selection leaves the queued samples out (the exclusion is on by default) ...
    _select(at)
    assert list(at.dataframe[0].value["sample_id"]) == ["s09", "s10", "s11"]
    # ... and takes them again when the exclusion is off
    at.checkbox(key="sel_excl_queued").uncheck().run()
    _select(at)
    assert list(at.dataframe[0].value["sample_id"]) == ["s06", "s07", "s08"]


def test_no_predictions_disables_uncertainty_with_an_explanation(app_env, tmp_path):
    _load(app_env, tmp_path, _rows(with_probs=False))
    at = _open()
    assert at.selectbox(key="sel_strategy").value == "k_center"  # the default without predictions
    assert any("No model predictions yet" in t for t in texts(at.caption))
    at.selectbox(key="sel_strategy").set_value("entropy").run()
    assert not at.exception
    assert any("needs model predictions" in t for t in texts(at.info))
    assert _button(at, "sel_run").disabled


def test_k_larger_than_the_pool_is_a_clear_message(app_env, tmp_path):
    _load(app_env, tmp_path, _rows())
    at = _open()
    at.number_input(key="sel_k").set_value(50).run()
    warnings = " ".join(texts(at.warning))
    assert "Budget k = 50 is larger than the pool: only 18 samples with a prediction" in warnings
    assert _button(at, "sel_run").disabled


def test_empty_pool(app_env, tmp_path):
    _load(app_env, tmp_path, _rows(n=6, labeled=6))
    at = _open()
    assert any("The pool is empty" in t for t in texts(at.info))
    assert _button(at, "sel_run").disabled
    # all samples: not empty
    at.selectbox(key="sel_pool").set_value("all").run()
    assert not any("The pool is empty" in t for t in texts(at.info))


def test_k_center_on_a_chinese_pool_shows_model_reasons_and_map(app_env, tmp_path):
    _load(app_env, tmp_path, _rows(n=30, labeled=0))
    at = _open()
    at.selectbox(key="sel_strategy").set_value("k_center").run()
    assert any("multilingual USE" in t for t in texts(at.caption))
    at.number_input(key="sel_k").set_value(5).run()
    _select(at)
    picks = at.dataframe[0].value
    assert len(picks) == 5 and picks["sample_id"].is_unique
    assert next(iter(picks["reason"])).startswith("k-center pick #1")
    assert list(picks["reason"])[1].startswith("k-center pick #2 (distance ")
    assert any("PCA of the text embeddings" in t for t in texts(at.caption))
    # the map's projection can change without a new selection
    at.radio(key="sel_projection").set_value("tsne").run()
    assert not at.exception
    assert any("t-SNE of the text embeddings" in t for t in texts(at.caption))
    assert list(at.dataframe[0].value["sample_id"]) == list(picks["sample_id"])


def test_hybrid_in_a_batch_and_choices_are_remembered(app_env, tmp_path):
    _load(app_env, tmp_path, _rows(n=30, labeled=0))
    at = _open()
    at.selectbox(key="sel_pool").set_value("batch").run()
    at.selectbox(key="sel_batch").set_value("b2").run()
    at.selectbox(key="sel_strategy").set_value("adaptive_hybrid").run()
    at.number_input(key="sel_round_index").set_value(10).run()  # last of 10 rounds: pure uncertainty
    at.number_input(key="sel_k").set_value(4).run()
    _select(at)
    picks = at.dataframe[0].value
    # batch b2 = s12..s29; last round of the adaptive schedule = the 4 most uncertain
    assert sorted(picks["sample_id"]) == ["s12", "s13", "s14", "s15"]
    assert "round 10/10" in next(iter(picks["reason"]))

    at.switch_page("pages/overview.py").run()
    assert not at.exception
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.selectbox(key="sel_pool").value == "batch"
    assert at.selectbox(key="sel_batch").value == "b2"
    assert at.selectbox(key="sel_strategy").value == "adaptive_hybrid"
    assert at.number_input(key="sel_k").value == 4
    assert at.number_input(key="sel_round_index").value == 10


# ------------------------------------------------------------------ embed only what is needed (issue 15, item 9)
def _counting(monkeypatch):
    """Replace the embedding model by a fake that records every text it encodes."""
    import numpy as np

    from core import active_learning as al
    from core.embeddings import EmbeddingModel

    seen: list[str] = []

    def encode(batch, size):
        seen.extend(batch)
        return np.array([[len(t), sum(map(ord, t)) % 97, i % 3, 1.0] for i, t in enumerate(batch)], dtype=np.float32)

    fake = EmbeddingModel("fake:page", "fake", 4, encode)
    monkeypatch.setattr(al, "resolve_model", lambda texts=None, spec=None: fake)
    return seen


def test_a_hybrid_embeds_only_its_uncertain_candidates(app_env, tmp_path, monkeypatch):
    seen = _counting(monkeypatch)
    _load(app_env, tmp_path, _rows(n=30, labeled=0))
    at = _open()
    at.selectbox(key="sel_strategy").set_value("hybrid").run()
    at.slider(key="sel_pool_factor").set_value(2).run()
    at.number_input(key="sel_k").set_value(3).run()
    assert any("Embeds 6 texts (only the 6 most uncertain candidates" in t for t in texts(at.caption))
    _select(at)
    assert len(seen) == 6  # not the 30 of the pool
    picks = at.dataframe[0].value
    # s00..s05 are the least certain (margins fall as i grows): the picks come from them
    assert set(picks["sample_id"]) <= {f"s{i:02d}" for i in range(6)} and len(picks) == 3
    assert any("only the texts the strategy embedded" in t for t in texts(at.caption))


def test_many_texts_to_embed_show_an_estimate_and_wait_for_a_confirmation(app_env, tmp_path, monkeypatch):
    from core import active_learning as al

    seen = _counting(monkeypatch)
    monkeypatch.setattr(al, "CONFIRM_ABOVE", 20)
    _load(app_env, tmp_path, _rows(n=30, labeled=0))
    at = _open()
    at.selectbox(key="sel_strategy").set_value("k_center").run()
    at.number_input(key="sel_k").set_value(3).run()
    assert any("30 texts" in t and "not cached yet" in t for t in texts(at.warning))
    assert _button(at, "sel_run").disabled and not seen
    at.checkbox(key="sel_confirm_embed").check().run()
    assert not _button(at, "sel_run").disabled
    _select(at)
    assert len(seen) == 30 and len(at.dataframe[0].value) == 3
    # now cached: no question the second time
    at.number_input(key="sel_k").set_value(4).run()
    assert not at.warning and any("all are cached already" in t for t in texts(at.caption))


def test_an_empty_default_pool_offers_all_samples(app_env, tmp_path):
    _load(app_env, tmp_path, _rows(n=6, labeled=6))
    at = _open()
    assert any("The pool is empty" in t for t in texts(at.info))
    _button(at, "sel_use_all").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="sel_pool").value == "all"
    assert not any("The pool is empty" in t for t in texts(at.info))


def test_pick_texts_are_masked(app_env, tmp_path, monkeypatch):
    _counting(monkeypatch)
    rows = _rows(n=12, labeled=0)
    rows[0]["text"] = "请回电 13812345678 谢谢"
    _load(app_env, tmp_path, rows)
    from crowds import configure_users

    configure_users(monkeypatch, tmp_path, {"rita": "reviewer"})
    at = run_page(PAGE, session={"auth_user": "rita"})
    at.number_input(key="sel_k").set_value(3).run()
    _select(at)
    table = at.dataframe[0].value
    assert "请回电 ***5678 谢谢" in list(table["sample_text"]) and "13812345678" not in table.to_csv()


def test_default_budget_fits_a_small_pool_and_a_typed_budget_is_kept(app_env, tmp_path):
    _load(app_env, tmp_path, _rows(n=11, labeled=6))  # 5 unlabeled samples
    at = _open()
    assert at.number_input(key="sel_k").value == 5  # not 50: Select works on arrival
    assert not _button(at, "sel_run").disabled and not at.warning
    assert [c.label for c in at.checkbox][:2] == ["Exclude reviewed samples", "Exclude queued samples"]
    _select(at)
    assert at.dataframe[0].value.shape[0] == 5
    at.selectbox(key="sel_pool").set_value("all").run()  # 11 samples: the default follows the pool
    assert at.number_input(key="sel_k").value == 11
    at.number_input(key="sel_k").set_value(3).run()
    at.selectbox(key="sel_pool").set_value("unlabeled").run()
    assert at.number_input(key="sel_k").value == 3  # typed by the user: kept
