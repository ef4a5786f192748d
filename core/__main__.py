"""The command line: ``python -m core COMMAND``, a thin layer over the same core functions.

Exit status 0 on success, 1 on bad input or a busy store (one line on stderr), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from core.export import ALL_EXPORT_FORMATS
from core.ingest import FORMAT_NAMES
from core.records import SHAPES
from core.store import StoreError, open_store


def _progress_bar(desc: str):
    bar = tqdm(total=100, desc=desc, unit="%", leave=False, file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def update(stage: str, fraction: float) -> None:
        bar.set_postfix_str(stage)
        bar.n = round(fraction * 100)
        bar.refresh()

    return bar, update


def cmd_import(args: argparse.Namespace) -> int:
    from core.ingest import import_file

    store = open_store(args.db)
    labels = [x for x in args.labels.split(",")] if args.labels else None
    bar, update = _progress_bar(f"import {Path(args.file).name}")
    try:
        result = import_file(store, args.file, args.dataset, fmt=args.format, labels=labels,
                             pred_round=args.pred_round, model=args.model, actor=args.actor, progress=update,
                             shape=args.shape, question=args.question, add_labels=args.add_labels)
    finally:
        bar.close()
    print(result.summary())
    if result.rows_bad:
        print(f"rejected rows ({result.rows_bad:,}):", file=sys.stderr)
        for row in result.errors.head(args.show_errors).iter_rows(named=True):
            print(f"  row {row['row']}: {row['reason']}", file=sys.stderr)
        if result.rows_bad > args.show_errors:
            print(f"  ... and {result.rows_bad - args.show_errors} more "
                  f"(all are in the store's import_errors table, import #{result.import_id})", file=sys.stderr)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    store = open_store(args.db)
    if args.json:
        rows = store.dataset_summaries().to_dicts()
        print(json.dumps([{**row, "labels": list(row["labels"])} for row in rows], ensure_ascii=False, indent=1))
        return 0
    df = store.list_datasets()
    if df.height == 0:
        print("no datasets yet: import one with `python -m core import FILE --dataset NAME`")
        return 0
    for row in df.iter_rows(named=True):
        labels = ", ".join(row["labels"])
        print(f"{row['name']}\t{row['n_samples']} samples\tlabels: {labels}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.export import export_gold

    store = open_store(args.db)
    if args.raw and args.mask_pii:
        raise ValueError("--raw and --mask-pii contradict each other: choose one")
    # masked unless --raw; a raw export is a team lead's (or the system actor cli's), and audited
    n = export_gold(store, args.dataset, args.out, fmt=args.format, mask_pii=not args.raw,
                    include_excluded=args.include_excluded, actor=args.actor)
    print(f"wrote {n} {'sample' if n == 1 else 'samples'} with gold labels to {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from core.seed import load_demo

    store = open_store(args.db)
    results = load_demo(store, force=args.force)
    if not results:
        print("the demo datasets are already loaded")
    for r in results:
        print(r.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Annotation quality store and tools.")
    parser.add_argument("--db", default=None, help="DuckDB file (default: $QUALITY_DB or data/quality.duckdb)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import", help="import a JSON lines, JSON array, CSV / TSV or Parquet file into a dataset")
    p.add_argument("file")
    p.add_argument("--dataset", required=True)
    p.add_argument("--format", choices=list(FORMAT_NAMES), default=None,
                   help="the file's format (default: read from its content)")
    p.add_argument("--shape", choices=list(SHAPES), default=None,
                   help="read every record as this shape (default: each record's own)")
    p.add_argument("--question", default=None,
                   help="the label question of a Label Studio or Argilla export that holds several")
    p.add_argument("--labels", default=None, help="comma-separated label set (order matters for probs lists)")
    p.add_argument("--add-labels", action="store_true",
                   help="append the file's new labels to the dataset's label set (else they are rejected rows)")
    p.add_argument("--pred-round", type=int, default=None,
                   help="round of predictions that carry none (Label Studio / Argilla predictions: default 1)")
    p.add_argument("--model", default=None, help="model name of predictions that carry none")
    p.add_argument("--actor", default="cli", help="name recorded in the audit log")
    p.add_argument("--show-errors", type=int, default=20, help="how many rejected rows to print")
    p.add_argument("--db", default=argparse.SUPPRESS, help="DuckDB file (also accepted before the command)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("datasets", help="list datasets")
    p.add_argument("--json", action="store_true",
                   help="print name, samples, annotations, annotators, predictions and labels of each as JSON")
    p.add_argument("--db", default=argparse.SUPPRESS, help="DuckDB file (also accepted before the command)")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("export", help="export gold labels (latest review, else gold question, else the "
                                      "dataset's consensus), each sample in its own shape, personal data masked")
    p.add_argument("--dataset", required=True)
    p.add_argument("--format", choices=list(ALL_EXPORT_FORMATS), required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--mask-pii", action="store_true",
                   help="mask e-mails, phones, ID and card numbers (the default; kept for old scripts)")
    p.add_argument("--raw", action="store_true",
                   help="export personal data unmasked: team leads (and the system actor cli) only, audited")
    p.add_argument("--actor", default="cli", help="name recorded in the audit log (a raw export needs a lead)")
    p.add_argument("--include-excluded", action="store_true", help="also export samples marked excluded")
    p.add_argument("--db", default=argparse.SUPPRESS, help="DuckDB file (also accepted before the command)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="load the bundled demo datasets")
    p.add_argument("--force", action="store_true", help="load even if the demo datasets exist")
    p.add_argument("--db", default=argparse.SUPPRESS, help="DuckDB file (also accepted before the command)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("quality", help="data quality checks: duplicates, completeness, cleaning, PII, label errors, "
                                       "and the instruction-data checks (language, refusals, repetition, chat "
                                       "structure, template leakage, contamination, length ratio)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", default=None, help="write the full report (every finding) to this JSON file")
    p.add_argument("--eval-file", default=None,
                   help="an evaluation set (JSON lines, JSON array, CSV/TSV or Parquet; questions in a column "
                        "question, prompt, text or instruction, else the first text column) for the contamination "
                        "check, which is not run without one")
    p.add_argument("--threshold", type=float, default=0.8, help="near-duplicate Jaccard threshold (default 0.8)")
    p.add_argument("--label-errors", choices=["auto", "model", "embeddings", "skip"], default="auto",
                   help="probabilities for the label-error check: the latest model round's, cross-validated "
                        "embeddings, auto (model if any, else embeddings) or skip")
    p.add_argument("--include-excluded", action="store_true", help="also check samples excluded from export")
    p.add_argument("--db", default=argparse.SUPPRESS, help="DuckDB file (also accepted before the command)")
    p.set_defaults(func=cmd_quality)

    p = sub.add_parser("embed", help="precompute the embeddings of a dataset's texts into the store's cache")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", default=None,
                   help="minilm, use-multilingual, or a local sentence-transformers path/name "
                        "(default: chosen by script detection)")
    p.add_argument("--db", default=argparse.SUPPRESS, help="DuckDB file (also accepted before the command)")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("analyze", help="run the analyses the pages show (agreement, annotators, iterations, drift, "
                                       "quality report) and store their results, so the pages open at once")
    p.add_argument("--dataset", default=None, help="one dataset (default: every dataset)")
    p.add_argument("--jobs", default=None, help="comma-separated job names (default: every analysis job)")
    p.add_argument("--actor", default="cli", help="who runs them (a team lead or a system actor)")
    p.add_argument("--db", default=argparse.SUPPRESS, help="DuckDB file (also accepted before the command)")
    p.set_defaults(func=cmd_analyze)
    return parser


def cmd_embed(args: argparse.Namespace) -> int:
    from core.active_learning import precompute_embeddings

    store = open_store(args.db)
    bar = tqdm(total=0, desc=f"embed {args.dataset}", unit="text", leave=False, file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = precompute_embeddings(store, args.dataset, model=args.model, progress=update,
                                       announce=lambda line: print(f"model: {line}", flush=True))
    finally:
        bar.close()
    print(f"{result['texts']} texts ({result['unique']} distinct): {result['encoded']} encoded, "
          f"{result['cached']} already cached ({result['model_id']}, {result['dim']}-d)")
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from core.checks.contamination import read_eval_texts
    from core.quality_report import (
        CHECKS,
        format_summary,
        run_report,
        write_report_json,
    )

    eval_set = read_eval_texts(args.eval_file) if args.eval_file else None
    store = open_store(args.db)
    method = None if args.label_errors == "skip" else args.label_errors
    total = len(CHECKS) - (method is None)
    bar = tqdm(total=total, desc=f"quality {args.dataset}", unit="check", leave=False, file=sys.stderr)

    def update(stage: str, fraction: float) -> None:
        bar.set_postfix_str(stage)
        bar.n = min(total, int(fraction * total))
        bar.refresh()

    try:
        report = run_report(store, args.dataset, include_excluded=args.include_excluded, threshold=args.threshold,
                            label_errors=method, progress=update,
                            eval_texts=eval_set.texts if eval_set is not None else None)
    finally:
        bar.close()
    if eval_set is not None:
        print(f"evaluation set {eval_set.name}: {len(eval_set.texts):,} questions (column {eval_set.column})")
    print(format_summary(report))
    if args.out:
        write_report_json(report, args.out)
        print(f"wrote the full report to {args.out}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from core.jobs.runner import analyze

    store = open_store(args.db)
    names = [n.strip() for n in args.jobs.split(",") if n.strip()] if args.jobs else None
    bar = tqdm(total=100, leave=False, file=sys.stderr, bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
               disable=not sys.stderr.isatty())  # a log file gets the one line per job only

    def update(dataset: str, job: str, stage: str, fraction: float) -> None:
        bar.set_description_str(f"{job} {dataset}")
        bar.set_postfix_str(stage)
        bar.n = round(fraction * 100)
        bar.refresh()

    def done(outcome) -> None:
        status = "ok" if outcome.error is None else f"FAILED: {outcome.error}"
        bar.clear()
        print(f"{outcome.dataset}\t{outcome.job}\t{outcome.seconds:.2f} s\t{status}", flush=True)

    try:
        outcomes = analyze(store, [args.dataset] if args.dataset else None, names, actor=args.actor,
                           progress=update, done=done)
    finally:
        bar.close()
    failed = [o for o in outcomes if o.error is not None]
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} jobs done in {sum(o.seconds for o in outcomes):.1f} s"
          + (f"; {len(failed)} failed" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (StoreError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the store keeps only whole transactions", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
