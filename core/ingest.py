"""Import of JSONL, CSV and Parquet files: column mapping, row validation, one transaction.

File → DuckDB staging table (:mod:`core.store`) → column mapping and probabilities here →
validation and write as SQL in one transaction (``Store.import_staged``).
Row-level problems (malformed JSON line, missing id, unknown label, bad probabilities,
duplicate id in the file...) become entries of ``import_errors`` with the 1-based row number,
and the valid rows land. File-level problems (missing, unreadable, not UTF-8, empty, no id
column) raise :class:`ImportFileError` before anything is written.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import polars as pl

from core import vocab
from core.auth import authorize
from core.roles import Action
from core.store import TEXT_FIELDS, ImportPlan, StagedFile, Store

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "csv",
           ".parquet": "parquet", ".pq": "parquet"}
PROB_TOLERANCE = vocab.PROB_SUM_TOLERANCE
DEFAULT_ANNOTATOR = "default"

# Common source names for each target field, matched case-insensitively.
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "sample_id", "uid", "guid", "_id", "idx", "record_id"),
    "instruction": ("instruction", "prompt", "question"),
    "input": ("input", "context"),
    "output": ("output", "response", "answer", "completion"),
    "text": ("text", "content", "sentence", "utterance", "query"),
    "label": ("label", "intent", "category", "class", "grade"),
    "annotator": ("annotator", "rater", "labeler", "labeller", "worker", "annotator_id"),
    "confidence": ("confidence", "annotator_confidence", "label_confidence"),
    "prediction": ("prediction", "predicted", "pred", "pred_label", "predicted_label"),
    "pred_confidence": ("pred_confidence", "model_confidence", "prediction_confidence"),
    "probs": ("probs", "probabilities", "pred_probs", "predicted_probs"),
    "round": ("round", "iteration", "labeling_round"),
    "pred_round": ("pred_round", "model_round", "prediction_round"),
    "batch": ("batch", "batch_id"),
    "model": ("model", "model_name", "model_id"),
}
WIDE_LABEL_PREFIX = "label_"
PROB_PREFIX = "prob_"


class ImportFileError(ValueError):
    """The file as a whole cannot be imported; nothing was written."""


@dataclass
class ColumnMapping:
    """Which source column feeds each target field. ``None`` means absent.

    ``wide_labels`` maps annotator name → column (``label_<annotator>``), ``prob_columns`` maps
    label → column (``prob_<label>``); every other source column is kept in ``meta`` as JSON.
    """

    id: str | None = None
    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    text: str | None = None
    label: str | None = None
    annotator: str | None = None
    confidence: str | None = None
    prediction: str | None = None
    pred_confidence: str | None = None
    probs: str | None = None
    round: str | None = None
    pred_round: str | None = None
    batch: str | None = None
    model: str | None = None
    wide_labels: dict[str, str] = field(default_factory=dict)
    prob_columns: dict[str, str] = field(default_factory=dict)
    meta: list[str] = field(default_factory=list)

    def used(self) -> set[str]:
        single = {getattr(self, k) for k in ALIASES} - {None}
        return single | set(self.wide_labels.values()) | set(self.prob_columns.values())

    def describe(self) -> dict[str, Any]:
        """A JSON-able view (for the page and the CLI)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in ALIASES if getattr(self, k)}
        if self.wide_labels:
            out["wide_labels"] = dict(self.wide_labels)
        if self.prob_columns:
            out["prob_columns"] = dict(self.prob_columns)
        if self.meta:
            out["meta"] = list(self.meta)
        return out


def detect_mapping(columns: list[str]) -> ColumnMapping:
    """Guess the mapping from column names (case-insensitive, first alias wins)."""
    mapping = ColumnMapping()
    lowered = {c.strip().lower(): c for c in reversed(columns)}
    for target, aliases in ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                setattr(mapping, target, lowered[alias])
                break
    taken = mapping.used()
    for c in columns:
        low = c.strip().lower()
        if c in taken:
            continue
        if low.startswith(WIDE_LABEL_PREFIX) and len(low) > len(WIDE_LABEL_PREFIX):
            mapping.wide_labels[c.strip()[len(WIDE_LABEL_PREFIX):]] = c
        elif low.startswith(PROB_PREFIX) and len(low) > len(PROB_PREFIX):
            mapping.prob_columns[c.strip()[len(PROB_PREFIX):]] = c
    taken = mapping.used()
    mapping.meta = [c for c in columns if c not in taken]
    return mapping


