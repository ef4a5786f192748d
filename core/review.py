"""Label write-back: versioned, conflict-checked reviews with an audit trail, and undo."""

from __future__ import annotations

from typing import Any

from core import vocab
from core.auth import authorize
from core.gold import gold_labels
from core.roles import Action
from core.store import Store, StoreConflict, StoreError

QUEUE_REASONS: tuple[str, ...] = tuple(vocab.QUEUE_REASONS)


class ReviewError(ValueError):
    """A review that is refused before anything is written (bad label, reviewer or sample)."""


class ReviewConflict(StoreError):
    """The sample changed since the reviewer loaded it; nothing was written.

    ``current`` holds the other reviewer's change (version, reviewer, new_label, created_at).
    """

    def __init__(self, message: str, current: dict[str, Any] | None = None):
        super().__init__(message)
        self.current = current or {}


def sample_version(store: Store, dataset: str, sample_id: str) -> int:
    """The sample's current review version: 0 before any review, then 1, 2, ..."""
    head = store.review_head(dataset, sample_id)
    return 0 if head is None else int(head["version"])


def current_label(store: Store, dataset: str, sample_id: str) -> tuple[str | None, str | None]:
    """``(label, source)``: the latest review, else the strict-plurality vote, else ``(None, None)``.

    The same rule as :func:`core.gold.gold_labels`, evaluated for one sample.
    """
    head = store.review_head(dataset, sample_id)
    if head is not None:
        return head["new_label"], "review"
    majority = store.majority_label(dataset, sample_id)
    return (majority, "majority") if majority is not None else (None, None)


def _conflict_message(sample_id: str, base_version: int, head: dict[str, Any] | None, reviewer: str = "") -> str:
    if head is None:
        return f"sample {sample_id!r} changed since version {base_version}; reload it"
    who = f"you ({reviewer}), in another save," if head["reviewer"] == reviewer else head["reviewer"]
    return (f"sample {sample_id!r} was changed by {who} to {head['new_label']!r} "
            f"(version {head['version']}, {head['created_at']:%Y-%m-%d %H:%M:%S}) after you loaded "
            f"version {base_version}")


def save_review(store: Store, dataset: str, sample_id: str, new_label: str, reviewer: str,
                reason: str | None, base_version: int, *, action: str = "review.save") -> int:
    """Append a review that sets ``new_label`` and return the new version.

    Checks, before anything is written: the reviewer is not empty, the sample exists, the
    label belongs to the dataset's label set. Inside one transaction: the sample's version
    must still equal ``base_version`` (else :class:`ReviewConflict` naming the other change),
    then the review row, the closing of the sample's queue entries and the audit row are
    written together. A concurrent save of the same version loses at commit with the same
    ``ReviewConflict``.

    Idempotent: when version ``base_version + 1`` is already this reviewer's review setting
    ``new_label`` on top of ``base_version``, that save committed (a retry after the store went
    busy, a second click, a page run interrupted after the commit) and its version is returned
    with nothing written. A save that committed is never reported as a conflict.
    """
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ReviewError("a reviewer name is required")
    authorize(reviewer, Action.REVIEW)
    with store.cursor():  # one cursor for the whole save: the file is opened once
        return _save_review(store, dataset, sample_id, new_label, reviewer, reason, base_version, action)


def _save_review(store: Store, dataset: str, sample_id: str, new_label: str, reviewer: str,
                 reason: str | None, base_version: int, action: str) -> int:
    info = store.get_dataset(dataset)
    if new_label not in info.labels:
        raise ReviewError(f"label {new_label!r} is not in the label set of {dataset!r}: {', '.join(info.labels)}")
    if not store.has_sample(dataset, sample_id):
        raise ReviewError(f"unknown sample {sample_id!r} in {dataset!r}")
    base_version = int(base_version)
    try:
        with store.transaction():
            head = store.review_head(dataset, sample_id)
            version = 0 if head is None else int(head["version"])
            if version != base_version:
                if _committed_by(store.review_version(dataset, sample_id, base_version + 1) if version > base_version
                                 else None, reviewer, new_label, base_version):
                    return base_version + 1
                raise ReviewConflict(_conflict_message(sample_id, base_version, head, reviewer), head)
            old_label = head["new_label"] if head is not None else store.majority_label(dataset, sample_id)
            store.append_review(dataset, sample_id, version + 1, base_version, reviewer, old_label,
                                new_label, reason, action=action)
    except StoreConflict as exc:
        # Lost a race at commit: to another save, or to this very save run twice at once.
        if _committed_by(store.review_version(dataset, sample_id, base_version + 1), reviewer, new_label, base_version):
            return base_version + 1
        head = store.review_head(dataset, sample_id)
        raise ReviewConflict(_conflict_message(sample_id, base_version, head, reviewer), head) from exc
    return base_version + 1


