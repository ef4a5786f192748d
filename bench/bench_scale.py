"""Scale benchmark (issue 18): generate a bilingual store, import it, run every analysis job, time each.

Generates N samples (Chinese and English customer-service requests with replies, mixed from the phrases of
``bench_import``, random words, order numbers and amounts so that texts are mostly distinct), each labelled by 3
annotators (85 % agree with the true label), in 2 batches / 2 rounds (the second batch drifts: more Chinese,
longer replies, another label mix), with one model round of probabilities. Then

  1. imports the file (``core.ingest.import_file``; wall time and peak RSS of a child process),
  2. runs ``python -m core analyze --jobs NAME`` for every job in its own child process, so each job's peak
     RSS (``ru_maxrss`` from ``wait4``) is its own, and reads the job's own seconds from its output line,
  3. prints a table: job, seconds, peak RSS, stored result size.

    .venv/bin/python bench/bench_scale.py --samples 100000
    .venv/bin/python bench/bench_scale.py --quick          # smoke run: 1,500 samples, every job in one child
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
# the phrases of the import benchmark (importable once bench/ is on the path)
from bench_import import ANNOTATORS, EN, LABELS, REPLY_EN, REPLY_ZH, ZH

# The targets on 2 cores: analyze of 1M samples (embeddings aside) in 10 min, 200k in 180 s; 4 GB.
TARGET_RSS_MB = 4096


# Words to vary each request with: without them most texts would be near duplicates of one another (20 phrases),
# and the near-duplicate check would measure the size of those clusters rather than its own scaling.
_WORDS_EN = sorted({w.strip(",.?!").lower() for t in EN + REPLY_EN for w in t.split()} |
                   {"blue", "phone", "laptop", "charger", "jacket", "shoes", "monday", "friday", "urgent",
                    "again", "gift", "warehouse", "courier", "voucher", "member", "store", "size", "color"})
_WORDS_ZH = sorted({t[i:i + 2] for t in ZH + REPLY_ZH for i in range(0, len(t) - 1, 2)
                    if t[i:i + 2].isalnum()})


def templated_request(rng: random.Random, second: bool) -> tuple[bool, str, str]:
    """One bilingual customer request and its canned reply: (Chinese?, instruction, output). The second batch
    is more Chinese and has longer replies. bench_quality.py builds its templated texts with it too."""
    zh = rng.random() < (0.7 if second else 0.4)
    phrase = rng.choice(ZH if zh else EN)
    order = f"{rng.randrange(10**9):09d}"
    extra = rng.sample(_WORDS_ZH if zh else _WORDS_EN, 4 + rng.randrange(8))
    instruction = (f"{phrase}{''.join(extra)}，订单号 {order}，金额 {rng.randrange(10, 5000)} 元。" if zh else
                   f"{phrase} {' '.join(extra)}. Order {order}, amount ${rng.randrange(10, 5000)}.")
    output = " ".join(rng.choice(REPLY_ZH if zh else REPLY_EN) for _ in range(1 + rng.randrange(4 if second else 2)))
    return zh, instruction, output


def generate(path: Path, n_samples: int, seed: int = 7) -> int:
    """Write ``n_samples`` x 3 annotator rows as JSON lines (with the model's probabilities); return the bytes."""
    rng = random.Random(seed)
    half = n_samples // 2
    with open(path, "w", encoding="utf-8") as fh:
        buf: list[str] = []
        for s in range(n_samples):
            second = s >= half
            _, instruction, output = templated_request(rng, second)
            true = min(len(LABELS) - 1, int(rng.random() ** (0.6 if second else 1.0) * len(LABELS)))
            weights = [rng.random() + (3.0 if k == true else 0.0) for k in range(len(LABELS))]
            base = {"id": f"s{s:07d}", "instruction": instruction, "output": output,
                    "batch": "b2" if second else "b1", "round": 2 if second else 1,
                    "probs": [round(w / sum(weights), 6) for w in weights], "pred_round": 1}
            for annotator in ANNOTATORS:
                label = LABELS[true] if rng.random() < 0.85 else LABELS[rng.randrange(len(LABELS))]
                buf.append(json.dumps({**base, "label": label, "annotator": annotator}, ensure_ascii=False))
            if len(buf) >= 30_000:
                fh.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            fh.write("\n".join(buf) + "\n")
    return path.stat().st_size


IMPORT_CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
from core.ingest import import_file
from core.store import open_store
store = open_store(sys.argv[2])
t0 = time.perf_counter()
result = import_file(store, sys.argv[1], "scale", labels=None)
print(json.dumps({"seconds": time.perf_counter() - t0, "rows_ok": result.rows_ok, "samples": result.samples_new,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


PAGES_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[2]); sys.path.insert(0, sys.argv[2] + "/bench")
from page_timing import time_page
out = {}
for page in sys.argv[3:]:
    cold, warm, at = time_page(sys.argv[1], page, 2)
    out[page] = {"cold": cold, "warm": min(warm), "computing": bool(at.get("progress"))}
print(json.dumps(out))
"""
#: The pages that read persisted job results (the others still compute in their run).
JOB_PAGES = ("pages/agreement.py", "pages/drift.py")


def child(args: list[str]) -> tuple[int, str, str, float]:
    """Run a child process; its exit status, stdout, stderr and its own peak RSS in MB (``wait4``)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=None, help="samples to generate (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,500 samples, every job in one child")
    parser.add_argument("--jobs", default=None, help="comma-separated jobs (default: every analysis job)")
    parser.add_argument("--pages", action="store_true",
                        help="then time a cold and a warm headless run (AppTest) of the pages that read the results")
    parser.add_argument("--dir", default=None, help="work directory (default: a temporary one, removed after)")
    args = parser.parse_args(argv)
    n = args.samples or (1_500 if args.quick else 100_000)

    from core import jobs as registry

    names = [j.name for j in registry.ordered(args.jobs.split(",") if args.jobs else None)]
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=args.dir) as tmp:
        work = Path(tmp)
        src, db = work / "scale.jsonl", work / "scale.duckdb"
        t0 = time.perf_counter()
        size = generate(src, n)
        print(f"generated {n:,} samples x {len(ANNOTATORS)} annotators + 1 model round, 2 batches, "
              f"{size / 1e6:.0f} MB, in {time.perf_counter() - t0:.1f} s", flush=True)
        code, out, err, rss = child([sys.executable, "-c", IMPORT_CHILD, str(src), str(db), str(ROOT)])
        if code != 0:
            print(f"import failed:\n{err[-3000:]}", file=sys.stderr)
            return 1
        imported = json.loads(out.strip().splitlines()[-1])
        print(f"import: {imported['seconds']:.1f} s, {imported['samples']:,} samples, peak RSS {rss:.0f} MB", flush=True)

        groups = [names] if args.quick else [[name] for name in names]
        rows, failed = [], False
        for group in groups:
            cmd = [sys.executable, "-m", "core", "--db", str(db), "analyze", "--dataset", "scale",
                   "--jobs", ",".join(group)]
            t0 = time.perf_counter()
            code, out, err, rss = child(cmd)
            wall = time.perf_counter() - t0
            for line in out.splitlines():
                parts = line.split("\t")
                if len(parts) == 4 and parts[0] == "scale":
                    seconds = float(parts[2].split()[0])
                    rows.append((parts[1], seconds, rss, parts[3]))
                    print(f"  {parts[1]:<12} {seconds:8.2f} s   peak RSS {rss:6.0f} MB   {parts[3]}", flush=True)
            if code != 0:
                failed = True
                print(f"analyze {','.join(group)} exited {code} after {wall:.1f} s:\n{err[-3000:]}", file=sys.stderr)

        from core.store import open_store

        sizes = dict(open_store(db).result_versions("scale").select("job", "bytes").iter_rows())
        print()
        print(f"{'job':<12} {'seconds':>9} {'peak RSS MB':>12} {'result MB':>10}  status")
        for job, seconds, rss, status in rows:
            print(f"{job:<12} {seconds:9.2f} {rss:12.0f} {sizes.get(job, 0) / 1e6:10.2f}  {status}")
        total = sum(r[1] for r in rows)
        peak = max((r[2] for r in rows), default=0.0)
        print(f"{'analyze':<12} {total:9.2f} {peak:12.0f}   ({n:,} samples; target peak <= {TARGET_RSS_MB} MB: "
              f"{'OK' if peak <= TARGET_RSS_MB else 'MISSED'})")
        if args.pages:
            code, out, err, rss = child([sys.executable, "-c", PAGES_CHILD, str(db), str(ROOT), *JOB_PAGES])
            if code != 0:
                print(f"page timing failed:\n{err[-3000:]}", file=sys.stderr)
                failed = True
            else:
                for page, t in json.loads(out.strip().splitlines()[-1]).items():
                    print(f"{page:<22} cold {t['cold']:6.2f} s   warm {t['warm']:6.2f} s"
                          + ("   (still computing)" if t["computing"] else "") + f"   server peak RSS {rss:.0f} MB")
        print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores shared: wall times stretch)")
    return 1 if failed or len(rows) != len(names) else 0


if __name__ == "__main__":
    sys.exit(main())
