"""Tests for importing every record shape (core/ingest.py with core/record_rows.py): chat, ShareGPT, preference
pairs, Alpaca, plain text, Label Studio and Argilla exports, in JSON lines, JSON arrays, CSV / TSV and Parquet,
in Chinese and English. Counts of samples, annotations, annotators and predictions; re-import changes nothing;
ids from content; every bad record a row error; server paths only inside the import folder; the fast readers
of plain records against core.records; a 200k-record JSON array with bounded memory."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories import write_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

from core.ingest import ImportFileError, import_file, inspect_file, resolve_server_path
from core.record_rows import plain_chat, plain_instruction, plain_text
from core.records import content_id, derive
from core.store import Store, open_store

ROOT = Path(__file__).resolve().parents[1]
ANNOTATORS = ("ann_a", "ann_b", "ann_c")


@pytest.fixture
def db(tmp_path) -> Store:
    return open_store(tmp_path / "s.duckdb")


def counts(store: Store, dataset: str) -> dict[str, int]:
    row = store.dataset_summaries().filter(name=dataset).row(0, named=True)
    return {k: row[k] for k in ("samples", "annotations", "annotators", "predictions")}


def errs(result) -> dict[int, str]:
    return dict(result.errors.select("row", "reason").iter_rows())


# --------------------------------------------------------------------------- records of every shape

TEXTS = {
    "en": {"q": "Where is my parcel?", "a": "It ships today.", "q2": "Can I get express?", "a2": "Yes, for $5.",
           "sys": "You are a support agent.", "bad": "No idea."},
    "zh": {"q": "我的包裹在哪？", "a": "今天发货。", "q2": "可以发顺丰吗？", "a2": "可以，补 5 元。",
           "sys": "你是客服。", "bad": "不知道。"},
}


def content(shape: str, lang: str, k: int = 0) -> dict[str, Any]:
    """One record's content (no label), number ``k`` (distinct texts)."""
    t = {key: f"{v} #{k}" for key, v in TEXTS[lang].items()}
    if shape == "chat":
        return {"messages": [{"role": "system", "content": t["sys"]}, {"role": "user", "content": t["q"]},
                             {"role": "assistant", "content": t["a"]}, {"role": "user", "content": t["q2"]},
                             {"role": "assistant", "content": t["a2"]}]}
    if shape == "sharegpt":
        return {"system": t["sys"], "conversations": [{"from": "human", "value": t["q"]},
                                                      {"from": "gpt", "value": t["a"]}]}
    if shape == "preference":
        return {"prompt": t["q"], "chosen": t["a"], "rejected": t["bad"]}
    if shape == "instruction":
        return {"instruction": t["q"], "input": t["sys"], "output": t["a"]}
    return {"text": t["q"]}


OUTPUT = {"chat": "a2", "sharegpt": "a", "preference": "a", "instruction": "a"}
SHAPES = ("chat", "sharegpt", "preference", "instruction", "text")


