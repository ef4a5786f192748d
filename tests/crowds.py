"""Simulated crowds for the consensus, gold and routing tests (annotators of known skill, rows ready to import),
and the configured users of their permission tests."""

from __future__ import annotations

from typing import Any

import numpy as np

LABELS = ["refund", "cancel", "other"]
#: Three careful annotators and one who should be retrained.
SKILLS = {"ana": 0.95, "ben": 0.92, "cai": 0.9, "weak": 0.35}


def crowd_rows(n: int = 60, skills: dict[str, float] | None = None, per_item: int = 3, seed: int = 0,
               probs: bool = False) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Long-form rows (id, text, annotator, label, batch, round[, probs]) of ``n`` samples, each rated by
    ``per_item`` annotators drawn at random, and the true label of every sample.

    An annotator gives the true label with probability ``skills[name]``, else one of the other two.
    ``probs``: a model's probabilities ({label: p}) on every row, 0.8 on the true label.
    """
    skills = SKILLS if skills is None else skills
    rng = np.random.default_rng(seed)
    names = list(skills)
    rows, truth = [], {}
    for i in range(n):
        sid, t = f"s{i:03d}", int(rng.integers(len(LABELS)))
        truth[sid] = LABELS[t]
        for name in rng.choice(names, size=min(per_item, len(names)), replace=False):
            given = t if rng.random() < skills[str(name)] else (t + int(rng.integers(1, len(LABELS)))) % len(LABELS)
            row = {"id": sid, "text": f"order {i}: 请帮我处理一下", "annotator": str(name), "label": LABELS[given],
                   "batch": f"b{i % 2}", "round": 1 + i % 2}
            if probs:
                row["probs"] = {lab: (0.8 if k == t else 0.1) for k, lab in enumerate(LABELS)}
            rows.append(row)
    return rows, truth


def long_frame(rows: list[dict[str, Any]]):
    """The rows as the store's annotations frame (sample_id, annotator, label)."""
    import polars as pl

    return pl.DataFrame({"sample_id": [r["id"] for r in rows], "annotator": [r["annotator"] for r in rows],
                         "label": [r["label"] for r in rows]})


def configure_users(monkeypatch, tmp_path, roles: dict[str, str]) -> None:
    """Configure users ``{name: role}`` (password ``pw-<name>``) for the rest of the test."""
    from core.auth import hash_password

    users = tmp_path / "users.toml"
    users.write_text("".join(f'[users.{name}]\nrole = "{role}"\npassword_hash = "{hash_password("pw-" + name)}"\n\n'
                             for name, role in roles.items()), encoding="utf-8")
    monkeypatch.setenv("QUALITY_USERS_FILE", str(users))
