"""AppTest: the Import page (server-path import from the import folder, dataset choice, shapes, questions,
new labels, error report, file-level errors)."""

import json

import pytest
from apptest_helpers import run_page, texts

PAGE = "pages/import_data.py"


@pytest.fixture
def incoming(app_env, tmp_path, monkeypatch):
    """The import folder server paths must lie in (QUALITY_IMPORT_DIR)."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    monkeypatch.setenv("QUALITY_IMPORT_DIR", str(folder))
    return folder


def _open(path) -> object:
    at = run_page(PAGE)
    at.text_input(key="import_path").input(str(path)).run()
    assert not at.exception, at.exception
    return at


def _submit(at, new: str | None = None, existing: str | None = None):
    if new is not None:
        at.text_input(key="import_new").input(new)
    if existing is not None:
        at.selectbox(key="import_existing").select(existing)
    [button] = [b for b in at.button if b.label == "Import"]
    button.click().run()
    assert not at.exception, at.exception
    return at


def _store(app_env):
    from core.store import open_store

    return open_store(app_env)


def test_import_reports_bad_rows_and_lands_good_ones(app_env, incoming):
    f = incoming / "mixed.jsonl"
    f.write_text(
        json.dumps({"id": "1", "text": "取消订单", "label": "cancel"}, ensure_ascii=False) + "\n"
        + "{broken\n"
        + json.dumps({"id": "2", "text": "refund", "label": "refund"}) + "\n"
        + json.dumps({"id": "", "text": "no id", "label": "refund"}) + "\n",
        encoding="utf-8",
    )
    at = _submit(_open("mixed.jsonl"), new="mixed")
    warnings = " ".join(texts(at.warning))
    assert "2 of 4 rows imported" in warnings and "2 rows rejected" in warnings
    errors = at.dataframe[-1].value
    assert list(errors["row"]) == [2, 4]
    assert "malformed JSON" in errors["reason"][0] and "missing id" in errors["reason"][1]
    store = _store(app_env)
    assert store.dataset_names() == ["mixed"]
    assert store.samples("mixed")["sample_id"].to_list() == ["1", "2"]


def test_nothing_imports_until_a_dataset_is_chosen(app_env, incoming):
    (incoming / "one.jsonl").write_text(json.dumps({"id": "1", "text": "hi", "label": "a"}) + "\n")
    at = _open(incoming / "one.jsonl")
    assert at.text_input(key="import_new").value == ""
    assert at.selectbox(key="import_existing").value is None
    _submit(at)
    assert any("Choose the dataset" in t for t in texts(at.error))
    assert _store(app_env).table_counts()["samples"] == 0
    _submit(at, new="first")
    assert any("1 of 1 row imported" in t and "1 row rejected" not in t for t in texts(at.success)), texts(at.success)
    assert _store(app_env).dataset_names() == ["first"]


def test_unknown_labels_are_refused_unless_added(app_env, incoming):
    (incoming / "a.jsonl").write_text(json.dumps({"id": "1", "text": "hi", "label": "a"}) + "\n")
    (incoming / "b.jsonl").write_text(json.dumps({"id": "2", "text": "yo", "label": "b"}) + "\n")
    _submit(_open("a.jsonl"), new="ds")
    at = _submit(_open("b.jsonl"), existing="ds")
    assert any("label 'b' is not in the label set" in str(v) for v in at.dataframe[-1].value["reason"])
    assert _store(app_env).get_dataset("ds").labels == ["a"]
    (incoming / "b2.jsonl").write_text(json.dumps({"id": "3", "text": "hey", "label": "b"}) + "\n")
    at = _open("b2.jsonl")
    at.checkbox(key="import_add_labels").check()
    _submit(at, existing="ds")
    store = _store(app_env)
    assert store.get_dataset("ds").labels == ["a", "b"]
    assert store.samples("ds")["sample_id"].to_list() == ["1", "3"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_chat_file_shape_is_shown_and_imported(app_env, incoming, lang):
    say = {"en": ("Where is my parcel?", "On its way."), "zh": ("我的包裹在哪？", "正在派送。")}[lang]
    rows = [{"messages": [{"role": "user", "content": say[0]}, {"role": "assistant", "content": say[1]}],
             "label": lab, "annotator": ann} for ann, lab in (("a", "good"), ("b", "good"), ("c", "bad"))]
    (incoming / "chat.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    at = _open("chat.json")
    assert any("shape: OpenAI chat (messages)" in t for t in texts(at.markdown))
    assert "map_text" not in {s.key for s in at.selectbox}  # texts are derived, not mapped
    _submit(at, new="chat")
    assert any("1 new sample" in t and "3 new annotations" in t and "1 id derived from content" in t
               for t in texts(at.success)), texts(at.success)
    store = _store(app_env)
    [sid] = store.samples("chat")["sample_id"].to_list()
    sample = store.sample("chat", sid)
    assert sample["shape"] == "chat" and sample["output"] == say[1]


def test_label_studio_export_asks_for_the_question(app_env, incoming):
    def task(i, text):
        return {"id": i, "data": {"text": text}, "annotations": [{"completed_by": 1, "result": [
            {"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": ["refund"]}},
            {"from_name": "quality", "to_name": "text", "type": "rating", "value": {"rating": 4}}]}]}
    (incoming / "ls.json").write_text(json.dumps([task(1, "退款"), task(2, "refund please")], ensure_ascii=False),
                                      encoding="utf-8")
    at = _open("ls.json")
    assert at.selectbox(key="import_question").options == ["intent", "quality"]
    _submit(at, new="ls")
    assert any("Choose the label question" in t for t in texts(at.error))
    at.selectbox(key="import_question").select("intent")
    _submit(at)
    store = _store(app_env)
    assert store.annotations("ls")["label"].to_list() == ["refund", "refund"]


@pytest.mark.parametrize("path", ["../outside.jsonl", "/etc/passwd", "link.csv"])
def test_server_path_must_stay_in_the_import_folder(app_env, incoming, path):
    (incoming.parent / "outside.jsonl").write_text(json.dumps({"id": "1", "text": "x"}) + "\n")
    (incoming / "link.csv").symlink_to("/etc/passwd")
    at = _open(path)
    assert any("outside the import folder" in t for t in texts(at.error)), texts(at.error)
    assert not at.dataframe  # nothing of the file is shown
    assert _store(app_env).table_counts()["samples"] == 0


def test_file_level_error_is_a_message_and_changes_nothing(app_env, incoming):
    f = incoming / "gbk.csv"
    f.write_bytes("id,text,label\n1,中文,a\n".encode("gbk"))
    at = _open(f)
    assert any("not UTF-8" in t for t in texts(at.error))
    assert _store(app_env).table_counts()["samples"] == 0


def test_no_file_shows_hint(app_env):
    at = run_page(PAGE)
    assert any("Choose a file" in t for t in texts(at.info))
