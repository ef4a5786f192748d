"""Tests for core/records.py: container sniffing, the streaming JSON array reader (bounded memory on a
200k-record file), shape detection and derived texts for every shape in Chinese and English, every
RecordError, content ids, Label Studio / Argilla long-form rows and the export back."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.records import (
    SHAPES,
    TEXT_COLUMNS,
    Derived,
    QuestionRequired,
    RecordError,
    argilla_rows,
    content_id,
    derive,
    detect_shape,
    iter_json_array,
    json_array_to_jsonl,
    label_studio_rows,
    questions,
    sniff_container,
    to_label_studio_task,
    to_shape,
)

# --------------------------------------------------------------------------- sample records

CHAT = {
    "en": {"messages": [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "Where is my order 1234?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "track", "arguments": "{\"order\": 1234}"}}]},
        {"role": "tool", "content": "shipped"},
        {"role": "assistant", "content": "It has shipped."},
        {"role": "user", "content": "Thanks. Can I change the address?"},
        {"role": "user", "content": "It is urgent."},
        {"role": "assistant", "content": [{"type": "text", "text": "Yes,"}, {"type": "text", "text": "tell me."}]},
    ], "label": "good", "annotator": "ann1", "confidence": 0.9},
    "zh": {"messages": [
        {"role": "system", "content": "你是客服。"},
        {"role": "user", "content": "我的订单1234在哪？"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "track", "arguments": "{\"order\": 1234}"}}]},
        {"role": "tool", "content": "已发货"},
        {"role": "assistant", "content": "已经发货了。"},
        {"role": "user", "content": "谢谢。可以改地址吗？"},
        {"role": "user", "content": "很急。"},
        {"role": "assistant", "content": [{"type": "text", "text": "可以，"},
                                          {"type": "text", "text": "请告诉我。"}]},
    ], "label": "好", "annotator": "标注员1"},
}
SHAREGPT = {
    "en": {"system": "Be brief.", "conversations": [
        {"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4"},
        {"from": "human", "value": "And 3+3?"}, {"from": "gpt", "value": "6"}]},
    "zh": {"system": "简洁回答。", "conversations": [
        {"from": "human", "value": "二加二等于几？"}, {"from": "gpt", "value": "四"},
        {"from": "human", "value": "三加三呢？"}, {"from": "gpt", "value": "六"}]},
}
PREF_STR = {
    "en": {"prompt": "Say hello.", "chosen": "Hello!", "rejected": "Go away."},
    "zh": {"prompt": "打个招呼。", "chosen": "你好！", "rejected": "走开。"},
}
PREF_MSG = {
    "en": {"prompt": "Say hello.",
           "chosen": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"}],
           "rejected": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Go away."}]},
    "zh": {"prompt": "打个招呼。",
           "chosen": [{"role": "user", "content": "打个招呼。"}, {"role": "assistant", "content": "你好！"}],
           "rejected": [{"role": "user", "content": "打个招呼。"},
                        {"role": "assistant", "content": "走开。"}]},
}
ALPACA = {
    "en": {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    "zh": {"instruction": "翻译成英文。", "input": "早上好", "output": "Good morning"},
}
ALPACA_NO_INPUT = {
    "en": {"instruction": "Name a colour.", "input": "", "output": "Blue"},
    "zh": {"instruction": "说一种颜色。", "output": "蓝色"},
}
TEXT = {"en": {"text": "Cancel my order please", "label": "cancel"},
        "zh": {"text": "请帮我取消订单并退款", "label": "取消"}}


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def read_array(path: Path, **kw) -> list[tuple[int, Any]]:
    return [pair for batch in iter_json_array(path, **kw) for pair in batch]


# --------------------------------------------------------------------------- containers


@pytest.mark.parametrize("name, content, expected", [
    ("a.jsonl", '{"text": "a"}\n{"text": "b"}\n', "jsonl"),
    ("a.json", '{"text": "a"}\n', "jsonl"),                         # content over extension
    ("a.jsonl", '\n  [ {"text": "a"} ]', "json_array"),
    ("a.json", "\ufeff[{\"text\": \"中文\"}]", "json_array"),         # BOM
    ("a.json", "\ufeff{\"text\": \"中文\"}\n", "jsonl"),
    ("a.txt", "id,text,label\n1,你好,x\n", "csv"),
    ("a.csv", "id\ttext\tlabel\n1\thello, world\tx\n", "tsv"),
    ("a.txt", '"a,b"\tc\n', "tsv"),                                   # comma inside quotes does not count
    ("a.csv", "[tag],text\nx,y\n", "csv"),                           # a '[' that is no JSON array
    ("a.csv", "text\nhello\n", "csv"),                               # one column: by extension
    ("a.tsv", "text\nhello\n", "tsv"),
    ("a.csv", "\ufefftext,label\nhi,x\n", "csv"),
])
def test_sniff_container(tmp_path, name, content, expected):
    assert sniff_container(write(tmp_path / name, content)) == expected


def test_sniff_parquet_by_magic_bytes(tmp_path):
    path = tmp_path / "data.bin"  # no telling extension
    pl.DataFrame({"messages": [[{"role": "user", "content": "你好"}]]}).write_parquet(path)
    assert sniff_container(path) == "parquet"


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"  \n\t\n", "only blanks"),
    (b"\xef\xbb\xbf", "only blanks"),
    ("text,label\n取消订单,x\n".encode("gbk"), "not UTF-8"),
    ("[{}]".encode("utf-16"), "UTF-16"),
    (gzip.compress(b'{"a": 1}\n'), "gzip"),
    (b"hello world\n", "cannot tell the format"),
    (b"ab\x00cd", "binary"),
])
def test_sniff_errors(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        sniff_container(write(tmp_path / "f.txt", content))


def test_sniff_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        sniff_container(tmp_path / "nope.json")


# --------------------------------------------------------------------------- streaming JSON arrays


def test_iter_json_array_records_in_batches(tmp_path):
    records = [{"i": i, "text": f"第{i}条 [x], {{y}} \"q\" \\ ", "nan": float("nan") if i == 3 else i}
               for i in range(1, 26)]
    path = write(tmp_path / "a.json", "\ufeff" + json.dumps(records, ensure_ascii=False, indent=2))
    batches = list(iter_json_array(path, batch_size=10, chunk_bytes=64))
    assert [len(b) for b in batches] == [10, 10, 5]
    got = [pair for b in batches for pair in b]
    assert [n for n, _ in got] == list(range(1, 26))
    assert [r["text"] for _, r in got] == [r["text"] for r in records]
    assert got[2][1]["nan"] != got[2][1]["nan"]  # NaN read as NaN


@settings(max_examples=40, deadline=None)
@given(records=st.lists(st.dictionaries(st.text(max_size=5),
                                        st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
                                                  st.lists(st.text(max_size=5), max_size=3), st.none()),
                                        max_size=4), max_size=15),
       indent=st.sampled_from([None, 0, 2]), chunk=st.sampled_from([1, 3, 17, 4096]))
def test_iter_json_array_equals_json_load(tmp_path_factory, records, indent, chunk):
    path = tmp_path_factory.mktemp("arr") / "a.json"
    write(path, json.dumps(records, ensure_ascii=False, indent=indent))
    assert [r for _, r in read_array(path, chunk_bytes=chunk)] == json.loads(path.read_text(encoding="utf-8"))


def test_iter_json_array_reports_bad_elements_and_goes_on(tmp_path):
    text = ('[{"a": 1}, {"b": 2,}, 7, "s", [1, 2], null, {"c": "x, ] }"},\n {"d": 4} {"e": 5}, '
            '{"f": {"g": [1, {"h": 2}]}},]')
    got = read_array(write(tmp_path / "a.json", text), chunk_bytes=5)
    assert [n for n, _ in got] == list(range(1, 11))
    assert got[0][1] == {"a": 1}
    assert got[1][1].startswith("malformed JSON")
    assert got[2][1] == "record is a number, expected an object"
    assert got[3][1] == "record is a string, expected an object"
    assert got[4][1] == "record is a list, expected an object"
    assert got[5][1] == "record is null, expected an object"
    assert got[6][1] == {"c": "x, ] }"}
    assert got[7][1] == {"d": 4}
    # {"e": 5} follows {"d": 4} without a comma
    assert got[8][1] == "malformed JSON: no ',' between this record and the one before"
    assert got[9][1] == {"f": {"g": [1, {"h": 2}]}}  # and the trailing comma loses nothing


def test_iter_json_array_long_record_small_chunks(tmp_path):
    big = {"text": "长" * 200_000, "n": 1}
    path = write(tmp_path / "a.json", json.dumps([big, {"n": 2}], ensure_ascii=False))
    assert [r for _, r in read_array(path, chunk_bytes=100)] == [big, {"n": 2}]


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("   \n", "is empty"),
    ('{"a": 1}\n', "not a JSON array"),
    ('[{"a": 1}, {"b": 2}', "truncated"),
    ('[{"a": 1}, {"b": ', "truncated"),
    ('[{"a": 1}] [{"b": 2}]', "more data after"),
])
def test_iter_json_array_file_errors(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        read_array(write(tmp_path / "a.json", content))


def test_iter_json_array_not_utf8_names_the_offset(tmp_path):
    head = json.dumps([{"text": "ok"}] * 200).encode()
    path = write(tmp_path / "a.json", head[:-1] + b', {"text": "' + "退款".encode("gbk") + b'"}]')
    with pytest.raises(ValueError, match=rf"not UTF-8: the bytes at offset {len(head) + 11}"):
        read_array(path, chunk_bytes=256)


def test_json_array_to_jsonl_keeps_record_numbers_as_line_numbers(tmp_path):
    src = write(tmp_path / "a.json", '[{"text": "你好"}, {"x": 1,,}, 5, {"text": "再见", "v": NaN}]')
    n, errors = json_array_to_jsonl(src, tmp_path / "a.jsonl")
    lines = (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()
    assert n == 4 and len(lines) == 4
    assert json.loads(lines[0]) == {"text": "你好"} and '"你好"' in lines[0]
    assert [e[0] for e in errors] == [2, 3]
    for i in (1, 2):
        with pytest.raises(ValueError):
            json.loads(lines[i])
    assert lines[1].startswith("malformed: ") and lines[2] == "not an object: 5"
    assert lines[3] == '{"text": "再见", "v": NaN}'   # a one-line record is written as it is


_CONVERT_IN_A_CHILD = """
import json, sys
from core.records import json_array_to_jsonl

