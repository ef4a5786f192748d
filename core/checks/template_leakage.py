"""Template leakage: chat-template tokens and unfilled placeholders left in any text field (code is not a leak)."""

from __future__ import annotations

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


def _run(ctx: CheckContext) -> CheckResult:
    # imported at run time: core.passes imports core.checks
    from core.passes.template_leakage import leakage_findings

    view = instruction_view(ctx)
    frame = per_sample(ctx, "template_leakage", lambda: leakage_findings(view))
    return findings_result(with_labels(frame, view, CHECK.empty))


CHECK = register(Check(
    name="template_leakage", title="Template leakage", reason="template_leakage", severity="error", order=64,
    run=_run, empty=dict(FINDING_SCHEMA),
    help="Chat-template tokens (<|im_start|>, <|im_end|>, <|endoftext|>, [INST], <<SYS>>, <s>, ### Response:) and "
         "unfilled placeholders ({question}, {{input}}, {问题}) left in any field, the rejected answer of a pair "
         "included. Code is not a leak: braces in code blocks, JSON, f-strings and format strings are left alone. "
         "Count: samples with a finding.",
))
