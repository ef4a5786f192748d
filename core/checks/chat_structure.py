"""Chat structure: empty turns, two turns of one role in a row, no user turn, not ending with the assistant."""

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

EXTRAS = {"turn": pl.Int64}


def _run(ctx: CheckContext) -> CheckResult:
    view = instruction_view(ctx)
    turns = view.conversations()
    rows = sorted(turns)
    readable = [i for i in rows if not isinstance(turns[i], str)]
    findings = textchecks.chat_structure([turns[i] for i in readable])
    findings = [{**f, "index": readable[f["index"]]} for f in findings]
    findings += [{"index": i, "kind": "unreadable_record", "severity": "error", "field": "conversation",
                  "message": f"the record cannot be read as a conversation: {turns[i]}", "start": None, "end": None,
                  "span_text": None, "turn": None} for i in rows if isinstance(turns[i], str)]
    note = f"{len(rows):,} conversations checked" if rows else "no chat, ShareGPT or preference records"
    return findings_result(findings_table(CHECK.name, view, findings, EXTRAS), note)


CHECK = register(Check(
    name="chat_structure", reason="chat_structure", title="Chat structure", severity="warning", order=63, run=_run,
    empty={**FINDING_SCHEMA, **EXTRAS},
    help="Conversations (chat, ShareGPT, preference records) read turn by turn: empty turns, two user or two assistant "
         "turns in a row, a conversation that does not end with the assistant, no user turn, a system turn after the "
         "first, a tool result without a call. Instruction and text records have no turns to check. Count: samples "
         "with a finding.",
))
