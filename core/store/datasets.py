"""Datasets: their names, ordered label sets and creation times (table ``datasets``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from core.store.db import Database, _first
from core.store.errors import UnknownDataset


@dataclass
class DatasetInfo:
    """One dataset: its name, ordered label set and settings (e.g. ``confidence_threshold``)."""

    name: str
    labels: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


class Datasets(Database):
    """Reads of the datasets table."""

    def list_datasets(self) -> pl.DataFrame:
        """Datasets with their label sets and sample counts, newest first."""
        return self.query_df(
            """SELECT d.name, d.labels, d.created_at,
                      (SELECT count(*) FROM samples s WHERE s.dataset = d.name) AS n_samples
               FROM datasets d ORDER BY d.created_at DESC, d.name"""
        )

    def dataset_names(self) -> list[str]:
        with self.cursor() as cur:
            return [r[0] for r in cur.execute("SELECT name FROM datasets ORDER BY name").fetchall()]

    def get_dataset(self, name: str) -> DatasetInfo:
        """The dataset ``name``; raises :class:`UnknownDataset` if there is none."""
        with self.cursor() as cur:
            row = _first(cur.execute(
                "SELECT name, labels, settings, created_at FROM datasets WHERE name = ?", [name]
            ))
        if row is None:
            raise UnknownDataset(f"unknown dataset {name!r}")
        settings = json.loads(row[2]) if row[2] else {}
        return DatasetInfo(name=row[0], labels=list(row[1]), settings=settings, created_at=row[3])

    def has_dataset(self, name: str) -> bool:
        return self._scalar("SELECT count(*) FROM datasets WHERE name = ?", [name]) > 0
