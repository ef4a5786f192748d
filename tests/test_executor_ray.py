"""core.executor_ray on a real local Ray (2 CPUs, 200 MB object store): the same frames as the local executor.

Ray is a test requirement (``make test`` installs requirements-scale.txt): a missing Ray fails here, never skips.
The per-sample functions are real ones, run over a few thousand bilingual samples of every record shape: batch
wrappers over :mod:`core.textchecks` and :func:`core.quality.find_pii` defined here, and every registered pass of
:mod:`core.passes` when that package exists.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
import ray  # a test requirement: an ImportError here is a failure, as it should be
from polars.testing import assert_frame_equal

from core import textchecks
from core.executor import LocalExecutor
from core.executor_ray import ENV_SPILL_DIR, ROW, RayExecutor, shutdown
from core.quality import find_pii
from core.records import derive

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

N_SAMPLES = 3_000
BATCH_ROWS = 600  # 5 shards: several tasks on the 2 CPUs, each big enough to mean something
LOCAL = LocalExecutor(workers=1)


@pytest.fixture(scope="module")
def ray_executor():
    executor = RayExecutor("local", num_cpus=2, object_store_memory=200 * 2**20)
    executor.connect()
    # A cluster's workers import the map functions by name, and `test_executor_ray` is not on their path (only
    # `core`, shipped by the executor's runtime_env, is): send this module's functions by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield executor
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    shutdown()


# ----------------------------------------------------------------------------------------- bilingual samples

_ZH_PROMPTS = ["我的包裹什么时候到？", "请帮我取消订单并退款。", "怎么修改收货地址？", "发票可以重新开吗？",
               "会员积分怎么用？", "这件衣服有没有大一号的？"]
_EN_PROMPTS = ["Where is my parcel right now?", "Please cancel my order and refund me.",
               "How do I change the delivery address?", "Can you send the invoice again?",
               "How can I use my loyalty points?", "Do you have this jacket one size larger?"]
_ZH_ANSWERS = ["您的包裹已经发出，预计明天送达。", "已为您取消订单，退款将在三个工作日内到账。",
               "请在订单详情页点击修改地址即可。", "可以的，请提供订单号，我们会重新开具发票。"]
_EN_ANSWERS = ["Your parcel left our warehouse and should arrive tomorrow.",
               "Your order is cancelled; the refund reaches your card within three working days.",
               "Open the order details and choose change address.", "Sure, send us the order number and we reissue it."]
_REFUSALS = ["I'm sorry, but I can't help with that request.", "As an AI language model, I cannot do that.",
             "抱歉，我无法帮助您处理这个请求。", "作为一个人工智能语言模型，我不能回答这个问题。"]
_PII = ["联系我：13812345678", "my email is li.wei@example.com", "身份证 11010519491231002X",
        "card 4111 1111 1111 1111", "server at 192.168.10.20"]


def _answer(rng: random.Random, zh: bool) -> str:
    roll = rng.random()
    if roll < 0.08:
        return rng.choice(_REFUSALS)
    if roll < 0.14:  # degenerate repetition
        return ("好的好的我马上处理。" if zh else "I will check it for you right now. ") * rng.randint(4, 9)
    if roll < 0.22:  # answered in the other language
        zh = not zh
    text = rng.choice(_ZH_ANSWERS if zh else _EN_ANSWERS)
    if rng.random() < 0.1:
        text += " " + rng.choice(_PII)
    if rng.random() < 0.03:
        text += " <|im_start|>assistant"
    return text


def _record(rng: random.Random, i: int) -> dict:
    zh = rng.random() < 0.5
    prompt = rng.choice(_ZH_PROMPTS if zh else _EN_PROMPTS)
    answer = _answer(rng, zh)
    kind = i % 5
    if kind == 0:
        turns = [{"role": "system", "content": "你是客服。" if zh else "You are a support agent."},
                 {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        if rng.random() < 0.1:  # structural faults: two user turns in a row, an empty answer
            turns = [turns[0], turns[1], {"role": "user", "content": prompt}, {"role": "assistant", "content": ""}]
        return {"messages": turns}
    if kind == 1:
        return {"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]}
    if kind == 2:
        return {"instruction": prompt, "input": rng.choice(["", "订单号 A1234" if zh else "order A1234"]),
                "output": answer}
    if kind == 3:
        return {"prompt": prompt, "chosen": answer, "rejected": rng.choice(_REFUSALS)}
    return {"text": f"{prompt} {answer}"}


def bilingual_samples(n: int = N_SAMPLES, seed: int = 18) -> pl.DataFrame:
    """``n`` samples as the store gives them to a pass: ``sample_id``, ``shape``, ``record`` (JSON text) and the
    four derived text columns; Chinese and English, chat / ShareGPT / Alpaca / preference / plain text records."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        record = _record(rng, i)
        derived = derive(record)
        rows.append({"sample_id": f"s{i:05d}", "shape": derived.shape,
                     "record": json.dumps(record, ensure_ascii=False), **derived.text_fields()})
    return pl.DataFrame(rows, schema={"sample_id": pl.String, "shape": pl.String, "record": pl.String,
                                      "instruction": pl.String, "input": pl.String, "output": pl.String,
                                      "text": pl.String})