def _committed_by(review: dict[str, Any] | None, reviewer: str, new_label: str, base_version: int) -> bool:
    """Whether ``review`` is the save of ``new_label`` by ``reviewer`` on top of ``base_version``."""
    return (review is not None and review["reviewer"] == reviewer and review["new_label"] == new_label
            and int(review["base_version"]) == int(base_version))


def undo_review(store: Store, dataset: str, sample_id: str, reviewer: str, base_version: int) -> int:
    """Undo review version ``base_version`` (the latest one the reviewer saw) by appending one that
    restores its previous label; returns the new version.

    History is never rewritten: the undo is itself a review (action ``review.undo``), checked
    like any save (:class:`ReviewConflict` when the sample changed since ``base_version``), and
    idempotent like one (an undo that committed is not undone twice).
    """
    target = store.review_version(dataset, sample_id, int(base_version)) if int(base_version) > 0 else None
    if target is None:
        raise ReviewError(f"sample {sample_id!r} has no review version {base_version} to undo")
    if target["old_label"] is None:
        raise ReviewError(f"sample {sample_id!r} had no label before its review version {base_version}; "
                          "nothing to restore")
    return save_review(store, dataset, sample_id, target["old_label"], reviewer,
                       f"undo of version {base_version}", base_version, action="review.undo")


