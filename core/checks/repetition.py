"""Degenerate repetition: one phrase or sentence repeated over a large share of a response (characters for CJK)."""

from __future__ import annotations

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
)

EXTRAS = {"unit": pl.Utf8, "count": pl.Int64, "coverage": pl.Float64}


def _run(ctx: CheckContext) -> CheckResult:
    view = instruction_view(ctx)
    findings = textchecks.repetition(view.texts("output"), field="output")
    if view.present("text"):  # plain text records: their text is what a model learns from
        rows = [i for i, only in enumerate(view.text_only()) if only]
        texts = view.texts("text")
        more = textchecks.repetition([texts[i] for i in rows], field="text")
        findings += [{**f, "index": rows[f["index"]]} for f in more]
    return findings_result(findings_table(CHECK.name, view, findings, EXTRAS))


CHECK = register(Check(
    name="repetition", reason="repetition", title="Repetition", severity="warning", order=62, run=_run, empty={**FINDING_SCHEMA, **EXTRAS},
    help="Degenerate repetition in a response (or a plain text): one phrase or sentence repeated at least three times "
         "so that it covers half of the text or more (word 5-grams for space-separated text, character 10-grams for "
         "Chinese). Lists, tables, numbers and code repeat legitimately and are left alone. Count: samples with a "
         "finding.",
))
