"""Tests for the command line (`python -m core ...`), run as real subprocesses on a temporary store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, db: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})}
    full_env.pop("QUALITY_DB", None)
    return subprocess.run([sys.executable, "-m", "core", "--db", str(db), *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout)


MIXED_ROWS = [
    {"id": "1", "instruction": "我的快递到哪了？", "output": "正在派送", "label": "shipping", "annotator": "a"},
    {"id": "1", "instruction": "我的快递到哪了？", "output": "正在派送", "label": "shipping", "annotator": "b"},
    {"id": "1", "instruction": "我的快递到哪了？", "output": "正在派送", "label": "refund", "annotator": "c"},
    "{not json",
    {"id": "2", "instruction": "I want my money back", "label": "refund", "annotator": "a"},
    {"instruction": "no id", "label": "refund"},
    {"id": "3", "instruction": "Cancel it", "label": "teleport", "annotator": "a"},
    {"id": "4", "instruction": "Cancel my order", "label": "refund", "annotator": "a",
     "probs": [0.3, 0.7]},
]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """One store with the mixed file imported through the CLI (shared by the read-only tests)."""
    tmp = tmp_path_factory.mktemp("cli")
    db = tmp / "cli.duckdb"
    src = tmp / "mixed.jsonl"
    src.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in MIXED_ROWS)
                   + "\n", encoding="utf-8")
    done = cli("import", str(src), "--dataset", "客服", "--labels", "refund,shipping", db=db)
    return db, src, done


def test_import_of_mixed_file_reports_bad_rows_and_exits_0(imported):
    db, src, done = imported
    assert done.returncode == 0, done.stderr
    assert "mixed.jsonl → '客服': 5 of 8 rows imported" in done.stdout
    assert "3 new samples" in done.stdout and "3 rows rejected" in done.stdout
    assert "rejected rows (3):" in done.stderr
    assert "row 4: malformed JSON" in done.stderr
    assert "row 6: missing id" in done.stderr
    assert "row 7: label 'teleport' is not in the label set" in done.stderr
    assert "Traceback" not in done.stderr


def test_reimport_is_a_no_op(imported, tmp_path):
    db, src, _ = imported
    done = cli("import", str(src), "--dataset", "客服", db=db)
    assert done.returncode == 0, done.stderr
    assert "nothing changed" in done.stdout


def test_datasets_lists_the_import(imported):
    db, _, _ = imported
    done = cli("datasets", db=db)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["客服\t3 samples\tlabels: refund, shipping"]


def test_datasets_on_an_empty_store(tmp_path):
    done = cli("datasets", db=tmp_path / "empty.duckdb")
    assert done.returncode == 0, done.stderr
    assert "no datasets yet" in done.stdout


def _gbk(path: Path) -> Path:
    path.write_bytes(b'{"id": "1", "text": "ok", "label": "a"}\n'
                     + '{"id": "2", "text": "中文", "label": "a"}\n'.encode("gbk"))
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: _gbk(d / "gbk.jsonl"), "not UTF-8"),
    (lambda d: d / "missing.jsonl", "file not found"),
    # no ids and no record content to derive them from
    (lambda d: (d / "noid.csv").write_text("prediction,model\na,b\n") and d / "noid.csv", "no id column"),
])
def test_bad_file_exits_1_with_one_line(tmp_path, make, message):
    db = tmp_path / "s.duckdb"
    src = make(tmp_path)
    done = cli("import", str(src), "--dataset", "d", db=db)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert done.stdout == ""
    if "UTF-8" in message:
        assert "line 2" in lines[0]
    # nothing was written: the store has no dataset (checked in-process: no extra subprocess)
    from core.store import open_store

    assert open_store(db).dataset_names() == []


def test_usage_error_exits_2(tmp_path):
    done = cli("import", db=tmp_path / "s.duckdb")
    assert done.returncode == 2
    assert "usage:" in done.stderr


def test_busy_store_exits_1_with_store_busy(imported, tmp_path):
    db, src, _ = imported
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, select, time, duckdb
            deadline = time.monotonic() + 60
            while True:
                try:
                    con = duckdb.connect(sys.argv[1]); break
                except duckdb.IOException:
                    if time.monotonic() > deadline: raise
                    time.sleep(0.05)
            print("ready", flush=True)
            select.select([sys.stdin], [], [], 60)
        """), str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        done = cli("datasets", db=db, env={"QUALITY_DB_BUSY_TIMEOUT": "0.5"})
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: store busy")
    assert len(done.stderr.strip().splitlines()) == 1
    assert cli("datasets", db=db).returncode == 0  # and fine once the other process is gone


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_writes_gold_labels_with_provenance(imported, tmp_path, fmt):
    db, _, _ = imported
    out = tmp_path / f"gold.{fmt}"
    done = cli("export", "--dataset", "客服", "--format", fmt, "--out", str(out), db=db)
    assert done.returncode == 0, done.stderr
    assert "wrote 3 samples" in done.stdout
    frame = {"jsonl": pl.read_ndjson, "csv": pl.read_csv, "parquet": pl.read_parquet}[fmt](out)
    assert "label_source" in frame.columns
    gold = dict(zip(frame["sample_id"].cast(pl.Utf8), zip(frame["label"], frame["label_source"])))
    assert gold == {"1": ("shipping", "majority"), "2": ("refund", "majority"), "4": ("refund", "majority")}
    text = dict(zip(frame["sample_id"].cast(pl.Utf8), frame["instruction"]))
    assert text["1"] == "我的快递到哪了？"
    assert not out.with_name(out.name + ".part").exists()