def long_rows(shape: str, lang: str, n: int = 4, with_id: bool = False) -> list[dict[str, Any]]:
    """``n`` records, each labelled by the three annotators (long form), and a model prediction on each."""
    rows = []
    for k in range(n):
        for j, ann in enumerate(ANNOTATORS):
            row = {**content(shape, lang, k), "label": "good" if (k + j) % 3 else "bad", "annotator": ann,
                   "prediction": "good", "pred_confidence": 0.8}
            if with_id:
                row = {"id": f"{lang}-{k}", **row}
            rows.append(row)
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]], container: str) -> Path:
    if container == "jsonl":
        return write_jsonl(path.with_suffix(".jsonl"), rows)
    if container == "json":
        p = path.with_suffix(".json")
        p.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
        return p
    if container == "parquet":
        p = path.with_suffix(".parquet")
        pq.write_table(pa.Table.from_pylist(rows), p)
        return p
    delim = "\t" if container == "tsv" else ","
    p = path.with_suffix("." + container)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(p, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=delim)
        w.writerow(keys)
        for r in rows:
            w.writerow([json.dumps(r[k], ensure_ascii=False) if isinstance(r.get(k), (list, dict)) else r.get(k, "")
                        for k in keys])
    return p


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("container", ["jsonl", "json", "csv", "tsv", "parquet"])
def test_every_shape_imports_from_every_container(db, tmp_path, shape, lang, container):
    rows = long_rows(shape, lang)
    path = write_rows(tmp_path / f"{shape}-{lang}", rows, container)
    r = import_file(db, path, "ds")
    assert r.rows_bad == 0, r.errors.to_dicts()
    assert (r.shape, r.format) == (shape, container)
    assert counts(db, "ds") == {"samples": 4, "annotations": 12, "annotators": 3, "predictions": 4}
    assert r.ids_from_content == 4 and "4 ids derived from content" in r.summary()
    ids = sorted(db.samples("ds")["sample_id"])
    assert ids == sorted({content_id(content(shape, lang, k), shape) for k in range(4)})
    sample = db.sample("ds", content_id(content(shape, lang, 1), shape))
    assert sample["shape"] == shape
    record = json.loads(sample["record"]) if isinstance(sample["record"], str) else sample["record"]
    assert {k: record[k] for k in content(shape, lang, 1)} == content(shape, lang, 1)  # the record, whole
    assert not {"label", "annotator", "prediction", "pred_confidence"} & set(record)  # one annotator's keys
    fields = derive(content(shape, lang, 1), shape).text_fields()
    assert {f: sample[f] for f in fields} == fields
    if shape in OUTPUT:
        assert sample["output"] == f"{TEXTS[lang][OUTPUT[shape]]} #1"
    # the same bytes again: nothing changes
    before = db.table_counts()
    assert import_file(db, path, "ds").already_imported
    assert db.table_counts() == before


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_reimport_of_the_same_records_in_another_file_changes_nothing(db, tmp_path, lang):
    rows = long_rows("chat", lang)
    import_file(db, write_rows(tmp_path / "a", rows, "jsonl"), "ds")
    before = db.table_counts()
    # another container, another key order: other bytes, the same ids
    again = [dict(reversed(list(r.items()))) for r in rows]
    r = import_file(db, write_rows(tmp_path / "b", again, "json"), "ds")
    assert not r.already_imported and r.rows_bad == 0
    assert (r.samples_new, r.annotations_new, r.annotations_changed, r.predictions_new) == (0, 0, 0, 0)
    after = db.table_counts()
    assert {k: after[k] for k in ("samples", "annotations", "predictions")} == \
        {k: before[k] for k in ("samples", "annotations", "predictions")}


def test_records_with_ids_keep_them_and_long_form_rows_land_on_one_sample(db, tmp_path):
    rows = long_rows("chat", "zh", n=3, with_id=True)
    r = import_file(db, write_rows(tmp_path / "c", rows, "jsonl"), "ds")
    assert r.ids_from_content == 0 and "derived from content" not in r.summary()
    assert db.samples("ds")["sample_id"].to_list() == ["zh-0", "zh-1", "zh-2"]
    assert db.sample_annotations("ds", "zh-1")["annotator"].to_list() == list(ANNOTATORS)


def test_a_file_may_mix_chat_records_and_preference_pairs(db, tmp_path):
    rows = [{**content("chat", "en", 1), "label": "good"}, {**content("preference", "zh", 2), "label": "bad"},
            {**content("sharegpt", "zh", 3), "label": "good"}]
    r = import_file(db, write_rows(tmp_path / "m", rows, "jsonl"), "ds")
    assert r.rows_bad == 0 and r.shape == "preference"  # by the columns; each record by its own keys
    assert sorted(db.query_df("SELECT shape FROM samples")["shape"]) == ["chat", "preference", "sharegpt"]
    info = inspect_file(db, tmp_path / "m.jsonl")
    assert info.record_shapes == {"chat": 1, "preference": 1, "sharegpt": 1} and info.derived


