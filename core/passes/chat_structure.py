"""Pass ``chat_structure``: structural faults of each conversation record, read turn by turn."""

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

EXTRAS = {"turn": pl.Int64}
SCHEMA = {**PASS_FINDING_SCHEMA, **EXTRAS}


def chat_findings(view: InstructionView) -> pl.DataFrame:
    """:func:`core.textchecks.chat_structure` over the turns of each conversation record of ``view`` (chat,
    ShareGPT, preference), plus an ``unreadable_record`` error for a record that cannot be read, as findings rows
    without labels."""
    turns = view.conversations()
    rows = sorted(turns)
    readable = [i for i in rows if not isinstance(turns[i], str)]
    findings = textchecks.chat_structure([turns[i] for i in readable])
    findings = [{**f, "index": readable[f["index"]]} for f in findings]
    findings += [{"index": i, "kind": "unreadable_record", "severity": "error", "field": "conversation",
                  "message": f"the record cannot be read as a conversation: {turns[i]}", "start": None, "end": None,
                  "span_text": None, "turn": None} for i in rows if isinstance(turns[i], str)]
    return findings_table("chat_structure", view, findings, EXTRAS).drop("label")


def compute(batch: pl.DataFrame) -> pl.DataFrame:
    return chat_findings(batch_view(batch))


PASS = register(SamplePass(name="chat_structure", version=1, columns=("shape", "record"), compute=compute,
                           schema=SCHEMA, title="chat structure", pool_min_rows=150_000))
