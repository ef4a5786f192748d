"""Degenerate repetition: one phrase or sentence repeated over a large share of a response (characters for CJK)."""

from __future__ import annotations

import polars as pl

from core.checks import register
from core.checks.base import (
    FINDING_SCHEMA,
    Check,
    CheckContext,
    CheckResult,
    findings_result,
    instruction_view,
    per_sample,
    with_labels,
)

EXTRAS = {"unit": pl.Utf8, "count": pl.Int64, "coverage": pl.Float64}


def _run(ctx: CheckContext) -> CheckResult:
    # imported at run time: core.passes imports core.checks
    from core.passes.repetition import repetition_findings

    view = instruction_view(ctx)
    frame = per_sample(ctx, "repetition", lambda: repetition_findings(view))
    return findings_result(with_labels(frame, view, CHECK.empty))


CHECK = register(Check(
    name="repetition", reason="repetition", title="Repetition", severity="warning", order=62, run=_run, empty={**FINDING_SCHEMA, **EXTRAS},
    help="Degenerate repetition in a response (or a plain text): one phrase or sentence repeated at least three times "
         "so that it covers half of the text or more (word 5-grams for space-separated text, character 10-grams for "
         "Chinese). Lists, tables, numbers and code repeat legitimately and are left alone. Count: samples with a "
         "finding.",
))