def test_alpaca_with_system_and_history_keeps_the_conversation(db, tmp_path):
    rec = {"id": "h1", "system": "Be brief.", "history": [["Hi", "Hello!"]], "instruction": "Translate 早上好",
           "input": "", "output": "Good morning", "label": "good"}
    r = import_file(db, write_rows(tmp_path / "a", [rec], "jsonl"), "ds")
    assert r.rows_bad == 0
    s = db.sample("ds", "h1")
    assert (s["instruction"], s["input"], s["output"]) == ("Translate 早上好", None, "Good morning")
    assert s["text"].startswith("system: Be brief.\nuser: Hi\nassistant: Hello!")


def test_plain_instruction_file_with_ids_stays_all_sql(db, tmp_path, monkeypatch):
    import core.ingest

    def fail(*a, **k):
        raise AssertionError("a plain file with ids must not be read record by record")

    monkeypatch.setattr(core.ingest, "_derived_plan", fail)
    rows = [{"id": str(i), "instruction": f"问题 {i}", "output": "答", "label": "a"} for i in range(3)]
    r = import_file(db, write_rows(tmp_path / "p", rows, "jsonl"), "ds")
    assert r.rows_ok == 3 and r.shape == "instruction"
    s = db.sample("ds", "1")
    assert s["shape"] == "instruction" and s["record"] is None


def test_shape_override_reads_every_record_as_that_shape(db, tmp_path):
    rows = [{"id": "1", "prompt": "Hi", "response": "Hello", "label": "a"}]
    with pytest.raises(ImportFileError, match="no record could be read .1 bad row; row 1: chosen is missing"):
        import_file(db, write_rows(tmp_path / "o", rows, "jsonl"), "ds", shape="preference")
    assert db.dataset_names() == []
    r = import_file(db, write_rows(tmp_path / "o2", rows, "jsonl"), "ds2", shape="instruction")
    assert r.rows_ok == 1 and db.sample("ds2", "1")["output"] == "Hello"
    with pytest.raises(ImportFileError, match="unknown record shape 'dpo'"):
        import_file(db, tmp_path / "o2.jsonl", "ds3", shape="dpo")


# --------------------------------------------------------------------------- bad records

BAD = [
    ({"messages": "hello", "label": "good"}, "messages is a string, expected a list of messages"),
    ({"messages": {"role": "user", "content": "hi"}, "label": "good"}, "messages is an object"),
    ({"messages": [], "label": "good"}, "messages is an empty list"),
    ({"messages": [{"role": "user"}], "label": "good"}, "messages turn 1 (user) has no content"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "wizard", "content": "x"}], "label": "good"},
     "messages turn 2: unknown role 'wizard'"),
    ({"conversations": [{"from": "human"}], "label": "good"}, "conversations turn 1 (human) has no value"),
    ({"prompt": "hi", "chosen": [{"role": "user", "content": "x"}], "rejected": "no", "label": "good"},
     "chosen has no assistant turn"),
    ({"prompt": "hi", "chosen": "ok", "label": "good"}, "no known record shape in the keys [prompt, chosen, label]"),
    ({"note": "no content at all", "label": "good"}, "no known record shape"),
]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_bad_record_is_a_row_error_and_nothing_stored_changes(db, tmp_path, lang):
    good = long_rows("chat", lang, n=2)
    import_file(db, write_rows(tmp_path / "first", good, "jsonl"), "ds")
    before_samples = db.query_df("SELECT sample_id, text, record::VARCHAR AS r FROM samples ORDER BY 1")
    before_ann = db.annotations("ds")
    rows = [*good[:1], *[rec for rec, _ in BAD], {**content("chat", lang, 9), "label": "bad"}]
    r = import_file(db, write_rows(tmp_path / "bad", rows, "jsonl"), "ds")
    e = errs(r)
    assert sorted(e) == list(range(2, 2 + len(BAD)))
    for row, (_, message) in enumerate(BAD, start=2):
        assert message in e[row], (row, e[row])
    assert r.samples_new == 1 and r.rows_ok == 2
    raw = dict(r.errors.select("row", "raw").iter_rows())
    assert json.loads(raw[2]) == BAD[0][0]  # the record itself in the error report
    assert db.query_df("SELECT sample_id, text, record::VARCHAR AS r FROM samples WHERE sample_id IN "
                       "(SELECT sample_id FROM samples WHERE import_id = 1) ORDER BY 1").equals(before_samples)
    assert db.annotations("ds").filter(db.annotations("ds")["sample_id"].is_in(before_ann["sample_id"].to_list())) \
        .equals(before_ann)


