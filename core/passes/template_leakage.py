"""Pass ``template_leakage``: chat-template tokens and unfilled placeholders in any field of a sample."""

from __future__ import annotations

import polars as pl

from core import textchecks
from core.checks.base import (
    PASS_FINDING_SCHEMA,
    InstructionView,
    batch_view,
    findings_table,
)
from core.passes import register
from core.passes.base import SamplePass

SCHEMA = PASS_FINDING_SCHEMA


def leakage_findings(view: InstructionView) -> pl.DataFrame:
    """:func:`core.textchecks.template_leakage` over the instruction, input and output of ``view``, the text of a
    plain text record (a conversation's text renders the fields above) and a preference pair's rejected answer
    (kept only in its record), as findings rows without labels."""
    findings: list[dict] = []
    for name in ("instruction", "input", "output"):
        if view.present(name):
            findings += textchecks.template_leakage(view.texts(name), field=name)
    if view.present("text"):
        rows = [i for i, only in enumerate(view.text_only()) if only]
        texts = view.texts("text")
        findings += [{**f, "index": rows[f["index"]]}
                     for f in textchecks.template_leakage([texts[i] for i in rows], field="text")]
    if view.conversations():
        findings += textchecks.template_leakage(view.texts("rejected"), field="rejected")
    return findings_table("template_leakage", view, findings).drop("label")


def compute(batch: pl.DataFrame) -> pl.DataFrame:
    return leakage_findings(batch_view(batch))


PASS = register(SamplePass(name="template_leakage", version=1,
                           columns=("instruction", "input", "output", "text", "shape", "record"), compute=compute,
                           schema=SCHEMA, title="template leakage", pool_min_rows=5_000_000))