@dataclass
class ImportResult:
    """What an import did. ``errors`` has ``row, reason, raw`` for every rejected row."""

    dataset: str
    file: str
    format: str
    import_id: int | None
    rows_total: int
    rows_ok: int
    samples_new: int
    annotations_new: int
    annotations_changed: int
    predictions_new: int
    labels: list[str]
    mapping: ColumnMapping
    errors: pl.DataFrame
    already_imported: bool = False

    @property
    def rows_bad(self) -> int:
        return self.errors.height

    def summary(self) -> str:
        if self.already_imported:
            return (f"{self.file}: identical to import #{self.import_id} into {self.dataset!r}; nothing changed")
        return (f"{self.file} → {self.dataset!r}: {self.rows_ok:,} of {self.rows_total:,} rows imported "
                f"({self.samples_new:,} new samples, {self.annotations_new:,} new annotations, "
                f"{self.annotations_changed:,} changed, {self.predictions_new:,} predictions); "
                f"{self.rows_bad:,} rows rejected")


Progress = Callable[[str, float], None]


def _noop(stage: str, fraction: float) -> None:  # default progress sink
    return None


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    if fmt:
        if fmt not in {"jsonl", "csv", "parquet"}:
            raise ImportFileError(f"unknown format {fmt!r}: expected jsonl, csv or parquet")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ImportFileError(f"cannot tell the format of {Path(path).name!r} from its extension; "
                              "expected .jsonl, .csv or .parquet")
    return FORMATS[suffix]


_BLANK = frozenset(b" \t\n\r\x0b\x0c")


def _scan(path: str | os.PathLike[str], fmt: str, decode: bool) -> tuple[str, int]:
    """Read the file once: ``(sha256, lines)``; ``decode`` also checks UTF-8.

    ``lines`` is the number of lines up to the last non-blank byte (trailing blank lines do
    not count). Raises :class:`ImportFileError` for a missing, empty or (with ``decode``)
    non-UTF-8 file, naming the offending line.
    """
    p = Path(path)
    if not p.exists():
        raise ImportFileError(f"file not found: {p}")
    if not p.is_file():
        raise ImportFileError(f"not a file: {p}")
    if p.stat().st_size == 0:
        raise ImportFileError(f"{p.name} is empty")
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    newlines, last_line, offset = 0, 0, 0
    text = fmt != "parquet"
    try:
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
                if text:
                    if decode:
                        try:
                            decoder.decode(chunk)
                        except UnicodeDecodeError as exc:
                            bad_at = exc.start
                            line = newlines + chunk.count(b"\n", 0, bad_at) + 1
                            raise ImportFileError(
                                f"{p.name} is not UTF-8: byte 0x{chunk[bad_at]:02x} at line {line} "
                                f"(offset {offset + bad_at}) cannot be decoded; save the file as UTF-8 "
                                "(for example `iconv -f GBK -t UTF-8`) and import it again"
                            ) from None
                    in_chunk = chunk.count(b"\n")
                    end = len(chunk)  # the last non-blank byte of the chunk, found from the end
                    while end and chunk[end - 1] in _BLANK:
                        end -= 1
                    if end:
                        last_line = newlines + in_chunk - chunk.count(b"\n", end) + 1
                    newlines += in_chunk
                offset += len(chunk)
            if text and decode:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    raise ImportFileError(f"{p.name} is not UTF-8: it ends inside a multi-byte character") from None
    except OSError as exc:
        raise ImportFileError(f"cannot read {p}: {exc.strerror or exc}") from None
    return digest.hexdigest(), last_line