def test_json_array_bad_elements_keep_their_precise_reason(db, tmp_path):
    p = tmp_path / "a.json"
    p.write_text('[{"text": "ok", "label": "a"}, 42, {"text": "bad" "x"}, {"text": "好", "label": "a"}]',
                 encoding="utf-8")
    r = import_file(db, p, "ds")
    e = errs(r)
    assert e[2] == "record is a number, expected an object"
    assert e[3].startswith("malformed JSON")
    assert r.rows_ok == 2 and r.rows_total == 4
    raw = dict(r.errors.select("row", "raw").iter_rows())
    assert raw[2] == "42"


def test_empty_json_array_is_a_file_level_error(db, tmp_path):
    (tmp_path / "e.json").write_text("[ ]")
    with pytest.raises(ImportFileError, match="has no data rows"):
        import_file(db, tmp_path / "e.json", "ds")
    assert db.dataset_names() == []


# --------------------------------------------------------------------------- labels

def test_unknown_labels_are_refused_unless_added(db, tmp_path):
    import_file(db, write_rows(tmp_path / "a", [{**content("text", "en", 1), "label": "good"}], "jsonl"), "ds")
    rows = [{**content("text", "zh", 2), "label": "bad"}]
    r = import_file(db, write_rows(tmp_path / "b", rows, "jsonl"), "ds")
    assert errs(r) == {1: "label 'bad' is not in the label set"}
    assert "1 of 1 row imported" not in r.summary() and "0 of 1 row imported" in r.summary()
    assert "1 row rejected" in r.summary()
    r = import_file(db, write_rows(tmp_path / "b", rows, "jsonl"), "ds", add_labels=True)  # the same file
    assert not r.already_imported and r.rows_bad == 0 and db.get_dataset("ds").labels == ["good", "bad"]


# --------------------------------------------------------------------------- tool exports

def choices(question: str, value: str) -> list[dict[str, Any]]:
    return [{"from_name": question, "to_name": "text", "type": "choices", "value": {"choices": [value]}}]


def ls_tasks(lang: str) -> list[dict[str, Any]]:
    lab = {"en": ("refund", "other"), "zh": ("退款", "其他")}[lang]
    text = {"en": "Where is my refund?", "zh": "我的退款在哪里？"}[lang]
    return [
        {"id": 1, "data": {"text": text},
         "annotations": [{"completed_by": 7, "result": choices("intent", lab[0])},
                         {"completed_by": {"id": 8, "email": "li@example.com"}, "result": choices("intent", lab[0])},
                         {"completed_by": 9, "was_cancelled": True, "result": choices("intent", lab[1])}],
         "predictions": [{"model_version": "bert-v1", "score": 0.6, "result": choices("intent", lab[1])},
                         {"model_version": "bert-v2", "score": 0.9, "result": choices("intent", lab[0])}]},
        {"id": 2, "data": {"messages": content("chat", lang, 2)["messages"]},
         "annotations": [{"completed_by": 7, "result": choices("intent", lab[1])}]},
        {"id": 3, "data": {"text": text + "?"}, "annotations": []},  # a task without annotations
    ]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_label_studio_export(db, tmp_path, lang):
    p = tmp_path / "ls.json"
    p.write_text(json.dumps(ls_tasks(lang), ensure_ascii=False), encoding="utf-8")
    r = import_file(db, p, "ls")
    assert (r.shape, r.question) == ("label_studio", "intent")
    assert errs(r) == {3: "Label Studio task 3 has no annotations (an empty list)"}
    assert counts(db, "ls") == {"samples": 2, "annotations": 3, "annotators": 2, "predictions": 1}
    pred = db.predictions("ls").row(0, named=True)
    assert (pred["sample_id"], pred["round"], pred["model"], pred["confidence"]) == ("1", 1, "bert-v2", 0.9)
    s = db.sample("ls", "2")
    assert s["shape"] == "label_studio" and s["output"] == TEXTS[lang]["a2"] + " #2"
    # a prediction round from the command line; re-import of other bytes changes nothing else
    p2 = tmp_path / "ls2.json"
    p2.write_text(json.dumps(ls_tasks(lang), ensure_ascii=False, indent=1), encoding="utf-8")
    r = import_file(db, p2, "ls", pred_round=3)
    assert (r.samples_new, r.annotations_new, r.predictions_new) == (0, 0, 1)
    assert sorted(db.predictions("ls")["round"]) == [1, 3]


