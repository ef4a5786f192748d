"""Completeness: required fields that are empty, truncated or degenerate."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from core.checks import register
from core.checks.base import (
    Check,
    CheckContext,
    CheckResult,
    by_kind,
    distinct_count,
    preview,
    required_fields,
)
from core.quality import completeness_issues

_COMPLETENESS_SCHEMA = {"sample_id": pl.Utf8, "field": pl.Utf8, "kind": pl.Utf8, "detail": pl.Utf8,
                        "value": pl.Utf8}


def completeness_report(samples: pl.DataFrame, required: Sequence[str] | None = None) -> pl.DataFrame:
    """:func:`core.quality.completeness_issues` with the field's value: ``sample_id, field, kind, detail, value``.

    ``required`` defaults to :func:`required_fields` (a dataset without outputs is not flagged
    for every sample; the truncation and repetition checks then have nothing to look at).
    """
    required = list(required) if required is not None else required_fields(samples)
    if not required or samples.height == 0:
        return pl.DataFrame(schema=_COMPLETENESS_SCHEMA)
    issues = completeness_issues(samples, required=required)
    if issues.height == 0:
        return pl.DataFrame(schema=_COMPLETENESS_SCHEMA)
    values = []
    for r, f in zip(issues["row"].to_list(), issues["field"].to_list()):
        v = samples[r, f] if f in samples.columns else None
        values.append(preview(v) if v is not None else None)
    return issues.select("sample_id", "field", "kind", "detail").with_columns(
        pl.Series("value", values, dtype=pl.Utf8))


def _run(ctx: CheckContext) -> CheckResult:
    frame = completeness_report(ctx.samples)
    return CheckResult(frame, distinct_count(frame), by_kind(frame))


CHECK = register(Check(
    name="completeness", title="Completeness", severity="error", order=30, run=_run, empty=_COMPLETENESS_SCHEMA,
    help="Empty or missing instruction/output, outputs that end mid-sentence or repeat the instruction, "
         "length outliers (robust z-score). Count: samples with an issue.",
))