@pytest.fixture(scope="module")
def samples() -> pl.DataFrame:
    return bilingual_samples()


# ------------------------------------------------------ per-sample batch functions over core.textchecks / quality


def _with_ids(batch: pl.DataFrame, findings: list[dict]) -> pl.DataFrame:
    frame = textchecks.findings_frame(findings)
    return frame.select(batch["sample_id"].gather(frame["index"]).alias("sample_id"), pl.exclude("index"))


def languages(batch: pl.DataFrame) -> pl.DataFrame:
    profile = textchecks.language_profile(batch["output"])
    return pl.concat([batch.select("sample_id"), profile], how="horizontal")


def refusal_findings(batch: pl.DataFrame) -> pl.DataFrame:
    return _with_ids(batch, textchecks.refusals(batch["output"]))


def repetition_findings(batch: pl.DataFrame) -> pl.DataFrame:
    return _with_ids(batch, textchecks.repetition(batch["output"]))


def mismatch_findings(batch: pl.DataFrame) -> pl.DataFrame:
    return _with_ids(batch, textchecks.language_mismatch(batch["instruction"], batch["output"]))


def pii_spans(batch: pl.DataFrame) -> pl.DataFrame:
    rows = [{"sample_id": sid, "kind": kind, "start": start, "end": end, "matched": matched}
            for sid, text in zip(batch["sample_id"], batch["text"].fill_null(batch["output"]))
            for kind, start, end, matched in find_pii(text)]
    return pl.DataFrame(rows, schema={"sample_id": pl.String, "kind": pl.String, "start": pl.Int64,
                                      "end": pl.Int64, "matched": pl.String})


TEXTCHECK_MAPS = [languages, refusal_findings, repetition_findings, mismatch_findings, pii_spans]


def _passes() -> dict:
    if importlib.util.find_spec("core.passes") is None:
        return {}
    from core.passes import PASSES

    return dict(PASSES)


PASSES = _passes()


def assert_same_as_local(executor, fn, frame: pl.DataFrame, batch_rows: int = BATCH_ROWS) -> pl.DataFrame:
    expected = LOCAL.map_batches(fn, frame, batch_rows=batch_rows)
    got = executor.map_batches(fn, frame, batch_rows=batch_rows)
    assert_frame_equal(got, expected)
    return got


@pytest.mark.parametrize("fn", TEXTCHECK_MAPS, ids=[f.__name__ for f in TEXTCHECK_MAPS])
def test_textcheck_maps_give_the_local_frame(ray_executor, samples, fn):
    got = assert_same_as_local(ray_executor, fn, samples)
    assert got.height > 0  # the planted cases are found: the comparison is not between two empty frames