def test_label_studio_with_several_questions(db, tmp_path):
    task = {"id": 5, "data": {"text": "好评"}, "annotations": [{"completed_by": 1, "result": [
        *choices("sentiment", "pos"), {"from_name": "quality", "to_name": "text", "type": "rating",
                                       "value": {"rating": 4}}]}]}
    p = tmp_path / "q.json"
    p.write_text(json.dumps([task], ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"several label questions \(sentiment, quality\).*--question"):
        import_file(db, p, "ds")
    with pytest.raises(ImportFileError, match="no label question 'mood'; its questions: sentiment, quality"):
        import_file(db, p, "ds", question="mood")
    assert db.dataset_names() == []
    assert inspect_file(db, p).questions == ["sentiment", "quality"]
    import_file(db, p, "ds", question="quality")
    assert db.annotations("ds")["label"].to_list() == ["4"]


def argilla_records(lang: str) -> list[dict[str, Any]]:
    text = {"en": ("I want a refund", "Where is my parcel?"), "zh": ("我要退款", "包裹在哪？")}[lang]
    return [
        {"id": "rec-1", "_server_id": "9f", "status": "completed", "text": text[0],
         "intent.responses": ["refund", "other", "refund"], "intent.responses.users": ["u1", "u2", "u3"],
         "intent.responses.status": ["submitted", "discarded", "submitted"],
         "intent.suggestion": "refund", "intent.suggestion.score": 0.91, "intent.suggestion.agent": "setfit-v1"},
        {"id": "rec-2", "_server_id": "77", "status": "pending", "text": text[1],
         "intent.responses": ["shipping"], "intent.responses.users": ["u1"],
         "intent.responses.status": ["draft"],
         "intent.suggestion": "shipping", "intent.suggestion.score": 0.7, "intent.suggestion.agent": "setfit-v1"},
    ]


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("container", ["jsonl", "json", "parquet"])
def test_argilla_records(db, tmp_path, lang, container):
    path = write_rows(tmp_path / "arg", argilla_records(lang), container)
    r = import_file(db, path, "arg")
    assert r.rows_bad == 0 and (r.shape, r.question) == ("argilla", "intent")
    # only submitted responses are annotations; the suggestion is the model's prediction
    assert counts(db, "arg") == {"samples": 2, "annotations": 2, "annotators": 2, "predictions": 2}
    preds = db.predictions("arg")
    assert preds["model"].to_list() == ["setfit-v1", "setfit-v1"] and preds["confidence"].to_list() == [0.91, 0.7]
    assert db.sample("arg", "rec-2")["text"] == argilla_records(lang)[1]["text"]
    assert import_file(db, path, "arg").already_imported


# --------------------------------------------------------------------------- server paths (issue 15, item 3)

@pytest.fixture
def incoming(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "incoming"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f.jsonl").write_text("{}\n")
    monkeypatch.setenv("QUALITY_IMPORT_DIR", str(folder))
    return folder.resolve()


def test_server_paths_inside_the_import_folder_resolve(incoming):
    assert resolve_server_path("sub/f.jsonl") == incoming / "sub" / "f.jsonl"
    assert resolve_server_path(str(incoming / "sub" / "f.jsonl")) == incoming / "sub" / "f.jsonl"
    assert resolve_server_path("sub/../sub/f.jsonl") == incoming / "sub" / "f.jsonl"
    (incoming / "inside.jsonl").symlink_to(incoming / "sub" / "f.jsonl")
    assert resolve_server_path("inside.jsonl") == incoming / "sub" / "f.jsonl"  # a symlink that stays inside


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.jsonl", "sub/../../outside.jsonl", "passwd.csv",
                                  "away/passwd", ""])
