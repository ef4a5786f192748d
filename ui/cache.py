"""Cache keys for page reads: the store file, the dataset, and the dataset's labels data version.

The labels version (:meth:`core.store.results.Results.data_versions`, one query on the audit log) changes
with every write that changes the dataset's data — imports, reviews, exclusions, gold questions, settings —
and not with a lead's personal-data reveal, queue actions or stored analysis results, which are audited
too but change nothing a page reads through this key. A cached result keyed by it is never stale, and
``st.cache_data`` entries of other stores (tests, a second ``QUALITY_DB``) never mix.
"""

from __future__ import annotations

from ui.errors import shown_errors
from ui.session import get_store


def data_version(dataset: str, audit: bool = False) -> int:
    """The dataset's labels data version (0 before any write); ``audit``: its latest audit id instead (any
    audited action, queue actions and reveals too). A busy or broken store is shown and the run stops."""
    with shown_errors(stop=True):
        if audit:
            log = get_store().audit_log(dataset=dataset, limit=1)
            return int(log["audit_id"][0]) if log.height else 0
        return get_store().data_version(dataset, "labels")


def data_key(dataset: str, audit: bool = False) -> tuple[str, str, int]:
    """``(store path, dataset, data version)``: pass it to every cached read of dataset data. A read of the
    review queue or the audit log itself (open queue entries, recent activity) passes ``audit=True``."""
    return (str(get_store().path), dataset, data_version(dataset, audit))
