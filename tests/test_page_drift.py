"""AppTest: the Drift page (defaults, summary table, charts, empty states, embedding drift, demo)."""

import base64
import json

import numpy as np
import polars as pl
import pytest
from apptest_helpers import run_page, texts
from factories import write_jsonl as _write

PAGE = "pages/drift.py"


@pytest.fixture(autouse=True)
def _jobs_finish_in_the_run(monkeypatch):
    """The page's analysis job runs in the background worker; a page run waits for it here, so what the
    test sees does not depend on how busy the machine is."""
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "120")


def _fixture(app_env, tmp_path, n=12):
    """Batch b1 (round 1): short texts, mostly 'refund'; batch b2 (round 2): long texts, mostly 'cancel'.

    Predictions: round 1 for every sample; round 3 for two samples only (a round without samples).
    """
    from core.ingest import import_file
    from core.store import open_store

    rows = []
    for b, rnd in (("b1", 1), ("b2", 2)):
        for i in range(n):
            sid = f"{b}-{i:02d}"
            words = " ".join(["please"] * (2 + i % 3 if b == "b1" else 12 + i % 5))
            text = f"退款 {i} {words}" if b == "b1" else f"我想取消订单 {i} {words} 谢谢"
            lab = ("refund" if i % 4 else "cancel") if b == "b1" else ("cancel" if i % 4 else "refund")
            for ann in ("alice", "bo"):
                rows.append({"id": sid, "text": text, "annotator": ann, "label": lab, "batch": b, "round": rnd})
    store = open_store(app_env)
    import_file(store, _write(tmp_path / "ann.jsonl", rows), "ds")
    preds = [{"id": f"{b}-{i:02d}", "pred_round": 1,
              "probs": {"refund": 0.9, "cancel": 0.1} if b == "b1" else {"refund": 0.3, "cancel": 0.7}}
             for b in ("b1", "b2") for i in range(n)]
    import_file(store, _write(tmp_path / "pred1.jsonl", preds), "ds")
    late = [{"id": "b1-00", "pred_round": 3, "probs": {"refund": 0.6, "cancel": 0.4}},
            {"id": "b2-00", "pred_round": 3, "probs": {"refund": 0.2, "cancel": 0.8}}]
    import_file(store, _write(tmp_path / "pred3.jsonl", late), "ds")
    return store


