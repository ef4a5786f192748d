"""The DuckDB store: the only place that holds the connection and speaks SQL, one module per table family.

Every other ``core`` module takes the :class:`Store` returned by :func:`open_store` and calls
its methods; pages never see SQL. :mod:`core.store.db` holds the connection manager and its
concurrency model, :mod:`core.store.errors` the exceptions (no DuckDB exception leaves a store
operation), :mod:`core.store.schema` the migrations; the other modules are one mixin each.
"""

from __future__ import annotations

import os

from core.auth import authorize  # noqa: F401 (re-exported)
from core.roles import ROLES_THAT_WRITE, Action, PermissionDenied  # noqa: F401 (re-exported)
from core.store.annotations import Annotations
from core.store.audit import AuditLog
from core.store.datasets import DatasetInfo, Datasets
from core.store.db import (  # noqa: F401 (re-exported)
    _IDENT_OK,
    _OPEN_STORES,
    _PARAM_NAME,
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_DB_PATH,
    DEFAULT_LINGER,
    Database,
    _close_open_stores,
    _first,
    _frame,
    _is_lock_error,
    _now,
    _Params,
    _quote_ident,
    default_db_path,
)
from core.store.embeddings import EmbeddingCache
from core.store.errors import StoreBusy, StoreConflict, StoreError, UnknownDataset
from core.store.evaluation import EvaluationRounds
from core.store.gold import GOLD_QUESTION_SOURCES, GoldQuestions  # noqa: F401 (re-exported)
from core.store.imports.staging import (  # noqa: F401 (re-exported)
    _STAGING_TABLES,
    _STAGING_VIEWS,
    _WHITESPACE,
    StagedFile,
    Staging,
    _csv_layout,
    _empty_bad,
    _present,
    _strip,
    _text,
)
from core.store.imports.validation import _NUMBER, MAX_ROUND, RowChecks  # noqa: F401 (re-exported)
from core.store.imports.write import _CONTENT_HASH, RAW_LIMIT, ImportPlan, ImportWriter  # noqa: F401 (re-exported)
from core.store.passes import PassCache
from core.store.predictions import Predictions
from core.store.queue import ReviewQueue
from core.store.results import DataVersion, Results, StoredResult  # noqa: F401 (re-exported)
from core.store.reviews import Reviews
from core.store.samples import Samples
from core.store.schema import MIGRATIONS, SCHEMA_VERSION, Schema
from core.store.settings import DatasetSettings
from core.vocab import TEXT_FIELDS  # noqa: F401 (re-exported)


class Store(Datasets, DatasetSettings, Samples, Annotations, Predictions, Reviews, ReviewQueue, AuditLog,
            EmbeddingCache, EvaluationRounds, GoldQuestions, Results, PassCache, Staging, RowChecks, ImportWriter, Schema, Database):
    """A DuckDB-backed store. Create it with :func:`open_store`; share one per process.

    Thread-safe: each thread gets its own cursor. Opening the file waits up to
    ``busy_timeout`` seconds for another process to release it, then raises :class:`StoreBusy`.
    """


def open_store(path: str | os.PathLike[str] | None = None, busy_timeout: float | None = None,
               linger: float | None = None) -> Store:
    """Open (creating and migrating if needed) the store at ``path``.

    ``path`` defaults to ``$QUALITY_DB`` or ``data/quality.duckdb``; ``":memory:"`` gives a
    private in-memory store (tests). ``busy_timeout`` (default ``$QUALITY_DB_BUSY_TIMEOUT`` or
    15 s) is how long to wait for another process that holds the file; ``linger`` (default
    0.3 s) how long the file stays open after the last operation before its lock is released.
    """
    if busy_timeout is None:
        busy_timeout = float(os.environ.get("QUALITY_DB_BUSY_TIMEOUT", DEFAULT_BUSY_TIMEOUT))
    if linger is None:
        linger = float(os.environ.get("QUALITY_DB_LINGER", DEFAULT_LINGER))
    return Store(default_db_path() if path is None else path, busy_timeout=busy_timeout, linger=linger)


__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "DEFAULT_DB_PATH",
    "DEFAULT_LINGER",
    "MAX_ROUND",
    "MIGRATIONS",
    "RAW_LIMIT",
    "ROLES_THAT_WRITE",
    "SCHEMA_VERSION",
    "TEXT_FIELDS",
    "Action",
    "DatasetInfo",
    "ImportPlan",
    "PermissionDenied",
    "StagedFile",
    "Store",
    "StoreBusy",
    "StoreConflict",
    "StoreError",
    "UnknownDataset",
    "default_db_path",
    "open_store",
]
