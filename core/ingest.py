"""Import of JSONL, CSV and Parquet files: column mapping, row validation, one transaction.

File → DuckDB reader (in :mod:`core.store`) → polars validation here → ``Store.write_import``.
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

from core.auth import require_write
from core.store import TEXT_FIELDS, Store

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "csv",
           ".parquet": "parquet", ".pq": "parquet"}
PROB_TOLERANCE = 1e-3
DEFAULT_ANNOTATOR = "default"
RAW_LIMIT = 2000
MAX_ROUND = 2**31 - 1

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
    mapping.meta = [c for c in columns if c not in taken and c != "__row"]
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


def check_file(path: str | os.PathLike[str], fmt: str) -> tuple[str, bool]:
    """Check that the file exists, is not empty and (for text formats) is UTF-8.

    Returns ``(sha256, has_bom)``. Raises :class:`ImportFileError` with the offending line.
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
    line, offset, has_bom, first = 1, 0, False, True
    try:
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                if fmt != "parquet":
                    if first:
                        has_bom = chunk.startswith(codecs.BOM_UTF8)
                        first = False
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError as exc:
                        bad_at = exc.start
                        line += chunk[:bad_at].count(b"\n")
                        raise ImportFileError(
                            f"{p.name} is not UTF-8: byte 0x{chunk[bad_at]:02x} at line {line} "
                            f"(offset {offset + bad_at}) cannot be decoded; save the file as UTF-8 "
                            "(for example `iconv -f GBK -t UTF-8`) and import it again"
                        ) from None
                    line += chunk.count(b"\n")
                offset += len(chunk)
            if fmt != "parquet":
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    raise ImportFileError(f"{p.name} is not UTF-8: it ends inside a multi-byte character") from None
    except OSError as exc:
        raise ImportFileError(f"cannot read {p}: {exc.strerror or exc}") from None
    return digest.hexdigest(), has_bom