def _arr(v):
    """A plotly JSON array: a plain list, or a typed array {"dtype", "bdata"} (plotly >= 6)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)


def _charts(at):
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _bars(chart):
    return {t["name"]: dict(zip(_arr(t["x"]), _arr(t["y"]))) for t in chart["data"]}


def test_empty_states_no_dataset_and_single_batch(app_env, tmp_path):
    at = run_page(PAGE)
    assert any("No dataset yet" in t for t in texts(at.info))

    from core.ingest import import_file
    from core.store import open_store

    rows = [{"id": f"s{i}", "text": f"hello {i}", "label": "a", "batch": "only", "round": 1} for i in range(5)]
    import_file(open_store(app_env), _write(tmp_path / "one.jsonl", rows), "one")
    at = run_page(PAGE)
    assert not at.exception
    assert any("Drift compares two selections" in t and "1 batch(es) and 1 round(s)" in t for t in texts(at.info))
    assert not at.dataframe


def test_report_charts_and_side_without_rows(app_env, tmp_path):
    store = _fixture(app_env, tmp_path)
    at = run_page(PAGE)
    assert not at.exception
    # defaults: the earliest vs the latest batch
    assert at.selectbox(key="drift_ref").value == "batch b1"
    assert at.selectbox(key="drift_cur").value == "batch b2"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Reference samples"] == "12" and metrics["Current samples"] == "12"

    # the summary table shows what core computes from the store, sorted by PSI descending
    from core.drift_features import SideData, compare_sides

    def side(batch):
        return SideData(store.samples("ds", batch=batch), store.annotations("ds", batch=batch),
                        store.selection_predictions("ds", batch=batch))

    expected = compare_sides(side("b1"), side("b2")).report
    table = at.dataframe[0].value
    from core.analyses.drift import feature_name

    assert list(table["feature"]) == [feature_name(f) for f in expected["feature"].to_list()]  # readable names
    assert "Label by bo" in list(table["feature"]) and "label_by_bo" not in list(table["feature"])
    # KS is for numeric features only: "—" for the categorical ones, never "None"
    categorical = table[table["kind"] == "categorical"]
    assert set(categorical["ks_statistic"]) == {"—"} and set(categorical["ks_pvalue"]) == {"—"}
    assert "None" not in table.astype(str).to_numpy().ravel().tolist()
    assert list(table["psi"]) == pytest.approx(expected["psi"].to_list())
    assert list(table["psi"]) == sorted(table["psi"], reverse=True)
    assert list(table["status"]) == expected["status"].to_list()
    by = dict(zip(table["feature"], table["status"]))
    assert by["Text length (characters)"] == "significant" and by["Label (majority)"] == "significant"
    assert by["Predicted label"] == "significant"   # round 1 predictions: refund -> cancel
    assert metrics["Significant features"] == str(expected.filter(pl.col("status") == "significant").height)
    # prediction round 3 is common to both sides (one sample each) and the latest: used for both
    assert any("prediction round 3 on both sides" in t for t in texts(at.caption))
    assert at.download_button[0].label == "Download the report (CSV)"

    charts = _charts(at)
    assert len(charts) == 3  # feature distribution, label bars, PSI across rounds
    assert feature_name(at.selectbox(key="drift_feature").value) == table["feature"][0]  # the most shifted first
    bars = _bars(charts[1])
    assert bars["batch b1"]["refund"] == pytest.approx(9 / 12) and bars["batch b2"]["cancel"] == pytest.approx(9 / 12)
    trend = charts[2]
    bands = sorted((s.get("y0"), s.get("y1")) for s in trend["layout"]["shapes"] if s["type"] == "rect")
    assert bands[0] == (0.0, 0.1) and bands[1] == (0.1, 0.25) and bands[2][0] == 0.25
    lines = {s["y0"] for s in trend["layout"]["shapes"] if s["type"] == "line"}
    assert lines == {0.1, 0.25}
    # the bands are named in the legend, not written over the plot
    assert not trend["layout"].get("annotations")
    assert {t["name"] for t in trend["data"] if t.get("legendgroup") == "bands"} == {"moderate ≥ 0.1",
                                                                                  "significant ≥ 0.25"}
    label_line = next(t for t in trend["data"] if t["name"] == "Label (majority)")
    assert _arr(label_line["x"]) == ["round 1", "round 2"]  # round 3 has no samples: left out
    assert _arr(label_line["y"])[0] == pytest.approx(0.0, abs=1e-12)

    at.toggle(key="drift_trend_log").set_value(True).run()
    assert not at.exception and _charts(at)[2]["layout"]["yaxis"]["type"] == "log"

    # a numeric feature: overlaid histograms normalized to probability, shared bins
    at.selectbox(key="drift_feature").select("text_chars").run()
    assert not at.exception
    hist = _charts(at)[0]["data"]
    assert {t["type"] for t in hist} == {"histogram"} and {t["histnorm"] for t in hist} == {"probability"}
    assert [t["name"] for t in hist] == ["batch b1", "batch b2"] and len({t["bingroup"] for t in hist}) == 1
    # a categorical feature: side-by-side shares
    at.selectbox(key="drift_feature").select("label_by_bo").run()
    assert not at.exception
    bo = _bars(_charts(at)[0])
    assert bo["batch b1"]["cancel"] == pytest.approx(3 / 12)

    # a side with no rows: round 3 holds only predictions
    at.selectbox(key="drift_cur").select("round 3").run()
    assert not at.exception
    assert any("current selection **round 3** has no samples" in t for t in texts(at.info))
    assert not at.dataframe


def test_embedding_drift_button(app_env, tmp_path):
    _fixture(app_env, tmp_path, n=12)  # 24 texts
    at = run_page(PAGE)
    assert not at.exception
    assert not [m for m in at.metric if m.label == "Domain AUC"]
    at.button(key="drift_embed").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    auc = {m.label: m.value for m in at.metric}["Domain AUC"]
    assert 0.0 <= float(auc) <= 1.0
    assert float(auc) > 0.7  # long Chinese cancellation texts vs short refund texts: separable
    # kept for the selection across reruns, and stored: a new session (a reload, another lead) sees it
    at.run()
    assert "Domain AUC" in {m.label for m in at.metric}
    again = run_page(PAGE)
    assert {m.label: m.value for m in again.metric}["Domain AUC"] == auc
    assert any("Computed at" in t for t in texts(again.caption))


def test_renders_on_demo(app_env):
    from core.seed import load_demo
    from core.store import open_store

    load_demo(open_store(app_env))
    at = run_page(PAGE)
    assert not at.exception
    # the earliest batch (r1, round 1) vs the latest (current, round 5), not the name order
    assert at.selectbox(key="drift_ref").value == "batch r1"
    assert at.selectbox(key="drift_cur").value == "batch current"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Reference samples"] == "900" and metrics["Current samples"] == "600"
    assert at.dataframe[0].value.shape[0] > 5
    at.radio(key="drift_labels").set_value("Predicted").run()
    assert not at.exception
    bars = _charts(at)[1]
    # the current batch has no predictions: no (empty) legend entry for it, a caption instead
    assert [t["name"] for t in bars["data"]] == ["batch r1"] and all(len(_arr(t["x"])) for t in bars["data"])
    assert any("No predicted labels in batch current" in t for t in texts(at.caption))
