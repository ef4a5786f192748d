"""Suspected label errors: cleanlab over model or cross-validated embedding probabilities (on demand)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from core.checks import register
from core.checks.base import (
    Check,
    CheckContext,
    CheckResult,
    joined_texts,
    preview,
    text_fields,
)
from core.gold import dataset_gold
from core.quality import out_of_fold_probs, suspected_label_errors
from core.store import Store

#: Where label-error probabilities come from: the latest model round's, or cross-validated embeddings.
LABEL_ERROR_METHODS: tuple[str, ...] = ("auto", "model", "embeddings")
Progress = Callable[[str, float], Any]


_LABEL_SCHEMA = {"sample_id": pl.Utf8, "given_label": pl.Utf8, "suggested_label": pl.Utf8,
                 "self_confidence": pl.Float64, "label_source": pl.Utf8, "text": pl.Utf8}


@dataclass
class LabelErrorResult:
    """Suspected label errors and where their probabilities came from.

    ``frame``: ``sample_id, given_label, suggested_label, self_confidence, label_source, text``,
    most suspicious (lowest self-confidence) first. ``method``: ``model`` / ``embeddings`` /
    ``none`` (not computed: ``note`` says why). ``n_labeled``: samples with a gold label;
    ``n_checked``: those that had probabilities.
    """

    frame: pl.DataFrame
    method: str
    source: str
    n_labeled: int
    n_checked: int
    note: str = ""

    @property
    def computed(self) -> bool:
        return self.method != "none"


def prediction_round(store: Store, dataset: str) -> int | None:
    """The latest round with model probabilities for ``dataset`` (None when there is none)."""
    preds = store.predictions(dataset)
    if preds.height == 0:
        return None
    with_probs = preds.filter(pl.col("probs").is_not_null() & (pl.col("probs").list.len() > 0))
    return int(with_probs["round"].max()) if with_probs.height else None


def _gold(store: Store, dataset: str, samples: pl.DataFrame) -> pl.DataFrame:
    # the dataset's gold rule (review, gold question, its consensus method); label_source says which
    gold = dataset_gold(store, dataset).labels.select("sample_id", "gold_label", "source")
    return gold.join(samples.select("sample_id"), on="sample_id", how="semi").sort("sample_id")


def _not_computed(note: str, n_labeled: int) -> LabelErrorResult:
    return LabelErrorResult(pl.DataFrame(schema=_LABEL_SCHEMA), "none", "", n_labeled, 0, note)


def label_error_report(store: Store, dataset: str, samples: pl.DataFrame | None = None, method: str = "auto",
                       model: Any = None, progress: Progress | None = None, n_splits: int = 5) -> LabelErrorResult:
    """Suspected label errors among the gold-labelled ``samples`` (default: all non-excluded samples).

    Probabilities (``method``):

    - ``model``: the predictions of the latest round that has probabilities (columns in the
      order of the dataset's labels); only samples with such a prediction are checked.
      *Out-of-fold caveat*: cleanlab assumes each probability comes from a model that did not
      see that sample's label. That holds for predictions made on a batch before it was labeled
      (the usual loop); if the round's model was trained on these very labels its probabilities
      are over-confident on them and fewer errors are found — use ``embeddings`` then.
    - ``embeddings``: the joined text fields are embedded (:func:`core.embeddings.embed`,
      cached in the store; ``model`` picks the encoder, default automatic) and
      :func:`core.quality.out_of_fold_probs` gives k-fold cross-validated logistic-regression
      probabilities, out of fold by construction.
    - ``auto``: ``model`` when a round has probabilities, else ``embeddings``.

    ``progress(stage, fraction)`` is called while embedding. A dataset without labels, or with
    too few per class, gives a result with ``method="none"`` and a ``note`` instead of raising.
    """
    if method not in LABEL_ERROR_METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {', '.join(LABEL_ERROR_METHODS)}")
    info = store.get_dataset(dataset)
    if samples is None:
        samples = store.samples(dataset, include_excluded=False)
    gold = _gold(store, dataset, samples)
    n_labeled = gold.height
    if n_labeled == 0:
        return _not_computed("no labels: import annotations (or review samples) to check labels", 0)
    fields = text_fields(samples)
    texts = samples.select("sample_id").with_columns(pl.Series("text", joined_texts(samples, fields), dtype=pl.Utf8))
    pred_round = prediction_round(store, dataset)
    if method == "auto":
        method = "model" if pred_round is not None else "embeddings"

    if method == "model":
        if pred_round is None:
            return _not_computed("no model predictions with probabilities: use the embeddings method", n_labeled)
        preds = store.predictions(dataset, round=pred_round).filter(pl.col("probs").is_not_null())
        joined = (gold.join(preds.select("sample_id", "model", "probs"), on="sample_id", how="inner")
                  .filter(pl.col("probs").list.len() == len(info.labels))
                  .filter(pl.col("gold_label").is_in(info.labels)))
        if joined.height < 2 or len(info.labels) < 2:
            return _not_computed(f"fewer than two labeled samples have predictions of round {pred_round}", n_labeled)
        probs = np.asarray(joined["probs"].to_list(), dtype=np.float64)
        probs = np.clip(np.nan_to_num(probs, nan=0.0), 0.0, None)
        sums = probs.sum(axis=1, keepdims=True)
        ok = sums[:, 0] > 0
        joined, probs = joined.filter(pl.Series(ok)), probs[ok] / sums[ok]
        label_names = list(info.labels)
        models = sorted({m for m in joined["model"].to_list() if m})
        source = f"model probabilities of round {pred_round}" + (f" ({', '.join(models)})" if models else "")
    else:
        labelled = gold.join(texts, on="sample_id", how="inner")
        if progress:
            progress("embedding texts", 0.0)
        from core import embeddings
        from core.executor import remote_executor

        def on_embed(done: int, total: int) -> None:
            if progress:
                progress(f"embedding texts ({done:,}/{total:,})", 0.9 * done / max(total, 1))

        try:
            vectors = embeddings.embed(labelled["text"].to_list(), model=model, store=store, progress=on_embed,
                                       executor=remote_executor())
            if progress:
                progress("cross-validating logistic regression", 0.9)
            probs = out_of_fold_probs(vectors, labelled["gold_label"].to_list(), n_splits=n_splits)
        except (ValueError, ImportError, OSError, RuntimeError) as exc:  # incl. a model that is not installed
            return _not_computed(f"cannot compute out-of-fold probabilities: {exc}", n_labeled)
        label_names = [str(x) for x in np.unique(np.asarray(labelled["gold_label"].to_list()))]
        joined = labelled
        unskilled = _unskilled_note(labelled["gold_label"].to_list(), probs, label_names)
        if unskilled:
            return _not_computed(unskilled, n_labeled)
        encoder = model.model_id if isinstance(model, embeddings.EmbeddingModel) else \
            embeddings.describe_choice(labelled["text"].to_list(), model).split("→")[-1].strip()
        source = f"{n_splits}-fold cross-validated logistic regression on sentence embeddings ({encoder})"

    found = suspected_label_errors(joined["gold_label"].to_list(), probs, label_names)
    if progress:
        progress("done", 1.0)
    rows = found["row"].to_list()
    ids = joined["sample_id"].to_list()
    sources = joined["source"].to_list()
    frame = pl.DataFrame(
        {
            "sample_id": [ids[r] for r in rows],
            "given_label": found["given_label"].to_list(),
            "suggested_label": found["suggested_label"].to_list(),
            "self_confidence": found["self_confidence"].to_list(),
            "label_source": [sources[r] for r in rows],
        },
        schema={k: v for k, v in _LABEL_SCHEMA.items() if k != "text"},
    ).join(texts.with_columns(pl.col("text").map_elements(preview, return_dtype=pl.Utf8)),
           on="sample_id", how="left", maintain_order="left")
    return LabelErrorResult(frame, method, source, n_labeled, joined.height)


#: Below this Cohen's kappa between the cross-validated text model's predictions and the labels, the model has
#: not learned the labels from the texts, and cleanlab's "suspects" would be noise (e.g. labels that judge a
#: chat answer's quality, which a bag of sentence embeddings does not see).
MIN_SKILL_KAPPA = 0.2


def _unskilled_note(labels: list[str], probs: np.ndarray, label_names: list[str]) -> str | None:
    """Why the out-of-fold probabilities are too weak to judge labels by, or None when they are usable."""
    from sklearn.metrics import cohen_kappa_score

    y = np.asarray(labels)
    predicted = np.asarray(label_names)[probs.argmax(axis=1)]
    kappa = float(cohen_kappa_score(y, predicted))
    if kappa >= MIN_SKILL_KAPPA:
        return None
    values, counts = np.unique(y, return_counts=True)
    accuracy = float((predicted == y).mean())
    return (f"the cross-validated text model cannot predict these labels (accuracy {accuracy:.2f} against "
            f"{counts.max() / len(y):.2f} by always answering {str(values[counts.argmax()])!r}; kappa {kappa:.2f} < "
            f"{MIN_SKILL_KAPPA}), so its suspects would be noise and none are flagged. The labels may judge what "
            "the text alone does not show: import a model round's probabilities to use the model method.")


def label_error_priorities(frame: pl.DataFrame) -> dict[str, float]:
    """Queue priority of each suspected sample: ``1 - self_confidence`` (most suspicious first)."""
    return {sid: 1.0 - float(sc) for sid, sc in zip(frame["sample_id"].to_list(), frame["self_confidence"].to_list())}


def _run(ctx: CheckContext) -> CheckResult:
    return as_check_result(label_error_report(ctx.store, ctx.dataset, ctx.samples,
                                              method=ctx.options.get("label_errors", "auto"),
                                              model=ctx.options.get("model"), progress=ctx.progress))


def as_check_result(result: LabelErrorResult) -> CheckResult:
    """A label-error result as the registry's :class:`CheckResult` (the full result in ``extra``)."""
    if not result.computed:
        return CheckResult(result.frame, None, result.note, extra={"result": result})
    return CheckResult(result.frame, result.frame.height,
                       f"{result.n_checked} of {result.n_labeled} labeled samples checked; {result.source}",
                       extra={"result": result})


CHECK = register(Check(
    name="label_errors", title="Label errors", severity="warning", order=60, run=_run, empty=_LABEL_SCHEMA,
    on_demand=True, reason="label_issue",
    help="Suspected label errors: gold labels that cleanlab finds unlikely given out-of-fold "
         "probabilities. Count: suspected samples (computed on request).",
))
