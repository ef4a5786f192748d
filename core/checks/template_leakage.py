"""Template leakage: chat-template tokens and unfilled placeholders left in any text field (code is not a leak)."""

from __future__ import annotations

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


def _run(ctx: CheckContext) -> CheckResult:
    view = instruction_view(ctx)
    findings: list[dict] = []
    for name in ("instruction", "input", "output"):
        if view.present(name):
            findings += textchecks.template_leakage(view.texts(name), field=name)
    if view.present("text"):  # a conversation's text is its rendering of the fields above: only plain texts
        rows = [i for i, only in enumerate(view.text_only()) if only]
        texts = view.texts("text")
        findings += [{**f, "index": rows[f["index"]]}
                     for f in textchecks.template_leakage([texts[i] for i in rows], field="text")]
    if view.conversations():  # a preference pair's rejected answer is kept only in its record
        findings += textchecks.template_leakage(view.texts("rejected"), field="rejected")
    return findings_result(findings_table(CHECK.name, view, findings))


CHECK = register(Check(
    name="template_leakage", title="Template leakage", reason="template_leakage", severity="error", order=64,
    run=_run, empty=dict(FINDING_SCHEMA),
    help="Chat-template tokens (<|im_start|>, <|im_end|>, <|endoftext|>, [INST], <<SYS>>, <s>, ### Response:) and "
         "unfilled placeholders ({question}, {{input}}, {问题}) left in any field, the rejected answer of a pair "
         "included. Code is not a leak: braces in code blocks, JSON, f-strings and format strings are left alone. "
         "Count: samples with a finding.",
))
