"""Cache keys for page reads: the store file, the dataset, and the dataset's data version.

Every write is audited, so the dataset's latest audit id changes with its data: a cached result
keyed by it is never stale, and ``st.cache_data`` entries of other stores (tests, a second
``QUALITY_DB``) never mix.
"""

from __future__ import annotations

from ui.errors import shown_errors
from ui.session import get_store


def data_version(dataset: str) -> int:
    """The dataset's latest audit id (0 before any write); a busy or broken store is shown and the run stops."""
    with shown_errors(stop=True):
        log = get_store().audit_log(dataset=dataset, limit=1)
    return int(log["audit_id"][0]) if log.height else 0


def data_key(dataset: str) -> tuple[str, str, int]:
    """``(store path, dataset, data version)``: pass it to every cached read of dataset data."""
    return (str(get_store().path), dataset, data_version(dataset))
