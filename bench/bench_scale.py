"""Scale benchmark (issue 18): generate a bilingual store, import it, run every analysis job, time each,
then time every page in Chromium.

Generates N samples (Chinese and English customer-service requests with replies, mixed from the phrases of
``bench_import``, random words, order numbers and amounts so that texts are mostly distinct), each labelled by 3
annotators (85 % agree with the true label), in 2 batches / 2 rounds (the second batch drifts: more Chinese,
longer replies, another label mix), with one model round of probabilities. Then

  1. imports the file (``core.ingest.import_file``; wall time and peak RSS of a child process),
  2. runs ``python -m core analyze --jobs NAME`` for every job in its own child process, so each job's peak
     RSS (``ru_maxrss`` from ``wait4``) is its own, and reads the job's own seconds from its output line,
  3. prints a table: job, seconds, peak RSS, stored result size,
  4. starts ``streamlit run app.py`` on the store, logs in as a team lead in Debian's Chromium (Playwright,
     headless) and times the cold (first after the server start) and warm (second) open of every page of the
     navigation, with the server's peak RSS (``bench/browser_timing.py``; targets: cold <= 3 s, warm <= 1 s,
     server <= 3 GB). A page still computing a job is reported as such. ``--no-pages`` skips this.

    .venv/bin/python bench/bench_scale.py --samples 100000 --dir /tmp/scale100k --out /tmp/scale_100k.json
    .venv/bin/python bench/bench_scale.py --store /tmp/scale100k/scale.duckdb --screenshots /tmp/shots  # pages only
    .venv/bin/python bench/bench_scale.py --compare /tmp/scale_100k.json /tmp/scale_1m.json   # ratios 1M/100k
    .venv/bin/python bench/bench_scale.py --quick          # smoke run: 1,500 samples, every job in one child,
                                                           # 2 pages

``--dir`` (or ``--keep``) keeps the work directory with the store; ``--store`` reuses one and skips
generate, import and analyze. ``--out`` writes every figure as JSON, which ``--compare A B`` reads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
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
#: The issue's target for the scaling ratio of one job or page, 1M / 100k samples (10x the data).
TARGET_RATIO = 12.0
#: The pages --quick times (a smoke run of the browser part: server, login, navigation, warm reopen).
QUICK_PAGES = ("overview", "drift")


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


def analyze_store(work: Path, n: int, names: list[str], quick: bool) -> tuple[dict, bool]:
    """Generate, import and analyze ``n`` samples in ``work``; (figures, every job ok)."""
    src, db = work / "scale.jsonl", work / "scale.duckdb"
    t0 = time.perf_counter()
    size = generate(src, n)
    figures: dict = {"generate": {"seconds": round(time.perf_counter() - t0, 2), "mb": round(size / 1e6, 1)}}
    print(f"generated {n:,} samples x {len(ANNOTATORS)} annotators + 1 model round, 2 batches, "
          f"{size / 1e6:.0f} MB, in {time.perf_counter() - t0:.1f} s", flush=True)
    code, out, err, rss = child([sys.executable, "-c", IMPORT_CHILD, str(src), str(db), str(ROOT)])
    if code != 0:
        print(f"import failed:\n{err[-3000:]}", file=sys.stderr)
        return figures, False
    src.unlink()  # deterministic: the same --samples generates it again
    imported = json.loads(out.strip().splitlines()[-1])
    figures["import"] = {"seconds": round(imported["seconds"], 2), "samples": imported["samples"],
                         "rows": imported["rows_ok"], "peak_rss_mb": round(rss)}
    print(f"import: {imported['seconds']:.1f} s, {imported['samples']:,} samples, peak RSS {rss:.0f} MB", flush=True)

    groups = [names] if quick else [[name] for name in names]
    rows, ok = [], True
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
            ok = False
            print(f"analyze {','.join(group)} exited {code} after {wall:.1f} s:\n{err[-3000:]}", file=sys.stderr)

    from core.store import open_store

    store = open_store(db)
    sizes = dict(store.result_versions("scale").select("job", "bytes").iter_rows())
    store.close()
    print()
    print(f"{'job':<12} {'seconds':>9} {'peak RSS MB':>12} {'result MB':>10}  status")
    for job, seconds, rss, status in rows:
        print(f"{job:<12} {seconds:9.2f} {rss:12.0f} {sizes.get(job, 0) / 1e6:10.2f}  {status}")
    total = sum(r[1] for r in rows)
    peak = max((r[2] for r in rows), default=0.0)
    print(f"{'analyze':<12} {total:9.2f} {peak:12.0f}   ({n:,} samples; target peak <= {TARGET_RSS_MB} MB: "
          f"{'OK' if peak <= TARGET_RSS_MB else 'MISSED'})"
          + ("   (--quick: every job in one child, RSS is the child's)" if quick else ""), flush=True)
    figures["jobs"] = {job: {"seconds": seconds, "peak_rss_mb": round(rss), "result_mb": round(sizes.get(job, 0) / 1e6, 3),
                             "status": status} for job, seconds, rss, status in rows}
    figures["analyze"] = {"seconds": round(total, 2), "peak_rss_mb": round(peak), "one_child": quick}
    return figures, ok and len(rows) == len(names)


def time_pages(db: Path, args: argparse.Namespace) -> tuple[dict | None, bool]:
    """Cold and warm opens of every page in Chromium (bench/browser_timing.py); (figures, ok)."""
    import browser_timing

    if not Path(browser_timing.CHROMIUM).exists():
        print(f"pages: skipped, {browser_timing.CHROMIUM} not found (apt-get install chromium)", flush=True)
        return None, not args.pages  # asked for explicitly: a failure
    print(f"\npages in Chromium ({'fresh server per page' if args.cold_restart else 'one server'}, "
          f"dataset {args.dataset!r}):", flush=True)
    t0 = time.perf_counter()
    try:
        result = browser_timing.run(
            db, args.dataset, only=args.page.split(",") if args.page else (list(QUICK_PAGES) if args.quick else None),
            warm_runs=args.warm_runs,
            timeout=args.page_timeout, screenshots=Path(args.screenshots) if args.screenshots else None,
            restart_per_page=args.cold_restart, port=args.port, login_delay=args.login_delay)
    except Exception as exc:  # noqa: BLE001 - report, keep the analysis figures
        print(f"page timing failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None, False
    print()
    browser_timing.print_table(result)
    print(f"(pages timed in {time.perf_counter() - t0:.0f} s)", flush=True)
    bad = [t for t, p in result["pages"].items() if p["timeout"] or p["exceptions"]]
    return result, not bad


def _ratio(a, b) -> float | None:
    return b / a if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 else None


def compare(path_a: str, path_b: str) -> int:
    """Print the scaling ratio B/A of every job and page figure (e.g. 1M/100k), the time target marked."""
    a, b = (json.loads(Path(p).read_text()) for p in (path_a, path_b))
    na, nb = a.get("samples"), b.get("samples")
    factor = _ratio(na, nb)
    # the target, 12 for 10x the data, scaled to the pair compared (near-linear growth); none for two
    # runs at about the same size (a repeat: the ratio is the noise)
    target = TARGET_RATIO * (factor / 10) if factor else TARGET_RATIO
    marked_any = factor is None or factor >= 2
    print(f"B/A: {Path(path_b).name} ({nb or '?':,} samples) / {Path(path_a).name} ({na or '?':,} samples)"
          + (f" = {factor:.1f}x the data" if factor else "")
          + (f"; time ratio target <= {target:.1f}" if marked_any else "; same size, no target"))
    for name, fig in (("A", a), ("B", b)):
        if fig.get("load_average_start") or fig.get("load_average"):
            print(f"{name}: load average at the start {fig.get('load_average_start', '?')}, "
                  f"at the end {fig.get('load_average', '?')} (other work on the machine stretches wall times)")

    def row(name: str, va, vb, unit: str, marked: bool) -> None:
        r = _ratio(va, vb)
        fa = f"{va:.2f}" if isinstance(va, (int, float)) else "-"
        fb = f"{vb:.2f}" if isinstance(vb, (int, float)) else "-"
        mark = "" if not marked or not marked_any or r is None else ("OK" if r <= target else "MISSED")
        print(f"{name:<28} {fa:>10} {fb:>10} {unit:<3} {f'{r:.2f}' if r is not None else '-':>7}  {mark}")

    print(f"{'figure':<28} {'A':>10} {'B':>10} {'':<3} {'B/A':>7}  target")
    row("import", a.get("import", {}).get("seconds"), b.get("import", {}).get("seconds"), "s", True)
    row("import peak RSS", a.get("import", {}).get("peak_rss_mb"), b.get("import", {}).get("peak_rss_mb"), "MB", False)
    jobs = list(dict.fromkeys([*a.get("jobs", {}), *b.get("jobs", {})]))
    for job in jobs:
        ja, jb = a.get("jobs", {}).get(job, {}), b.get("jobs", {}).get(job, {})
        row(f"job {job}", ja.get("seconds"), jb.get("seconds"), "s", True)
        row(f"job {job} peak RSS", ja.get("peak_rss_mb"), jb.get("peak_rss_mb"), "MB", False)
    row("analyze (sum)", a.get("analyze", {}).get("seconds"), b.get("analyze", {}).get("seconds"), "s", True)
    pa, pb = a.get("pages") or {}, b.get("pages") or {}
    for page in dict.fromkeys([*pa, *pb]):
        xa, xb = pa.get(page, {}), pb.get(page, {})
        for kind in ("cold", "warm"):
            row(f"page {page} {kind}", xa.get(kind), xb.get(kind), "s", True)
        if xa.get("computing") or xb.get("computing"):
            print(f"{'':<28} (still computing in {'A' if xa.get('computing') else ''}"
                  f"{'B' if xb.get('computing') else ''}: the time is not the result's)")
    row("server peak RSS", a.get("server_peak_rss_mb"), b.get("server_peak_rss_mb"), "MB", False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=None, help="samples to generate (default 100,000)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1,500 samples, every job in one child, 2 pages timed")
    parser.add_argument("--jobs", default=None, help="comma-separated jobs (default: every analysis job)")
    parser.add_argument("--pages", action="store_true",
                        help="time the pages in Chromium (the default; with it a missing Chromium is a failure)")
    parser.add_argument("--no-pages", action="store_true", help="skip the page timing")
    parser.add_argument("--page", default=None, help="comma-separated pages to time (url paths or titles; default all)")
    parser.add_argument("--warm-runs", type=int, default=1, help="warm opens per page (the best is reported)")
    parser.add_argument("--page-timeout", type=float, default=None,
                        help="seconds to wait for one page (default 600, 90 with --quick)")
    parser.add_argument("--login-delay", type=float, default=0.0,
                        help="seconds between the login form appearing and the click, untimed (a person typing; "
                             "the server warms up meanwhile). Default 0: logged in at once")
    parser.add_argument("--cold-restart", action="store_true",
                        help="a fresh server for every page, so each page's cold open is the server's first")
    parser.add_argument("--port", type=int, default=8611, help="first port to try for the server")
    parser.add_argument("--screenshots", default=None, help="save a screenshot of every timed page open here")
    parser.add_argument("--dataset", default="scale", help="dataset to select for the pages (default scale)")
    parser.add_argument("--dir", default=None, help="work directory, kept (default: a temporary one, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory with the store")
    parser.add_argument("--store", default=None,
                        help="an existing store (e.g. DIR/scale.duckdb of a kept run): skip generate, import "
                             "and analyze, time the pages")
    parser.add_argument("--out", default=None, help="write every figure as JSON")
    parser.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), default=None,
                        help="print the scaling ratios B/A (e.g. 1M/100k) of two --out files and exit")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if args.page_timeout is None:
        args.page_timeout = 90.0 if args.quick else 600.0
    n = args.samples or (1_500 if args.quick else 100_000)
    figures: dict = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
                     "cpus": os.cpu_count(), "argv": sys.argv[1:] if argv is None else argv,
                     "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    ok = True

    if args.store:
        db = Path(args.store).resolve()
        if not db.exists():
            print(f"store {db} not found", file=sys.stderr)
            return 1
        from core.store import open_store

        store = open_store(db)
        if not store.has_dataset(args.dataset):
            print(f"store {db} has no dataset {args.dataset!r} (it has: {', '.join(store.dataset_names())})",
                  file=sys.stderr)
            return 1
        figures["samples"] = store.table_counts()["samples"]
        store.close()
        figures["store"] = str(db)
        print(f"reusing {db} ({figures['samples']:,} samples in the store); generate, import and analyze skipped",
              flush=True)
        work, remove = None, False
    else:
        from core import jobs as registry

        names = [j.name for j in registry.ordered(args.jobs.split(",") if args.jobs else None)]
        if args.dir:
            work, remove = Path(args.dir).resolve(), False
            work.mkdir(parents=True, exist_ok=True)
            if (work / "scale.duckdb").exists():
                print(f"{work} already holds scale.duckdb: time its pages with --store {work / 'scale.duckdb'}, "
                      "or remove it", file=sys.stderr)
                return 1
        else:
            work, remove = Path(tempfile.mkdtemp(prefix="bench-scale-")), not args.keep
        figures["samples"] = n
        db = work / "scale.duckdb"
        try:
            analysed, ok = analyze_store(work, n, names, args.quick)
        except BaseException:
            if remove:
                shutil.rmtree(work, ignore_errors=True)
            raise
        figures.update(analysed)
        figures["store"] = None if remove else str(db)
        if "import" not in analysed:
            args.no_pages = True
    try:
        if not args.no_pages:
            pages, pages_ok = time_pages(db, args)
            ok = ok and pages_ok
            if pages is not None:
                figures.update(pages)
        figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
        print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores shared: wall times stretch)")
        if args.out:
            Path(args.out).write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"figures written to {args.out}")
        if work is not None and not remove:
            print(f"store kept: {db} (time its pages again with --store {db})")
    finally:
        if remove and work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
