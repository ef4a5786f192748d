"""Dataset settings (the ``settings`` JSON of table ``datasets``, e.g. ``confidence_threshold``)."""

from __future__ import annotations

import json
from typing import Any

from core.auth import authorize
from core.roles import Action
from core.store.db import Database


class DatasetSettings(Database):
    """Writes of one dataset setting (the reads come with :meth:`Datasets.get_dataset`)."""

    def set_dataset_setting(self, name: str, key: str, value: Any, actor: str) -> None:
        """Set one setting of a dataset (e.g. ``confidence_threshold``), audited."""
        authorize(actor, Action.SETTINGS)
        with self.transaction() as cur:
            info = self.get_dataset(name)
            old = info.settings.get(key)
            info.settings[key] = value
            cur.execute(
                "UPDATE datasets SET settings = ? WHERE name = ?", [json.dumps(info.settings), name]
            )
            self._audit(cur, actor, "dataset.setting", name, None, json.dumps(old), json.dumps(value), {"key": key})
