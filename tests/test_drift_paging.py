"""The drift job reads texts page by page (issue 18, bounded memory): the same comparison as from whole sides.

``drift_view`` used to load every round's samples with their texts (6 GB at a million samples); it now keeps
only their lengths (:func:`core.analyses.drift.length_frame`) and fetches the few texts embedding drift needs.
These tests build the old result from whole sides and check the new one equals it, with pages much smaller
than a side, a text field empty on one side only, nulls, an excluded sample, Chinese and English.
"""

from __future__ import annotations

import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.analyses import drift as drift_analysis
from core.drift_features import SideData, compare_sides, embedding_texts
from tests.factories import import_rows

LABELS = ["billing", "shipping", "refund"]
EN = ["Where is my parcel? It has been a week.", "Please refund order 42, the cup broke.",
      "How do I change my billing address?", "The courier left the box at the wrong door."]
ZH = ["我的快递到哪里了？已经一周了。", "请给订单 42 退款，杯子碎了。", "怎么修改账单地址？", "快递员把包裹放错了门口。"]


def _rows(n: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        second = i >= n // 2
        zh = rng.random() < (0.7 if second else 0.3)
        text = rng.choice(ZH if zh else EN) + (" " + "更多细节" * rng.randrange(4) if zh else " more" * rng.randrange(4))
        row = {"id": f"s{i:04d}", "instruction": text, "output": rng.choice(EN + ZH) * (1 + second),
               "batch": "b2" if second else "b1", "round": 2 if second else 1}
        if second and i % 3 == 0:
            row["input"] = "附加信息：会员"  # a field only the second side has
        for annotator in ("ann", "bo", "chen"):
            rows.append({**row, "annotator": annotator,
                         "label": rng.choice(LABELS[:2] if not second else LABELS)})
    return rows


@pytest.fixture
def drift_store(store, tmp_path):
    result = import_rows(store, tmp_path, _rows(120), name="drift", labels=LABELS)
    assert result.rows_ok == 360
    store.set_excluded("drift", ["s0005"], True, actor="lead")
    return store


def _whole_side(store, dataset: str, **args) -> SideData:
    return SideData(store.samples(dataset, **args), store.annotations(dataset, **args),
                    store.selection_predictions(dataset, **args))


def test_sample_pages_cover_the_samples_in_order(drift_store):
    pages = list(drift_store.sample_pages("drift", page_rows=7))
    assert [p.height for p in pages[:-1]] == [7] * (len(pages) - 1)
    whole = drift_store.samples("drift").select("sample_id", "instruction", "input", "output", "text", "batch",
                                                "round")
    assert_frame_equal(pl.concat(pages), whole)
    kept = pl.concat(drift_store.sample_pages("drift", ("sample_id",), page_rows=50, include_excluded=False))
    assert kept.height == 119 and "s0005" not in kept["sample_id"].to_list()


def test_sample_pages_refuse_unknown_columns(drift_store):
    with pytest.raises(ValueError, match="columns"):
        list(drift_store.sample_pages("drift", ("sample_id", "record; DROP TABLE samples")))
    with pytest.raises(ValueError, match="sample_id"):
        list(drift_store.sample_pages("drift", ("instruction",)))
    assert list(drift_store.sample_pages("no such dataset")) == []


def test_paged_drift_view_equals_the_whole_sides(drift_store, monkeypatch):
    monkeypatch.setattr(drift_analysis, "PAGE_ROWS", 11)
    monkeypatch.setattr(drift_analysis, "MAX_EMBED_TEXTS", 25)
    view = drift_analysis.drift_view(drift_store, "drift")
    assert (view.ref, view.cur) == ("batch b1", "batch b2")
    ref, cur = _whole_side(drift_store, "drift", batch="b1"), _whole_side(drift_store, "drift", batch="b2")
    expected = compare_sides(ref, cur)
    assert_frame_equal(view.report, expected.report)
    assert_frame_equal(view.unavailable, expected.unavailable)
    # present on one side only: not comparable, and said so, as before
    assert "input_chars" in view.unavailable["feature"].to_list()
    assert view.ref_texts == embedding_texts(ref.samples, 25)
    assert view.cur_texts == embedding_texts(cur.samples, 25, seed=1)
    assert any("快递" in t for t in view.cur_texts) and any("parcel" in t for t in view.ref_texts)


def test_paged_rounds_trend_and_custom_pair(drift_store, monkeypatch):
    monkeypatch.setattr(drift_analysis, "PAGE_ROWS", 13)
    view = drift_analysis.drift_view(drift_store, "drift", "round 2", "round 1")
    expected = compare_sides(_whole_side(drift_store, "drift", round=2), _whole_side(drift_store, "drift", round=1))
    assert_frame_equal(view.report, expected.report)
    assert view.trend is not None and set(view.trend["selection"]) == {"round 1", "round 2"}
    steps = []
    drift_analysis.drift_view(drift_store, "drift", progress=lambda stage, f: steps.append((stage, f)))
    assert any(stage == "measuring the texts" for stage, _ in steps)
    assert all(0.0 <= f <= 1.0 for _, f in steps)
