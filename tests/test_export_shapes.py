"""Tests for core/export.py: every shape exported as it came in (JSONL, CSV, Parquet with nested columns, Label
Studio tasks) with the gold label and its provenance, masked on request, and importable again unchanged."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_ingest_shapes import SHAPES, content, long_rows, ls_tasks, write_rows

from core.export import export_gold, gold_records
from core.ingest import import_file
from core.records import content_id
from core.store import open_store

# what each shape's export must keep as it came in
KEEP = {"chat": ["messages"], "sharegpt": ["system", "conversations"], "preference": ["prompt", "chosen", "rejected"],
        "instruction": ["instruction", "input", "output"], "text": ["text"]}


@pytest.fixture
def db(tmp_path):
    return open_store(tmp_path / "s.duckdb")


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def gold(k: int) -> str:
    """The majority label of record ``k`` in ``long_rows`` (two of its three annotators)."""
    labels = ["good" if (k + j) % 3 else "bad" for j in range(3)]
    return max(set(labels), key=labels.count)


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("shape", SHAPES)
def test_jsonl_export_keeps_the_shape_and_imports_again_unchanged(db, tmp_path, shape, lang):
    import_file(db, write_rows(tmp_path / "in", long_rows(shape, lang), "jsonl"), "ds")
    out = tmp_path / "gold.jsonl"
    assert export_gold(db, "ds", out) == 4
    rows = read_jsonl(out)
    by_id = {content_id(r, shape): r for r in rows}
    for k in range(4):
        r = by_id[content_id(content(shape, lang, k), shape)]
        assert {key: r[key] for key in KEEP[shape]} == content(shape, lang, k)
        assert (r["label"], r["label_source"]) == (gold(k), "majority")
        assert "annotator" not in r and "prediction" not in r  # one annotator's keys and the model's are gone
    # importing the export again: the same ids, so nothing new
    before = db.table_counts()
    r = import_file(db, out, "ds")
    assert (r.rows_bad, r.samples_new, r.annotations_changed) == (0, 0, 0)
    assert db.table_counts()["samples"] == before["samples"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_parquet_export_has_nested_columns(db, tmp_path, lang):
    import_file(db, write_rows(tmp_path / "c", long_rows("chat", lang), "jsonl"), "chat")
    import_file(db, write_rows(tmp_path / "p", long_rows("preference", lang), "jsonl"), "pref")
    out = tmp_path / "chat.parquet"
    export_gold(db, "chat", out, fmt="parquet")
    schema = pq.read_schema(out)
    assert schema.field("messages").type == pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    assert schema.field("label").type == pa.string() and "label_source" in schema.names
    table = pq.read_table(out)
    assert table.num_rows == 4
    assert table.column("messages").to_pylist()[0][1]["role"] == "user"
    # what datasets.load_dataset("parquet", data_files=...) reads: a plain Parquet file, one row a record
    export_gold(db, "pref", tmp_path / "pref.parquet", fmt="parquet")
    assert set(pq.read_schema(tmp_path / "pref.parquet").names) == {"prompt", "chosen", "rejected", "label",
                                                                    "label_source", "label_confidence"}


def test_csv_export_writes_nested_values_as_json(db, tmp_path):
    import_file(db, write_rows(tmp_path / "c", long_rows("chat", "zh"), "jsonl"), "ds")
    out = tmp_path / "gold.csv"
    export_gold(db, "ds", out, fmt="csv")
    with open(out, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and json.loads(rows[0]["messages"])[0]["role"] == "system"
    r = import_file(db, out, "ds")  # a CSV of chat records imports again to the same samples
    assert (r.rows_bad, r.samples_new) == (0, 0)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_masked_export_masks_every_string_of_the_record(db, tmp_path, lang):
    rec = {"messages": [{"role": "user", "content": "call me at 13812345678 / mail a.b@example.com"},
                        {"role": "assistant", "content": "好的 13912345678"}], "label": "good"}
    import_file(db, write_rows(tmp_path / "pii", [rec], "jsonl"), "ds")
    [row] = gold_records(db, "ds", mask_pii=True)
    text = json.dumps(row, ensure_ascii=False)
    assert "13812345678" not in text and "a.b@example.com" not in text and "13912345678" not in text
    assert row["messages"][0]["content"].startswith("call me at ***5678")
    assert row["messages"][1]["role"] == "assistant"
    [raw] = gold_records(db, "ds", mask_pii=False, actor="cli")
    assert "13812345678" in raw["messages"][0]["content"]
    assert gold_records(db, "ds")[0] == row  # masked is the default


def test_label_studio_export(db, tmp_path):
    import_file(db, write_rows(tmp_path / "c", long_rows("chat", "en", n=2), "jsonl"), "chat")
    out = tmp_path / "tasks.json"
    assert export_gold(db, "chat", out, fmt="label-studio") == 2
    tasks = json.loads(out.read_text(encoding="utf-8"))
    for task in tasks:
        assert task["data"]["messages"][0]["role"] == "system" and task["data"]["text"].startswith("system: ")
        [ann] = task["annotations"]
        assert ann["ground_truth"] and ann["result"][0]["value"]["choices"] == [task["meta"] and
                                                                                ann["result"][0]["value"]["choices"][0]]
        assert task["meta"] == {"label_source": "majority", "label_confidence": pytest.approx(2 / 3)}
    # the tasks import as a Label Studio export: the same samples (their ids travel in data.id)
    r = import_file(db, out, "chat")
    assert (r.shape, r.rows_bad, r.samples_new) == ("label_studio", 0, 0)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_label_studio_dataset_exports_its_own_tasks(db, tmp_path, lang):
    p = tmp_path / "ls.json"
    p.write_text(json.dumps(ls_tasks(lang), ensure_ascii=False), encoding="utf-8")
    import_file(db, p, "ls")
    for fmt in ("label-studio", "jsonl"):
        rows = gold_records(db, "ls", fmt)
        assert [t["data"]["id"] for t in rows] == ["1", "2"]
        assert rows[0]["annotations"][0]["result"][0]["from_name"] == "intent"  # the project's own question
        assert rows[0]["data"]["text"] == ls_tasks(lang)[0]["data"]["text"]


def test_plain_samples_export_as_their_columns(db, tmp_path):
    rows = [{"id": "1", "instruction": "我的快递到哪了？", "output": "正在派送", "label": "shipping", "annotator": "a"}]
    import_file(db, write_rows(tmp_path / "p", rows, "jsonl"), "ds")
    [row] = gold_records(db, "ds")
    assert row == {"sample_id": "1", "instruction": "我的快递到哪了？", "input": None, "output": "正在派送",
                   "text": None, "batch": None, "round": None, "label": "shipping", "label_source": "majority",
                   "label_confidence": 1.0}


def test_unknown_format_is_refused(db, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        export_gold(db, "ds", tmp_path / "x", fmt="xml")
