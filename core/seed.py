"""Loading the bundled, generated demo datasets into a store (first start of the app, `python -m core demo`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from core.ingest import ImportResult, import_file
from core.store import Store


def load_demo(store: Store, force: bool = False, progress=None) -> list[ImportResult]:
    """Generate the demo files and import them: the intent dataset and the chat dataset, each only when
    it is not in the store yet (or with ``force``).

    Returns the import results (empty when nothing was loaded). Deterministic: the generators use
    fixed seeds, so every fresh store gets the same demo data.
    """
    from core.demo import DEMO_DATASET, DEMO_LABELS, generate_demo
    from core.demo.chat import CHAT_DATASET, CHAT_LABELS, generate_chat_demo

    results = []
    with tempfile.TemporaryDirectory(prefix="quality-demo-") as tmp:
        jobs: list[tuple[str, Path, str, list[str]]] = []
        if force or not store.has_dataset(DEMO_DATASET):
            files = generate_demo(Path(tmp))
            jobs += [(DEMO_DATASET, files[key], f"demo_{key}.jsonl", list(DEMO_LABELS))
                     for key in ("annotations", "predictions", "current")]
        if force or not store.has_dataset(CHAT_DATASET):
            jobs.append((CHAT_DATASET, generate_chat_demo(Path(tmp)), "demo_chat.jsonl", list(CHAT_LABELS)))
        for i, (dataset, path, name, labels) in enumerate(jobs):
            if progress:
                progress(f"importing {name}", i / len(jobs))
            results.append(import_file(store, path, dataset, labels=labels, actor="demo-loader", display_name=name))
    if progress:
        progress("done", 1.0)
    return results