def stage(store: Store, path: str, fmt: str) -> tuple[StagedFile, str]:
    """Read a file into the store's staging table (call inside ``store.staging()``).

    Returns the staged file and the file's sha256. A JSON-lines file is hashed and its lines
    counted, then tried on the fast path (DuckDB checks its UTF-8 itself); when it is not
    clean, or its rows are not its lines (a blank line inside), it is checked for UTF-8 here,
    so that the message names the line, and read line by line. File-level problems and
    reader failures become one :class:`ImportFileError`.
    """
    try:
        if fmt != "jsonl":
            sha, _ = _scan(path, fmt, decode=fmt == "csv")
            return (store.stage_csv(path) if fmt == "csv" else store.stage_parquet(path)), sha
        sha, lines = _scan(path, fmt, decode=False)  # hashing in a thread beside DuckDB gained nothing
        staged = store.stage_jsonl(path)
        if staged is None or staged.rows != lines:
            _scan(path, fmt, decode=True)
            staged = store.stage_jsonl_lines(path)
        return staged, sha
    except ImportFileError:
        raise
    except Exception as exc:  # a reader error is a file-level problem: say it plainly
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImportFileError(f"cannot read {Path(path).name} as {fmt}: {first}") from None


def preview_file(store: Store, path: str, fmt: str, limit: int = 50) -> tuple[pl.DataFrame, int, pl.DataFrame]:
    """What the Import page shows before an import: ``(head, rows, errors)``.

    ``head`` holds the first ``limit`` rows with the file's columns (all of them, even those
    empty in the first rows), ``rows`` the number of
    rows read, ``errors`` (``__row, reason, raw``) the records that could not be read. The
    whole file is staged in DuckDB, but only ``limit`` rows come back to Python.
    """
    with store.staging():
        staged, _ = stage(store, path, fmt)
        return store.staged_rows(staged, limit), staged.rows, staged.bad


def _parse_probs(values: list[Any], labels: list[str]) -> tuple[list[list[float] | None], list[str | None]]:
    """Parse one probability vector per row (JSON list aligned with ``labels``, or label→p object)."""
    out: list[list[float] | None] = []
    errs: list[str | None] = []
    index = {lab: i for i, lab in enumerate(labels)}
    for v in values:
        if v is None:
            out.append(None)
            errs.append(None)
            continue
        try:
            obj = json.loads(v) if isinstance(v, str) else v
        except (ValueError, TypeError):
            out.append(None)
            errs.append(f"probabilities are not a JSON list: {str(v)[:80]!r}")
            continue
        if isinstance(obj, dict):
            unknown = [k for k in obj if k not in index]
            if unknown:
                out.append(None)
                errs.append(f"probabilities name labels not in the label set: {unknown[:3]}")
                continue
            vec = [0.0] * len(labels)
            for k, p in obj.items():
                vec[index[k]] = p
            obj = vec
        if not isinstance(obj, list) or len(obj) != len(labels):
            out.append(None)
            got = len(obj) if isinstance(obj, list) else type(obj).__name__
            errs.append(f"probabilities must be a list of {len(labels)} numbers (one per label), got {got}")
            continue
        try:
            vec = [float("nan") if p is None else float(p) for p in obj]
        except (TypeError, ValueError):
            out.append(None)
            errs.append("probabilities contain a value that is not a number")
            continue
        out.append(vec)
        errs.append(None)
    return out, errs


def _prob_problem(vec: list[float] | None) -> str | None:
    if vec is None:
        return None
    if any(math.isnan(p) for p in vec):
        return "probabilities contain NaN"
    if any(p < 0 or p > 1 for p in vec):
        return "probabilities must lie in [0, 1]"
    total = sum(vec)
    if abs(total - 1.0) > PROB_TOLERANCE:
        return f"probabilities sum to {total:.6g}, not 1 (tolerance {PROB_TOLERANCE:g})"
    return None


