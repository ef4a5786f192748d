"""Contamination: samples that share a long n-gram with an evaluation set the lead supplies (a file or an upload)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from core import textchecks
from core.checks import register
from core.checks.base import (
    FINDING_SCHEMA,
    Check,
    CheckContext,
    CheckResult,
    findings_result,
    findings_table,
    instruction_view,
    preview,
)

EXTRAS = {"eval_index": pl.Int64, "eval_coverage": pl.Float64, "eval_matches": pl.Int64, "eval_text": pl.Utf8}
#: Columns that hold an evaluation set's questions, in the order they are looked for (case-insensitive).
EVAL_COLUMNS: tuple[str, ...] = ("question", "prompt", "text", "instruction")
NOT_RUN = "not run: no evaluation set"


@dataclass(frozen=True)
class EvalSet:
    """The questions of an evaluation set: ``texts`` (non-blank, in file order), the ``column`` they came from,
    the file's ``name`` and a ``digest`` of the texts (a cache key)."""

    texts: tuple[str, ...]
    column: str
    name: str

    @property
    def digest(self) -> str:
        h = hashlib.sha1()
        for t in self.texts:
            h.update(t.encode("utf-8"))
            h.update(b"\0")
        return h.hexdigest()


def _pick_column(columns: Sequence[str], is_text: dict[str, bool], name: str) -> str:
    lower = {c.strip().lower(): c for c in reversed(list(columns))}
    for wanted in EVAL_COLUMNS:
        if wanted in lower and is_text.get(lower[wanted], False):
            return lower[wanted]
    for c in columns:
        if is_text.get(c, False):
            return c
    shown = ", ".join(columns) or "none"
    raise ValueError(f"{name}: no text column with the questions: expected {', '.join(EVAL_COLUMNS)} or any column "
                     f"of strings; the columns are {shown}")


def _from_objects(records: Sequence[object], name: str) -> tuple[str, list]:
    columns: list[str] = []
    is_text: dict[str, bool] = {}
    for k, rec in enumerate(records, 1):
        if not isinstance(rec, dict):
            raise ValueError(f"{name}: record {k} is not an object with a question field")  # noqa: TRY004 (bad input)
        for key, value in rec.items():
            if key not in is_text:
                columns.append(key)
                is_text[key] = True
            if value is not None and not isinstance(value, str):
                is_text[key] = False
    column = _pick_column(columns, is_text, name)
    return column, [rec.get(column) for rec in records]  # type: ignore[union-attr]


def _from_frame(frame: pl.DataFrame, name: str) -> tuple[str, list]:
    is_text = {c: frame.schema[c] in (pl.Utf8, pl.Null) for c in frame.columns}
    column = _pick_column(frame.columns, is_text, name)
    return column, frame.get_column(column).to_list()


def read_eval_texts(source: str | os.PathLike[str] | bytes, name: str | None = None) -> EvalSet:
    """Read an evaluation set's questions from a JSON lines / JSON array / CSV / TSV / Parquet file (or its bytes,
    e.g. an upload; ``name`` is then the file name shown in errors). The format is read from the content.

    The questions are the column ``question``, ``prompt``, ``text`` or ``instruction`` (the first present,
    case-insensitive), else the first column of strings. Blank values are dropped. Raises ``ValueError`` with the file
    name and what was expected for an empty or unreadable file, a record that is not an object, a file without a text
    column, or one without any question.
    """
    if isinstance(source, (bytes, bytearray)):
        label = name or "the evaluation file"
        with tempfile.TemporaryDirectory(prefix="quality-eval-") as tmp:
            path = Path(tmp) / (Path(name).name if name else "eval")
            path.write_bytes(bytes(source))
            return _read_eval_path(path, label)
    path = Path(source)
    return _read_eval_path(path, name or path.name)


def _read_eval_path(path: Path, name: str) -> EvalSet:
    from core.records import iter_json_array, sniff_container

    try:
        container = sniff_container(path)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    try:
        if container == "jsonl":
            records = []
            with open(path, encoding="utf-8-sig") as fh:
                for k, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            records.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise ValueError(f"{name}: line {k} is not valid JSON ({exc.msg})") from None
            column, values = _from_objects(records, name)
        elif container == "json_array":
            records = []
            for batch in iter_json_array(path):
                for k, rec in batch:
                    if isinstance(rec, str):  # iter_json_array's message for an element it cannot read
                        raise ValueError(f"{name}: record {k}: {rec}")  # noqa: TRY004 (bad input)
                    records.append(rec)
            column, values = _from_objects(records, name)
        elif container == "parquet":
            column, values = _from_frame(pl.read_parquet(path), name)
        else:
            frame = pl.read_csv(path, separator="\t" if container == "tsv" else ",", infer_schema=False,
                                encoding="utf8")
            column, values = _from_frame(frame, name)
    except ValueError:
        raise
    except (pl.exceptions.PolarsError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{name}: cannot read it as {container} ({str(exc).splitlines()[0]})") from None
    texts = tuple(v for v in values if isinstance(v, str) and v.strip())
    if not texts:
        raise ValueError(f"{name}: column {column!r} holds no questions")
    return EvalSet(texts, column, name)


def _run(ctx: CheckContext) -> CheckResult:
    eval_texts = ctx.options.get("eval_texts")
    if not eval_texts:
        return CHECK.not_run(NOT_RUN)
    eval_texts = list(eval_texts)
    view = instruction_view(ctx)
    findings: list[dict] = []
    for field in ("instruction", "input", "output"):
        if view.present(field):
            findings += textchecks.contamination(view.texts(field), eval_texts, field=field)
    if view.present("text"):
        rows = [i for i, only in enumerate(view.text_only()) if only]
        texts = view.texts("text")
        findings += [{**f, "index": rows[f["index"]]}
                     for f in textchecks.contamination([texts[i] for i in rows], eval_texts, field="text")]
    for f in findings:
        f["eval_text"] = preview(eval_texts[f["eval_index"]], 200)
    return findings_result(findings_table(CHECK.name, view, findings, EXTRAS),
                           f"{len(eval_texts):,} evaluation items")


CHECK = register(Check(
    name="contamination", title="Contamination", reason="contamination", severity="error", order=65, run=_run,
    empty={**FINDING_SCHEMA, **EXTRAS},
    help="Samples that overlap an evaluation set you supply (python -m core quality --eval-file FILE, or an upload "
         "here): a shared word 13-gram for space-separated text, a shared character 13-gram for Chinese; n-grams "
         "common to many evaluation items (question templates) are ignored. The matched span is shown. Not run "
         "without an evaluation set. Count: samples with a finding.",
))
