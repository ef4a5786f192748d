"""Tests for core.quality: normalization, duplicates, PII, cleaning, completeness and label errors (Chinese and English)."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from core.quality import (
    CLEANING_KINDS,
    _candidate_pairs,
    _shingle_hash32,
    _signatures,
    clean_text,
    cleaning_findings,
    combine_fields,
    completeness_issues,
    exact_duplicates,
    find_pii,
    mask_pii,
    near_duplicate_pairs,
    near_duplicates,
    normalize_text,
    out_of_fold_probs,
    shingles,
    suspected_label_errors,
)

HYP = settings(max_examples=50, deadline=None, derandomize=True)


# --------------------------------------------------------------------------- helpers


def cn_id(first17: str) -> str:
    """Append the ISO 7064 MOD 11-2 check character, computed independently: weights 2**(17-i) mod 11."""
    total = sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(first17))
    check = (12 - total % 11) % 11
    return first17 + ("X" if check == 10 else str(check))


def wrong_check(id18: str) -> str:
    return id18[:17] + ("0" if id18[17] != "0" else "1")


def luhn_complete(prefix: str) -> str:
    """Append the Luhn check digit to ``prefix``."""
    for d in "0123456789":
        digits = prefix + d
        total = 0
        for i, c in enumerate(reversed(digits)):
            v = int(c) * (2 if i % 2 else 1)
            total += v - 9 if v > 9 else v
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def luhn_break(card: str) -> str:
    return card[:-1] + str((int(card[-1]) + 1) % 10)


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(normalize_text(a)), shingles(normalize_text(b))
    return len(sa & sb) / len(sa | sb)


VALID_ID = cn_id("11010519491231002")  # a documented sample ID: check character X
assert VALID_ID == "11010519491231002X"
VISA = luhn_complete("411111111111111")  # 4111 1111 1111 1111
UNIONPAY19 = luhn_complete("621700012345678901")


def kinds(text: str) -> list[str]:
    return [f[0] for f in find_pii(text)]


# --------------------------------------------------------------------------- normalization, shingles


@pytest.mark.parametrize(
    "text, expected",
    [
        ("  Hello\tWORLD \n", "hello world"),
        ("ＡＢＣ　１２３", "abc 123"),
        ("Straße", "strasse"),
        ("你好，  世界", "你好, 世界"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


def test_normalize_text_rejects_non_strings():
    with pytest.raises(ValueError, match="string"):
        normalize_text(12)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text, k, expected",
    [
        ("abcd", 3, {"abc", "bcd"}),
        ("你好世界", 3, {"你好世", "好世界"}),
        ("ab", 3, {"ab"}),
        ("", 3, set()),
        ("aaaa", 2, {"aa"}),
    ],
)
def test_shingles(text, k, expected):
    assert shingles(text, k) == expected


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_shingles_rejects_bad_length(k):
    with pytest.raises(ValueError, match="shingle"):
        shingles("abc", k)


# --------------------------------------------------------------------------- exact duplicates


@pytest.mark.parametrize(
    "texts, expected",
    [
        (["Hello  World", "other", "hello world", "HELLO WORLD\n"], [[0, 2, 3]]),
        (["今天天气很好", "今天天气很好 ", "明天下雨", "明天　下雨", "x"], [[0, 1]]),
        (["ＡＢＣ１２３", "abc123", "abc 123"], [[0, 1]]),
        (["a", "b", "c"], []),
        (["", "  ", None, "x"], []),
        (["b", "a", "b", "a"], [[0, 2], [1, 3]]),
    ],
)
def test_exact_duplicates(texts, expected):
    assert exact_duplicates(texts) == expected


# --------------------------------------------------------------------------- near duplicates

EN = (
    "The quick brown fox jumps over the lazy dog near the river bank, and then it runs back "
    "home to sleep under the old oak tree before the sun goes down."
)
EN_EDIT = EN.replace("lazy dog", "lazy cat")
EN_OTHER = (
    "Gradient descent updates the parameters in the direction of the negative gradient, "
    "with a learning rate that controls how large every single step is."
)
ZH = "人工智能是计算机科学的一个分支，它企图了解智能的实质，并生产出一种新的能以人类智能相似的方式做出反应的智能机器。"
ZH_EDIT = ZH.replace("计算机科学", "计算机工程")
ZH_OTHER = "今天的天气非常晴朗，我们决定去公园散步，然后在湖边的小餐馆吃一顿简单的午饭，下午再回家休息。"


@pytest.mark.parametrize(
    "a, b",
    [(EN, EN_EDIT), (ZH, ZH_EDIT), (EN + " " + ZH, EN_EDIT + " " + ZH), (ZH, ZH[:-1] + "!")],
    ids=["english", "chinese", "mixed", "punctuation"],
)
def test_near_duplicates_found(a, b):
    assert jaccard(a, b) >= 0.8
    texts = [EN_OTHER, a, ZH_OTHER, b]
    assert near_duplicates(texts) == [[1, 3]]
    pairs = near_duplicate_pairs(texts)
    assert pairs.columns == ["row_a", "row_b", "estimated_jaccard", "jaccard"]
    assert pairs.select("row_a", "row_b").rows() == [(1, 3)]
    assert pairs["jaccard"][0] == pytest.approx(jaccard(a, b))
    assert abs(pairs["estimated_jaccard"][0] - pairs["jaccard"][0]) < 0.2


@pytest.mark.parametrize(
    "a, b",
    [
        (EN, EN_OTHER),
        (ZH, ZH_OTHER),
        (ZH, ZH[: len(ZH) // 2]),  # a prefix: Jaccard ~0.5
        (EN, EN.replace("quick brown fox", "slow grey wolf").replace("old oak", "tall pine")),
    ],
    ids=["english", "chinese", "half", "three-edits"],
)
def test_near_duplicates_not_found_below_threshold(a, b):
    assert jaccard(a, b) < 0.8
    assert near_duplicates([a, b]) == []
    assert near_duplicate_pairs([a, b]).height == 0


def test_threshold_is_applied_to_exact_jaccard():
    j = jaccard(EN, EN_EDIT)
    assert near_duplicates([EN, EN_EDIT], threshold=j) == [[0, 1]]
    assert near_duplicates([EN, EN_EDIT], threshold=min(1.0, j + 0.01)) == []


def test_clusters_are_transitive_and_include_exact_copies():
    chain = [ZH, ZH_EDIT, ZH_EDIT.replace("实质", "本质"), ZH_OTHER, ZH.upper() + "  "]
    assert near_duplicates(chain) == [[0, 1, 2, 4]]
    pairs = near_duplicate_pairs(chain)
    exact_copy = pairs.filter((pl.col("row_a") == 0) & (pl.col("row_b") == 4))
    assert exact_copy.rows() == [(0, 4, 1.0, 1.0)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"threshold": 0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"num_perm": 2}, "num_perm"),
        ({"shingle": 0}, "shingle"),
        ({"lsh_backend": "faiss"}, "lsh_backend"),
    ],
)
def test_near_duplicate_pairs_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        near_duplicate_pairs([EN, EN_EDIT], **kwargs)


def test_empty_and_single_inputs():
    assert near_duplicates([]) == []
    assert near_duplicates(["only one"]) == []
    assert near_duplicates(["", None, "  "]) == []


@pytest.mark.parametrize("k, num_perm, seed", [(3, 128, 1), (1, 16, 3), (5, 64, 7)])
def test_signatures_equal_datasketch_minhash(k, num_perm, seed):
    texts = [normalize_text(t) for t in (EN, ZH, "ab", "x", "混合 text 文本", ZH_OTHER)]
    sig = _signatures(texts, k, num_perm, seed)
    for text, row in zip(texts, sig):
        m = MinHash(num_perm=num_perm, seed=seed, hashfunc=lambda s, k=k: _shingle_hash32(s, k))
        m.update_batch(sorted(shingles(text, k)))
        assert np.array_equal(m.hashvalues, row)


@pytest.mark.parametrize("b, r", [(21, 6), (12, 10), (40, 3)])
def test_numpy_banding_equals_datasketch_lsh(b, r):
    rng = np.random.default_rng(0)
    base = [ZH, ZH_OTHER, EN, EN_OTHER]
    texts = []
    for i in range(120):
        t = list(base[i % 4])
        for _ in range(int(rng.integers(0, 8))):
            t[int(rng.integers(0, len(t)))] = "的" if i % 2 else "e"
        texts.append(normalize_text("".join(t)))
    sig = _signatures(list(dict.fromkeys(texts)), 3, 128, 1)
    a1, b1 = _candidate_pairs(sig, b, r, 1, "numpy")
    a2, b2 = _candidate_pairs(sig, b, r, 1, "datasketch")
    assert len(a1) > 0
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)


def test_datasketch_backend_gives_same_pairs():
    texts = [EN, ZH, EN_EDIT, ZH_OTHER, ZH_EDIT, EN_OTHER, ZH]
    assert near_duplicate_pairs(texts, lsh_backend="datasketch").equals(near_duplicate_pairs(texts))


_WORDS = ["数据", "标注", "质量", "模型", "训练", "label", "quality", "data", "model", "the", "of", "检查", "重复"]


@HYP
@given(words=st.lists(st.sampled_from(_WORDS), min_size=15, max_size=40), extra=st.sampled_from(["。", "!", "的", "s"]))
def test_property_tiny_edits_are_found_and_pairs_are_exact(words, extra):
    a = " ".join(words)
    b = a + extra
    others = [ZH_OTHER, EN_OTHER]
    texts = [a, *others, b]
    pairs = near_duplicate_pairs(texts, threshold=0.8)
    for ra, rb, _est, j in pairs.rows():
        assert ra < rb
        assert j == pytest.approx(jaccard(texts[ra], texts[rb]))
        assert j >= 0.8
    if jaccard(a, b) >= 0.95:  # LSH miss chance there is ~1e-12
        assert any(g[0] == 0 and 3 in g for g in near_duplicates(texts))


@HYP
@given(texts=st.lists(st.sampled_from([EN, ZH, EN_EDIT, ZH_OTHER, "短", "", EN.upper()]), max_size=8))
def test_property_exact_groups_inside_near_groups(texts):
    near = near_duplicates(texts)
    for group in exact_duplicates(texts):
        assert any(set(group) <= set(g) for g in near)
    for g in near:
        assert g == sorted(g) and len(g) >= 2


def test_combine_fields():
    df = pl.DataFrame({"instruction": ["翻译", "Hi"], "input": [None, "x"], "output": ["hello", "there"]})
    assert combine_fields(df) == ["翻译\nhello", "Hi\nx\nthere"]
    assert combine_fields(df, ["output", "missing"]) == ["hello", "there"]
    with pytest.raises(ValueError, match="none of the text fields"):
        combine_fields(df, ["nope"])


# --------------------------------------------------------------------------- PII: positives


@pytest.mark.parametrize(
    "text, expected",
    [
        # email
        ("联系我：zhang.san@example.com。", [("email", "zhang.san@example.com")]),
        ("mail a_b+tag@sub.example.org now", [("email", "a_b+tag@sub.example.org")]),
        ("13812345678@qq.com 是我的邮箱", [("email", "13812345678@qq.com")]),
        # Chinese mobile, embedded in Chinese, prefixes and separators, full-width digits
        ("我的手机号是13812345678谢谢", [("phone", "13812345678")]),
        ("电话：+86 138-1234-5678，白天打", [("phone", "+86 138-1234-5678")]),
        ("请拨(+86)13912345678", [("phone", "(+86)13912345678")]),
        ("号码 8615012345678 已停用", [("phone", "8615012345678")]),
        ("手机１３８１２３４５６７８", [("phone", "１３８１２３４５６７８")]),
        ("电话13812345678 13912345678", [("phone", "13812345678"), ("phone", "13912345678")]),
        # international
        ("call +44 20 7946 0958 tomorrow", [("phone", "+44 20 7946 0958")]),
        ("office: +1 (415) 555-2671.", [("phone", "+1 (415) 555-2671")]),
        ("法国号码+33 1 42 68 53 00联系", [("phone", "+33 1 42 68 53 00")]),
        # Chinese resident ID
        (f"身份证号{VALID_ID}，请核对", [("cn_id", VALID_ID)]),
        (f"ID: {VALID_ID.lower()}", [("cn_id", VALID_ID.lower())]),
        (f"证件{cn_id('44030619900101123')}号", [("cn_id", cn_id("44030619900101123"))]),
        # bank card
        (f"卡号{VISA}请还款", [("bank_card", VISA)]),
        ("card 4111 1111 1111 1111 expires", [("bank_card", "4111 1111 1111 1111")]),
        ("card 4111-1111-1111-1111.", [("bank_card", "4111-1111-1111-1111")]),
        (f"银联卡{UNIONPAY19}", [("bank_card", UNIONPAY19)]),
        ("Amex 3782 822463 10005 ok", [("bank_card", "3782 822463 10005")]),
        # ipv4
        ("服务器10.0.0.1宕机了", [("ipv4", "10.0.0.1")]),
        ("from 192.168.1.254, and 255.255.255.0", [("ipv4", "192.168.1.254"), ("ipv4", "255.255.255.0")]),
    ],
)
def test_find_pii_positive(text, expected):
    found = find_pii(text)
    assert [(k, m) for k, _s, _e, m in found] == expected
    for _k, s, e, m in found:
        assert text[s:e] == m


# --------------------------------------------------------------------------- PII: negatives


@pytest.mark.parametrize(
    "text",
    [
        # e-mail look-alikes
        "not an email: foo@bar",
        "@example.com",
        "a@b.c",
        # numbers that only look like phones
        "订单号：13812345678901",  # longer digit run
        "订单号 13812345678",  # labelled as an order number
        "order no. 15912345678 shipped",
        "时间戳 1699999999123",  # millisecond timestamp
        "生成于 20230101123456",  # compact datetime
        "12812345678",  # no Chinese mobile starts 12
        "138123456789",  # 12 digits
        "1381234567",  # 10 digits
        "version 1.3812345678",
        "金额 13812345678.50 元",
        "+1 555",  # too short for an international number
        # ID look-alikes
        wrong_check(VALID_ID),  # bad check digit
        cn_id("11010519490230001"),  # valid check digit, but February 30th
        cn_id("11010521990101001"),  # born in the future
        "1101051949123100",  # 16 digits
        # card look-alikes
        luhn_break(VISA),  # Luhn-invalid
        luhn_complete("169999999912"),  # Luhn-valid 13 digits but a timestamp-like 1xxx number
        luhn_complete("41111111111"),  # 12 digits: too short
        "4111 1111-1111 1111",  # mixed separators and Luhn-valid digits: not one card format
        # IPv4 look-alikes
        "256.1.1.1",
        "1.2.3.4.5",
        "01.02.03.04",
        # no digits at all
        "纯中文文本，没有任何个人信息。",
    ],
)
def test_find_pii_negative(text):
    assert find_pii(text) == []
    assert mask_pii(text) == text


def test_phone_inside_id_or_card_is_not_a_phone():
    id_with_phone = cn_id("31010419900101138")  # holds "138…" digit runs a phone pattern could grab
    card_with_phone = luhn_complete("6213812345678000")
    assert kinds(f"身份证{id_with_phone}") == ["cn_id"]
    assert kinds(f"卡号{card_with_phone}") == ["bank_card"]


def test_cn_id_wins_over_bank_card():
    # find an 18-digit ID that is also Luhn-valid and starts with a card digit (3, Shanghai)
    for seq in range(1000):
        candidate = cn_id(f"31010419800101{seq:03d}")
        if candidate[-1] != "X" and luhn_complete(candidate[:-1]) == candidate:
            break
    else:
        pytest.skip("no Luhn-valid ID in the range")
    assert kinds(f"号码{candidate}") == ["cn_id"]


def test_several_kinds_sorted_by_start():
    text = f"张三，手机13812345678，邮箱zs@example.cn，身份证{VALID_ID}，卡{VISA}，IP 8.8.8.8"
    assert kinds(text) == ["phone", "email", "cn_id", "bank_card", "ipv4"]
    starts = [f[1] for f in find_pii(text)]
    assert starts == sorted(starts)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("我的手机号是13812345678谢谢", "我的手机号是***5678谢谢"),
        ("mail me at zhang.san@example.com!", "mail me at ***.com!"),
        (f"ID {VALID_ID}", "ID ***002X"),
        ("card 4111 1111 1111 1111", "card ***1111"),
        ("call +1 (415) 555-2671", "call ***2671"),
        ("ip 192.168.1.254", "ip ***.254"),
        ("电话13812345678 13912349999", "电话***5678 ***9999"),
        ("nothing here", "nothing here"),
        (None, ""),
    ],
)
def test_mask_pii(text, expected):
    assert mask_pii(text) == expected


_CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
_LETTERS = st.sampled_from(list("abcxyz ，。的了"))


@HYP
@given(
    before=st.text(_CJK, max_size=12),
    after=st.text(_CJK, max_size=12),
    second=st.sampled_from("3456789"),
    rest=st.text(st.sampled_from("0123456789"), min_size=9, max_size=9),
)
def test_property_mobile_in_chinese_text_is_found(before, after, second, rest):
    phone = "1" + second + rest
    text = before + phone + after
    assert find_pii(text) == [("phone", len(before), len(before) + 11, phone)]
    assert mask_pii(text) == before + "***" + phone[-4:] + after


@HYP
@given(text=st.text(st.one_of(_CJK, _LETTERS), max_size=60))
def test_property_no_digits_no_pii(text):
    assert find_pii(text) == []
    assert mask_pii(text) == text


def test_find_pii_rejects_non_strings():
    with pytest.raises(ValueError, match="string"):
        find_pii(13812345678)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- PII: issue 15 fixes

EAN13 = "6901230000096"  # a valid EAN-13 barcode (Chinese prefix 690) that is also Luhn-valid
IMEI = "356938035643809"  # the GSMA example IMEI: 15 digits, Luhn-valid
DATED_ORDER = luhn_complete("202405171234567")  # a Luhn-valid order id that starts with its date
ID_1990 = cn_id("11010119900307123")
ID15 = "110105491231002"  # first generation: Beijing, born 1949-12-31, sequence 002


@pytest.mark.parametrize(
    "text, expected",
    [
        # non-ASCII e-mail addresses are taken whole, not from the last accented letter on
        ("escribe a josé.garcía@correo.es hoy", [("email", "josé.garcía@correo.es")]),
        ("Пишите: иван.петров@почта.рф", [("email", "иван.петров@почта.рф")]),
        ("邮箱müller@münchen.de，谢谢", [("email", "müller@münchen.de")]),
        # Chinese landlines
        ("前台电话010-12345678，找王经理", [("phone", "010-12345678")]),
        ("深圳办公室 0755-1234567 或 0755-12345678", [("phone", "0755-1234567"), ("phone", "0755-12345678")]),
        ("上海总部(021)12345678", [("phone", "(021)12345678")]),
        ("上海总部（021）1234 5678", [("phone", "（021）1234 5678")]),
        ("London office 020 7946 0958.", [("phone", "020 7946 0958")]),
        ("总机 010-12345678转801", [("phone", "010-12345678转801")]),
        ("座机：075512345678", [("phone", "075512345678")]),
        # mobile numbers split by dots or spaces
        ("手机138.1234.5678，晚上打", [("phone", "138.1234.5678")]),
        ("手机 138 1234 5678", [("phone", "138 1234 5678")]),
        # IPv6
        ("IPv6 地址 2001:db8::8a2e:370:7334 已分配", [("ipv6", "2001:db8::8a2e:370:7334")]),
        ("host 2001:0db8:85a3:0000:0000:8a2e:0370:7334 up", [("ipv6", "2001:0db8:85a3:0000:0000:8a2e:0370:7334")]),
        ("连接 [fe80::21a:2bff:fe3c:4d5e]:8080 失败", [("ipv6", "fe80::21a:2bff:fe3c:4d5e")]),
        # 15-digit (first-generation) ID numbers and IDs written in groups
        (f"老身份证{ID15}已过期", [("cn_id", ID15)]),
        (f"ID {ID_1990[:6]} {ID_1990[6:14]} {ID_1990[14:]} ok", [("cn_id", f"{ID_1990[:6]} {ID_1990[6:14]} {ID_1990[14:]}")]),
        (f"证件号{ID_1990[:6]}-{ID_1990[6:14]}-{ID_1990[14:]}", [("cn_id", f"{ID_1990[:6]}-{ID_1990[6:14]}-{ID_1990[14:]}")]),
        # cards under issuer prefixes, 19 digits grouped 4-4-4-4-3
        ("MC 2221000000000009, JCB 3530111333300000", [("bank_card", "2221000000000009"), ("bank_card", "3530111333300000")]),
        (f"银联 {' '.join([UNIONPAY19[i:i + 4] for i in range(0, 19, 4)])} 还款",
         [("bank_card", " ".join([UNIONPAY19[i:i + 4] for i in range(0, 19, 4)]))]),
        # a single-digit dotted quad after a network word
        ("DNS 8.8.8.8, IP: 1.2.3.4", [("ipv4", "8.8.8.8"), ("ipv4", "1.2.3.4")]),
    ],
)
def test_find_pii_issue15_positive(text, expected):
    found = find_pii(text)
    assert [(k, m) for k, _s, _e, m in found] == expected
    for _k, s, e, m in found:
        assert text[s:e] == m


def test_non_ascii_email_is_masked_whole():
    assert mask_pii("josé.garcía@correo.es") == "***o.es"
    assert mask_pii("联系 josé.garcía@correo.es 谢谢") == "联系 ***o.es 谢谢"


@pytest.mark.parametrize(
    "text",
    [
        # Luhn-valid numbers that are not cards
        f"条码 {EAN13}",
        f"商品 {EAN13} 已入库",  # 13 digits: an EAN-13 barcode, whatever the label
        f"IMEI: {IMEI}",
        f"手机串号{IMEI}",
        f"device {IMEI} registered",  # 15 digits and not American Express (34/37)
        f"订单 {DATED_ORDER} 已发货",
        f"{DATED_ORDER}",  # prefix 2024 is no card issuer's
        f"barcode {luhn_complete('400638133393')}",  # 13-digit Luhn-valid starting 4 (once a Visa length)
        # version, section and outline numbers are not IPv4 addresses
        "1.2.3.4",
        "see 1.2.3.4 for details",
        "version 1.2.3.4 released",
        "v2.10.3.1 fixes it",
        "升级到版本 2.0.1.3",
        "请参阅第1.2.3.4节",
        "section 10.1.2.3 applies",
        "规则 10.1.2.3 条",
        "Mozilla/5.0 Chrome/120.0.0.0 Safari/537.36",
        # IPv6 look-alikes
        "时间 12:30:45，比分 3:2",
        "MAC 00:1A:2B:3C:4D:5E",
        "std::vector and abc::def and a::b::c",
        "loopback ::1 and fe80::1",
        # landline look-alikes
        "日期 2023-10-01，区号 0755",
        "产品编号 0755-1234567",
        "batch 2023-0755-1234567",
        "01012345678",  # bare 0-led digits without a phone word
        # a 15-digit run that is no first-generation ID (no province 99; month 56)
        "991234900101123",
        "356938035643809",
    ],
)
def test_find_pii_issue15_negative(text):
    assert find_pii(text) == []
    assert mask_pii(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "会议定于2023-10-01 12:30:45开始，持续到18:00:00，地点在三楼。",
        "日期 2023.10.01，时间 09:30，截止 2024/05/17；1999年12月31日；02/29/2024 15:04:05。",
        "价格 ¥1,299.00，原价 $19.99，合计 1234567.89 元，优惠 0.5 折，共 100000000 人。",
        "Python 3.11.4 and numpy 1.26.4 are required; Ubuntu 22.04.3 LTS; build 10.0.19041.1.",
        "ISBN 978-7-111-12345-6，邮编 100084，学号 2021123456，时间戳 1699999999123。",
        "比分 3:2，屏幕比例 16:9，时间 12:30:45.123，2023-10-01T12:30:45Z，温度 -12.5℃。",
        "The years 2019-2023 saw growth of 12.5%; call 911; room 0755; area code 021.",
        "坐标 39.9042, 116.4074；版本 1.0.0.1 已发布；数据集 0.1.2.3 版。",
        "The meeting is at 10:30 on 2024-05-17 in room 301; the ratio was 1:2:3.",
    ],
)
def test_find_pii_precision_on_ordinary_text(text):
    assert find_pii(text) == []


# --------------------------------------------------------------------------- any text length


def _long_text(n: int, seed: int) -> str:
    """``n`` characters of Chinese and English with a few personal data and things to clean."""
    rng = np.random.default_rng(seed)
    words = ["data", "label", "quality", "model", "review", "the", "of", "sample", "annotation", "check"]
    parts: list[str] = []
    size = 0
    while size < n:
        han = "".join(chr(int(c)) for c in rng.integers(0x4E00, 0x9FA5, int(rng.integers(5, 30))))
        english = " ".join(words[int(i)] for i in rng.integers(0, len(words), int(rng.integers(3, 12))))
        part = f"{han}，{english}. "
        parts.append(part)
        size += len(part)
    return "".join(parts)[:n]


def test_every_function_handles_a_300k_character_text():
    n = 300_000
    base = _long_text(n, 0)
    planted = "联系电话13812345678，邮箱zhang.san@example.com，<b>粗体</b>！！！ "
    long = base[: n // 2] + planted + base[n // 2 + len(planted) :]
    assert len(long) == n
    edited = long[:1000] + "改" + long[1001:]
    texts = [ZH, long, EN, edited, _long_text(140_000, 1)]

    # near duplicates: the long pair is found with its exact Jaccard; nothing else pairs up
    pairs = near_duplicate_pairs(texts)
    assert pairs.select("row_a", "row_b").rows() == [(1, 3)]
    assert pairs["jaccard"][0] == pytest.approx(jaccard(long, edited))
    assert near_duplicates(texts) == [[1, 3]]
    assert exact_duplicates([long, long + " ", edited]) == [[0, 1]]

    # personal data and cleaning: found at the planted place, the rest of the text untouched
    at = n // 2
    assert [(k, s - at, m) for k, s, _e, m in find_pii(long)] == [
        ("phone", 4, "13812345678"),
        ("email", 18, "zhang.san@example.com"),
    ]
    masked = mask_pii(long)
    assert "13812345678" not in masked and "zhang.san@example.com" not in masked
    assert masked.startswith(long[:at]) and masked.endswith(long[at + len(planted) :])
    findings = cleaning_findings(long)
    assert ("html_tag", "<b>") in [(k, m) for k, _s, _e, m in findings]
    assert ("repeated_punct", "！！！") in [(k, m) for k, _s, _e, m in findings]
    assert len(clean_text(long)) < n
    assert combine_fields(pl.DataFrame({"instruction": [long], "output": ["好"]})) == [long + "\n好"]
    issues = completeness_issues(pl.DataFrame({"instruction": [long, "问"], "output": [edited, "答。"]}))
    assert ("output_repeats_instruction", 0) in set(zip(issues["kind"], issues["row"]))


@pytest.mark.parametrize("num_perm", [128, 64])
def test_signature_of_a_text_longer_than_the_work_matrix_equals_datasketch(num_perm):
    # 128 permutations hold 131,072 shingles in the work matrix: these texts need several slices,
    # on their own or between short texts
    texts = [normalize_text(t) for t in (EN, _long_text(300_000, 2), ZH, _long_text(140_000, 3), "x")]
    sig = _signatures(texts, 3, num_perm, 1)
    for text, row in zip(texts, sig):
        m = MinHash(num_perm=num_perm, seed=1, hashfunc=_shingle_hash32)
        m.update_batch(sorted(shingles(text, 3)))
        assert np.array_equal(m.hashvalues, row)


# --------------------------------------------------------------------------- cleaning

MOJIBAKE_ZH = "你好世界，这是一个测试。".encode().decode("gbk", errors="replace")


@pytest.mark.parametrize(
    "text, expected_kinds, cleaned",
    [
        ("See https://example.com/a?b=1 for more", ["url"], "See for more"),
        ("访问https://example.cn/x看看", ["url"], "访问看看"),
        ("(see www.example.org/page).", ["url"], "(see )."),
        ("<p>Hello&nbsp;world</p>", ["html_tag", "html_entity", "html_tag"], "Hello world\n"),
        ("a &lt;b&gt; &amp; c", ["html_entity"] * 3, "a <b> & c"),
        ("line<br/>next", ["html_tag"], "line\nnext"),
        ("bad\x00char\x07 here\u200b", ["control_char"] * 3, "badchar here"),
        ("CafÃ© â€“ itâ€™s", ["mojibake"] * 3, "Café – it’s"),
        ("æ–‡ä»¶ ok", ["mojibake"], "文件 ok"),
        ("文件损坏锟斤拷锟斤拷", ["mojibake"], "文件损坏"),
        ("浣犲ソ涓栫晫，正常", ["mojibake"], "你好世界，正常"),
        ("Wow!!!! 真的吗？？？", ["repeated_punct"] * 2, "Wow! 真的吗？"),
        ("好。。。。 ok.... 嗯………", ["repeated_punct"] * 3, "好。 ok... 嗯……"),
        ("型号ＡＢＣ１２３ and model X", ["fullwidth_form"], "型号ABC123 and model X"),
    ],
)
def test_cleaning_positive(text, expected_kinds, cleaned):
    found = cleaning_findings(text)
    assert [f[0] for f in found] == expected_kinds
    for _k, s, e, m in found:
        assert text[s:e] == m
    assert clean_text(text) == cleaned


def test_gbk_mojibake_found_in_longer_garbage():
    kind, start, end, _m = cleaning_findings(MOJIBAKE_ZH)[0]
    assert (kind, start) == ("mojibake", 0) and end >= 6
    assert clean_text(MOJIBAKE_ZH).startswith("你好世界，这")


@pytest.mark.parametrize(
    "text",
    [
        "Use List<String> or Map<K, V> in Java",
        "std::vector<int> v;; // C++",
        "Write `<div>` and `&amp;` in HTML",
        "```\n<p>code</p> &lt; !!!!\n```",
        "Well... 好吧…… 真的？！",
        "café résumé naïve Größe",
        "型号ＡＢＣ１２３",  # full-width with no half-width letters to mix with
        "人工智能是计算机科学的一个分支，它企图了解智能的实质。",
        "tab\tand\nnewline\r\n",
        "3 < 5 and 7 > 2",
        "R&D, AT&T",
    ],
)
def test_cleaning_negative(text):
    assert cleaning_findings(text) == []
    assert clean_text(text) == text


_PY_URL = 'url = "https://api.example.com/v1/items?page=2"'


@pytest.mark.parametrize(
    "text, kept_urls",
    [
        # English chat answer: a fenced Python example and a URL in prose
        (f"Use requests:\n```python\nimport requests\n{_PY_URL}\nrequests.get(url)\n```\nDocs: https://docs.example.com/x.",
         ["https://api.example.com/v1/items?page=2"]),
        # Chinese answer: inline code and a URL outside it
        ("把地址写成 `https://example.cn/api?id=1` 即可，详情见https://example.cn/help看看",
         ["https://example.cn/api?id=1"]),
        # Chinese answer, fenced block with a language tag and www. form
        ("示例代码如下：\n```js\nfetch('www.example.com/data.json')\n```\n更多请访问 www.example.org/page 。",
         ["www.example.com/data.json"]),
        # ~~~ fence
        ("Example:\n~~~\ncurl https://x.example.com/y\n~~~\nor see https://z.example.com/w", ["https://x.example.com/y"]),
    ],
)
def test_cleaning_leaves_urls_in_code(text, kept_urls):
    found = cleaning_findings(text)
    cleaned = clean_text(text)
    for url in kept_urls:
        assert url in cleaned
        assert all(url not in m for _k, _s, _e, m in found)
    # the one URL outside code is still a finding and is removed
    assert [k for k, *_ in found] == ["url"]
    outside = found[0][3]
    assert outside not in cleaned and text.count(outside) == 1


def test_no_cleaning_fix_touches_code():
    fenced = ("答案：\n```python\nhtml = \"<p>Hi&amp;bye</p>!!!\"  # ＡＢ1\nurl = \"https://a.example.com/q\"\n```\n"
              "正文有<b>标签</b>和网址 https://b.example.com/p ！！！")
    cleaned = clean_text(fenced)
    block = fenced[fenced.index("```") : fenced.rindex("```") + 3]
    assert block in cleaned
    assert cleaned.endswith("正文有标签和网址 ！")
    inline = "Call `requests.get(\"https://api.example.com\")` and write `<br>` or `&nbsp;!!!`."
    assert cleaning_findings(inline) == [] and clean_text(inline) == inline


def test_unclosed_fence_is_code_to_the_end():
    # a truncated answer: the fence never closes, Markdown renders the rest as code
    text = "See https://docs.example.com first.\n```python\nurl = \"https://api.example.com/v1\"\n"
    assert clean_text(text) == "See first.\n```python\nurl = \"https://api.example.com/v1\"\n"


def test_clean_text_selected_kinds():
    text = "<b>Hi</b> https://x.com/y !!!"
    assert clean_text(text, kinds=["url"]) == "<b>Hi</b> !!!"
    assert clean_text(text, kinds=["html_tag", "repeated_punct"]) == "Hi https://x.com/y !"
    with pytest.raises(ValueError, match="unknown cleaning kind"):
        clean_text(text, kinds=["typo"])


@HYP
@given(text=st.text(st.one_of(_CJK, st.sampled_from(list("<>/&;#!?。，.：ＡＢ１ a1bpr\x00\u200bÃ©€™")), st.characters()), max_size=80))
def test_property_cleaning_findings_are_well_formed(text):
    found = cleaning_findings(text)
    last_end = 0
    for kind, s, e, m in found:
        assert kind in CLEANING_KINDS
        assert last_end <= s < e <= len(text)
        assert text[s:e] == m
        last_end = e
    if not found:
        assert clean_text(text) == text
    assert isinstance(clean_text(text), str)


# --------------------------------------------------------------------------- completeness


def _df() -> pl.DataFrame:
    rows = [
        ("s0", "Translate to French: hello", "Bonjour."),
        ("s1", "写一首关于春天的诗", "春风拂面，花开满园。"),
        ("s2", "Summarize the article", ""),
        ("s3", "   ", "An answer that is complete."),
        ("s4", "Explain recursion", None),
        ("s5", "Explain recursion in one paragraph", "Recursion is when a function calls itself until the"),
        ("s6", "解释一下量子计算的基本原理", "量子计算利用量子比特的叠加和纠缠来并行处理信息，因此"),
        ("s7", "Repeat after me, please.", "repeat after me,   PLEASE."),
        ("s8", "What is 6 x 7?", "42"),
        ("s9", "他说了什么？", "他说：“我明天再来。”"),
        ("s10", "List three fruits", "Apples, pears and plums…"),
    ]
    return pl.DataFrame(rows, schema=["sample_id", "instruction", "output"], orient="row")


def test_completeness_issues_kinds():
    out = completeness_issues(_df())
    assert out.columns == ["row", "sample_id", "field", "kind", "detail"]
    got = {(r, f, k) for r, _sid, f, k, _d in out.rows()}
    assert got == {
        (2, "output", "empty_field"),
        (3, "instruction", "empty_field"),
        (4, "output", "missing_field"),
        (5, "output", "truncated_output"),
        (6, "output", "truncated_output"),
        (7, "output", "output_repeats_instruction"),
    }
    assert out.filter(pl.col("row") == 4)["sample_id"].to_list() == ["s4"]


def test_completeness_missing_column_and_no_id():
    df = pl.DataFrame({"instruction": ["a", "b"]})
    out = completeness_issues(df, required=("instruction", "output"))
    assert out.select("row", "field", "kind").rows() == [(0, "output", "missing_field"), (1, "output", "missing_field")]
    assert out["sample_id"].to_list() == [None, None]


@pytest.mark.parametrize(
    "lengths, outliers",
    [
        ([100, 110, 95, 105, 98, 102, 3000], [6]),
        ([100, 110, 95, 105, 98, 102, 1], [6]),
        ([100, 110, 95, 105, 98, 102, 118], []),  # robust z 2.7
        ([50, 50, 50, 50, 50, 50, 900], []),  # MAD 0: robust z undefined, no flags
        ([10, 2000], []),  # too few values
    ],
)
def test_length_outliers(lengths, outliers):
    df = pl.DataFrame({"instruction": ["q"] * len(lengths), "output": ["好" * (n - 1) + "。" for n in lengths]})
    out = completeness_issues(df).filter(pl.col("kind") == "length_outlier")
    assert out["row"].to_list() == outliers
    assert set(out["field"].to_list()) <= {"output"}


@pytest.mark.parametrize(
    "output, truncated",
    [
        ("This sentence simply stops in the middle of", True),
        ("这个回答在中间就被截断了因为", True),
        ("Here are the steps:", True),
        ("This is a complete sentence.", False),
        ("这是一个完整的句子。", False),
        ("真的吗？我不信！", False),
        ('He said "see you tomorrow."', False),
        ("See the code:\n```python\nprint(1)\n```", False),
        ("Great job, well done 🎉", False),
        ("short one", False),  # under the 10-character minimum
        ("positive", False),
    ],
)
def test_truncated_output(output, truncated):
    df = pl.DataFrame({"instruction": ["q"], "output": [output]})
    out = completeness_issues(df)
    assert ("truncated_output" in out["kind"].to_list()) is truncated


@pytest.mark.parametrize(
    "bad, match",
    [
        ("not a frame", "polars DataFrame"),
        (pl.DataFrame({"a": [1]}), "required"),
    ],
)
def test_completeness_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        if isinstance(bad, pl.DataFrame):
            completeness_issues(bad, required=())
        else:
            completeness_issues(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- label errors


def _planted_noise(n=300, k=3, n_flip=15, seed=0):
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n,
        n_features=8,
        n_informative=5,
        n_redundant=0,
        n_classes=k,
        n_clusters_per_class=1,
        class_sep=2.5,
        flip_y=0.0,  # the only label noise is the planted one
        random_state=seed,
    )
    rng = np.random.default_rng(seed)
    flipped = rng.choice(n, size=n_flip, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, k, size=n_flip)) % k
    return x, y, noisy, set(flipped.tolist())


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_label_noise_is_found(seed):
    x, _clean, noisy, flipped = _planted_noise(seed=seed)
    names = ["neg", "neu", "pos"]
    probs = out_of_fold_probs(x, noisy)
    out = suspected_label_errors(noisy, probs, names)
    assert out.columns == ["row", "given_label", "suggested_label", "self_confidence"]
    found = set(out["row"].to_list())
    assert len(found & flipped) >= 0.8 * len(flipped)
    assert len(found & flipped) >= 0.5 * len(found)  # most flags are real
    conf = out["self_confidence"].to_list()
    assert conf == sorted(conf)  # most suspicious first
    first = out.row(0, named=True)
    assert first["given_label"] == names[noisy[first["row"]]]
    assert first["suggested_label"] == names[int(probs[first["row"]].argmax())]


def test_label_errors_accept_label_names_and_clean_data():
    names = ["猫", "狗"]
    labels = ["猫", "狗", "猫", "狗", "猫", "狗"]
    probs = np.array([[0.95, 0.05], [0.1, 0.9], [0.9, 0.1], [0.05, 0.95], [0.97, 0.03], [0.2, 0.8]])
    assert suspected_label_errors(labels, probs, names).height == 0
    flipped = ["狗"] + labels[1:]
    out = suspected_label_errors(flipped, probs, names)
    assert out.row(0) == (0, "狗", "猫", pytest.approx(0.05))


@pytest.mark.parametrize(
    "labels, probs, names, match",
    [
        ([0, 1], np.full((3, 2), 0.5), ["a", "b"], "2 labels but 3 rows"),
        ([0, 1], np.full((2, 3), 1 / 3), ["a", "b"], "shape"),
        ([0, 2], np.full((2, 2), 0.5), ["a", "b"], "0..1"),
        (["a", "z"], np.full((2, 2), 0.5), ["a", "b"], "not among"),
        ([0, 1], np.array([[0.9, 0.9], [0.5, 0.5]]), ["a", "b"], "sum to 1"),
        ([0], np.array([[1.0]]), ["a"], "two label names"),
    ],
)
def test_label_errors_reject_bad_input(labels, probs, names, match):
    with pytest.raises(ValueError, match=match):
        suspected_label_errors(labels, probs, names)


def test_out_of_fold_probs_shape_and_order():
    x, _y, noisy, _f = _planted_noise(n=120)
    labels = np.array(["c", "a", "b"])[noisy]
    probs = out_of_fold_probs(x, labels, n_splits=3)
    assert probs.shape == (120, 3)
    assert np.allclose(probs.sum(axis=1), 1.0)
    # columns follow sorted labels: the predicted column should mostly match the label
    agree = np.mean(np.array(["a", "b", "c"])[probs.argmax(axis=1)] == labels)
    assert agree > 0.7


@pytest.mark.parametrize(
    "counts",
    [
        [10, 10, 2],  # smallest class smaller than n_splits: folds reduced to 2
        [10, 10, 1],  # singleton class: still runs, its column is 0 for that row
    ],
)
def test_out_of_fold_probs_small_classes(counts):
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.full(c, i) for i, c in enumerate(counts)])
    x = rng.normal(size=(len(labels), 4)) + labels[:, None] * 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the function must not leak sklearn's fold warnings
        probs = out_of_fold_probs(x, labels, n_splits=5)
    assert probs.shape == (len(labels), len(counts))
    assert np.all(np.isfinite(probs))
    if counts[-1] == 1:
        assert probs[-1, 2] == 0.0


@pytest.mark.parametrize(
    "x, labels, kwargs, match",
    [
        (np.zeros(4), [0, 0, 1, 1], {}, "2-D"),
        (np.zeros((4, 2)), [0, 0, 1], {}, "3 labels but 4"),
        (np.zeros((4, 2)), [0, 0, 0, 0], {}, "two labels"),
        (np.zeros((3, 2)), [0, 0, 1], {}, "two labels"),
        (np.zeros((4, 2)), [0, 0, 1, 1], {"n_splits": 1}, "n_splits"),
        (np.array([[np.nan, 0]] * 4), [0, 0, 1, 1], {}, "NaN"),
    ],
)
def test_out_of_fold_probs_rejects_bad_input(x, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        out_of_fold_probs(x, labels, **kwargs)


def test_combine_fields_reads_a_conversation_once():
    """A chat record's `text` is the whole conversation (core.records): joined with its prompt and answer it would
    be read twice; a file whose `text` column is independent of the others keeps every field."""
    conversation = "user: 我的包裹在哪？\nassistant: 今天发货。"
    df = pl.DataFrame({"instruction": ["我的包裹在哪？", "Translate"], "input": [None, "Good morning"],
                       "output": ["今天发货。", "Bonjour"], "text": [conversation, "a separate note"]})
    from core.quality import combine_fields

    assert combine_fields(df, ["instruction", "input", "output", "text"]) == [
        conversation, "Translate\nGood morning\nBonjour\na separate note"]
