"""The project's shared vocabulary, defined once: text fields, queue reasons and statuses, bands, tolerances.

A leaf module (imports nothing from ``core``): the store, the engine modules and the pages all
read these names from here, so a reason or a threshold cannot mean two things in two places.
"""

from __future__ import annotations

#: The text columns of a sample, in the order every module joins them.
TEXT_FIELDS: tuple[str, ...] = ("instruction", "input", "output", "text")

#: Why a sample is in the review queue -> the name shown to people. The order is the order of
#: the pages' reason pickers. A quality check that sends samples to review uses its own name as
#: the reason (see :func:`reason_name`).
QUEUE_REASONS: dict[str, str] = {
    "low_confidence": "Low model confidence",
    "disagreement": "Annotator disagreement",
    "low_consensus": "Low consensus confidence",
    "label_issue": "Suspected label error",
    "active_learning": "Active-learning pick",
    "manual": "Manual",
}

#: The life of a queue entry: open -> claimed -> done | skipped (``open`` again when released).
QUEUE_STATUSES: tuple[str, ...] = ("open", "claimed", "done", "skipped")
#: Statuses of an entry that still waits for a reviewer.
LIVE_STATUSES: tuple[str, ...] = ("open", "claimed")

#: Probabilities of one sample must sum to 1 within this (exporters round to a few digits).
PROB_SUM_TOLERANCE = 1e-3

#: Agreement bands of the labeling guideline: >= 0.8 good, 0.6-0.8 fair, < 0.6 retrain.
AGREEMENT_GOOD = 0.8
AGREEMENT_RETRAIN = 0.6
#: PSI bands: < 0.1 stable, 0.1-0.25 moderate, >= 0.25 significant.
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25
#: Model confidence below which a prediction is sent to review by default.
REVIEW_CONFIDENCE = 0.7


def reason_name(reason: str) -> str:
    """The display name of a queue reason (a check's reason reads as its name, spaced)."""
    return QUEUE_REASONS.get(reason) or str(reason).replace("_", " ").capitalize()
