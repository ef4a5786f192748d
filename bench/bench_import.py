"""Import benchmark: our ``import_file`` against a bare DuckDB ``CREATE TABLE AS SELECT * FROM read_json``.

Generates N JSON-lines rows (default 1,000,000, ~200 bytes each, long form: every sample labelled
by 3 annotators, so N/3 samples x 3 rows; Chinese and English customer-service text), then times

  (a) ``CREATE TABLE t AS SELECT * FROM read_json(path)`` into a fresh DuckDB file, and
  (b) ``core.ingest.import_file`` into a fresh store,

each in its own subprocess so that the peak RSS (``ru_maxrss``) of one does not hide the other.
and (c) the least any import that keeps every field must do (key pass, typed read, the two
inserts; no validation, no sorting, no error report), to show how much of the ratio is the
validation and how much is the work itself.

Prints the times, the ratio (b / a), the peaks, and the time of each stage of our import.

Targets (issue 2): ratio <= 1.5 and peak RSS <= 2 GB.

    .venv/bin/python bench/bench_import.py              # full size
    .venv/bin/python bench/bench_import.py --quick      # smoke run: 15,000 rows (and 6,000 chat rows)
    .venv/bin/python bench/bench_import.py --chat       # 1,000,000 OpenAI-chat rows (issue 14)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5
TARGET_RSS_MB = 2048

LABELS = ["refund", "shipping", "cancel_order", "change_address", "invoice", "product_info",
          "complaint", "account"]
ANNOTATORS = ["ann_a", "ann_b", "ann_c"]
ZH = ["您好，我的订单还没有发货，请问什么时候能到？", "我想申请退款，商品和描述不一致。", "麻烦帮我修改一下收货地址。",
      "发票抬头写错了，可以重新开吗？", "这个型号支持快充吗？", "客服一直不回复，我要投诉！", "账号登录不上，提示密码错误。",
      "我要取消刚下的订单。", "快递显示已签收但我没收到。", "请问有没有优惠券可以用？"]
EN = ["Hi, my order has not shipped yet, when will it arrive?", "I would like a refund, the item is broken.",
      "Please change my delivery address.", "Can you resend the invoice with the company name?",
      "Does this model support fast charging?", "Nobody answers my messages, I want to complain.",
      "I cannot log in to my account.", "Please cancel the order I just placed.",
      "Tracking says delivered but nothing arrived.", "Is there a coupon I can use?"]
REPLY_ZH = ["已为您查询，预计明天送达。", "已提交退款申请。", "地址已修改。", "好的，马上为您处理。"]
REPLY_EN = ["I have checked, it arrives tomorrow.", "Your refund is on its way.", "Done, address updated.",
            "Sure, I will take care of it."]


def generate(path: Path, rows: int, seed: int = 7, probs: bool = False) -> tuple[int, int]:
    """Write ``rows`` JSONL rows (3 per sample, one per annotator); return (samples, bytes).

    With ``probs`` every row also carries the model's probabilities over the 8 labels (the same
    for the rows of one sample), so the import also parses and writes predictions."""
    rng = random.Random(seed)
    n_samples = -(-rows // len(ANNOTATORS))
    written = 0
    with open(path, "w", encoding="utf-8") as fh:
        buf: list[str] = []
        for s in range(n_samples):
            zh = rng.random() < 0.5
            instruction = rng.choice(ZH if zh else EN)
            output = rng.choice(REPLY_ZH if zh else REPLY_EN)
            true = rng.randrange(len(LABELS))
            base = {"id": f"s{s:07d}", "instruction": instruction, "output": output,
                    "round": 1 + s * 4 // n_samples, "batch": f"b{s % 10}"}
            if probs:
                weights = [rng.random() + (3.0 if k == true else 0.0) for k in range(len(LABELS))]
                base["probs"] = [w / sum(weights) for w in weights]
            for annotator in ANNOTATORS:
                if written >= rows:
                    break
                label = LABELS[true] if rng.random() < 0.85 else LABELS[rng.randrange(len(LABELS))]
                buf.append(json.dumps({**base, "label": label, "annotator": annotator}, ensure_ascii=False))
                written += 1
            if len(buf) >= 10_000:
                fh.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            fh.write("\n".join(buf) + "\n")
    return n_samples, path.stat().st_size


QUALITY = ["good", "bad", "unsure"]
SYSTEM = ["You are a helpful customer-service assistant.", "你是一名耐心的电商客服。"]
FOLLOW_ZH = ["好的，谢谢！", "还有别的办法吗？", "那大概要多久？"]
FOLLOW_EN = ["Thanks!", "Is there anything else I can do?", "How long will that take?"]


def generate_chat(path: Path, rows: int, seed: int = 7) -> tuple[int, int]:
    """Write ``rows`` OpenAI-chat JSONL rows (3 per conversation, one per annotator's quality label);
    return (conversations, bytes). Conversations have 2 to 6 turns (a system prompt in a third of them),
    Chinese or English, an ``id``, ``label`` (good / bad / unsure) and ``annotator``."""
    rng = random.Random(seed)
    n_conv = -(-rows // len(ANNOTATORS))
    written = 0
    with open(path, "w", encoding="utf-8") as fh:
        buf: list[str] = []
        for s in range(n_conv):
            zh = rng.random() < 0.5
            messages = [{"role": "system", "content": SYSTEM[zh]}] if rng.random() < 0.33 else []
            messages += [{"role": "user", "content": rng.choice(ZH if zh else EN)},
                         {"role": "assistant", "content": rng.choice(REPLY_ZH if zh else REPLY_EN)}]
            for _ in range(rng.randrange(3)):
                messages += [{"role": "user", "content": rng.choice(FOLLOW_ZH if zh else FOLLOW_EN)},
                             {"role": "assistant", "content": rng.choice(REPLY_ZH if zh else REPLY_EN)}]
            true = rng.randrange(len(QUALITY))
            for annotator in ANNOTATORS:
                if written >= rows:
                    break
                label = QUALITY[true] if rng.random() < 0.85 else rng.choice(QUALITY)
                buf.append(json.dumps({"id": f"c{s:07d}", "messages": messages, "label": label,
                                       "annotator": annotator}, ensure_ascii=False))
                written += 1
            if len(buf) >= 10_000:
                fh.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            fh.write("\n".join(buf) + "\n")
    return n_conv, path.stat().st_size


# --------------------------------------------------------------------------- the timed children

# The end of a plain-DuckDB child: close, then print wall and CPU time since t0 / c0, the rows
# counted in n and the peak RSS as one JSON line.
DUCKDB_CHILD_REPORT = """
con.close()
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"seconds": elapsed, "cpu": cpu, "rows": n,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHILD_BARE = """
import json, resource, sys, time, duckdb
src, db = sys.argv[1], sys.argv[2]
t0, c0 = time.perf_counter(), time.process_time()
con = duckdb.connect(db)
con.execute("CREATE TABLE t AS SELECT * FROM read_json(?)", [src])
n = con.execute("SELECT count(*) FROM t").fetchone()[0]
""" + DUCKDB_CHILD_REPORT

# The least any import that keeps every field must do, with no validation at all: find every
# key of every line (DuckDB's detection samples only the first lines), read them, write one
# sample per id (with its content hash) and every annotation into the store's tables. No
# checks, no sorting, no error report: a floor for (b), not something to ship.
CHILD_FLOOR = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
from core.store import open_store
src, db = sys.argv[1], sys.argv[2]
open_store(db).close()
import duckdb
t0, c0 = time.perf_counter(), time.process_time()
con = duckdb.connect(db)
keys = sorted(r[0] for r in con.execute(
    "SELECT DISTINCT unnest(json_keys(json)) FROM read_ndjson_objects(?)", [src]).fetchall())
con.execute("CREATE TEMP TABLE stg AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = ?)",
            [src, {k: "VARCHAR" for k in keys}])
con.execute("BEGIN")
con.execute(\"\"\"INSERT INTO samples (dataset, sample_id, instruction, output, batch, round, content_hash)
               SELECT 'floor', id, instruction, output, batch, round::INTEGER,
                      sha256(concat_ws(chr(31), coalesce(instruction, ''), '', coalesce(output, ''), ''))
               FROM stg SEMI JOIN (SELECT min(rowid) AS r FROM stg GROUP BY id) f ON stg.rowid = f.r\"\"\")
con.execute(\"\"\"INSERT INTO annotations (dataset, sample_id, annotator, label)
               SELECT 'floor', id, annotator, label FROM stg\"\"\")
con.execute("COMMIT")
n = con.execute("SELECT count(*) FROM annotations").fetchone()[0]
""" + DUCKDB_CHILD_REPORT

CHILD_OURS = """
import functools, json, resource, sys, time
sys.path.insert(0, sys.argv[3])
import core.ingest as ingest
from core.store import Store, open_store
src, db = sys.argv[1], sys.argv[2]

# Time the main steps (wall and process CPU, which counts DuckDB's threads too) by wrapping them.
steps = {}
def timed(owner, name):
    fn = getattr(owner, name, None)
    if fn is None:
        return
    @functools.wraps(fn)
    def wrapper(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            w0, c0 = steps.get(name, (0.0, 0.0))
            steps[name] = (w0 + time.perf_counter() - t, c0 + time.process_time() - c)
    setattr(owner, name, wrapper)
for name in ("stage_jsonl", "stage_jsonl_lines", "staged_labels", "stage_derived", "import_staged"):
    timed(Store, name)
for name in ("_scan", "infer_labels", "parse_probabilities", "_derive_parts"):
    timed(ingest, name)

store = open_store(db)  # creating + migrating the store is not part of the import
stages, marks = [], []
def progress(stage, fraction):
    marks.append((stage, time.perf_counter()))
t0, c0 = time.perf_counter(), time.process_time()
result = ingest.import_file(store, src, "bench", progress=progress)
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
points = [("start", t0)] + marks
for (name, t), (_, t_next) in zip(points[1:], points[2:]):
    stages.append((name, t_next - t))
counts = store.table_counts()
print(json.dumps({"seconds": elapsed, "cpu": cpu, "rows": result.rows_total, "rows_ok": result.rows_ok,
                  "rows_bad": result.rows_bad, "samples": counts["samples"],
                  "annotations": counts["annotations"], "predictions": counts["predictions"], "stages": stages, "steps": steps,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "workers_cpu": sum(getattr(resource.getrusage(resource.RUSAGE_CHILDREN), f)
                                     for f in ("ru_utime", "ru_stime"))}))
"""


def run_child(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_chat(work: Path, rows: int) -> int:
    """The chat-format run: ``rows`` OpenAI-chat rows (3 per conversation) through the same import, whose
    records pass once through core.records (in worker processes above 64 MB), against a bare CTAS."""
    src = work / "chat.jsonl"
    t0 = time.perf_counter()
    n_conv, size = generate_chat(src, rows)
    print(f"chat: generated {rows:,} rows ({n_conv:,} conversations x {len(ANNOTATORS)} annotators, 2-6 turns), "
          f"{size / 1e6:.0f} MB, {size / rows:.0f} bytes/row, in {time.perf_counter() - t0:.1f} s")
    bare = run_child(CHILD_BARE, str(src), str(work / "chat_bare.duckdb"))
    print(f"(a) bare read_json CTAS : {bare['seconds']:7.2f} s wall {bare['cpu']:7.2f} s CPU"
          f"   peak RSS {bare['peak_rss_mb']:6.0f} MB")
    ours = run_child(CHILD_OURS, str(src), str(work / "chat_store.duckdb"), str(ROOT))
    print(f"(b) core import_file    : {ours['seconds']:7.2f} s wall {ours['cpu']:7.2f} s CPU"
          f" + {ours['workers_cpu']:.2f} s CPU in worker processes"
          f"   peak RSS {ours['peak_rss_mb']:6.0f} MB   ({ours['rows_ok']:,} ok, {ours['rows_bad']:,} bad; "
          f"{ours['samples']:,} samples, {ours['annotations']:,} annotations)")
    derive = ours["steps"].get("_derive_parts", (0.0, 0.0))[0]
    print(f"    {rows / ours['seconds']:,.0f} rows/s end to end; the Python pass (representatives, derive, "
          f"Parquet parts) {derive:.2f} s: {rows / max(derive, 1e-9):,.0f} rows/s, "
          f"{n_conv / max(derive, 1e-9):,.0f} distinct records/s")
    for name, (wall, cpu) in ours["steps"].items():
        print(f"      {name:<22} {wall:7.2f} s  {cpu:7.2f} s CPU  {100 * wall / ours['seconds']:5.1f} %")
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores shared: wall times "
          "stretch with it, CPU times less)")
    print(f"ratio (b / a) = {ours['seconds'] / bare['seconds']:.2f} wall; peak RSS {ours['peak_rss_mb']:.0f} MB "
          f"(target <= {TARGET_RSS_MB} MB) {'OK' if ours['peak_rss_mb'] <= TARGET_RSS_MB else 'MISSED'}")
    if ours["rows_ok"] != rows or ours["annotations"] != rows:
        print("WARNING: not every generated chat row was imported", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None,
                        help="JSONL rows to generate (default 1,000,000; 15,000 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run with 15,000 rows")
    parser.add_argument("--dir", default=None, help="work directory (default: a temporary one, removed after)")
    parser.add_argument("--probs", action="store_true",
                        help="rows also carry 8-label model probabilities (predictions are imported too)")
    parser.add_argument("--chat", action="store_true",
                        help="OpenAI chat records instead (1,000,000 rows: 333,334 multi-turn conversations x 3 "
                             "annotators' quality labels)")
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = 15_000 if args.quick else 1_000_000

    with tempfile.TemporaryDirectory(prefix="bench-import-", dir=args.dir) as tmp:
        work = Path(tmp)
        if args.chat:
            return run_chat(work, args.rows)
        if args.quick and run_chat(work, 6_000):  # the smoke run covers the chat path too
            return 1
        src = work / "bench.jsonl"
        t0 = time.perf_counter()
        n_samples, size = generate(src, args.rows, probs=args.probs)
        print(f"generated {args.rows:,} rows ({n_samples:,} samples x {len(ANNOTATORS)} annotators), "
              f"{size / 1e6:.0f} MB, {size / args.rows:.0f} bytes/row, in {time.perf_counter() - t0:.1f} s")

        bare = run_child(CHILD_BARE, str(src), str(work / "bare.duckdb"))
        print(f"(a) bare read_json CTAS : {bare['seconds']:7.2f} s wall {bare['cpu']:7.2f} s CPU"
              f"   peak RSS {bare['peak_rss_mb']:6.0f} MB   ({bare['rows']:,} rows)")
        ours = run_child(CHILD_OURS, str(src), str(work / "store.duckdb"), str(ROOT))
        print(f"(b) core import_file    : {ours['seconds']:7.2f} s wall {ours['cpu']:7.2f} s CPU"
              f"   peak RSS {ours['peak_rss_mb']:6.0f} MB   ({ours['rows_ok']:,} ok, {ours['rows_bad']:,} bad; "
              f"{ours['samples']:,} samples, {ours['annotations']:,} annotations, {ours['predictions']:,} predictions)")
        print("    stages (wall, from the progress callback):")
        for name, seconds in ours["stages"]:
            print(f"      {name:<18} {seconds:7.2f} s  {100 * seconds / ours['seconds']:5.1f} %")
        print("    steps (wall / CPU; _scan is the sha256 pass, stage_jsonl the key pass and the typed read,"
              " import_staged the SQL validation and write):")
        for name, (wall, cpu) in ours["steps"].items():
            print(f"      {name:<18} {wall:7.2f} s  {cpu:7.2f} s CPU  {100 * wall / ours['seconds']:5.1f} %")
        if not args.probs:  # the floor writes samples and annotations only
            floor = run_child(CHILD_FLOOR, str(src), str(work / "floor.duckdb"), str(ROOT))
            print(f"(c) floor, no checks    : {floor['seconds']:7.2f} s wall {floor['cpu']:7.2f} s CPU"
                  f"   peak RSS {floor['peak_rss_mb']:6.0f} MB   (key pass + typed read + the two inserts; "
                  f"ratio to (a) {floor['seconds'] / bare['seconds']:.2f})")
        ratio = ours["seconds"] / bare["seconds"]
        cpu_ratio = ours["cpu"] / bare["cpu"]
        print(f"ratio (b / a) = {ratio:.2f} wall, {cpu_ratio:.2f} CPU  (target <= {TARGET_RATIO})  "
              f"{'OK' if ratio <= TARGET_RATIO else 'MISSED'}")
        print(f"peak RSS of our import = {ours['peak_rss_mb']:.0f} MB  (target <= {TARGET_RSS_MB} MB)  "
              f"{'OK' if ours['peak_rss_mb'] <= TARGET_RSS_MB else 'MISSED'}")
        if ours["rows_ok"] != ours["rows"] or ours["annotations"] != args.rows:
            print("WARNING: not every generated row was imported", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
