"""A ``gold_label`` column marks gold (honeypot) questions on import, in the import's transaction."""

from __future__ import annotations

import json

from factories import import_rows

LABELS = ["refund", "cancel", "other"]


def _long_form(gold: dict[str, str]) -> list[dict]:
    """Two annotators per sample, one row each; the gold label repeated on every row of a gold sample."""
    rows = []
    texts = {"s1": "我要退款", "s2": "Cancel my order please", "s3": "快递到哪了？"}
    for sid, text in texts.items():
        for annotator, label in (("alice", "refund"), ("bo", "other")):
            row = {"id": sid, "text": text, "label": label, "annotator": annotator}
            if sid in gold:
                row["gold_label"] = gold[sid]
            rows.append(row)
    return rows


def test_gold_column_marks_gold_questions(store, tmp_path):
    result = import_rows(store, tmp_path, _long_form({"s1": "refund", "s2": "cancel"}), labels=LABELS)
    assert result.rows_bad == 0 and result.gold_questions == 2
    assert "2 gold questions marked" in result.summary()
    gold = store.gold_questions("ds")
    assert gold.select("sample_id", "gold_label", "source").rows() == [("s1", "refund", "import"),
                                                                       ("s2", "cancel", "import")]
    # the gold label is the sample's truth, not an annotation, and it is not kept in the stored record or meta
    assert store.annotations("ds").height == 6
    samples = store.samples("ds")
    assert all("gold" not in (m or "") for m in samples["meta"].to_list())


def test_same_gold_again_writes_nothing_new(store, tmp_path):
    import_rows(store, tmp_path, _long_form({"s1": "refund"}), labels=LABELS)
    rows = _long_form({"s1": "refund"})
    rows.append({"id": "s4", "text": "Where is my parcel?", "label": "other", "annotator": "alice"})
    again = import_rows(store, tmp_path, rows, labels=LABELS)
    assert again.gold_questions == 0 and again.samples_new == 1
    assert store.audit_log(dataset="ds", action="gold.set").height == 1  # the first import's only


def test_unknown_and_conflicting_gold_labels_are_row_errors(store, tmp_path):
    rows = _long_form({"s1": "refund"})
    rows[1]["gold_label"] = "cancel"  # s1's second row disagrees with its first
    rows[2]["gold_label"] = "退货"  # s2: not a label
    result = import_rows(store, tmp_path, rows, labels=LABELS)
    reasons = dict(zip(result.errors["row"].to_list(), result.errors["reason"].to_list(), strict=True))
    assert reasons[2] == "gold label 'cancel' differs from row 1 with the same id 's1'"
    assert reasons[3] == "gold label '退货' is not in the label set"
    assert store.gold_questions("ds").select("sample_id", "gold_label").rows() == [("s1", "refund")]


def test_chat_records_with_gold_label(store, tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "我的包裹在哪？"}, {"role": "assistant", "content": "今天发货。"}],
         "label": "good", "annotator": "alice", "gold_label": "good"},
        {"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Go away."}],
         "label": "good", "annotator": "alice"},
    ]
    result = import_rows(store, tmp_path, rows, labels=["good", "bad"])
    assert result.rows_bad == 0 and result.gold_questions == 1
    (sid,) = store.gold_questions("ds")["sample_id"].to_list()
    records = store.sample_records("ds")
    record = json.loads(records.filter(records["sample_id"] == sid)["record"][0])
    assert "gold_label" not in record and "messages" in record