def review_item(store: Store, dataset: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A claimed queue entry as the review desk holds it: dataset, entry_id, sample_id, reason,
    priority, claimed_at, and the sample's version (the base of the save) and current label with
    its source (see :func:`current_label`), read now."""
    sid = str(entry["sample_id"])
    with store.cursor():
        gold, source = current_label(store, dataset, sid)
        version = sample_version(store, dataset, sid)
    return {"dataset": dataset, "entry_id": int(entry["entry_id"]), "sample_id": sid, "reason": entry["reason"],
            "priority": float(entry["priority"]), "claimed_at": entry.get("claimed_at"),
            "base_version": version, "gold": gold, "gold_source": source}


def undo_save(store: Store, dataset: str, sample_id: str, reviewer: str, version: int,
              entry_id: int | None = None) -> dict[str, Any]:
    """The desk's undo of the reviewer's last save (review ``version`` of ``sample_id``): append a
    ``review.undo`` that restores the label before it, and claim the queue entry again so that the
    sample is reviewed anew. Returns ``{"version": the undo's version or None, "entry": the entry
    claimed again or None}``.

    A save on a sample without a label before it (an annotator tie) has nothing to restore: the
    entry is only claimed again. A sample changed since raises :class:`ReviewConflict`.
    """
    from core.queue import reopen_entry

    target = store.review_version(dataset, sample_id, int(version))
    new_version = None
    if target is None:
        raise ReviewError(f"sample {sample_id!r} has no review version {version} to undo")
    if target["old_label"] is not None:
        new_version = undo_review(store, dataset, sample_id, reviewer, int(version))
    elif sample_version(store, dataset, sample_id) != int(version):
        head = store.review_head(dataset, sample_id)
        raise ReviewConflict(_conflict_message(sample_id, int(version), head, reviewer), head)
    entry = reopen_entry(store, int(entry_id), reviewer) if entry_id is not None else None
    return {"version": new_version, "entry": entry}


def _bulk_conflict_message(conflicts: list[dict[str, Any]]) -> str:
    shown = "; ".join(
        f"{c['sample_id']!r} (you loaded version {c['base_version']}, now version {c['version']}"
        + (f" by {c['reviewer']} → {c['review_label']!r}" if c.get("reviewer") else "") + ")"
        for c in conflicts[:10]
    )
    more = f" and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
    return (f"{len(conflicts)} sample(s) changed since you loaded them, nothing was saved: {shown}{more}. "
            "Reload the table and review them again.")


def save_reviews_bulk(store: Store, dataset: str, rows: Any, reviewer: str, reason: str | None, *,
                      require_claim: bool = False) -> int:
    """Save many reviews all-or-nothing in ONE transaction; returns how many were saved.

    ``rows``: mappings (or a polars DataFrame) with ``sample_id``, ``new_label`` and
    ``base_version`` (the version the reviewer saw). Refused before anything is written, with a
    :class:`ReviewError`: an empty reviewer, a label outside the label set, an unknown or
    repeated sample, a missing or negative base version. Inside the transaction every row's
    current version must still equal its base version; if any does not, nothing is written and
    :class:`ReviewConflict` lists the conflicting samples (``exc.current`` maps each of their ids
    to its latest review: version, reviewer, new_label, created_at). A concurrent save of any of
    the same samples loses at commit with the same exception. Each review is audited as
    ``review.save`` (detail ``bulk: true``) and closes the sample's open queue entries.

    ``require_claim``: every row's sample must be claimed by ``reviewer`` in the queue (the bulk
    review edits only its own claims), else :class:`ReviewConflict` and nothing is written; two
    reviewers in bulk review then never overwrite each other.

    Idempotent like :func:`save_review`: a row whose version ``base_version + 1`` is already this
    reviewer's review with the same label committed earlier (a retried batch) counts as saved and
    is not written again; only the other rows are checked and written.
    """
    import polars as pl
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ReviewError("a reviewer name is required")
    authorize(reviewer, Action.REVIEW)
    items = rows.to_dicts() if isinstance(rows, pl.DataFrame) else [dict(r) for r in rows]
    if not items:
        return 0
    ids, labels, bases = [], [], []
    for i, item in enumerate(items, 1):
        sid = str(item.get("sample_id") or "").strip()
        if not sid:
            raise ReviewError(f"row {i}: a sample id is required")
        base = item.get("base_version")
        try:
            base_int = int(base)
        except (TypeError, ValueError):
            raise ReviewError(f"row {i} ({sid!r}): base_version must be a whole number, got {base!r}") from None
        if base_int < 0 or base_int != base:
            raise ReviewError(f"row {i} ({sid!r}): base_version must be a whole number >= 0, got {base!r}")
        ids.append(sid)
        labels.append(item.get("new_label"))
        bases.append(base_int)
    repeated = sorted({s for s in ids if ids.count(s) > 1}) if len(set(ids)) != len(ids) else []
    if repeated:
        raise ReviewError(f"sample(s) listed more than once: {', '.join(repeated[:5])}")
    info = store.get_dataset(dataset)
    allowed = set(info.labels)
    bad = [(s, lab) for s, lab in zip(ids, labels) if lab not in allowed]
    if bad:
        shown = ", ".join(f"{s}: {lab!r}" for s, lab in bad[:5])
        raise ReviewError(f"label(s) not in the label set of {dataset!r} ({', '.join(info.labels)}): {shown}")
    frame = pl.DataFrame({"sample_id": ids, "new_label": labels, "base_version": bases},
                         schema={"sample_id": pl.Utf8, "new_label": pl.Utf8, "base_version": pl.Int64})

    def already_saved(state: pl.DataFrame) -> pl.DataFrame:
        """Rows whose save by this reviewer committed before (a retry): sample_id."""
        moved = (frame.join(state.select("sample_id", "version"), on="sample_id", how="inner")
                 .filter(pl.col("version") > pl.col("base_version")))
        if moved.height == 0:
            return pl.DataFrame(schema={"sample_id": pl.Utf8})
        found = store.review_versions(dataset, moved.select("sample_id", (pl.col("base_version") + 1).alias("version")))
        return (moved.join(found, on="sample_id", how="inner", suffix="_r")
                .filter((pl.col("reviewer") == reviewer) & (pl.col("new_label_r") == pl.col("new_label"))
                        & (pl.col("base_version_r") == pl.col("base_version")))
                .select("sample_id"))

    def conflicts_of(state: pl.DataFrame) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rows_ = (frame.join(state, on="sample_id", how="inner")
                 .filter(pl.col("version") != pl.col("base_version"))
                 .join(already_saved(state), on="sample_id", how="anti").sort("sample_id").to_dicts())
        current = {c["sample_id"]: {"version": c["version"], "reviewer": c["reviewer"],
                                    "new_label": c["review_label"], "created_at": c["reviewed_at"]} for c in rows_}
        return rows_, current

    with store.cursor():  # one cursor (and one open of the file) for the whole batch
        try:
            with store.transaction():
                state = store.sample_review_state(dataset, ids)
                if state.height != len(ids):
                    missing = sorted(set(ids) - set(state["sample_id"].to_list()))
                    raise ReviewError(f"unknown sample(s) in {dataset!r}: {', '.join(missing[:5])}"
                                      + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
                conflicts, current = conflicts_of(state)
                if conflicts:
                    raise ReviewConflict(_bulk_conflict_message(conflicts), current)
                todo = frame.join(already_saved(state), on="sample_id", how="anti")
                if todo.height == 0:
                    return len(ids)
                if require_claim:
                    _check_claims(store, dataset, todo["sample_id"].to_list(), reviewer)
                state = state.join(todo.select("sample_id"), on="sample_id", how="semi")
                unreviewed = state.filter(pl.col("version") == 0)["sample_id"].to_list()
                no_reviews = pl.DataFrame(schema={"sample_id": pl.Utf8, "version": pl.Int64, "new_label": pl.Utf8})
                majority = gold_labels(store.annotations_of(dataset, unreviewed), no_reviews) if unreviewed else \
                    pl.DataFrame(schema={"sample_id": pl.Utf8, "gold_label": pl.Utf8})
                out = (
                    todo.join(state.select("sample_id", "review_label"), on="sample_id", how="left")
                    .join(majority.select("sample_id", "gold_label"), on="sample_id", how="left")
                    .select("sample_id", (pl.col("base_version") + 1).alias("version"), "base_version",
                            pl.coalesce("review_label", "gold_label").alias("old_label"), "new_label")
                )
                store.append_reviews(dataset, out, reviewer, reason, action="review.save")
        except StoreConflict as exc:
            state = store.sample_review_state(dataset, ids)
            if already_saved(state).height == len(ids):  # this very batch, run twice at once
                return len(ids)
            conflicts, current = conflicts_of(state)
            raise ReviewConflict(_bulk_conflict_message(conflicts) if conflicts else
                                 f"another review of one of these samples was saved at the same time; "
                                 f"nothing was saved: {exc}", current) from exc
    return len(ids)


def _check_claims(store: Store, dataset: str, sample_ids: list[str], reviewer: str) -> None:
    """Raise :class:`ReviewConflict` unless every sample has a queue entry claimed by ``reviewer``."""
    import polars as pl

    claimed = store.queue(dataset, status=["claimed"]).filter(pl.col("sample_id").is_in(sample_ids))
    mine = set(claimed.filter(pl.col("claimed_by") == reviewer)["sample_id"].to_list())
    missing = [s for s in sample_ids if s not in mine]
    if not missing:
        return
    others = dict(zip(claimed["sample_id"].to_list(), claimed["claimed_by"].to_list()))
    shown = "; ".join(f"{s!r}" + (f" (claimed by {others[s]})" if s in others else " (no longer claimed)")
                      for s in missing[:10])
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    raise ReviewConflict(f"{len(missing)} row(s) are not claimed by you any more, nothing was saved: {shown}{more}. "
                         "Reload your claims and review them again.",
                         {s: {"claimed_by": others.get(s)} for s in missing})


# ------------------------------------------------------------------------------------ exclusions
def exclusion_sources(audit: Any, sample_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Who excluded each sample, when and why: the latest ``sample.exclude`` audit row naming it.

    ``audit``: audit rows (logged_at, actor, action, detail JSON with ``sample_ids`` and ``reason``),
    newest first, as :meth:`Store.audit_log` returns them. Returns sample_id -> {excluded_by,
    excluded_at, reason} for the samples found (the audit keeps the first 1,000 ids of each row).
    """
    import json

    wanted, found = set(sample_ids), {}
    for row in audit.iter_rows(named=True):
        if row["action"] != "sample.exclude" or not row["detail"]:
            continue
        try:
            detail = json.loads(row["detail"])
        except ValueError:
            continue
        for sid in detail.get("sample_ids") or []:
            if sid in wanted and sid not in found:
                found[sid] = {"excluded_by": row["actor"], "excluded_at": row["logged_at"],
                              "reason": detail.get("reason")}
        if len(found) == len(wanted):
            break
    return found


