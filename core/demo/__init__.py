"""Deterministic demo data: a bilingual (Chinese/English) customer-service intent dataset.

No network and no model: texts come from templates with varied slots (products, order numbers,
cities, amounts, times, politeness forms, typos), labels and model probabilities from a
``numpy`` Generator seeded with ``seed``. The same seed always gives byte-identical files.

Files written by :func:`generate_demo` (JSONL, UTF-8, ``ensure_ascii=False``), importable by
:func:`core.ingest.import_file` with ``labels=DEMO_LABELS``:

``annotations`` (``demo_annotations.jsonl``)
    Long form, one row per (sample, annotator): ``id, batch, round, annotator, label,
    instruction, input, output, channel, lang, created_at, gold_label``. 3,000 samples ``cs-00001`` …
    ``cs-03000`` in batches ``r1``–``r4`` (rounds 1–4; 900/800/700/600 samples), about 55%
    Chinese. Annotators ``alice`` and ``bo`` are accurate (about 93% correct, Cohen's kappa
    against the majority vote about 0.95; errors mostly on the confusable pairs
    refund↔cancel_order, shipping_status↔change_address, complaint↔refund,
    product_question↔invoice, and on ambiguous messages); ``chen`` is clearly weaker (about 57%
    correct, kappa against the majority about 0.55, errors less tied to the confusable pairs:
    the Annotators page flags him below the guideline's 0.6). ``gold_label`` holds the true label
    of about 60 gold (honeypot) questions (every 50th reference sample that is not planted) and is
    null elsewhere; the importer marks them gold, and the annotators are scored against them.
``predictions`` (``demo_predictions.jsonl``)
    ``id, pred_round, model, probs`` with ``probs`` a JSON object ``{label: p}`` (6 decimals,
    summing to 1 within 1e-9), for all 3,000 reference samples in each model round 1–4
    (models ``intent-clf-r1`` … ``intent-clf-r4``; 12,000 rows). Macro-F1 against the true
    labels is about 0.83 → 0.89 → 0.92 → 0.95. Most predictions are confident; a set of
    genuinely uncertain ones (top-2 margin below 0.1: about 12%, 8%, 6%, 4%) shrinks from round
    to round; the errors are mostly over-confident and fall on the confusable pairs (and on the
    ambiguous messages, which the annotators also find hard).
``current`` (``demo_current.jsonl``)
    A later batch ``current`` (round 5), ids ``cs-03001`` … ``cs-03600``, same fields and
    annotators as ``annotations``, no predictions. Real shift: 70% Chinese (55% before), texts
    with extra sentences (about +80% characters over instruction+input+output), new products,
    and far more complaint (28% vs 8%) and refund (24% vs 14%), far less shipping_status (6% vs
    20%); total variation distance of the label mix 0.30.

Planted quality problems (disjoint sets of samples; the ``truth`` frame of
:func:`generate_demo_frames` names them per sample in ``planted`` / ``planted_detail``):

==================  =====  ======================================================================
kind                count  what
==================  =====  ======================================================================
exact_duplicate     20     text (instruction, input, output) of another sample under a new id;
                           10 byte-identical, 10 differing only in case/whitespace (equal after
                           NFKC + casefold + whitespace collapse). ``planted_detail`` = source id.
                           All in r1–r4.
near_duplicate      20     copy of another sample with one or two characters/words of the
                           instruction changed (3-gram Jaccard of the joined fields >= 0.8).
                           ``planted_detail`` = source id. All in r1–r4.
pii                 30     in the instruction: 14 Chinese mobile numbers, 9 e-mail addresses,
                           4 Chinese resident ID numbers (valid check digit), 3 Luhn-valid
                           UnionPay card numbers. 24 in r1–r4, 6 in ``current``.
                           ``planted_detail`` = phone / email / cn_id / bank_card.
empty_output        25     15 ``""`` and 10 whitespace-only outputs. 20 in r1–r4, 5 in current.
                           ``planted_detail`` = empty / whitespace.
truncated_output    6      output cut mid-sentence (no final punctuation). r1–r4.
html                4      HTML tags in the output. r1–r4.
url                 4      a URL in the output (2) or the instruction (2). r1–r4.
                           ``planted_detail`` = output / instruction.
label_error         40     all three annotators agree on the same wrong label (a confusable
                           neighbour of the true one); every model round predicts the true label
                           with confidence. r1–r4. ``planted_detail`` = the given (wrong) label.
missing_rating      12     one annotator has no row for the sample (8 chen, 2 bo, 2 alice);
                           9 in r1–r4, 3 in current. ``planted_detail`` = the missing annotator.
==================  =====  ======================================================================

Besides the planted label errors, about 60 samples get a wrong majority naturally (two
annotators erring the same way); ``truth.true_label`` is the ground truth for all samples.
Every other output ends with sentence-final punctuation and no other text has PII, HTML or a
URL. Accidental near-duplicates (two messages from the same templates with 3-gram Jaccard >= 0.7)
are redrawn, so the only duplicate groups are the planted ones.
"""

from __future__ import annotations

from .generator import (
    ANNOTATORS,
    BATCH_SIZES,
    CURRENT_SIZE,
    DEMO_DATASET,
    DEMO_LABELS,
    F1_TARGETS,
    FILE_NAMES,
    PLANTED_COUNTS,
    generate_demo,
    generate_demo_frames,
)
from .generator import (
    _write_jsonl as _write_jsonl,  # re-exported for tests/test_demo.py
)

__all__ = [
    "ANNOTATORS",
    "BATCH_SIZES",
    "CURRENT_SIZE",
    "DEMO_DATASET",
    "DEMO_LABELS",
    "F1_TARGETS",
    "FILE_NAMES",
    "PLANTED_COUNTS",
    "generate_demo",
    "generate_demo_frames",
]