def infer_labels(store: Store, staged: StagedFile, m: ColumnMapping) -> list[str]:
    """The sorted set of labels a staged file uses (annotations, predictions, probability columns)."""
    pos = {name: i for i, name in enumerate(staged.columns)}
    seen = store.staged_labels(staged, [pos[c] for c in [m.label, m.prediction, *m.wide_labels.values()]
                                        if c is not None])
    seen.update(m.prob_columns)
    if m.probs is not None:
        i = pos[m.probs]
        for v in store.staged_values(staged, [i], limit=10_000)[f"c{i}"].to_list():
            try:
                obj = json.loads(v) if isinstance(v, str) else v
            except (ValueError, TypeError):
                continue
            if isinstance(obj, dict):
                seen.update(str(k) for k in obj)
    return sorted(seen)


def parse_probabilities(store: Store, staged: StagedFile, m: ColumnMapping, labels: list[str]) -> None:
    """Parse the probabilities of every staged row that carries them, for the validation.

    A ``probs`` column holds a list aligned with ``labels`` or a ``{label: p}`` object;
    ``prob_<label>`` columns give one label each (labels without a column get 0). Clean
    vectors (one number in [0, 1] per label, summing to 1 within the tolerance) are parsed
    in SQL; the rest (objects, NaN, bad numbers, wrong lengths...) here in Python, which
    also words the row's error. Python's JSON reader accepts the ``NaN`` that exporters
    write, so a NaN is reported as a NaN rather than as bad JSON.
    """
    pos = {name: i for i, name in enumerate(staged.columns)}
    if m.probs is not None:
        i = pos[m.probs]
        values = store.stage_clean_probabilities(staged, [i], as_list=True, n_labels=len(labels),
                                                 tolerance=PROB_TOLERANCE)
        probs, errs = _parse_probs(values[f"c{i}"].to_list(), labels)
    else:
        unknown = [lab for lab in m.prob_columns if lab not in set(labels)]
        if unknown:
            raise ImportFileError(f"probability columns name labels not in the label set: {unknown}")
        columns = {lab: pos[col] for lab, col in m.prob_columns.items()}
        values = store.stage_clean_probabilities(staged, [columns.get(lab) for lab in labels], as_list=False,
                                                 n_labels=len(labels), tolerance=PROB_TOLERANCE)
        cells = {lab: values[f"c{i}"].to_list() for lab, i in columns.items()}
        probs, errs = [], []
        for r in range(values.height):
            vec: list[float] = []
            bad = None
            for lab in labels:
                if lab not in cells:
                    vec.append(0.0)
                    continue
                raw = cells[lab][r]
                raw = raw.strip() if isinstance(raw, str) else raw
                if raw is None or raw == "":
                    vec.append(float("nan"))
                    continue
                try:
                    vec.append(float(raw))
                except (TypeError, ValueError):
                    bad = f"probability of {lab} {raw!r} is not a number"
                    break
            probs.append(None if bad else vec)
            errs.append(bad)
    errs = [e or _prob_problem(v) for v, e in zip(probs, errs)]
    store.stage_probabilities(pl.DataFrame({"__row": values["__row"],
                                            "probs": pl.Series(probs, dtype=pl.List(pl.Float64)),
                                            "err": pl.Series(errs, dtype=pl.Utf8)}))