@pytest.mark.parametrize("name", sorted(PASSES))
def test_registered_passes_give_the_local_frame(ray_executor, samples, name):
    sample_pass = PASSES[name]
    frame = samples.select("sample_id", *[c for c in sample_pass.columns if c != "sample_id"])
    assert_same_as_local(ray_executor, sample_pass.bound(), frame, sample_pass.batch_rows or BATCH_ROWS)


# ------------------------------------------------------------------------------------ the executor's own contract


def keep_odd_rows(batch: pl.DataFrame) -> pl.DataFrame:
    return batch.filter(pl.col("i") % 2 == 1)


def shipped_core(batch: pl.DataFrame) -> pl.DataFrame:
    """The copies of ``core`` the executor's runtime_env put on this worker's path."""
    shipped = [p for p in sys.path if "runtime_resources" in p and (Path(p) / "core" / "executor.py").is_file()]
    return pl.DataFrame({"shipped": [shipped]}, schema={"shipped": pl.List(pl.String)})


def fail_on_777(batch: pl.DataFrame) -> pl.DataFrame:
    if (batch["i"] == 777).any():
        raise ValueError("sample 777 is malformed")
    return batch


def slow_and_marked(batch: pl.DataFrame) -> pl.DataFrame:
    (Path(batch["marks"][0]) / f"{batch['i'][0]:08d}").touch()
    time.sleep(0.3)
    return batch.select("i")


