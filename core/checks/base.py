"""The quality-check contract: a check is a small named unit with a title, help, severity and a run.

A check module builds one :class:`Check` and hands it to :func:`core.checks.register`; the report
(:mod:`core.quality_report`), the CLI and the Data quality page loop over the registry, so adding a
check is adding a module to this package. Shared helpers for checks over text fields live here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from core.quality import combine_fields
from core.vocab import TEXT_FIELDS

#: Characters of context shown before and after a matched span.
CONTEXT_CHARS = 30
#: Characters of a text shown in a findings table (the JSON report has the ids to look up the rest).
PREVIEW_CHARS = 300
SEVERITIES: tuple[str, ...] = ("error", "warning", "info")

Progress = Callable[[str, float], Any]


@dataclass
class CheckContext:
    """What a check runs on: the dataset's samples (excluded ones skipped unless asked) and options."""

    store: Any
    dataset: str
    samples: pl.DataFrame
    fields: list[str]
    threshold: float = 0.8
    #: Options of on-demand checks (e.g. ``label_errors``: the method; ``model``: the encoder).
    options: dict[str, Any] = field(default_factory=dict)
    progress: Progress | None = None


@dataclass
class CheckResult:
    """A check's findings: ``frame`` (one row per finding, with ``sample_id``), the summary card's
    ``count`` (None: not computed) and ``detail``, and ``extra`` frames or objects (e.g. pairs)."""

    frame: pl.DataFrame
    count: int | None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """One registered quality check.

    ``run(context) -> CheckResult``. ``on_demand`` checks (they may embed every text) run only
    when the caller asks for them; ``empty`` is the frame schema shown before they ran.
    """

    name: str
    title: str
    help: str
    severity: str
    run: Callable[[CheckContext], CheckResult]
    empty: dict[str, Any]
    order: int = 100
    on_demand: bool = False
    #: The queue reason its findings get by default when sent to review (else ``manual``).
    reason: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"check name {self.name!r}: lowercase letters, digits and _ only")
        if self.severity not in SEVERITIES:
            raise ValueError(f"check {self.name!r}: severity must be one of {', '.join(SEVERITIES)}")

    @property
    def queue_reason(self) -> str:
        return self.reason or "manual"

    def not_run(self, note: str = "not computed") -> CheckResult:
        return CheckResult(pl.DataFrame(schema=self.empty), None, note)


def distinct_count(frame: pl.DataFrame) -> int:
    """Samples with at least one finding."""
    return frame["sample_id"].n_unique() if frame.height else 0


def by_kind(frame: pl.DataFrame) -> str:
    """``"kind n, kind n"``: samples per kind of finding, most first."""
    if frame.height == 0:
        return ""
    counts = frame.group_by("kind").agg(pl.col("sample_id").n_unique().alias("n")).sort(["n", "kind"],
                                                                                         descending=[True, False])
    return ", ".join(f"{k} {n}" for k, n in counts.iter_rows())


def text_fields(samples: pl.DataFrame) -> list[str]:
    """The text fields (of :data:`TEXT_FIELDS`) that hold a value in at least one sample."""
    return [f for f in TEXT_FIELDS if f in samples.columns and samples.get_column(f).is_not_null().any()]


def required_fields(samples: pl.DataFrame) -> list[str]:
    """Fields the completeness check requires: instruction and output when the dataset has them, else ``text``."""
    present = set(text_fields(samples))
    required = [f for f in ("instruction", "output") if f in present]
    if not required:
        required = ["text"] if "text" in present else []
    return required


def preview(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def joined_texts(samples: pl.DataFrame, fields: Sequence[str]) -> list[str]:
    if samples.height == 0 or not fields:
        return [""] * samples.height
    return combine_fields(samples, fields)


def sample_ids(samples: pl.DataFrame) -> list[str]:
    return samples.get_column("sample_id").cast(pl.Utf8).to_list()


_SPAN_SCHEMA = {"sample_id": pl.Utf8, "field": pl.Utf8, "kind": pl.Utf8, "start": pl.Int64, "end": pl.Int64,
                "before": pl.Utf8, "match": pl.Utf8, "after": pl.Utf8}


def span_report(samples: pl.DataFrame, fields: Sequence[str], finder: Callable[[str], list],
                 fixer: Callable[[str], str], fixed_name: str) -> pl.DataFrame:
    schema = {**_SPAN_SCHEMA, fixed_name: pl.Utf8}
    rows: dict[str, list] = {k: [] for k in schema}
    ids = sample_ids(samples)
    for f in fields:
        if f not in samples.columns:
            continue
        for sid, text in zip(ids, samples.get_column(f).to_list()):
            if not text:
                continue
            found = finder(text)
            if not found:
                continue
            fixed = fixer(text)
            for kind, start, end, matched in found:
                lo, hi = max(0, start - CONTEXT_CHARS), min(len(text), end + CONTEXT_CHARS)
                rows["sample_id"].append(sid)
                rows["field"].append(f)
                rows["kind"].append(kind)
                rows["start"].append(start)
                rows["end"].append(end)
                rows["before"].append(("…" if lo > 0 else "") + text[lo:start])
                rows["match"].append(matched)
                rows["after"].append(text[end:hi] + ("…" if hi < len(text) else ""))
                rows[fixed_name].append(fixed)
    order = {f: i for i, f in enumerate(TEXT_FIELDS)}
    frame = pl.DataFrame(rows, schema=schema)
    return (frame.with_columns(pl.col("field").replace_strict(order, default=99, return_dtype=pl.Int32).alias("_f"))
            .sort(["sample_id", "_f", "start"]).drop("_f"))