def read_rows(store: Store, path: str, fmt: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read a file into ``(rows, errors)``: ``rows`` has ``__row`` plus the source columns."""
    try:
        if fmt == "jsonl":
            rows, bad = store.read_jsonl(path)
            if "__row" in rows.columns[1:]:
                raise ImportFileError("the file uses the reserved field name '__row'")
            return rows, bad
        if fmt == "csv":
            rows, bad = store.read_csv_rows(path)
            return rows, bad
        rows = store.read_parquet_rows(path)
        return rows, pl.DataFrame(schema={"__row": pl.Int64, "reason": pl.Utf8, "raw": pl.Utf8})
    except ImportFileError:
        raise
    except Exception as exc:  # a reader error is a file-level problem: say it plainly
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImportFileError(f"cannot read {Path(path).name} as {fmt}: {first}") from None


def _as_text(df: pl.DataFrame, column: str | None) -> pl.Expr:
    """A source column as trimmed-free Utf8 (lists and structs as JSON), or a null literal."""
    if column is None:
        return pl.lit(None, dtype=pl.Utf8)
    dtype = df.schema[column]
    if dtype == pl.Utf8:
        return pl.col(column)
    if isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
        return pl.col(column).map_elements(lambda v: json.dumps(v, ensure_ascii=False), return_dtype=pl.Utf8)
    return pl.col(column).cast(pl.Utf8)


def _raw_json(df: pl.DataFrame) -> pl.Series:
    """Each row of the source frame as compact JSON text (for the error report)."""
    cols = [c for c in df.columns if c != "__row"]
    if not cols:
        return pl.Series("raw", [""] * df.height, dtype=pl.Utf8)
    return df.select(pl.struct(cols).struct.json_encode().alias("raw"))["raw"]


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


def infer_labels(df: pl.DataFrame, m: ColumnMapping) -> list[str]:
    """The sorted set of labels a file uses (annotations, predictions, probability columns)."""
    seen: set[str] = set()
    for col in [m.label, m.prediction, *m.wide_labels.values()]:
        if col is not None:
            seen.update(v.strip() for v in df.get_column(col).cast(pl.Utf8).drop_nulls().to_list() if v.strip())
    seen.update(m.prob_columns)
    if m.probs is not None:
        for v in df.get_column(m.probs).drop_nulls().head(10_000).to_list():
            try:
                obj = json.loads(v) if isinstance(v, str) else v
            except (ValueError, TypeError):
                continue
            if isinstance(obj, dict):
                seen.update(str(k) for k in obj)
    return sorted(seen)


def validate(
    df: pl.DataFrame,
    m: ColumnMapping,
    labels: list[str],
    existing: Callable[[pl.Series], pl.DataFrame],
    content_hashes: Callable[[pl.DataFrame], pl.Series],
    pred_round: int | None = None,
    model: str | None = None,
    default_annotator: str = DEFAULT_ANNOTATOR,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Validate source rows; return ``(samples, annotations, predictions, errors)``.

    A row with any problem is rejected whole (its sample, annotations and prediction), with the
    first problem as its reason. ``existing(ids)`` returns stored ``sample_id, content_hash`` of
    those ids; ``content_hashes(frame)`` computes the store's hash for text fields.
    """
    if m.id is None:
        raise ImportFileError("no id column: expected one of " + ", ".join(ALIASES["id"]))
    label_set = set(labels)
    work = df.select(
        pl.col("__row"),
        _as_text(df, m.id).str.strip_chars().alias("sample_id"),
        *[_as_text(df, getattr(m, f)).alias(f) for f in TEXT_FIELDS],
        _as_text(df, m.batch).alias("batch"),
        _as_text(df, m.round).str.strip_chars().alias("round_raw"),
        _as_text(df, m.pred_round).str.strip_chars().alias("pred_round_raw"),
        _as_text(df, m.label).str.strip_chars().alias("label"),
        _as_text(df, m.annotator).str.strip_chars().alias("annotator"),
        _as_text(df, m.confidence).str.strip_chars().alias("confidence_raw"),
        _as_text(df, m.prediction).str.strip_chars().alias("predicted"),
        _as_text(df, m.pred_confidence).str.strip_chars().alias("pred_conf_raw"),
        _as_text(df, m.model).alias("model"),
        *[_as_text(df, c).alias(f"__wide_{i}") for i, c in enumerate(m.wide_labels.values())],
        *[_as_text(df, c).str.strip_chars().alias(f"__prob_{i}") for i, c in enumerate(m.prob_columns.values())],
    )
    errors: list[pl.Expr] = []

    def number(col: str) -> pl.Expr:
        return pl.col(col).cast(pl.Float64, strict=False)

    work = work.with_columns(
        number("round_raw").alias("round_f"),
        number("pred_round_raw").alias("pred_round_f"),
        number("confidence_raw").alias("confidence"),
        number("pred_conf_raw").alias("pred_conf"),
    )
    errors += [
        pl.when(pl.col("sample_id").is_null() | (pl.col("sample_id") == "")).then(pl.lit("missing id")),
        *_round_errors("round_raw", "round_f", "round"),
        *_round_errors("pred_round_raw", "pred_round_f", "prediction round"),
        pl.when(pl.col("confidence_raw").is_not_null() & (pl.col("confidence_raw") != "")
                & (pl.col("confidence").is_null() | pl.col("confidence").is_nan()
                   | (pl.col("confidence") < 0) | (pl.col("confidence") > 1)))
        .then(pl.format("confidence {} is not a number in [0, 1]", pl.col("confidence_raw"))),
        pl.when(pl.col("label").is_not_null() & (pl.col("label") != "")
                & ~pl.col("label").is_in(list(label_set)))
        .then(pl.format("label '{}' is not in the label set", pl.col("label"))),
        pl.when(pl.col("predicted").is_not_null() & (pl.col("predicted") != "")
                & ~pl.col("predicted").is_in(list(label_set)))
        .then(pl.format("predicted label '{}' is not in the label set", pl.col("predicted"))),
    ]
    for i, ann in enumerate(m.wide_labels):
        col = f"__wide_{i}"
        errors.append(
            pl.when(pl.col(col).is_not_null() & (pl.col(col).str.strip_chars() != "")
                    & ~pl.col(col).str.strip_chars().is_in(list(label_set)))
            .then(pl.format("label '{}' of annotator {} is not in the label set", pl.col(col), pl.lit(ann)))
        )

    # Probabilities: a JSON list/object column, or one prob_<label> column per label.
    probs: list[list[float] | None] = [None] * work.height
    prob_errs: list[str | None] = [None] * work.height
    if m.probs is not None:
        probs, prob_errs = _parse_probs(_as_text_series(df, m.probs), labels)
    elif m.prob_columns:
        unknown = [lab for lab in m.prob_columns if lab not in label_set]
        if unknown:
            raise ImportFileError(f"probability columns name labels not in the label set: {unknown}")
        order = {lab: i for i, lab in enumerate(m.prob_columns)}
        cols = [work.get_column(f"__prob_{order[lab]}") if lab in order else None for lab in labels]
        present = work.select(pl.any_horizontal(
            [pl.col(f"__prob_{i}").is_not_null() & (pl.col(f"__prob_{i}") != "") for i in order.values()]
        )).to_series()
        for r in range(work.height):
            if not present[r]:
                continue
            vec: list[float] = []
            bad = None
            for lab, col in zip(labels, cols):
                raw = None if col is None else col[r]
                if raw is None or raw == "":
                    vec.append(0.0 if col is None else float("nan"))
                    continue
                try:
                    vec.append(float(raw))
                except ValueError:
                    bad = f"probability of {lab} {raw!r} is not a number"
                    break
            probs[r], prob_errs[r] = (None, bad) if bad else (vec, None)
    if m.probs is not None or m.prob_columns:
        prob_errs = [e or _prob_problem(v) for v, e in zip(probs, prob_errs)]
        work = work.with_columns(
            pl.Series("probs", probs, dtype=pl.List(pl.Float64)),
            pl.Series("__prob_err", prob_errs, dtype=pl.Utf8),
        )
    else:  # no probabilities in this file: nothing to parse row by row
        work = work.with_columns(pl.lit(None, dtype=pl.List(pl.Float64)).alias("probs"),
                                 pl.lit(None, dtype=pl.Utf8).alias("__prob_err"))
    errors.append(pl.col("__prob_err"))

    has_text = pl.any_horizontal([pl.col(f).is_not_null() for f in TEXT_FIELDS])
    work = work.with_columns(pl.coalesce(errors).alias("__error"), has_text.alias("__has_text"))

    # Duplicates within the file. A row is keyed by its sample, plus its annotator (long form)
    # and its prediction round, so one id may carry several annotators' labels and several
    # rounds' predictions. Rows are in file order, so the first of a key is its first row.
    key = ["sample_id"]
    if m.annotator is not None:
        key.append("annotator")
    if m.pred_round is not None:
        key.append("pred_round_raw")
    ok = work.filter(pl.col("__error").is_null())
    first_of_key = pl.struct(key).is_first_distinct() if len(key) > 1 else pl.col("sample_id").is_first_distinct()
    ok = ok.with_columns(first_of_key.alias("__first"))
    dup = ok.filter(~pl.col("__first"))
    if dup.height:
        firsts = ok.filter(pl.col("__first")).select(*key, pl.col("__row").alias("__first_row"))
        dup = dup.join(firsts, on=key, how="left", nulls_equal=True).select(
            "__row", pl.format("duplicate id '{}' (first at row {})", pl.col("sample_id"), pl.col("__first_row"))
            .alias("reason"))
    else:
        dup = pl.DataFrame(schema={"__row": pl.Int64, "reason": pl.Utf8})
    ok = ok.filter(pl.col("__first")).drop("__first")

    # The text of one id must agree between the rows that repeat it (long form) and with the
    # store. Within the file a fast in-process hash finds the ids whose rows differ; only those
    # rows, and rows of ids already stored, are compared exactly.
    with_text = ok.filter(pl.col("__has_text")).with_columns(
        pl.struct(list(TEXT_FIELDS)).hash().alias("__h"), pl.col("sample_id").is_first_distinct().alias("__first_id"))
    first_text = with_text.filter(pl.col("__first_id"))
    repeated = with_text.filter(~pl.col("__first_id"))
    conflict = repeated.join(first_text.select("sample_id", pl.col("__h").alias("__h0"),
                                               pl.col("__row").alias("__id_first_row")), on="sample_id").filter(
        pl.col("__h") != pl.col("__h0")
    ).select("__row", pl.format("text differs from row {} with the same id '{}'", pl.col("__id_first_row"),
                                pl.col("sample_id")).alias("reason"))
    stored = existing(ok.get_column("sample_id").unique())
    stored = stored.select(pl.col("sample_id").cast(pl.Utf8), pl.col("content_hash").cast(pl.Utf8))
    against_store = with_text.join(stored, on="sample_id", how="inner")
    if against_store.height:
        against_store = against_store.with_columns(content_hashes(against_store).alias("__hash"))
        changed = against_store.filter(pl.col("__hash") != pl.col("content_hash")).select(
            "__row", pl.format("sample '{}' is already stored with different text; not overwritten",
                               pl.col("sample_id")).alias("reason"))
    else:
        changed = pl.DataFrame(schema={"__row": pl.Int64, "reason": pl.Utf8})
    known = pl.concat([stored.select("sample_id"), first_text.select("sample_id")]).unique()
    orphan = ok.filter(~pl.col("__has_text")).join(known, on="sample_id", how="anti").select(
        "__row", pl.format("unknown sample id '{}': the row has no text and the id is not stored",
                           pl.col("sample_id")).alias("reason")
    )
    late = pl.concat([conflict, changed, orphan]).unique("__row", keep="first")
    if late.height:
        ok = ok.join(late.select("__row"), on="__row", how="anti")

    # Samples: first row of each id that carries text; ids already stored are skipped by the store.
    samples = first_text.join(late.select("__row"), on="__row", how="anti") if late.height else first_text
    meta_cols = m.meta
    if meta_cols:
        meta = _meta_json(df, meta_cols)
        samples = samples.join(meta, on="__row", how="left")
    else:
        samples = samples.with_columns(pl.lit(None, dtype=pl.Utf8).alias("meta"))
    samples = samples.select(
        "sample_id", *TEXT_FIELDS, "batch", pl.col("round_f").cast(pl.Int32).alias("round"), "meta"
    )

    # Annotations: long form (label [+ annotator]) and wide form (label_<annotator> columns).
    parts = []
    if m.label is not None:
        ann_name = pl.col("annotator") if m.annotator is not None else pl.lit(default_annotator)
        parts.append(ok.filter(pl.col("label").is_not_null() & (pl.col("label") != "")).select(
            "sample_id", pl.coalesce(ann_name, pl.lit(default_annotator)).alias("annotator"),
            "label", "confidence"))
    for i, ann in enumerate(m.wide_labels):
        col = f"__wide_{i}"
        parts.append(ok.filter(pl.col(col).is_not_null() & (pl.col(col).str.strip_chars() != "")).select(
            "sample_id", pl.lit(ann).alias("annotator"), pl.col(col).str.strip_chars().alias("label"),
            pl.lit(None, dtype=pl.Float64).alias("confidence")))
    annotations = (pl.concat(parts) if parts else
                   pl.DataFrame(schema={"sample_id": pl.Utf8, "annotator": pl.Utf8, "label": pl.Utf8,
                                        "confidence": pl.Float64}))
    if len(parts) > 1 or m.pred_round is not None:  # otherwise the row key already made them unique
        annotations = annotations.unique(["sample_id", "annotator"], keep="first", maintain_order=True)

    # Predictions: a predicted label and/or probabilities. Argmax ties go to the first label.
    pred = ok.filter((pl.col("predicted").is_not_null() & (pl.col("predicted") != "")) | pl.col("probs").is_not_null())
    label_list = pl.Series(labels, dtype=pl.Utf8)
    if pred.height:
        argmax = pred.get_column("probs").list.arg_max()
        from_probs = pl.Series([None if a is None else label_list[a] for a in argmax.to_list()], dtype=pl.Utf8)
        pred = pred.with_columns(from_probs.alias("__argmax"))
    else:
        pred = pred.with_columns(pl.lit(None, dtype=pl.Utf8).alias("__argmax"))
    pred = pred.with_columns(
        pl.when(pl.col("predicted").is_not_null() & (pl.col("predicted") != ""))
        .then(pl.col("predicted")).otherwise(pl.col("__argmax")).alias("predicted"),
    )
    idx = {lab: i for i, lab in enumerate(labels)}
    pred = pred.with_columns(
        pl.coalesce(
            pl.col("pred_conf"),
            pl.col("probs").list.get(pl.col("predicted").replace_strict(idx, default=0, return_dtype=pl.Int64),
                                     null_on_oob=True),
        ).alias("confidence"),
        pl.coalesce(pl.col("pred_round_f"),
                    pl.lit(pred_round, dtype=pl.Float64),
                    pl.col("round_f"), pl.lit(0.0)).cast(pl.Int32).alias("round"),
        pl.coalesce(pl.col("model"), pl.lit(model, dtype=pl.Utf8)).alias("model"),
    )
    predictions = pred.select("sample_id", "round", "model", "predicted", "confidence", "probs").unique(
        ["sample_id", "round"], keep="first", maintain_order=True)

    first_errors = work.filter(pl.col("__error").is_not_null()).select("__row", pl.col("__error").alias("reason"))
    errors_df = pl.concat([first_errors, dup, late]).sort("__row")
    return samples, annotations, predictions, errors_df


def _round_errors(raw: str, parsed: str, what: str) -> list[pl.Expr]:
    """Row errors for a non-empty round that is not a whole number, or not in [0, MAX_ROUND]."""
    value = pl.col(parsed)
    given = pl.col(raw).is_not_null() & (pl.col(raw) != "")
    return [
        pl.when(given & (value.is_null() | value.is_nan() | value.is_infinite() | (value != value.round(0))))
        .then(pl.format(what + " {} is not a whole number", pl.col(raw))),
        pl.when(given & ~value.is_between(0, MAX_ROUND))
        .then(pl.format(what + " {} is out of range (0 to {})", pl.col(raw), pl.lit(MAX_ROUND))),
    ]


def _meta_json(df: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    """``__row, meta``: the unmapped columns of each row as one JSON object (null if all null).

    Values that are themselves JSON objects or arrays (nested fields of a JSONL record) stay
    nested instead of becoming strings; only the rows that have such values pay for a parse.
    """
    text = df.select("__row", *cols)  # native types: Parquet numbers stay numbers
    strings = [c for c in cols if text.schema[c] == pl.Utf8]
    meta = text.select(
        "__row",
        pl.when(pl.any_horizontal([pl.col(c).is_not_null() for c in cols]))
        .then(pl.struct(cols).struct.json_encode()).alias("meta"),
        pl.any_horizontal([pl.col(c).str.starts_with("{") | pl.col(c).str.starts_with("[") for c in strings]
                          or [pl.lit(False)]).fill_null(False).alias("__nested"),
    )
    nested = meta.filter(pl.col("__nested"))
    if nested.height:
        def decode(value: str | None) -> Any:
            if value is None or value[:1] not in "{[":
                return value
            try:
                return json.loads(value)
            except ValueError:
                return value

        rebuilt = [json.dumps({c: decode(r[c]) if c in strings else r[c] for c in cols}, ensure_ascii=False,
                              default=str)
                   for r in text.join(nested.select("__row"), on="__row").iter_rows(named=True)]
        fixed = nested.select("__row").with_columns(pl.Series("meta_fixed", rebuilt, dtype=pl.Utf8))
        meta = meta.join(fixed, on="__row", how="left").with_columns(
            pl.coalesce("meta_fixed", "meta").alias("meta")).drop("meta_fixed")
    return meta.drop("__nested")


def _as_text_series(df: pl.DataFrame, column: str) -> list[Any]:
    s = df.get_column(column)
    if s.dtype == pl.Utf8:
        return s.to_list()
    return [None if v is None else json.dumps(v) for v in s.to_list()]


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
    """
    require_write(actor)
    report = progress or _noop
    dataset = (dataset or "").strip()
    if not dataset:
        raise ImportFileError("a dataset name is required")
    name = display_name or Path(path).name
    fmt = detect_format(display_name or path, fmt)
    report("checking file", 0.0)
    sha, _has_bom = check_file(path, fmt)
    report("reading", 0.1)
    df, read_errors = read_rows(store, str(path), fmt)
    if df.height == 0 and read_errors.height == 0:
        raise ImportFileError(f"{name} has no data rows")
    source_cols = [c for c in df.columns if c != "__row"]
    if not source_cols and read_errors.height:
        first = read_errors.row(0, named=True)
        raise ImportFileError(f"{name}: no row could be read ({read_errors.height} bad rows; "
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
                            info.labels, m, pl.DataFrame(schema={"row": pl.Int64, "reason": pl.Utf8, "raw": pl.Utf8}),
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
        labels = infer_labels(df, m)
    if not labels and (m.label or m.wide_labels or m.prediction or m.probs or m.prob_columns):
        raise ImportFileError(f"{name} has label columns but no labels in them")

    report("validating", 0.4)
    samples, annotations, predictions, errors = validate(
        df, m, labels, lambda ids: store.existing_samples(dataset, ids), store.content_hashes,
        pred_round=pred_round, model=model, default_annotator=annotator,
    )
    raw = df.select("__row").with_columns(_raw_json(df))
    errors = errors.join(raw, on="__row", how="left")
    errors = pl.concat([read_errors.select("__row", "reason", "raw"), errors.select("__row", "reason", "raw")])
    errors = errors.sort("__row").with_columns(pl.col("raw").str.slice(0, RAW_LIMIT))
    rows_total = df.height + read_errors.height
    report("writing", 0.7)
    counts = store.write_import(
        dataset=dataset, labels=labels, file=name, file_sha256=sha, fmt=fmt, rows_total=rows_total,
        samples=samples, annotations=annotations, predictions=predictions, errors=errors, actor=actor,
    )
    report("done", 1.0)
    return ImportResult(
        dataset=dataset, file=name, format=fmt, import_id=counts["import_id"], rows_total=rows_total,
        rows_ok=rows_total - errors.height, samples_new=counts["samples_new"],
        annotations_new=counts["annotations_new"], annotations_changed=counts["annotations_changed"],
        predictions_new=counts["predictions_new"], labels=labels, mapping=m,
        errors=errors.rename({"__row": "row"}),
    )