def status(key):  # kB, from /proc (Linux): VmRSS now, VmHWM the peak so far
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key + ":"))

before = status("VmRSS")
n, errors = json_array_to_jsonl(sys.argv[1], sys.argv[2])
print(json.dumps({"n": n, "errors": errors, "growth_kb": status("VmHWM") - before}))
"""


def test_json_array_to_jsonl_200k_records_bounded_memory(tmp_path):
    """Peak RSS growth of a fresh process converting a 200k-record (~40 MB) array: ``json.load`` of such
    a file grows RSS by well over 100 MB (text + 200k dicts); streaming stays within a few 1 MiB chunks."""
    src, out = tmp_path / "alpaca.json", tmp_path / "alpaca.jsonl"
    n_records = 200_000
    with open(src, "w", encoding="utf-8") as fh:
        fh.write("[\n")
        fh.write(",\n".join(f'  {{"instruction": "把第{i}句翻译成英文。", '
                            f'"input": "这是第{i}个句子，有点长，有点长，有点长。", '
                            f'"output": "This is sentence number {i}, which is a little long."}}'
                            for i in range(n_records)))
        fh.write("\n]\n")
    assert src.stat().st_size > 35_000_000
    child = subprocess.run([sys.executable, "-c", _CONVERT_IN_A_CHILD, str(src), str(out)], capture_output=True,
                           text=True, check=False, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    assert (report["n"], report["errors"]) == (n_records, [])
    assert report["growth_kb"] < 30_000, f"peak RSS grew by {report['growth_kb'] / 1000:.0f} MB"
    with open(out, encoding="utf-8") as fh:
        first = json.loads(fh.readline())
        count = 1 + sum(1 for _ in fh)
    assert count == n_records and first["instruction"] == "把第0句翻译成英文。"


def test_json_array_to_jsonl_reserialises_multi_line_records(tmp_path):
    src = write(tmp_path / "a.json", json.dumps([{"text": "a\nb", "n": [1, 2]}], indent=2))
    json_array_to_jsonl(src, tmp_path / "a.jsonl")
    assert (tmp_path / "a.jsonl").read_text(encoding="utf-8") == '{"text":"a\\nb","n":[1,2]}\n'


# --------------------------------------------------------------------------- shape detection


@pytest.mark.parametrize("keys, shape", [
    (["messages", "label"], "chat"),
    (["conversations"], "sharegpt"),
    (["prompt", "chosen", "rejected"], "preference"),
    (["chosen", "rejected", "messages", "prompt"], "preference"),       # preference sets carry messages too
    (["messages", "conversations"], "chat"),
    (["instruction", "input", "output"], "instruction"),
    (["instruction", "messages"], "chat"),
    (["Instruction", "Output"], "instruction"),                          # case-insensitive
    (["prompt", "response"], "instruction"),
    (["question", "answer"], "instruction"),
    (["text", "label", "annotator"], "text"),
    (["id", "data", "annotations", "predictions"], "label_studio"),
    (["data", "predictions"], "label_studio"),
    (["id", "text", "label.responses", "label.responses.users", "label.responses.status"], "argilla"),
    (["text", "label.suggestion", "label.suggestion.score"], "argilla"),
    (["data", "annotations", "text"], "label_studio"),
])
def test_detect_shape(keys, shape):
    assert detect_shape(keys) == shape
    assert detect_shape(dict.fromkeys(keys)) == shape


def test_detect_shape_unknown_names_the_keys():
    with pytest.raises(RecordError, match=r"no known record shape in the keys \[premise, hypothesis\]"):
        detect_shape({"premise": "a", "hypothesis": "b"})


# --------------------------------------------------------------------------- derive per shape


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_derive_chat_multi_turn_with_system_and_tool(lang):
    rec = CHAT[lang]
    d = derive(rec)
    m = rec["messages"]
    assert d.shape == "chat" and d.n_turns == 8 == len(d.turns)
    assert [t["role"] for t in d.turns] == ["system", "user", "assistant", "tool", "assistant", "user", "user",
                                            "assistant"]
    assert d.turns[2]["content"] == 'track({"order": 1234})'   # a tool call shown as name(arguments)
    assert d.prompt == m[5]["content"] + "\n" + m[6]["content"]  # the user block the final answer replies to
    assert d.response == "\n".join(p["text"] for p in m[7]["content"])
    assert d.context.splitlines()[0] == f"system: {m[0]['content']}"
    assert f"tool: {m[3]['content']}" in d.context and m[5]["content"] not in d.context
    assert d.conversation.splitlines()[1] == f"user: {m[1]['content']}"
    assert d.rejected is None
    assert d.text_fields() == {"instruction": d.prompt, "input": d.context, "output": d.response,
                               "text": d.conversation}


def test_derive_chat_single_turn_and_prompt_only():
    d = derive({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    assert (d.prompt, d.response, d.context) == ("hi", "hello", None)
    assert d.conversation == "user: hi\nassistant: hello"
    d = derive({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]})
    assert (d.prompt, d.response, d.context) == ("q", None, "system: s")


def test_derive_chat_other_content_parts_and_roles():
    d = derive({"messages": [
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url",
                                                                                   "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": "a cat"}]})
    assert d.turns[0]["role"] == "system" and d.turns[1]["content"] == "what is this?\n[image_url]"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_derive_sharegpt(lang):
    rec = SHAREGPT[lang]
    d = derive(rec)
    c = rec["conversations"]
    assert d.shape == "sharegpt" and d.n_turns == 5
    assert [t["role"] for t in d.turns] == ["system", "user", "assistant", "user", "assistant"]
    assert (d.prompt, d.response) == (c[2]["value"], c[3]["value"])
    assert d.context == f"system: {rec['system']}\nuser: {c[0]['value']}\nassistant: {c[1]['value']}"
    assert d.text_fields()["text"] == d.conversation


def test_derive_sharegpt_tool_names_and_role_content_variant():
    d = derive({"conversations": [
        {"from": "user", "value": "weather?"}, {"from": "function_call", "value": "{\"name\": \"w\"}"},
        {"from": "observation", "value": "sunny"}, {"from": "chatgpt", "value": "Sunny."}]})
    assert [t["role"] for t in d.turns] == ["user", "assistant", "tool", "assistant"]
    assert (d.prompt, d.response) == ("weather?", "Sunny.")
    d2 = derive({"conversations": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
    assert (d2.shape, d2.prompt, d2.response) == ("sharegpt", "hi", "yo")


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("records", [PREF_STR, PREF_MSG], ids=["string-sides", "message-sides"])
def test_derive_preference(records, lang):
    rec = records[lang]
    d = derive(rec)
    good, bad = PREF_STR[lang]["chosen"], PREF_STR[lang]["rejected"]
    assert d.shape == "preference"
    assert (d.prompt, d.response, d.rejected, d.context) == (rec["prompt"], good, bad, None)
    assert d.turns == [{"role": "user", "content": rec["prompt"]}, {"role": "assistant", "content": good}]
    assert d.conversation == f"user: {rec['prompt']}\nassistant (chosen): {good}\nassistant (rejected): {bad}"
    assert d.text_fields() == {"instruction": rec["prompt"], "input": None, "output": good, "text": d.conversation}


def test_derive_preference_message_prompt_and_no_prompt():
    d = derive({"prompt": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}],
                "chosen": [{"role": "assistant", "content": "good"}],
                "rejected": {"role": "assistant", "content": "bad"}})
    assert (d.prompt, d.context, d.response, d.rejected) == ("q", "system: sys", "good", "bad")
    d = derive({"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
                "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]})
    assert (d.prompt, d.response, d.rejected, d.n_turns) == ("q", "good", "bad", 2)
    d = derive({"chosen": "Human: hi Assistant: hello", "rejected": "Human: hi Assistant: go"})  # HH-RLHF style
    assert (d.prompt, d.response) == (None, "Human: hi Assistant: hello")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_derive_alpaca_with_and_without_input(lang):
    rec = ALPACA[lang]
    d = derive(rec)
    assert d.shape == "instruction" and d.n_turns == 2
    assert d.turns[0] == {"role": "user", "content": f"{rec['instruction']}\n{rec['input']}"}
    assert d.text_fields() == {"instruction": rec["instruction"], "input": rec["input"], "output": rec["output"],
                               "text": None}   # a plain Alpaca record maps as the importer does today
    rec = ALPACA_NO_INPUT[lang]
    d = derive(rec)
    assert d.turns[0] == {"role": "user", "content": rec["instruction"]}
    assert d.text_fields() == {"instruction": rec["instruction"], "input": None, "output": rec["output"],
                               "text": None}


def test_derive_alpaca_with_system_and_history():
    d = derive({"instruction": "再来一个", "input": "", "output": "三", "system": "数数",
                "history": [["一", "二"]]})
    assert [t["role"] for t in d.turns] == ["system", "user", "assistant", "user", "assistant"]
    assert d.text_fields()["text"] == "system: 数数\nuser: 一\nassistant: 二\nuser: 再来一个\nassistant: 三"
    d = derive({"prompt": "2+2?", "response": "4"})
    assert (d.shape, d.prompt, d.response) == ("instruction", "2+2?", "4")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_derive_text(lang):
    d = derive(TEXT[lang])
    assert (d.shape, d.prompt, d.response, d.conversation, d.turns, d.n_turns) == \
        ("text", None, None, TEXT[lang]["text"], [], 0)
    assert d.text_fields() == {"instruction": None, "input": None, "output": None, "text": TEXT[lang]["text"]}


def test_derived_is_frozen_and_text_fields_cover_the_store_columns():
    d = derive(TEXT["en"])
    assert isinstance(d, Derived) and tuple(d.text_fields()) == TEXT_COLUMNS
    with pytest.raises(AttributeError):
        d.prompt = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------- RecordError


LS_OK = {"id": 1, "data": {"text": "hi"}, "annotations": [{"completed_by": 1, "result": []}]}


@pytest.mark.parametrize("record, shape, message", [
    ({"messages": "hello"}, None, "messages is a string, expected a list"),
    ({"messages": {"role": "user"}}, None, "messages is an object, expected a list"),
    ({"messages": []}, None, "messages is an empty list"),
    ({"messages": ["hi"]}, None, "messages turn 1 is a string, expected an object"),
    ({"messages": [{"content": "hi"}]}, None, "messages turn 1 has no role"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]}, None,
     r"messages turn 2 \(assistant\) has no content"),
    ({"messages": [{"role": "user", "content": None}]}, None, r"turn 1 \(user\) has no content"),
    ({"messages": [{"role": "narrator", "content": "once"}]}, None, "messages turn 1: unknown role 'narrator'"),
    ({"messages": [{"role": 3, "content": "x"}]}, None, "unknown role 3"),
    ({"messages": [{"role": "user", "content": {"a": 1}}]}, None, "content is an object"),
    ({"messages": [{"role": "user", "content": [1]}]}, None, "content part 1 is a number"),
    ({"conversations": "hi"}, None, "conversations is a string"),
    ({"conversations": [{"from": "human"}]}, None, r"conversations turn 1 \(human\) has no value"),
    ({"conversations": [{"from": "alien", "value": "x"}]}, None, "unknown role 'alien'"),
    ({"prompt": "p", "chosen": None, "rejected": "r"}, None, "chosen is missing"),
    ({"prompt": "p", "chosen": 5, "rejected": "r"}, None, "chosen is a number, expected a list"),
    ({"prompt": "p", "chosen": "c", "rejected": [{"role": "user", "content": "p"}]}, None,
     "rejected has no assistant turn"),
    ({"instruction": None, "output": "o"}, None, "instruction is missing"),
    ({"instruction": ["a"], "output": "o"}, None, "instruction is a list, expected a string"),
    ({"instruction": "i", "output": "o", "history": "x"}, None, "history is a string"),
    ({"instruction": "i", "output": "o", "history": [["a"]]}, None, "history entry 1 is not"),
    ({"text": None}, None, "text is missing"),
    ({"text": {"a": 1}}, None, "text is an object, expected a string"),
    ({"premise": "x"}, "text", "no text field"),
    ({"id": 7, "data": {"text": "hi"}, "predictions": []}, None, "Label Studio task 7 has no annotations"),
    ({"id": 7, "data": {"text": "hi"}, "annotations": []}, None, "task 7 has no annotations \\(an empty list\\)"),
    ({"id": 7, "data": {"text": "hi"}, "annotations": {}}, None, "annotations is an object, expected a list"),
    ({"id": 7, "data": "hi", "annotations": [{}]}, None, "data is a string, expected an object"),
    ({"id": 7, "data": {"messages": "x"}, "annotations": [{}]}, None, "messages is a string"),
    (["not", "a", "record"], "text", "the record is a list"),
])
def test_record_errors(record, shape, message):
    with pytest.raises(RecordError, match=message):
        derive(record, shape)
    if not isinstance(record, list):
        with pytest.raises(RecordError):
            content_id(record, shape)


def test_unknown_shape_argument():
    with pytest.raises(ValueError, match="unknown shape 'alpaca'"):
        derive(TEXT["en"], "alpaca")


@pytest.mark.parametrize("task, message", [
    ({"id": 3, "data": {"text": "x"}}, "task 3 has no annotations"),
    ({"id": 3, "data": {"text": "x"}, "annotations": [{"result": []}], "predictions": {}},
     "predictions is an object"),
    ({"id": 3, "data": {"text": "x"}, "annotations": [7]}, "annotation 1 is a number"),
    ({"id": 3, "data": {"text": "x"}, "annotations": [{"result": {}}]}, "result is an object"),
    ({"id": 3, "data": {"text": "x"}, "annotations": [{"completed_by": 1, "result": [
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["a", "b"]}}]}]},
     "annotation 1 has 2 values for 'label' \\(a, b\\): only single-label"),
])
def test_label_studio_row_errors(task, message):
    with pytest.raises(RecordError, match=message):
        label_studio_rows(task)


# --------------------------------------------------------------------------- content ids


def test_content_id_format_and_stability():
    cid = content_id(TEXT["zh"])
    assert re.fullmatch(r"h:[0-9a-f]{16}", cid)
    assert content_id({"label": "other", "text": "  请帮我取消订单并退款\n"}) == cid  # whitespace, label
    assert content_id(TEXT["en"]) != cid
    e_composed, e_decomposed = "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9")
    assert e_composed != e_decomposed
    assert content_id({"text": e_composed}) == content_id({"text": e_decomposed})


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_content_id_ignores_key_order_and_annotation_fields(lang):
    rec = CHAT[lang]
    reordered = {"annotator": "someone-else", "label": "bad", "confidence": 0.1, "probs": [0.2, 0.8], "round": 3,
                 "messages": [dict(reversed(list(m.items()))) for m in rec["messages"]]}
    assert content_id(rec) == content_id(reordered)
    rows = [{**ALPACA[lang], "annotator": a, "label": lab, "confidence": c}
            for a, lab, c in (("a1", "good", 0.9), ("a2", "bad", 0.4), ("a3", "good", None))]
    assert len({content_id(r) for r in rows}) == 1


def test_content_id_same_content_other_spelling():
    assert content_id({"instruction": "x", "input": "", "output": "y"}) == \
        content_id({"output": "y ", "instruction": "x"})
    assert content_id({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                                    {"role": "assistant", "content": "yo"}]}) == \
        content_id({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]})
    assert content_id(PREF_STR["zh"]) == content_id(PREF_MSG["zh"])
    ls = {"id": 9, "data": {"text": "请帮我取消订单并退款"},
          "annotations": [{"completed_by": 1, "result": []}]}
    assert content_id(ls) == content_id(TEXT["zh"])
    argilla = {"id": "r1", "text": "请帮我取消订单并退款", "label.responses": ["取消"],
               "label.responses.users": ["u"],
               "label.responses.status": ["submitted"]}
    assert content_id(argilla) == content_id(TEXT["zh"])
    assert content_id({"messages": [{"role": "user", "content": "a"}]}) != \
        content_id({"messages": [{"role": "system", "content": "a"}]})


# --------------------------------------------------------------------------- Label Studio


def ls_task(lang: str = "en") -> dict[str, Any]:
    text = {"en": "Where is my refund?", "zh": "我的退款在哪里？"}[lang]
    lab = {"en": ("refund", "other"), "zh": ("退款", "其他")}[lang]

    def choice(value: str) -> list[dict[str, Any]]:
        return [{"id": "r", "from_name": "intent", "to_name": "text", "type": "choices",
                 "value": {"choices": [value]}}]
    return {
        "id": 42, "data": {"text": text, "label": "stale"},
        "annotations": [
            {"id": 1, "completed_by": 7, "was_cancelled": False, "result": choice(lab[0])},
            {"id": 2, "completed_by": {"id": 8, "email": "li@example.com"}, "result": choice(lab[0])},
            {"id": 3, "completed_by": 9, "was_cancelled": True, "result": choice(lab[1])},
            {"id": 4, "completed_by": {"id": 10}, "result": choice(lab[1])},
            {"id": 5, "completed_by": 11, "result": []},   # submitted with no answer
        ],
        "predictions": [{"model_version": "bert-v2", "score": 0.83, "result": choice(lab[0])},
                        {"model_version": "bert-v1", "result": [{**choice(lab[1])[0], "score": 0.4}]}],
    }


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_label_studio_rows(lang):
    task = ls_task(lang)
    rows = label_studio_rows(task)
    anns = [r for r in rows if r["kind"] == "annotation"]
    preds = [r for r in rows if r["kind"] == "prediction"]
    lab = task["annotations"][0]["result"][0]["value"]["choices"][0]
    other = task["annotations"][3]["result"][0]["value"]["choices"][0]
    assert [(r["annotator"], r["label"]) for r in anns] == [("7", lab), ("li@example.com", lab), ("10", other)]
    assert [(r["prediction"], r["pred_confidence"], r["model"]) for r in preds] == \
        [(lab, 0.83, "bert-v2"), (other, 0.4, "bert-v1")]
    for r in rows:
        assert r["id"] == "42" and r["text"] == task["data"]["text"] and r["question"] == "intent"
        assert r["data.label"] == "stale" and "label" not in r or r["kind"] == "annotation"
    assert derive(task).text_fields()["text"] == task["data"]["text"]
    assert content_id(task) == content_id({"text": task["data"]["text"]})


def test_label_studio_sample_id_rating_and_questions():
    task = {"id": 5, "data": {"uid": "s-1", "review": "好评"}, "annotations": [{"completed_by": 1, "result": [
        {"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": ["pos"]}},
        {"from_name": "quality", "to_name": "review", "type": "rating", "value": {"rating": 4}},
        {"from_name": "note", "to_name": "review", "type": "textarea", "value": {"text": ["free text"]}}]}]}
    assert questions([task]) == ["sentiment", "quality"]
    with pytest.raises(QuestionRequired, match="several label questions \\(sentiment, quality\\)") as err:
        label_studio_rows(task)
    assert err.value.questions == ["sentiment", "quality"]
    rows = label_studio_rows(task, question="quality")
    assert [(r["id"], r["label"], r["review"]) for r in rows] == [("s-1", "4", "好评")]
    assert "uid" not in rows[0]
    d = derive(task)
    assert (d.shape, d.conversation) == ("text", "好评")   # a text field under its own name


def test_label_studio_task_with_only_cancelled_annotations_is_a_bare_sample():
    task = {"id": 6, "data": {"text": "x"}, "annotations": [{"completed_by": 1, "was_cancelled": True, "result": [
        {"from_name": "l", "to_name": "text", "type": "choices", "value": {"choices": ["a"]}}]}]}
    assert label_studio_rows(task) == [{"id": "6", "text": "x", "kind": "sample"}]


def test_label_studio_chat_data():
    task = {"id": 1, "data": {"messages": CHAT["zh"]["messages"]},
            "annotations": [{"completed_by": 1, "result": [
                {"from_name": "q", "to_name": "chat", "type": "choices", "value": {"choices": ["好"]}}]}]}
    d = derive(task)
    assert d.shape == "chat" and d.n_turns == 8
    assert content_id(task) == content_id(CHAT["zh"])
    assert label_studio_rows(task)[0]["messages"] == CHAT["zh"]["messages"]


# --------------------------------------------------------------------------- Argilla


def argilla_records() -> list[dict[str, Any]]:
    # what dataset.records.to_list(flatten=True) gives: keys normalised over all records (missing -> None)
    return [
        {"id": "rec-1", "_server_id": "9f1c", "status": "completed", "text": "我要退款", "source": "app",
         "embedding": [0.1, 0.2, 0.3],
         "intent.responses": ["refund", "other", "refund"],
         "intent.responses.users": ["u1", "u2", "u3"],
         "intent.responses.status": ["submitted", "discarded", "draft"],
         "intent.suggestion": "refund", "intent.suggestion.score": 0.91, "intent.suggestion.agent": "setfit-v1",
         "quality.responses": [4], "quality.responses.users": ["u1"], "quality.responses.status": ["submitted"],
         "quality.suggestion": None, "quality.suggestion.score": None, "quality.suggestion.agent": None},
        {"id": "rec-2", "_server_id": "77aa", "status": "pending", "text": "Where is my parcel?", "source": "web",
         "embedding": [0.0, 0.5, 0.1],
         "intent.responses": ["shipping", "shipping"], "intent.responses.users": ["u1", "u2"],
         "intent.responses.status": ["submitted", "submitted"],
         "intent.suggestion": ["shipping"], "intent.suggestion.score": [0.7], "intent.suggestion.agent": None,
         "quality.responses": None, "quality.responses.users": None, "quality.responses.status": None,
         "quality.suggestion": None, "quality.suggestion.score": None, "quality.suggestion.agent": None},
    ]


def test_argilla_rows_count_only_submitted_responses():
    recs = argilla_records()
    assert questions(recs) == ["intent", "quality"]
    assert detect_shape(recs[0]) == "argilla"
    with pytest.raises(QuestionRequired) as err:
        argilla_rows(recs[0])
    assert err.value.questions == ["intent", "quality"]
    rows = argilla_rows(recs[0], question="intent")
    assert [(r["kind"], r.get("annotator"), r.get("label"), r.get("prediction")) for r in rows] == \
        [("annotation", "u1", "refund", None), ("prediction", None, None, "refund")]
    pred = rows[1]
    assert (pred["pred_confidence"], pred["model"], pred["question"]) == (0.91, "setfit-v1", "intent")
    for r in rows:
        assert (r["id"], r["text"], r["source"]) == ("rec-1", "我要退款", "app")
        assert "embedding" not in r and "_server_id" not in r and "status" not in r
        assert not any(k.startswith(("intent.", "quality.")) for k in r)
    rows2 = argilla_rows(recs[1], question="intent")
    assert [(r["kind"], r.get("label"), r.get("prediction")) for r in rows2] == \
        [("annotation", "shipping", None), ("annotation", "shipping", None), ("prediction", None, "shipping")]
    assert rows2[2]["pred_confidence"] == 0.7
    assert [r["label"] for r in argilla_rows(recs[0], question="quality")] == ["4"]
    assert argilla_rows(recs[1], question="quality") == [{"id": "rec-2", "text": "Where is my parcel?",
                                                         "source": "web", "kind": "sample"}]
    d = derive(recs[1])
    assert (d.shape, d.text_fields()["text"]) == ("text", "Where is my parcel?")


def test_argilla_one_question_and_errors():
    rec = {"id": None, "prompt": "2+2?", "response": "4", "rating.responses": [5, 1],
           "rating.responses.users": ["a", "b"], "rating.responses.status": ["submitted", "submitted"]}
    rows = argilla_rows(rec)
    assert [r["label"] for r in rows] == ["5", "1"] and rows[0]["id"] == content_id(rec) == \
        content_id({"prompt": "2+2?", "response": "4"})
    assert derive(rec).shape == "instruction"
    with pytest.raises(RecordError, match="does not line up"):
        argilla_rows({**rec, "rating.responses.users": ["a"]})
    with pytest.raises(RecordError, match="only single-label"):
        argilla_rows({"id": "x", "text": "t", "topics.responses": [["a", "b"]], "topics.responses.users": ["u"],
                      "topics.responses.status": ["submitted"]})


# --------------------------------------------------------------------------- export back


ROUND_TRIP = [
    ("chat-en", CHAT["en"]), ("chat-zh", CHAT["zh"]),
    ("sharegpt-en", SHAREGPT["en"]), ("sharegpt-zh", SHAREGPT["zh"]),
    ("pref-str", PREF_STR["zh"]), ("pref-msg", PREF_MSG["en"]), ("alpaca", ALPACA["zh"]),
    ("alpaca-no-input", ALPACA_NO_INPUT["en"]), ("qa", {"question": "2+2?", "answer": "4", "label": "ok"}),
    ("text", TEXT["zh"]),
]


@pytest.mark.parametrize("name, rec", ROUND_TRIP, ids=[n for n, _ in ROUND_TRIP])
def test_round_trip_derive_to_shape(name, rec):
    shape = detect_shape(rec)
    prov = {"label_source": "majority", "label_agreement": 0.67}
    out = to_shape({**rec, "annotator": "a1", "label_a2": "x", "prob_good": 0.3, "id": "s-1"}, shape, "good", prov)
    assert detect_shape(out) == shape
    assert derive(out, shape) == derive(rec, shape)
    assert content_id(out, shape) == content_id(rec, shape)
    assert (out["label"], out["label_source"], out["label_agreement"], out["id"]) == ("good", "majority", 0.67, "s-1")
    assert not {"annotator", "label_a2", "prob_good"} & set(out)
    for key in ("messages", "conversations", "chosen", "rejected", "prompt", "question"):
        if key in rec:
            assert out[key] == rec[key]   # messages stay a message list, ShareGPT stays conversations...


def test_to_shape_refuses_a_provenance_key_that_replaces_content():
    with pytest.raises(ValueError, match="provenance key 'messages'"):
        to_shape(CHAT["en"], "chat", "good", {"messages": []})
    out = to_shape(TEXT["en"], None, "cancel", None, drop=["mapped_label_column"])
    assert out == {"text": TEXT["en"]["text"], "label": "cancel"}


def test_label_studio_export_back_and_read_again():
    task = ls_task("zh")
    out = to_shape(task, "label_studio", "退款", {"label_source": "majority"})
    assert out["data"]["id"] == "42" and out["meta"] == {"label_source": "majority"}
    result = out["annotations"][0]["result"][0]
    assert (result["from_name"], result["to_name"], result["value"]) == ("intent", "text", {"choices": ["退款"]})
    rows = label_studio_rows(out)
    assert [(r["id"], r["label"], r["kind"], r["annotator"]) for r in rows] == [("42", "退款", "annotation", None)]
    assert content_id(out) == content_id(task)


def test_to_label_studio_task():
    task = to_label_studio_task("h:0123456789abcdef", {"text": "hello"}, "greet")
    assert task == {"data": {"text": "hello", "id": "h:0123456789abcdef"},
                    "annotations": [{"result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                                 "value": {"choices": ["greet"]}}],
                                     "ground_truth": True, "was_cancelled": False}]}
    json.dumps(task)  # serialisable as an import file
    with pytest.raises(ValueError, match="gold_label is empty"):
        to_label_studio_task("s", {"text": "x"}, " ")


def test_argilla_export_back():
    rec = argilla_records()[0]
    out = to_shape(rec, "argilla", "refund", {"label_source": "adjudicated"})
    assert out == {"id": "rec-1", "text": "我要退款", "source": "app", "label": "refund",
                   "label_source": "adjudicated"}
    assert content_id(out, "text") == content_id(rec)


def test_shapes_constant_is_the_precedence_order():
    assert SHAPES == ("label_studio", "argilla", "preference", "chat", "sharegpt", "instruction", "text")
