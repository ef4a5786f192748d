"""Loading the bundled, generated demo dataset into a store (first start of the app, `python -m core demo`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from core.ingest import ImportResult, import_file
from core.store import Store


def load_demo(store: Store, force: bool = False, progress=None) -> list[ImportResult]:
    """Generate the demo files and import them; does nothing if the demo dataset exists.

    Returns the import results (empty when nothing was loaded). Deterministic: the generator
    uses a fixed seed, so every fresh store gets the same demo data.
    """
    from core.demo import DEMO_DATASET, DEMO_LABELS, generate_demo

    if store.has_dataset(DEMO_DATASET) and not force:
        return []
    results = []
    with tempfile.TemporaryDirectory(prefix="quality-demo-") as tmp:
        files = generate_demo(Path(tmp))
        order = ["annotations", "predictions", "current"]
        for i, key in enumerate(order):
            if progress:
                progress(f"importing {key}", i / len(order))
            results.append(import_file(store, files[key], DEMO_DATASET, labels=list(DEMO_LABELS),
                                       actor="demo-loader", display_name=f"demo_{key}.jsonl"))
    if progress:
        progress("done", 1.0)
    return results