def import_file(
    store: Store,
    path: str | os.PathLike[str],
    dataset: str,
    *,
    fmt: str | None = None,
    labels: list[str] | None = None,
    mapping: ColumnMapping | None = None,
    pred_round: int | None = None,
    model: str | None = None,
    annotator: str = DEFAULT_ANNOTATOR,
    actor: str = "cli",
    display_name: str | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import one file into ``dataset`` (created on first import) in one transaction.

    ``labels`` fixes the label set (for a new dataset, or new labels to append); otherwise the
    dataset's stored set is used, or for a new dataset the sorted labels seen in the file.
    A ``probs`` list is aligned with that label order; a JSON object ``{label: p}`` or
    ``prob_<label>`` columns name labels explicitly. ``pred_round`` sets the round of
    predictions that carry none. Importing the same file again (same bytes) writes nothing.

    The file is read once into a DuckDB staging table; validation and the write run there as
    SQL (:meth:`core.store.Store.import_staged`), so big files never travel through Python.
    """
    authorize(actor, Action.IMPORT)
    report = progress or _noop
    dataset = (dataset or "").strip()
    if not dataset:
        raise ImportFileError("a dataset name is required")
    name = display_name or Path(path).name
    fmt = detect_format(display_name or path, fmt)
    report("reading", 0.0)
    with store.staging():
        staged, sha = stage(store, str(path), fmt)
        if staged.rows == 0 and staged.bad.height == 0:
            raise ImportFileError(f"{name} has no data rows")
        source_cols = staged.columns
        if not source_cols and staged.bad.height:
            first = staged.bad.row(0, named=True)
            raise ImportFileError(f"{name}: no row could be read ({staged.bad.height} bad rows; "
                                  f"row {first['__row']}: {first['reason']})")
        m = mapping or detect_mapping(source_cols)
        missing = [c for c in m.used() if c not in source_cols]
        if missing:
            raise ImportFileError(f"mapped column(s) not in the file: {missing}")
        if m.id is None:
            raise ImportFileError(
                f"{name} has no id column: expected one of {', '.join(ALIASES['id'])} "
                f"(columns found: {', '.join(source_cols[:20]) or 'none'})"
            )
        if m.label is None and not m.wide_labels and m.prediction is None and m.probs is None \
                and not m.prob_columns and not any(getattr(m, f) for f in TEXT_FIELDS):
            raise ImportFileError(f"{name} has an id but no text, label or prediction columns")

        earlier = store.find_import(dataset, sha)
        if earlier is not None:
            report("done", 1.0)
            info = store.get_dataset(dataset)
            return ImportResult(dataset, name, fmt, earlier["import_id"], earlier["rows_total"], 0, 0, 0, 0, 0,
                                info.labels, m,
                                pl.DataFrame(schema={"row": pl.Int64, "reason": pl.Utf8, "raw": pl.Utf8}),
                                already_imported=True)

        stored_labels = store.get_dataset(dataset).labels if store.has_dataset(dataset) else None
        if labels is not None:
            labels = [str(x).strip() for x in labels if str(x).strip()]
            if len(set(labels)) != len(labels):
                raise ImportFileError("the label set has duplicates")
            if stored_labels is not None:
                labels = stored_labels + [x for x in labels if x not in stored_labels]
        elif stored_labels is not None:
            labels = stored_labels
        else:
            labels = infer_labels(store, staged, m)
        if not labels and (m.label or m.wide_labels or m.prediction or m.probs or m.prob_columns):
            raise ImportFileError(f"{name} has label columns but no labels in them")

        report("validating and writing", 0.4)
        has_probs = m.probs is not None or bool(m.prob_columns)
        if has_probs:
            parse_probabilities(store, staged, m, labels)
        pos = {c: i for i, c in enumerate(source_cols)}
        plan = ImportPlan(
            fields={target: pos[getattr(m, target)] for target in ALIASES
                    if target != "probs" and getattr(m, target) is not None},
            labels=labels,
            wide=[(ann, pos[col]) for ann, col in m.wide_labels.items()],
            meta=[pos[c] for c in m.meta],
            has_probs=has_probs, pred_round=pred_round, model=model, default_annotator=annotator,
        )
        counts, errors = store.import_staged(staged, plan, dataset=dataset, file=name, file_sha256=sha,
                                             fmt=fmt, actor=actor)
    report("done", 1.0)
    rows_total = staged.rows + staged.bad.height
    return ImportResult(
        dataset=dataset, file=name, format=fmt, import_id=counts["import_id"], rows_total=rows_total,
        rows_ok=rows_total - errors.height, samples_new=counts["samples_new"],
        annotations_new=counts["annotations_new"], annotations_changed=counts["annotations_changed"],
        predictions_new=counts["predictions_new"], labels=labels, mapping=m,
        errors=errors.rename({"__row": "row"}),
    )
