"""Job ``selection_pool``: the Active learning page's candidate pool, without texts and without queue state.

The pool's samples (sample_id, batch, round), gold labels, whether each was reviewed, the chosen prediction
round's prediction and probability rows (:func:`core.active_learning.build_lean_pool`): what the page used to
build on every open (reading every text) is read once per labels version. The review queue is not part of
that version, so the page applies it on each run (:func:`core.active_learning.with_candidates`), and reads
texts only for the rows it draws or embeds (:func:`core.active_learning.pool_texts`).
"""

from __future__ import annotations

from core.active_learning import Pool, build_lean_pool
from core.jobs import Job, register
from core.store.results import register_result_type

register_result_type(Pool)


def _run(store, dataset, params, progress):
    batch = params["batch"]
    round_ = params["round"]
    pred_round = params["pred_round"]
    return build_lean_pool(store, dataset, kind=str(params["kind"]),
                           batch=None if batch is None else str(batch),
                           round=None if round_ is None else int(round_),
                           pred_round=None if pred_round is None else int(pred_round), progress=progress)


# Depends on the labels: a review, a gold question or an import changes the gold labels (and so the pool).
JOB = register(Job(
    name="selection_pool", title="Active-learning candidate pool", run=_run, depends="labels", order=35,
    defaults={"kind": "unlabeled", "batch": None, "round": None, "pred_round": None},
))