def test_server_paths_that_leave_the_import_folder_are_refused(incoming, path):
    (incoming / "passwd.csv").symlink_to("/etc/passwd")
    (incoming / "away").symlink_to("/etc")  # a folder symlink too
    with pytest.raises(ValueError) as info:
        resolve_server_path(path)
    assert ("outside the import folder" in str(info.value)) or (path == "" and "no server path" in str(info.value))


def test_the_default_import_folder_is_data_incoming(monkeypatch, tmp_path):
    monkeypatch.delenv("QUALITY_IMPORT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_server_path("x.jsonl") == (tmp_path / "data" / "incoming" / "x.jsonl").resolve()
    with pytest.raises(ValueError):
        resolve_server_path(str(tmp_path / "x.jsonl"))


# --------------------------------------------------------------------------- the fast readers of plain records

_role = st.sampled_from(["system", "user", "assistant", "tool"])
# pieces, not characters: "A" + a combining ring is NFC-normalised to "Å" by content_id
_text = st.lists(st.sampled_from(["a", "b", " ", "\n", "\t", "\u00c5", "中", "文", "A\u030a", "\u3000"]),
                 max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_role, _text), min_size=1, max_size=7))
def test_plain_chat_equals_core_records(turns):
    record = {"messages": [{"role": r, "content": c} for r, c in turns]}
    fields, cid = plain_chat(record["messages"], True)
    assert fields == tuple(derive(record, "chat").text_fields().values())
    assert cid == content_id(record, "chat")


_maybe = st.one_of(st.none(), _text)


@settings(max_examples=300, deadline=None)
@given(_text, _maybe, _maybe, st.booleans())
def test_plain_instruction_and_text_equal_core_records(ins, inp, out, drop_input):
    record = {"instruction": ins, "output": out, **({} if drop_input else {"input": inp})}
    fields, cid = plain_instruction(record, True)
    assert fields == tuple(derive(record, "instruction").text_fields().values())
    assert cid == content_id(record, "instruction")
    fields, cid = plain_text({"text": ins}, True)
    assert fields == tuple(derive({"text": ins}, "text").text_fields().values())
    assert cid == content_id({"text": ins}, "text")


def test_records_that_are_not_plain_go_to_core_records():
    assert plain_chat([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], True) is None
    assert plain_chat([{"role": "human", "content": "hi"}], True) is None
    assert plain_chat([{"role": "assistant", "content": None, "tool_calls": []}], True) is None
    assert plain_instruction({"instruction": 5, "output": "x"}, True) is None
    assert plain_text({"text": 3}, True) is None


def test_worker_processes_derive_what_one_process_derives(tmp_path, monkeypatch):
    import core.ingest

    rows = long_rows("chat", "zh", n=30) + long_rows("preference", "en", n=10) + [{"messages": "x", "label": "a"}]
    path = write_rows(tmp_path / "w", rows, "jsonl")
    one = open_store(tmp_path / "one.duckdb")
    r1 = import_file(one, path, "ds")
    monkeypatch.setattr(core.ingest, "PARALLEL_BYTES", 0)  # cut the file for two workers
    monkeypatch.setattr(core.ingest.os, "cpu_count", lambda: 2)
    two = open_store(tmp_path / "two.duckdb")
    r2 = import_file(two, path, "ds")
    assert r1.errors.equals(r2.errors) and r1.rows_bad == 1
    q = "SELECT sample_id, instruction, input, output, text, shape, record::VARCHAR FROM samples ORDER BY 1"
    assert one.query_df(q).equals(two.query_df(q))
    assert one.annotations("ds").equals(two.annotations("ds"))


