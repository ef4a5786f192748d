"""The store's exceptions: what a store operation raises instead of a DuckDB error."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of errors the store raises with a message meant for a user."""


class StoreBusy(StoreError):
    """Another process holds the database file for writing and did not release it in time."""


class StoreConflict(StoreError):
    """A write lost a race with a concurrent one (the same row or key) and was rolled back whole."""


class UnknownDataset(StoreError, KeyError):
    """A dataset name that the store does not hold."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown dataset"
