"""AppTest: the Import page (server-path import, error report, file-level errors)."""

import json

from apptest_helpers import run_page, texts


def _submit(at):
    [button] = [b for b in at.button if b.label == "Import"]
    button.click().run()
    assert not at.exception, at.exception
    return at


def test_import_reports_bad_rows_and_lands_good_ones(app_env, tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_text(
        json.dumps({"id": "1", "text": "取消订单", "label": "cancel"}, ensure_ascii=False) + "\n"
        + "{broken\n"
        + json.dumps({"id": "2", "text": "refund", "label": "refund"}) + "\n"
        + json.dumps({"text": "no id", "label": "refund"}) + "\n",
        encoding="utf-8",
    )
    at = run_page("pages/import_data.py")
    at.text_input(key="import_path").input(str(f)).run()
    assert not at.exception
    _submit(at)
    warnings = " ".join(texts(at.warning))
    assert "2 of 4 rows imported" in warnings
    errors = at.dataframe[-1].value
    assert list(errors["row"]) == [2, 4]
    assert "malformed JSON" in errors["reason"][0] and "missing id" in errors["reason"][1]

    from core.store import open_store

    store = open_store(app_env)
    assert store.dataset_names() == ["mixed"]
    assert store.samples("mixed")["sample_id"].to_list() == ["1", "2"]


def test_file_level_error_is_a_message_and_changes_nothing(app_env, tmp_path):
    f = tmp_path / "gbk.csv"
    f.write_bytes("id,text,label\n1,中文,a\n".encode("gbk"))
    at = run_page("pages/import_data.py")
    at.text_input(key="import_path").input(str(f)).run()
    assert not at.exception
    assert any("not UTF-8" in t for t in texts(at.error))

    from core.store import open_store

    assert open_store(app_env).table_counts()["samples"] == 0


def test_no_file_shows_hint(app_env):
    at = run_page("pages/import_data.py")
    assert any("Choose a file" in t for t in texts(at.info))
