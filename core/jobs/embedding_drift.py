"""Job ``embedding_drift``: one drift comparison's embedding drift (PCA-projection PSI and a domain-classifier AUC).

On request (it embeds up to :data:`core.analyses.drift.MAX_EMBED_TEXTS` texts a side, minutes on a CPU the first
time), so it runs on the background worker with progress and its result is stored for every user; vectors are
cached in the store, so a rerun after new labels is quick.
"""

from __future__ import annotations

from core.drift import embedding_drift
from core.jobs import Job, register
from core.jobs.runner import get_or_none


def _run(store, dataset, params, progress):
    from core.analyses.drift import drift_view
    from core.embeddings import embed
    from core.executor import remote_executor

    report = progress or (lambda stage, fraction: None)
    drift = {"ref": params["ref"], "cur": params["cur"], "bins": params["bins"]}
    stored = get_or_none(store, dataset, "drift", drift)  # the comparison's texts, when its drift is current
    view = stored.value if stored is not None else drift_view(store, dataset, params["ref"], params["cur"],
                                                              bins=int(params["bins"]))
    ref, cur = list(view.ref_texts or []), list(view.cur_texts or [])
    report("loading the embedding model", 0.0)
    vectors = embed(ref + cur, store=store, executor=remote_executor(),
                    progress=lambda done, n: report(f"embedding {done:,} / {n:,} texts", 0.9 * done / max(n, 1)))
    report("fitting the domain classifier", 0.9)
    return embedding_drift(vectors[: len(ref)], vectors[len(ref):])


# Depends on the content only: the texts, not their labels, are embedded.
JOB = register(Job(
    name="embedding_drift", title="Embedding drift", run=_run, depends="content", order=45, in_analyze=False,
    defaults={"ref": None, "cur": None, "bins": 10},
))
