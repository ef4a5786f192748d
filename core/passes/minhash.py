"""Pass ``minhash``: each sample's MinHash signature and a key of its normalized text, for near duplicates.

What :func:`core.quality.near_duplicate_pairs` spends most of its time on is per sample: normalizing the joined text
fields (:func:`core.quality.normalize_text`) and hashing its character shingles into a signature. Cached, a rerun
after an import of 10 % new samples computes those 10 % only; the banding and the exact check of candidate pairs
(which look across samples) run each time on the cached signatures.

Signatures are ``num_perm`` = 128 uint32 a sample (512 bytes; 100,000 samples are 51 MB, read back in about 0.3 s
against 4-6 s to compute them on one core). The key is a 128-bit BLAKE2b digest of the normalized text: two samples
are exact copies when their keys are equal (None: an empty text).
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from core.passes import register
from core.passes.base import SamplePass
from core.quality import DEFAULT_SHINGLE, _signatures, combine_fields, normalize_text
from core.vocab import TEXT_FIELDS

#: The signature parameters of :func:`core.quality.near_duplicate_pairs`'s defaults (the report's).
NUM_PERM = 128
SEED = 1
SHINGLE = DEFAULT_SHINGLE
SCHEMA = {"sample_id": pl.Utf8, "norm_key": pl.Utf8, "signature": pl.Array(pl.UInt32, NUM_PERM)}


def text_key(normalized: str) -> str | None:
    """The key of a normalized text (None for an empty one): equal keys, equal texts (a 128-bit digest)."""
    return hashlib.blake2b(normalized.encode("utf-8"), digest_size=16).hexdigest() if normalized else None


def signatures(batch: pl.DataFrame) -> pl.DataFrame:
    """``sample_id, norm_key, signature`` of each sample: its text fields joined as the near-duplicate check joins
    them (:func:`core.quality.combine_fields` over :data:`TEXT_FIELDS`; a field the dataset lacks is null and adds
    nothing), normalized, keyed and signed. An empty text has no key and a zero signature (never read)."""
    fields = [f for f in TEXT_FIELDS if f in batch.columns]
    texts = combine_fields(batch, fields) if batch.height else []
    norm = [normalize_text(t) for t in texts]
    sig = np.zeros((len(norm), NUM_PERM), dtype=np.uint32)
    rows = [i for i, n in enumerate(norm) if n]
    if rows:
        sig[rows] = _signatures([norm[i] for i in rows], SHINGLE, NUM_PERM, SEED)
    return pl.DataFrame({"sample_id": batch.get_column("sample_id").cast(pl.Utf8),
                         "norm_key": pl.Series([text_key(n) for n in norm], dtype=pl.Utf8),
                         "signature": pl.Series(sig, dtype=SCHEMA["signature"])})


PASS = register(SamplePass(name="minhash", version=1, columns=TEXT_FIELDS, compute=signatures, schema=SCHEMA,
                           title="MinHash signatures", batch_rows=10_000,
                           pool_min_rows=150_000))
