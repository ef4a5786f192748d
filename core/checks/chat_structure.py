"""Chat structure: empty turns, two turns of one role in a row, no user turn, not ending with the assistant."""

from __future__ import annotations

import polars as pl

from core.checks import register
from core.checks.base import (
    CONVERSATION_SHAPES,
    FINDING_SCHEMA,
    Check,
    CheckContext,
    CheckResult,
    findings_result,
    instruction_view,
    per_sample,
    with_labels,
)

EXTRAS = {"turn": pl.Int64}


def _conversations(ctx: CheckContext) -> int:
    """How many samples are conversation records (without reading them: the store knows each sample's shape)."""
    shapes = ctx.store.sample_shapes(ctx.dataset)
    return (ctx.samples.select(pl.col("sample_id").cast(pl.Utf8))
            .join(shapes.filter(pl.col("shape").is_in(list(CONVERSATION_SHAPES)) & pl.col("has_record")),
                  on="sample_id", how="semi").height)


def _run(ctx: CheckContext) -> CheckResult:
    # imported at run time: core.passes imports core.checks
    from core.passes.chat_structure import chat_findings

    view = instruction_view(ctx)
    checked: list[int] = []

    def direct() -> pl.DataFrame:
        checked.append(len(view.conversations()))
        return chat_findings(view)

    frame = per_sample(ctx, "chat_structure", direct)
    n = checked[0] if checked else _conversations(ctx)
    note = f"{n:,} conversations checked" if n else "no chat, ShareGPT or preference records"
    return findings_result(with_labels(frame, view, CHECK.empty), note)


CHECK = register(Check(
    name="chat_structure", reason="chat_structure", title="Chat structure", severity="warning", order=63, run=_run,
    empty={**FINDING_SCHEMA, **EXTRAS},
    help="Conversations (chat, ShareGPT, preference records) read turn by turn: empty turns, two user or two assistant "
         "turns in a row, a conversation that does not end with the assistant, no user turn, a system turn after the "
         "first, a tool result without a call. Instruction and text records have no turns to check. Count: samples "
         "with a finding.",
))
