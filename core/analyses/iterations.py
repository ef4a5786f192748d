"""The Iterations page's numbers: every round scored against the gold labels, labeled volume, imported rounds."""

from __future__ import annotations

from typing import Any

from core.gold import dataset_gold
from core.metrics import (
    iteration_table,
    labeled_volume,
    per_class_f1_matrix,
    progress_curve,
    round_metrics,
    volume_bars,
)
from core.store import Store


def iterations_view(store: Store, name: str) -> dict[str, Any]:
    """Everything the Iterations page and its report show for dataset ``name``."""
    predictions = store.prediction_labels(name)
    found = dataset_gold(store, name)  # latest review, else gold question, else the dataset's consensus method
    gold = found.labels
    computed, per_round = round_metrics(predictions, gold)
    volume = labeled_volume(store.samples(name).select("sample_id", "round"), gold)
    imported = store.imported_round_metrics(name)
    table = iteration_table(computed, volume, imported)
    return {
        "n_predictions": predictions.height,
        "prediction_rounds": sorted(predictions["round"].unique().to_list()),
        "n_gold": gold.height,
        "n_review_gold": int((gold["source"] == "review").sum()),
        "gold_method": found.method,
        "gold_sources": dict(gold.group_by("source").len().sort("source").iter_rows()),
        "gold_note": found.note,
        "computed": computed,
        "per_round": per_round,
        "f1_matrix": per_class_f1_matrix(per_round),
        "volume": volume,
        "imported": imported,
        "table": table,
        "curve": progress_curve(table),
        "bars": volume_bars(volume, table),
    }