def many_dtypes(n: int) -> pl.DataFrame:
    return pl.DataFrame({
        "i": pl.Series(range(n), dtype=pl.Int64),
        "u8": pl.Series([i % 200 for i in range(n)], dtype=pl.UInt8),
        "f32": pl.Series([i / 3 for i in range(n)], dtype=pl.Float32),
        "flag": [i % 3 == 0 for i in range(n)],
        "text": [None if i % 11 == 0 else f"样本 {i} sample" for i in range(n)],
        "cat": pl.Series(["zh", "en", "ja"] * (n // 3) + ["zh"] * (n % 3), dtype=pl.Categorical),
        "enum": pl.Series(["low", "high"] * (n // 2) + ["low"] * (n % 2), dtype=pl.Enum(["low", "high"])),
        "when": pl.datetime_range(pl.datetime(2026, 1, 1), pl.datetime(2026, 1, 1) + pl.duration(seconds=n - 1),
                                  "1s", time_zone="Asia/Shanghai", eager=True),
        "day": pl.date_range(pl.date(2026, 1, 1), pl.date(2026, 1, 1) + pl.duration(days=n - 1), eager=True),
        "spans": [[i, i + 1] if i % 4 else [] for i in range(n)],
        "turn": [{"role": "user", "chars": i} for i in range(n)],
        "vec": pl.Series([[i, i + 1, i + 2] for i in range(n)], dtype=pl.Array(pl.UInt32, 3)),
        "blob": [bytes([i % 256]) for i in range(n)],
    })


def test_every_dtype_and_the_row_order_survive_the_round_trip(ray_executor, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_SPILL_DIR, str(tmp_path / "spill"))
    frame = many_dtypes(2_500)
    got = assert_same_as_local(ray_executor, keep_odd_rows, frame, batch_rows=300)
    assert got["i"].to_list() == list(range(1, 2_500, 2))
    assert list((tmp_path / "spill").iterdir()) == []  # the map's shards and outputs are removed after it


def test_the_core_package_is_shipped_to_the_workers(ray_executor):
    # runtime_env py_modules: on a cluster whose nodes have no checkout of the project, workers import core from it.
    got = ray_executor.map_batches(shipped_core, pl.DataFrame({"i": [1, 2]}))
    assert got["shipped"][0].len() >= 1


def test_empty_frame_gives_the_functions_schema(ray_executor, samples):
    got = ray_executor.map_batches(refusal_findings, samples.clear())
    assert_frame_equal(got, refusal_findings(samples.clear()))


def test_progress_reaches_one_as_shards_finish(ray_executor):
    frame = many_dtypes(1_000).select("i")
    seen = []
    ray_executor.map_batches(keep_odd_rows, frame, batch_rows=100, progress=lambda s, f: seen.append((s, f)),
                             stage="odd rows")
    assert len(seen) >= 2 and seen[-1] == ("odd rows", 1.0)
    assert [f for _, f in seen] == sorted(f for _, f in seen)


def test_maps_from_several_server_threads_at_once(ray_executor, samples):
    results: dict[str, pl.DataFrame] = {}
    errors: list[BaseException] = []

    def job(fn):
        try:
            results[fn.__name__] = ray_executor.map_batches(fn, samples, batch_rows=BATCH_ROWS)
        except BaseException as exc:  # noqa: BLE001 - asserted on below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(fn,)) for fn in (refusal_findings, pii_spans)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for fn in (refusal_findings, pii_spans):
        assert_frame_equal(results[fn.__name__], LOCAL.map_batches(fn, samples, batch_rows=BATCH_ROWS))


def test_a_frame_may_not_carry_the_row_order_column(ray_executor):
    with pytest.raises(ValueError, match=ROW):
        ray_executor.map_batches(keep_odd_rows, pl.DataFrame({"i": [1], ROW: [0]}))


# Last: a failed or cancelled run may cost Ray its warm workers (their tasks are cancelled), and the tests above
# would pay for new ones.


def test_an_exception_in_the_function_propagates_with_its_message(ray_executor):
    with pytest.raises(ValueError, match="sample 777 is malformed") as info:
        ray_executor.map_batches(fail_on_777, many_dtypes(1_000).select("i"), batch_rows=100)
    assert "raised on a Ray worker, in the batch from row 700" in "".join(getattr(info.value, "__notes__", []))


class Cancelled(Exception):
    pass


def test_a_progress_that_raises_stops_the_map(ray_executor, tmp_path):
    frame = many_dtypes(600).select("i").with_columns(pl.lit(str(tmp_path)).alias("marks"))

    def cancel(stage, fraction):
        raise Cancelled("user pressed Cancel")

    t0 = time.perf_counter()
    with pytest.raises(Cancelled):
        ray_executor.map_batches(slow_and_marked, frame, batch_rows=20, progress=cancel)
    # 30 shards of 0.3 s on 2 CPUs would take 4.5 s; the run stops after the first.
    assert len(list(tmp_path.iterdir())) < 20 and time.perf_counter() - t0 < 4.5


def test_embeddings_on_ray_equal_the_local_ones_and_are_cached(ray_executor, tmp_path):
    """Embedding, the heaviest per-sample pass, on the cluster: the workers load the packaged encoder by name and
    return the vectors embed() computes here (up to float noise of another process); they are cached as local ones,
    so a second call encodes nothing (issue 18)."""
    import numpy as np

    from core import embeddings
    from core.store import open_store

    rng = random.Random(7)
    texts = [_answer(rng, zh=i % 2 == 0) for i in range(40)] + ["", "退款", "refund please", "退款"]
    local = embeddings.embed(texts, model=embeddings.MINILM)
    steps = []
    store = open_store(tmp_path / "emb.duckdb")
    remote = embeddings.embed(texts, model=embeddings.MINILM, store=store, executor=ray_executor,
                              progress=lambda done, total: steps.append((done, total)))
    assert remote.shape == local.shape and remote.dtype == np.float32
    np.testing.assert_allclose(remote, local, atol=2e-5)
    assert steps and steps[-1] == (len(texts), len(texts))

    class NoMap:
        def map_batches(self, *args, **kwargs):
            raise AssertionError("every text is cached: nothing to encode")

    again = embeddings.embed(texts, model=embeddings.MINILM, store=store, executor=NoMap())
    np.testing.assert_allclose(again, remote, atol=1e-6)
    # a model built by hand cannot be loaded by a worker: it encodes here, whatever the executor
    fake = embeddings.EmbeddingModel("fake", "test", 3, lambda ts, bs: np.ones((len(ts), 3), dtype=np.float32))
    assert embeddings.embed(["a", "b"], model=fake, executor=NoMap()).shape == (2, 3)