def test_export_of_unknown_dataset_exits_1(imported, tmp_path):
    db, _, _ = imported
    done = cli("export", "--dataset", "nope", "--format", "csv", "--out", str(tmp_path / "x.csv"), db=db)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: ") and "nope" in done.stderr
    assert not (tmp_path / "x.csv").exists()


# --------------------------------------------------------------------------- record shapes (issue 14)


def cli_after(*args: str, db: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Like :func:`cli`, with ``--db`` after the sub-command (as the README shows it)."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("QUALITY_DB", None)
    return subprocess.run([sys.executable, "-m", "core", *args, "--db", str(db)], cwd=ROOT, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout, check=False)


def _summaries(db: Path) -> dict[str, dict]:
    done = cli_after("datasets", "--json", db=db)
    assert done.returncode == 0, done.stderr
    return {d["name"]: d for d in json.loads(done.stdout)}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_import_of_each_shape_through_the_cli(tmp_path, lang):
    from test_ingest_shapes import SHAPES, long_rows, ls_tasks, write_rows

    db = tmp_path / "shapes.duckdb"
    files = {shape: write_rows(tmp_path / shape, long_rows(shape, lang), container)
             for shape, container in zip(SHAPES, ["json", "jsonl", "parquet", "csv", "tsv"])}
    for shape, path in files.items():
        done = cli_after("import", str(path), "--dataset", shape, db=db)
        assert done.returncode == 0, done.stderr
        assert "12 of 12 rows imported (4 new samples, 12 new annotations, 0 changed, 4 predictions); " \
               "0 rows rejected; 4 ids derived from content" in done.stdout, done.stdout
    ls = tmp_path / "ls.json"
    ls.write_text(json.dumps(ls_tasks(lang), ensure_ascii=False), encoding="utf-8")
    done = cli_after("import", str(ls), "--dataset", "ls", "--pred-round", "2", db=db)
    assert done.returncode == 0, done.stderr
    assert "2 of 3 rows imported" in done.stdout and "row 3: Label Studio task 3 has no annotations" in done.stderr
    summary = _summaries(db)
    for shape in SHAPES:
        assert {k: summary[shape][k] for k in ("samples", "annotations", "annotators", "predictions", "labels")} == \
            {"samples": 4, "annotations": 12, "annotators": 3, "predictions": 4, "labels": ["bad", "good"]}
    assert {k: summary["ls"][k] for k in ("samples", "annotations", "annotators", "predictions")} == \
        {"samples": 2, "annotations": 3, "annotators": 2, "predictions": 1}
    # importing again changes nothing
    again = cli_after("import", str(files["chat"]), "--dataset", "chat", db=db)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert _summaries(db) == summary
    # the export keeps the shape
    out = tmp_path / "chat_gold.jsonl"
    done = cli_after("export", "--dataset", "sharegpt", "--format", "jsonl", "--out", str(out), db=db)
    assert done.returncode == 0 and "wrote 4 samples" in done.stdout, done.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(r["conversations"][0]["from"] == "human" and r["label_source"] == "majority" for r in rows)
    tasks = tmp_path / "tasks.json"
    done = cli_after("export", "--dataset", "chat", "--format", "label-studio", "--out", str(tasks), db=db)
    assert done.returncode == 0, done.stderr
    assert json.loads(tasks.read_text(encoding="utf-8"))[0]["annotations"][0]["ground_truth"] is True


def test_several_questions_need_the_question_option(tmp_path):
    db = tmp_path / "q.duckdb"
    task = {"id": 1, "data": {"text": "好评"}, "annotations": [{"completed_by": 1, "result": [
        {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["pos"]}},
        {"from_name": "quality", "to_name": "text", "type": "rating", "value": {"rating": 4}}]}]}
    src = tmp_path / "q.json"
    src.write_text(json.dumps([task], ensure_ascii=False), encoding="utf-8")
    done = cli_after("import", str(src), "--dataset", "q", db=db)
    assert done.returncode == 1 and done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.strip() and "%|" not in line]
    assert lines == [("error: q.json holds several label questions (sentiment, quality): choose the one that is "
                      "the label (on the command line: --question NAME)")]
    done = cli_after("import", str(src), "--dataset", "q", "--question", "sentiment", db=db)
    assert done.returncode == 0, done.stderr
    assert _summaries(db)["q"]["labels"] == ["pos"]


def test_datasets_json_on_an_empty_store(tmp_path):
    done = cli("datasets", "--json", db=tmp_path / "empty.duckdb")
    assert done.returncode == 0 and json.loads(done.stdout) == []