# --------------------------------------------------------------------------- a large JSON array, bounded memory

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import core.records
    from core.ingest import import_file
    from core.store import open_store

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    convert = core.records.json_array_to_jsonl
    seen = {}
    def measured(*a, **k):
        seen["before"] = peak()
        out = convert(*a, **k)
        seen["after"] = peak()
        return out
    core.records.json_array_to_jsonl = measured

    store = open_store(sys.argv[2])
    base = peak()
    t = time.perf_counter()
    r = import_file(store, sys.argv[1], "big")
    print(json.dumps({"seconds": time.perf_counter() - t, "base": base, "peak": peak(), "rows_ok": r.rows_ok,
                      "samples": store.table_counts()["samples"], "convert": seen["after"] - seen["before"]}))
""")


def test_200k_record_json_array_imports_in_bounded_memory(tmp_path):
    path = tmp_path / "alpaca_data.json"
    with open(path, "w", encoding="utf-8") as fh:  # an Alpaca file: one indented array, no ids
        fh.write("[\n")
        for i in range(200_000):
            rec = {"instruction": ("把这句话翻译成英文：第%d句" if i % 2 else "Translate sentence %d.") % i,
                   "input": "", "output": f"Sentence {i}."}
            fh.write(("," if i else "") + json.dumps(rec, ensure_ascii=False, indent=1) + "\n")
        fh.write("]\n")
    size_mb = path.stat().st_size / 2**20
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(tmp_path / "s.duckdb")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["rows_ok"] == out["samples"] == 200_000
    # The array is streamed into JSON lines: converting it costs no memory that grows with the file ...
    assert out["convert"] < 32, out
    # ... and the whole import stays far below what holding the records as Python objects would cost
    # (about 10x the file), within a fixed budget
    assert out["peak"] - out["base"] < 900, out
    print(f"200k-record JSON array ({size_mb:.0f} MB): {out['seconds']:.1f} s, peak RSS {out['peak']:.0f} MB "
          f"(+{out['peak'] - out['base']:.0f} MB over the open store; conversion +{out['convert']:.0f} MB)")


# --------------------------------------------------------------------------- the chat demo dataset

def test_demo_loads_the_chat_dataset_beside_the_intent_one(tmp_path):
    from core.demo import DEMO_DATASET
    from core.demo.chat import CHAT_DATASET, chat_records
    from core.seed import load_demo

    store = open_store(tmp_path / "demo.duckdb")
    results = load_demo(store)
    assert [r.dataset for r in results] == [DEMO_DATASET] * 3 + [CHAT_DATASET]
    assert all(r.rows_bad == 0 for r in results)
    info = store.dataset_summaries().filter(name=CHAT_DATASET).row(0, named=True)
    records = chat_records()
    assert info["samples"] == len(records) > 80 and info["annotators"] == 3
    assert info["labels"] == ["good", "bad", "unsure"] and info["annotations"] > 2.5 * info["samples"]
    shapes = store.query_df("SELECT shape, count(*) AS n FROM samples WHERE dataset = ? GROUP BY 1 ORDER BY 1",
                            [CHAT_DATASET])
    assert dict(shapes.iter_rows()) == {"chat": sum("messages" in r for r in records),
                                        "preference": sum("chosen" in r for r in records)}
    langs = {r["lang"] for r in records}
    assert langs == {"zh", "en"} and max(len(r.get("messages", [])) for r in records) >= 5  # multi-turn
    assert load_demo(store) == []  # loaded once
    assert dict(zip(*[store.dataset_summaries()[c] for c in ("name", "samples")]))[DEMO_DATASET] == 3600