def excluded_samples(store: Store, dataset: str, limit: int = 1000) -> Any:
    """The samples of ``dataset`` excluded from export (at most ``limit``), with a text preview and
    who excluded them, when and why: sample_id, preview, excluded_by, excluded_at, reason."""
    import polars as pl

    from core.queue import preview_text

    state = store.sample_review_state(dataset, with_text=True, excluded_only=True).head(max(int(limit), 0))
    ids = state["sample_id"].to_list()
    sources = exclusion_sources(store.audit_log(dataset=dataset, action="sample.exclude"), ids) if ids else {}
    return pl.DataFrame(
        {"sample_id": ids,
         "preview": [preview_text(r) for r in state.iter_rows(named=True)],
         "excluded_by": [sources.get(s, {}).get("excluded_by") for s in ids],
         "excluded_at": [sources.get(s, {}).get("excluded_at") for s in ids],
         "reason": [sources.get(s, {}).get("reason") for s in ids]},
        schema={"sample_id": pl.Utf8, "preview": pl.Utf8, "excluded_by": pl.Utf8, "excluded_at": pl.Datetime("us"),
                "reason": pl.Utf8})


def include_again(store: Store, dataset: str, sample_ids: list[str], actor: str, reason: str | None = None) -> int:
    """Undo exclusions: the samples count for export again (a lead's action, audited as
    ``sample.include`` by the store). Returns how many changed."""
    actor = (actor or "").strip()
    if not actor:
        raise ReviewError("an actor name is required for the audit trail")
    return store.set_excluded(dataset, [str(s) for s in sample_ids], False, actor, reason=reason or "included again")
