"""Deterministic demo data: a bilingual (Chinese/English) customer-service intent dataset.

No network and no model: texts come from templates with varied slots (products, order numbers,
cities, amounts, times, politeness forms, typos), labels and model probabilities from a
``numpy`` Generator seeded with ``seed``. The same seed always gives byte-identical files.

Files written by :func:`generate_demo` (JSONL, UTF-8, ``ensure_ascii=False``), importable by
:func:`core.ingest.import_file` with ``labels=DEMO_LABELS``:

``annotations`` (``demo_annotations.jsonl``)
    Long form, one row per (sample, annotator): ``id, batch, round, annotator, label,
    instruction, input, output, channel, lang, created_at``. 3,000 samples ``cs-00001`` …
    ``cs-03000`` in batches ``r1``–``r4`` (rounds 1–4; 900/800/700/600 samples), about 55%
    Chinese. Annotators ``alice`` and ``bo`` are accurate (about 93% correct, Cohen's kappa
    against the majority vote about 0.95; errors mostly on the confusable pairs
    refund↔cancel_order, shipping_status↔change_address, complaint↔refund,
    product_question↔invoice, and on ambiguous messages); ``chen`` is clearly weaker (about 68%
    correct, kappa against the majority about 0.68, errors less tied to the confusable pairs).
``predictions`` (``demo_predictions.jsonl``)
    ``id, pred_round, model, probs`` with ``probs`` a JSON object ``{label: p}`` (6 decimals,
    summing to 1 within 1e-9), for all 3,000 reference samples in each model round 1–4
    (models ``intent-clf-r1`` … ``intent-clf-r4``; 12,000 rows). Macro-F1 against the true
    labels is about 0.83 → 0.89 → 0.92 → 0.95. Most predictions are confident; a set of
    genuinely uncertain ones (top-2 margin below 0.1: about 12%, 8%, 6%, 4%) shrinks from round
    to round; the errors are mostly over-confident and fall on the confusable pairs (and on the
    ambiguous messages, which the annotators also find hard).
``current`` (``demo_current.jsonl``)
    A later batch ``current`` (round 5), ids ``cs-03001`` … ``cs-03600``, same fields and
    annotators as ``annotations``, no predictions. Real shift: 70% Chinese (55% before), texts
    with extra sentences (about +80% characters over instruction+input+output), new products,
    and far more complaint (28% vs 8%) and refund (24% vs 14%), far less shipping_status (6% vs
    20%); total variation distance of the label mix 0.30.

Planted quality problems (disjoint sets of samples; the ``truth`` frame of
:func:`generate_demo_frames` names them per sample in ``planted`` / ``planted_detail``):

==================  =====  ======================================================================
kind                count  what
==================  =====  ======================================================================
exact_duplicate     20     text (instruction, input, output) of another sample under a new id;
                           10 byte-identical, 10 differing only in case/whitespace (equal after
                           NFKC + casefold + whitespace collapse). ``planted_detail`` = source id.
                           All in r1–r4.
near_duplicate      20     copy of another sample with one or two characters/words of the
                           instruction changed (3-gram Jaccard of the joined fields >= 0.8).
                           ``planted_detail`` = source id. All in r1–r4.
pii                 30     in the instruction: 14 Chinese mobile numbers, 9 e-mail addresses,
                           4 Chinese resident ID numbers (valid check digit), 3 Luhn-valid
                           UnionPay card numbers. 24 in r1–r4, 6 in ``current``.
                           ``planted_detail`` = phone / email / cn_id / bank_card.
empty_output        25     15 ``""`` and 10 whitespace-only outputs. 20 in r1–r4, 5 in current.
                           ``planted_detail`` = empty / whitespace.
truncated_output    6      output cut mid-sentence (no final punctuation). r1–r4.
html                4      HTML tags in the output. r1–r4.
url                 4      a URL in the output (2) or the instruction (2). r1–r4.
                           ``planted_detail`` = output / instruction.
label_error         40     all three annotators agree on the same wrong label (a confusable
                           neighbour of the true one); every model round predicts the true label
                           with confidence. r1–r4. ``planted_detail`` = the given (wrong) label.
missing_rating      12     one annotator has no row for the sample (8 chen, 2 bo, 2 alice);
                           9 in r1–r4, 3 in current. ``planted_detail`` = the missing annotator.
==================  =====  ======================================================================

Besides the planted label errors, about 60 samples get a wrong majority naturally (two
annotators erring the same way); ``truth.true_label`` is the ground truth for all samples.
Every other output ends with sentence-final punctuation and no other text has PII, HTML or a
URL. Accidental near-duplicates (two messages from the same templates with 3-gram Jaccard >= 0.7)
are redrawn, so the only duplicate groups are the planted ones.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "ANNOTATORS",
    "BATCH_SIZES",
    "CURRENT_SIZE",
    "DEMO_DATASET",
    "DEMO_LABELS",
    "F1_TARGETS",
    "FILE_NAMES",
    "PLANTED_COUNTS",
    "generate_demo",
    "generate_demo_frames",
]

DEMO_DATASET = "demo-customer-service"
DEMO_LABELS: list[str] = [
    "cancel_order",
    "refund",
    "shipping_status",
    "change_address",
    "product_question",
    "complaint",
    "account_login",
    "invoice",
]
ANNOTATORS: tuple[str, ...] = ("alice", "bo", "chen")
BATCH_SIZES: dict[str, int] = {"r1": 900, "r2": 800, "r3": 700, "r4": 600}
CURRENT_SIZE = 600
F1_TARGETS: tuple[float, ...] = (0.83, 0.89, 0.92, 0.95)
FILE_NAMES = {
    "annotations": "demo_annotations.jsonl",
    "predictions": "demo_predictions.jsonl",
    "current": "demo_current.jsonl",
}
PLANTED_COUNTS: dict[str, int] = {
    "exact_duplicate": 20,
    "near_duplicate": 20,
    "pii": 30,
    "empty_output": 25,
    "truncated_output": 6,
    "html": 4,
    "url": 4,
    "label_error": 40,
    "missing_rating": 12,
}

_L = {lab: i for i, lab in enumerate(DEMO_LABELS)}
# Plausible confusions: where an annotator's or the model's error usually goes.
_NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "cancel_order": ("refund",),
    "refund": ("cancel_order", "complaint"),
    "shipping_status": ("change_address",),
    "change_address": ("shipping_status",),
    "product_question": ("invoice",),
    "complaint": ("refund",),
    "account_login": ("complaint", "product_question"),
    "invoice": ("product_question", "refund"),
}
_REF_MIX = {"cancel_order": 0.13, "refund": 0.14, "shipping_status": 0.20, "change_address": 0.10,
            "product_question": 0.16, "complaint": 0.08, "account_login": 0.10, "invoice": 0.09}
_CUR_MIX = {"cancel_order": 0.10, "refund": 0.24, "shipping_status": 0.06, "change_address": 0.07,
            "product_question": 0.10, "complaint": 0.28, "account_login": 0.08, "invoice": 0.07}
_ZH_SHARE_REF = 0.55
_ZH_SHARE_CUR = 0.70
# Per annotator: base error rate, share of errors that go to a confusable neighbour, and how
# strongly errors follow the sample's difficulty (careful annotators err on the hard ones).
_ANNOTATOR_ERR = {"alice": (0.055, 0.85, 0.5), "bo": (0.06, 0.85, 0.5), "chen": (0.315, 0.4, 0.15)}
# Model rounds: error rate (tuned to the macro-F1 targets) and share of uncertain samples.
_MODEL_ERR = (0.163, 0.105, 0.076, 0.046)
_MODEL_UNCERTAIN = (0.14, 0.10, 0.07, 0.05)
_ACCIDENTAL_MAX = 0.7  # 3-gram Jaccard above which an unplanned pair counts as a near-duplicate
_MONTH = {"r1": 1, "r2": 2, "r3": 3, "r4": 4, "current": 6}

# ---------------------------------------------------------------------------------------------
# Slot vocabularies
# ---------------------------------------------------------------------------------------------
_PRODUCTS = {
    "zh": ["蓝牙耳机", "空气炸锅", "电动牙刷", "羽绒服", "运动鞋", "保温杯", "扫地机器人", "机械键盘", "保湿面霜",
           "儿童安全座椅", "投影仪", "咖啡机", "行李箱", "智能手表", "四件套", "充电宝", "电饭煲", "瑜伽垫",
           "台灯", "婴儿推车", "净水器", "吹风机", "双肩包", "显示器"],
    "en": ["wireless earbuds", "air fryer", "electric toothbrush", "down jacket", "running shoes", "water bottle",
           "robot vacuum", "mechanical keyboard", "face cream", "car seat", "projector", "coffee maker",
           "suitcase", "smartwatch", "bedding set", "power bank", "rice cooker", "yoga mat", "desk lamp",
           "stroller", "water filter", "hair dryer", "backpack", "monitor"],
}
_NEW_PRODUCTS = {"zh": ["折叠屏手机", "VR眼镜", "露营帐篷", "电动滑板车", "筋膜枪"],
                 "en": ["foldable phone", "VR headset", "camping tent", "electric scooter", "massage gun"]}
_CITIES = {"zh": ["上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "重庆", "苏州", "天津",
                  "长沙", "厦门", "青岛", "昆明"],
           "en": ["Shanghai", "Beijing", "Guangzhou", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan", "Nanjing",
                  "Xi'an", "Chongqing", "Suzhou", "Singapore", "Hong Kong", "Kuala Lumpur", "Taipei", "Macau"]}
_DISTRICTS = ["朝阳区", "浦东新区", "天河区", "南山区", "西湖区", "武侯区", "江汉区", "鼓楼区", "雁塔区", "渝中区"]
_ROADS = {"zh": ["人民路", "解放路", "中山路", "建设路", "文三路", "科技园路", "长江路", "和平街", "新华路", "滨江大道"],
          "en": ["Nathan", "Orchard", "Garden", "Harbour", "Lakeside", "Maple", "River", "Station", "Hill", "Park"]}
_COURIERS = {"zh": ["顺丰", "中通", "圆通", "京东物流", "韵达", "申通", "EMS"],
             "en": ["SF Express", "ZTO", "YTO", "JD Logistics", "DHL", "FedEx", "the courier"]}
_COLORS = {"zh": ["黑色", "白色", "灰色", "粉色", "藏青色", "墨绿色", "香槟金"],
           "en": ["black", "white", "grey", "pink", "navy", "dark green", "champagne gold"]}
_FEATURES = {"zh": ["无线充电", "降噪", "防水", "快充", "定时预约", "语音控制", "双频WiFi"],
             "en": ["wireless charging", "noise cancelling", "water resistance", "fast charging",
                    "scheduled start", "voice control", "dual-band WiFi"]}
_WHO = {"zh": ["老人", "小孩", "学生", "孕妇", "上班族", "送礼"],
        "en": ["elderly people", "kids", "students", "travel", "office use", "a gift"]}
_COMPANIES = {"zh": ["上海星河科技有限公司", "杭州云帆贸易有限公司", "深圳市启明电子有限公司", "北京远景咨询有限公司",
                     "成都蓝海餐饮管理有限公司", "南京华信软件有限公司"],
              "en": ["Acme Trading Ltd.", "Northwind LLC", "Bluebird Consulting", "Greenfield Foods Inc.",
                     "Orbit Software Ltd.", "Harbor Design Studio"]}
_DEVICES = {"zh": ["苹果手机", "安卓手机", "电脑", "平板", "华为手机", "小程序"],
            "en": ["iPhone", "Android phone", "laptop", "iPad", "work computer", "mini program"]}
_LEVELS = {"zh": ["普通会员", "银卡会员", "金卡会员", "钻石会员"], "en": ["Basic", "Silver", "Gold", "Diamond"]}
_CHANNELS = ["app", "web", "phone"]
_MONTHS_EN = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

# ---------------------------------------------------------------------------------------------
# Templates: (text, alternative intent or None). An alternative marks an ambiguous message.
# ---------------------------------------------------------------------------------------------
_T = tuple[str, str | None]
_INSTR: dict[str, dict[str, list[_T]]] = {
    "cancel_order": {
        "zh": [("我想取消订单{order}，{product}不想要了。", None),
               ("刚下的单能取消吗？订单号{order}，{product}的颜色选错了。", None),
               ("请帮我把{time}下的{product}订单取消掉。", None),
               ("订单{order}还没发货吧？我不要了，麻烦取消。", None),
               ("{product}拍重复了，帮我取消其中一单，订单号{order}。", None),
               ("怎么取消订单？在{device}上找了半天没找到按钮，订单是{order}。", None),
               ("{time}在{city}门店下的{product}订单想取消，还能操作吗？", None),
               ("不想要{product}了，订单{order}取消吧，{amount}元退回原账户就行。", "refund")],
        "en": [("I'd like to cancel order {order}, I don't need the {product} anymore.", None),
               ("Can I still cancel order {order}? I picked the wrong color for the {product}.", None),
               ("Please cancel the {product} I ordered {time}.", None),
               ("Order {order} hasn't shipped yet, right? Please cancel it.", None),
               ("I ordered the {product} twice by mistake, please cancel one (order {order}).", None),
               ("How do I cancel an order? I can't find the button on my {device} for {order}.", None),
               ("I placed an order for a {product} {time} and want to cancel it before it ships.", None),
               ("Cancel order {order} please and put the {amount} back on my card.", "refund")],
    },
    "refund": {
        "zh": [("申请退款，订单{order}的{product}有质量问题。", None),
               ("退款{amount}元什么时候能到账？已经{days}天了。", None),
               ("我退货的{product}你们{time}就签收了，退款怎么还没到？", None),
               ("{product}收到就坏了，我要退款，不换货。", None),
               ("请问退款会退回到原支付方式吗？订单号{order}，金额{amount}元。", None),
               ("七天无理由退货，{product}的退款流程是怎样的？", None),
               ("{product}用了{days}天就坏了，太失望了，必须给我退款！", "complaint"),
               ("订单{order}的{product}我不要了，能直接退钱吗？", "cancel_order")],
        "en": [("I want a refund for the {product} in order {order}, it arrived damaged.", None),
               ("When will my refund of {amount} arrive? It's been {days} days.", None),
               ("You received my returned {product} {time}, where is my refund?", None),
               ("The {product} stopped working, I'd like my money back, not a replacement.", None),
               ("Will the refund of {amount} go back to my original payment method? Order {order}.", None),
               ("What is the refund process for returning the {product} within 7 days?", None),
               ("The {product} broke after {days} days, this is unacceptable, I demand a refund!", "complaint"),
               ("I don't want the {product} from order {order} anymore, can I just get my money back?",
                "cancel_order")],
    },
    "shipping_status": {
        "zh": [("订单{order}到哪了？{time}就显示已发货了。", None),
               ("{product}什么时候能送到{city}？", None),
               ("物流{days}天没更新了，{courier}上查不到，订单{order}。", None),
               ("请问我的{product}发货了吗？订单是{time}下的。", None),
               ("快递显示派送中，但是一直没人联系我，订单{order}。", None),
               ("{courier}说包裹在{city}转运中心卡住了，怎么回事？", None),
               ("买的{product}说好{days}天内发货，现在还没动静，订单{order}。", None),
               ("包裹还在路上吧？能不能改送到{city}的公司地址？订单{order}。", "change_address")],
        "en": [("Where is my order {order}? It has said shipped since {time}.", None),
               ("When will the {product} be delivered to {city}?", None),
               ("Tracking hasn't updated in {days} days and {courier} can't find order {order}.", None),
               ("Has my {product} shipped yet? I ordered it {time}.", None),
               ("The app says out for delivery but nobody came. Order {order}.", None),
               ("My package is stuck at the {city} hub according to {courier}, what's going on?", None),
               ("The {product} was supposed to ship within {days} days, still nothing. Order {order}.", None),
               ("Is my parcel still in transit? Could it go to my office in {city} instead? Order {order}.",
                "change_address")],
    },
    "change_address": {
        "zh": [("收货地址填错了，请改成{address}。", None),
               ("订单{order}还没发货的话帮我改一下地址：{address}。", None),
               ("我搬家了，{product}能改寄到{city}吗？", None),
               ("能修改收件人姓名和地址吗？订单号{order}，新地址是{address}。", None),
               ("地址少写了门牌号，应该是{address}。", None),
               ("{time}下单的{product}，地址要从{city}改到公司，怎么操作？", None),
               ("已经发货了还能改地址吗？{courier}现在到哪了？订单{order}。", "shipping_status")],
        "en": [("I entered the wrong shipping address, please change it to {address}.", None),
               ("If order {order} hasn't shipped, please update the address to {address}.", None),
               ("I moved, can the {product} be sent to {city} instead?", None),
               ("Can I change the recipient name and address on order {order}? New address: {address}.", None),
               ("I forgot the apartment number, the correct address is {address}.", None),
               ("I ordered the {product} {time}, how do I switch delivery from {city} to my office?", None),
               ("It already shipped, can I still change the address? Where is it now? Order {order}.",
                "shipping_status")],
    },
    "product_question": {
        "zh": [("{product}有{color}的吗？", None),
               ("这款{product}支持{feature}吗？", None),
               ("{product}的保修期是多久？{time}买的还在保修吗？", None),
               ("{product}和上一代有什么区别？{amount}元值得换吗？", None),
               ("这个{product}适合{who}用吗？", None),
               ("{product}现在有货吗？发{city}大概几天？", None),
               ("{color}的{product}和图片色差大吗？", None),
               ("{product}的价格含税吗？公司采购需要知道税率，预算{amount}元。", "invoice")],
        "en": [("Does the {product} come in {color}?", None),
               ("Does this {product} support {feature}?", None),
               ("How long is the warranty on the {product}? I bought it {time}.", None),
               ("What's the difference between this {product} and the previous model? Is it worth {amount}?",
                None),
               ("Is the {product} suitable for {who}?", None),
               ("Is the {product} in stock? How long does shipping to {city} take?", None),
               ("Does the {color} {product} look the same as in the photos?", None),
               ("Is VAT included in the price of the {product}? We're buying for our company, budget {amount}.",
                "invoice")],
    },
    "complaint": {
        "zh": [("客服态度太差了，{time}打电话被直接挂断！", None),
               ("{courier}的快递员把{product}扔在门口，包装都破了，太不负责了。", None),
               ("我对这次购物非常不满意，{product}和描述完全不符。", None),
               ("你们的售后一直踢皮球，问题{days}天了都没解决。", None),
               ("说好{days}天发货，结果拖了两周，你们怎么做生意的？", None),
               ("{product}有股很重的异味，这种东西也敢卖？", None),
               ("在{city}的门店被店员冷嘲热讽，我要投诉这个服务。", None),
               ("{product}质量太差了，我要投诉，{amount}元也得退给我。", "refund")],
        "en": [("Your support agent hung up on me {time}, terrible service!", None),
               ("The {courier} driver threw my {product} at the door and the box was crushed.", None),
               ("I'm very unhappy, the {product} looks nothing like the description.", None),
               ("Your after-sales team keeps passing me around, {days} days and still no fix.", None),
               ("You promised shipping in {days} days and it took two weeks. Unacceptable.", None),
               ("The {product} smells awful, how can you sell this?", None),
               ("The staff at your {city} store were rude to me, I want to file a complaint.", None),
               ("Worst {product} I've ever bought, I'm filing a complaint and I want my {amount} back.",
                "refund")],
    },
    "account_login": {
        "zh": [("试了{n}次都登录不上账号，一直提示密码错误。", None),
               ("{device}上收不到验证码，没法登录。", None),
               ("账号{time}被锁定了，怎么解锁？", None),
               ("换了手机号，原来的{level}账号怎么登录？", None),
               ("App更新后在{device}上一登录就闪退。", None),
               ("忘记密码了，找回密码的邮件等了{days}天都没收到。", None),
               ("在{city}出差换了{device}，登录一直提示异地风险。", None),
               ("账号被盗了还被下了{amount}元的单，客服一直不处理！", "complaint")],
        "en": [("I've tried {n} times and can't log in, it keeps saying my password is wrong.", None),
               ("I'm not receiving the verification code on my {device}, can't sign in.", None),
               ("My account got locked {time}, how do I unlock it?", None),
               ("I changed my phone number, how do I access my old {level} account?", None),
               ("The app crashes right after login on my {device} since the update.", None),
               ("Forgot my password and the reset email hasn't arrived in {days} days.", None),
               ("I'm traveling in {city} on a new {device} and login says unusual activity.", None),
               ("Someone hacked my account and placed a {amount} order, and nobody is helping!", "complaint")],
    },
    "invoice": {
        "zh": [("订单{order}需要开增值税专用发票，抬头是{company}。", None),
               ("发票抬头开错了，能重开吗？应该是{company}。", None),
               ("请问电子发票在哪里下载？订单{order}。", None),
               ("{product}的发票什么时候开？我要报销{amount}元。", None),
               ("能把{time}的几个订单合并开一张发票吗？", None),
               ("发票上的税号少了一位，{company}的需要重开。", None),
               ("{product}开发票的话能写办公用品吗？", "product_question"),
               ("退货后发票要寄回吗？订单{order}的{amount}元还没退。", "refund")],
        "en": [("I need a VAT invoice for order {order}, company name {company}.", None),
               ("The invoice has the wrong company name, can you reissue it to {company}?", None),
               ("Where can I download the e-invoice for order {order}?", None),
               ("When will the invoice for the {product} be issued? I need to expense {amount}.", None),
               ("Can you combine my orders from {time} into one invoice?", None),
               ("The tax number on the invoice for {company} is missing a digit, please reissue.", None),
               ("Can the invoice for the {product} say office supplies?", "product_question"),
               ("Do I have to send back the invoice with the returned {product}? Still waiting on {amount}.",
                "refund")],
    },
}

_OUTPUT: dict[str, dict[str, list[str]]] = {
    "cancel_order": {
        "zh": ["订单{order}已为您取消，款项将在{days}个工作日内原路退回。",
               "已提交取消申请，仓库拦截成功后会短信通知您。",
               "该订单已经出库，暂时无法直接取消，您可以在签收后申请退货。",
               "{product}的订单已取消成功，优惠券也已退回您的账户。"],
        "en": ["Order {order} has been cancelled and the payment will be returned within {days} business days.",
               "We've submitted the cancellation; you'll get a text once the warehouse stops the parcel.",
               "This order has already left the warehouse, so please refuse delivery or request a return.",
               "Your order for the {product} is cancelled and the coupon is back in your account."],
    },
    "refund": {
        "zh": ["退款{amount}元已审核通过，预计{days}个工作日内到账。",
               "已为您加急处理退款，请留意原支付账户的到账通知。",
               "仓库已收到您退回的{product}，质检完成后会立即发起退款。",
               "退款会原路返回，信用卡支付的一般需要{days}个工作日。"],
        "en": ["Your refund of {amount} has been approved and should arrive within {days} business days.",
               "We've expedited your refund, please watch your original payment account.",
               "The warehouse received your returned {product}; the refund starts right after inspection.",
               "Refunds go back to the original payment method; credit cards take about {days} business days."],
    },
    "shipping_status": {
        "zh": ["您的包裹目前在{city}转运中心，预计{days}天内送达。",
               "{courier}显示包裹已到达派送站点，今天会为您派送。",
               "已联系{courier}核实物流情况，有进展会第一时间通知您。",
               "订单{order}已于{time}发出，物流信息更新可能有延迟。"],
        "en": ["Your parcel is at the {city} sorting center and should arrive within {days} days.",
               "{courier} shows the parcel at your local station; it will be delivered today.",
               "We've contacted {courier} to check on the delivery and will update you as soon as we hear back.",
               "Order {order} shipped {time}; tracking updates can lag by a day."],
    },
    "change_address": {
        "zh": ["收货地址已修改为{address}，请以新地址为准。",
               "订单尚未发货，已为您更新收货信息。",
               "包裹已经发出，我们已联系{courier}尝试改派，结果会短信告知您。",
               "新地址已同步给仓库，{product}会寄往{city}。"],
        "en": ["The delivery address is now {address}.",
               "Your order hasn't shipped yet, so we've updated the delivery details.",
               "The parcel has already left; we've asked {courier} to redirect it and will text you the result.",
               "The warehouse has the new address and the {product} will go to {city}."],
    },
    "product_question": {
        "zh": ["{product}有{color}可选，详情页可以查看全部规格。",
               "这款{product}支持{feature}，保修期为{months}个月。",
               "{product}目前有现货，下单后{days}天内发货。",
               "这款{product}很适合{who}，页面上有详细的使用说明。"],
        "en": ["The {product} is available in {color}; the product page lists every option.",
               "This {product} supports {feature} and has a {months}-month warranty.",
               "The {product} is in stock and ships within {days} days of ordering.",
               "The {product} works well for {who}; the product page has a full guide."],
    },
    "complaint": {
        "zh": ["非常抱歉给您带来不好的体验，已将情况反馈给相关部门严肃处理。",
               "您的投诉已登记，工单号T{ticket}，专员会在24小时内联系您。",
               "我们已核实情况，为表歉意将补偿您{coupon}元优惠券。",
               "对于{product}的问题我们深表歉意，主管会亲自跟进处理。"],
        "en": ["We're very sorry about this experience and have escalated it to the team responsible.",
               "Your complaint is logged as ticket T{ticket}; a specialist will call you within 24 hours.",
               "We've looked into it and added a {coupon} coupon to your account as an apology.",
               "We apologize for the problem with the {product}; a supervisor will follow up personally."],
    },
    "account_login": {
        "zh": ["请尝试通过“忘记密码”重置，验证码有效期为5分钟。",
               "账号已为您解锁，请重新登录。",
               "建议把{device}上的App更新到最新版本后再试，如仍无法登录请提供截图。",
               "已为您换绑新手机号，原账号的{level}权益保持不变。"],
        "en": ["Please reset it with \"Forgot password\"; the code is valid for 5 minutes.",
               "Your account is unlocked, please sign in again.",
               "Please update the app on your {device} and try again; send us a screenshot if it still fails.",
               "We've linked your new phone number and your {level} benefits are unchanged."],
    },
    "invoice": {
        "zh": ["电子发票已开具，可在“我的订单-发票”中下载。",
               "已为您重新开具抬头为{company}的发票。",
               "发票会在确认收货后{days}个工作日内开出。",
               "订单{order}的发票已合并开具，金额{amount}元。"],
        "en": ["The e-invoice is ready under My Orders > Invoices.",
               "We've reissued the invoice to {company}.",
               "The invoice is issued within {days} business days after delivery is confirmed.",
               "The invoice for order {order} is combined, total {amount}."],
    },
}

_GREET = {"zh": ["", "", "", "您好，", "你好，", "亲，", "客服你好，", "在吗？", "麻烦问一下，", "打扰了，"],
          "en": ["", "", "", "Hi, ", "Hello, ", "Hey, ", "Good morning, ", "Hi there! ", "Excuse me, "]}
_THANKS = {"zh": ["", "", "", "谢谢！", "谢谢。", "麻烦尽快处理。", "急！", "辛苦了。", "在线等。"],
           "en": ["", "", "", " Thanks!", " Thank you.", " Please help asap.", " Thanks in advance.",
                  " Appreciate it!", " Urgent!"]}
_OPEN = {"zh": ["", "您好，", "亲，", "您好，感谢您的耐心等待。", "非常抱歉给您带来不便。", "收到，"],
         "en": ["", "Hi there, ", "Hello, ", "Thanks for reaching out. ", "Sorry for the trouble. ", "Got it. "]}
_CLOSE = {"zh": ["", "", "还有其他问题随时联系我们。", "祝您生活愉快！", "感谢您的理解与支持。", "如有疑问请回复本消息。"],
          "en": ["", "", " Let us know if there's anything else.", " Have a great day!", " Thanks for your patience.",
                 " Reply to this message if you have questions."]}
# Extra sentences of the later ``current`` batch (longer, more detailed messages).
_EXTRA_IN = {
    "zh": ["我已经等了{days}天了，之前联系过两次客服都没有结果。",
           "这个{product}是买给家里{who}的礼物，{time}之前一定要处理好。",
           "我是你们的{level}，在店里买了{n}年东西，这次真的很失望。",
           "之前在线客服答应过会跟进，但一直没有人回复我。",
           "麻烦尽快给我一个明确的答复，我这周要去{city}出差，不方便一直等消息。",
           "另外上次买的{product2}也有类似的问题，希望一起处理一下。",
           "我在{device}上截了图，页面显示的信息和客服说的不一样。",
           "如果今天还解决不了，我会考虑去消费者协会反映情况。"],
    "en": ["I've been waiting for {days} days and contacted support twice with no result.",
           "The {product} was a gift for {who} and it has to be sorted out before {time}.",
           "I've been a {level} member for {n} years and this is really disappointing.",
           "Your chat agent promised a follow-up but nobody ever got back to me.",
           "Please give me a clear answer soon, I'm traveling to {city} this week.",
           "The {product2} I bought last time had a similar issue, please look at both.",
           "I took screenshots on my {device} and the page says something different from your agent.",
           "If this isn't fixed today I'll take it to the consumer protection office."],
}
_EXTRA_OUT = {
    "zh": ["我们已将您的情况升级给高级专员，会在24小时内电话联系您。",
           "为表歉意，已向您的账户发放{coupon}元无门槛优惠券。",
           "处理进度可以在App的“服务记录”中实时查看。",
           "如果后续还有问题，可以直接回复本消息，无需重新排队。",
           "您反映的{product2}问题也已一并登记，工单号T{ticket}。"],
    "en": ["We've escalated your case to a senior specialist who will call you within 24 hours.",
           "As an apology we've added a {coupon} coupon to your account, no minimum spend.",
           "You can follow the progress under Service History in the app.",
           "If anything else comes up, just reply here; there's no need to queue again.",
           "We've also logged the issue with your {product2} under ticket T{ticket}."],
}
_TYPOS_ZH = [("登录", "登陆"), ("账号", "帐号"), ("已经", "以经"), ("订单", "定单"), ("收到", "收倒"),
             ("在吗", "再吗"), ("什么", "神马"), ("怎么", "咋")]
_TYPOS_EN = [("receive", "recieve"), ("address", "adress"), ("cancel", "cancle"), ("please", "pls"),
             ("Please", "Pls"), ("refund", "refnud"), ("password", "pasword"), ("delivered", "deliverd"),
             ("invoice", "invoce"), ("warranty", "waranty"), ("because", "becuase"), ("you", "u")]


class _Draw:
    """Buffered draws from a numpy Generator for the many scalar picks of text generation.

    Scalar ``Generator`` calls cost microseconds each; this hands out pre-drawn uniforms and
    normals as Python floats with the small subset of the ``Generator`` interface used here.
    """

    _CHUNK = 8192

    def __init__(self, gen: np.random.Generator):
        self.gen = gen
        self._u: list[float] = []
        self._n: list[float] = []

    def random(self) -> float:
        if not self._u:
            self._u = self.gen.random(self._CHUNK).tolist()[::-1]
        return self._u.pop()

    def normal(self) -> float:
        if not self._n:
            self._n = self.gen.standard_normal(self._CHUNK).tolist()[::-1]
        return self._n.pop()

    def integers(self, low: int, high: int | None = None, size: int | None = None) -> Any:
        if high is None:
            low, high = 0, low
        if size is not None:
            return [low + int(self.random() * (high - low)) for _ in range(size)]
        return low + int(self.random() * (high - low))

    def choice(self, n: int, size: int | None = None, replace: bool = True, p: Any = None) -> Any:
        if p is not None:
            u, acc = self.random(), 0.0
            for i, w in enumerate(p):
                acc += w
                if u < acc:
                    return i
            return n - 1
        pool = list(range(n))
        return [pool.pop(self.integers(len(pool))) for _ in range(size or 1)]

    def permutation(self, x: Any) -> list[int]:
        items = list(range(x)) if isinstance(x, int) else [int(v) for v in x]
        for i in range(len(items) - 1, 0, -1):  # Fisher-Yates
            j = self.integers(i + 1)
            items[i], items[j] = items[j], items[i]
        return items


def _pick(rng: _Draw, seq: list[Any] | tuple[Any, ...]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _amount(rng: _Draw, lang: str) -> str:
    value = int(rng.integers(9, 4000)) + float(_pick(rng, [0.0, 0.0, 0.9, 0.5, 0.99]))
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    if lang == "zh":
        return text
    return _pick(rng, ["$", "¥", "RMB "]) + text


def _time(rng: _Draw, lang: str) -> str:
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    if lang == "zh":
        return _pick(rng, ["昨天", "前天", "上周五", "今天上午", f"{month}月{day}日", "大促期间", "三天前", "周末",
                           f"{month}月{day}号"])
    return _pick(rng, ["yesterday", "the day before yesterday", "last Friday", "this morning",
                       f"on {_MONTHS_EN[month - 1]} {day}", "during the sale", "three days ago", "over the weekend",
                       f"on {month}/{day}"])


class _Slots(dict):
    """Slot values of one message, drawn on first use (``str.format_map`` asks for them)."""

    def __init__(self, rng: _Draw, lang: str, new_products: bool):
        super().__init__()
        self.rng, self.lang = rng, lang
        self.products = _PRODUCTS[lang] + (_NEW_PRODUCTS[lang] * 3 if new_products else [])

    def __missing__(self, key: str) -> str:
        rng, lang, zh = self.rng, self.lang, self.lang == "zh"
        if key == "order":
            value = (f"DD{rng.integers(10**8):08d}" if zh
                     else f"#{_pick(rng, 'ABCEHKMNPRSTW')}{rng.integers(10**7):07d}")
        elif key in ("product", "product2"):
            value = _pick(rng, self.products)
        elif key == "city":
            value = _pick(rng, _CITIES[lang])
        elif key == "address":
            if zh:
                value = (f"{_pick(rng, _CITIES['zh'])}市{_pick(rng, _DISTRICTS)}{_pick(rng, _ROADS['zh'])}"
                         f"{rng.integers(1, 400)}号{rng.integers(1, 20)}栋{rng.integers(1, 33)}0{rng.integers(1, 9)}室")
            else:
                value = (f"{rng.integers(1, 400)} {_pick(rng, _ROADS['en'])} Road, Apt "
                         f"{rng.integers(1, 33)}{rng.integers(0, 10)}, {self['city']}")
        elif key == "amount":
            value = _amount(rng, lang)
        elif key == "time":
            value = _time(rng, lang)
        elif key == "days":
            value = str(rng.integers(2, 16))
        elif key == "n":
            value = str(rng.integers(2, 9))
        elif key == "months":
            value = str(_pick(rng, [6, 12, 18, 24, 36]))
        elif key == "ticket":
            value = f"{rng.integers(10**6):06d}"
        elif key == "coupon":
            value = ("" if zh else "$") + str(_pick(rng, [5, 10, 20, 30, 50, 100]))
        else:
            table = {"courier": _COURIERS, "color": _COLORS, "feature": _FEATURES, "who": _WHO,
                     "company": _COMPANIES, "device": _DEVICES, "level": _LEVELS}[key]
            value = _pick(rng, table[lang])
        self[key] = value
        return value


def _typo(rng: _Draw, text: str, lang: str) -> str:
    table = _TYPOS_ZH if lang == "zh" else _TYPOS_EN
    present = [(a, b) for a, b in table if a in text]
    if present:
        a, b = _pick(rng, present)
        return text.replace(a, b, 1)
    if lang == "en":  # swap two adjacent letters inside a longer word
        words = text.split(" ")
        long_words = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
        if long_words:
            i = _pick(rng, long_words)
            w = words[i]
            j = int(rng.integers(1, len(w) - 2))
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
            return " ".join(words)
    return text


def _greet(greeting: str, body: str, lang: str) -> str:
    if lang == "en" and greeting.endswith(", ") and body[:1].isupper() and not body.startswith(("I ", "I'")):
        body = body[0].lower() + body[1:]
    return greeting + body


def _context(rng: _Draw, lang: str, s: _Slots) -> str:
    if rng.random() < 0.45:
        return ""
    if lang == "zh":
        facts = [f"订单号：{s['order']}", f"会员等级：{s['level']}", f"历史咨询：{int(rng.integers(0, 6))}次",
                 f"商品：{s['product']}", f"渠道备注：{_pick(rng, ['APP内咨询', '网页客服', '电话转写'])}"]
        sep = "；"
    else:
        facts = [f"Order: {s['order']}", f"Member tier: {s['level']}",
                 f"Previous contacts: {int(rng.integers(0, 6))}", f"Item: {s['product']}",
                 f"Source: {_pick(rng, ['in-app chat', 'web chat', 'call transcript'])}"]
        sep = "; "
    k = 1 + int(rng.random() < 0.5)
    idx = rng.choice(len(facts), size=k, replace=False)
    return sep.join(facts[int(i)] for i in sorted(idx))


def _message(rng: _Draw, intent: str, lang: str, long: bool) -> dict[str, Any]:
    """One customer message with the agent's reply; ``alt`` is set for ambiguous templates."""
    s = _Slots(rng, lang, new_products=long and rng.random() < 0.4)
    t_idx = rng.integers(len(_INSTR[intent][lang]))
    template, alt = _INSTR[intent][lang][t_idx]
    body = template.format_map(s)
    if long:
        k = 1 + int(rng.integers(0, 2)) + int(rng.random() < 0.3)
        extras = rng.choice(len(_EXTRA_IN[lang]), size=k, replace=False)
        sep = "" if lang == "zh" else " "
        body = sep.join([body] + [_EXTRA_IN[lang][int(i)].format_map(s) for i in extras])
    instruction = _greet(_pick(rng, _GREET[lang]), body, lang) + _pick(rng, _THANKS[lang])
    if lang == "en" and rng.random() < 0.08:
        instruction = instruction.lower()
    if rng.random() < 0.07:
        instruction = _typo(rng, instruction, lang)
    o_idx = rng.integers(len(_OUTPUT[intent][lang]))
    reply = _OUTPUT[intent][lang][o_idx].format_map(s)
    opener = _pick(rng, _OPEN[lang])
    if lang == "en" and opener.endswith(", ") and reply[:1].isupper() and not reply.startswith(("I ", "I'")):
        reply = reply[0].lower() + reply[1:]
    output = opener + reply
    if long:
        k = 1 + int(rng.random() < 0.35)
        extras = rng.choice(len(_EXTRA_OUT[lang]), size=k, replace=False)
        for i in extras:
            output += ("" if lang == "zh" else " ") + _EXTRA_OUT[lang][int(i)].format_map(s)
    output += _pick(rng, _CLOSE[lang])
    return {"instruction": instruction, "input": _context(rng, lang, s), "output": output,
            "alt": alt, "template": (intent, lang, t_idx, o_idx)}


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _key(sample: dict[str, Any]) -> str:
    return _norm("\n".join(t for t in (sample["instruction"], sample["input"], sample["output"]) if t))


# ---------------------------------------------------------------------------------------------
# Planted problems
# ---------------------------------------------------------------------------------------------
def _cn_mobile(rng: _Draw) -> str:
    prefix = _pick(rng, ["138", "139", "135", "136", "150", "158", "186", "177", "189", "199"])
    return prefix + "".join(str(int(d)) for d in rng.integers(0, 10, 8))


def _email(rng: _Draw) -> str:
    name = _pick(rng, ["zhang.wei", "lily_chen", "wangfang", "mike.liu", "sunny", "kevin.z", "amy", "jason_w"])
    return f"{name}{int(rng.integers(1, 999))}@{_pick(rng, ['qq.com', '163.com', 'gmail.com', 'outlook.com'])}"


def _cn_id(rng: _Draw) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    region = _pick(rng, ["110101", "310104", "440305", "330106", "510107", "420106"])
    born = f"{int(rng.integers(1965, 2003))}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    body = region + born + "".join(str(int(d)) for d in rng.integers(0, 10, 3))
    total = sum(int(c) * w for c, w in zip(body, weights))
    return body + "10X98765432"[total % 11]


def _bank_card(rng: _Draw) -> str:
    body = "6222" + "".join(str(int(d)) for d in rng.integers(0, 10, 11))
    total = 0
    for i, c in enumerate(reversed(body)):  # positions from the right, before the check digit
        d = int(c)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def _pii_sentence(kind: str, value: str, lang: str) -> str:
    zh = {"phone": "我的手机号是{v}，方便的话请直接打电话。", "email": "处理结果请发到我的邮箱{v}。",
          "cn_id": "我的身份证号是{v}，实名信息可以核对。", "bank_card": "退款请打到这张银行卡：{v}。"}
    en = {"phone": " You can call me on {v}.", "email": " Please email me at {v}.",
          "cn_id": " My ID number is {v}.", "bank_card": " Please refund to my card {v}."}
    return (zh if lang == "zh" else en)[kind].format(v=value)


def _near_edit(rng: _Draw, text: str, lang: str) -> str:
    """Change one or two characters/words of ``text`` so that its normalized form changes."""
    if lang == "zh":
        swaps = [("吗", "呢"), ("请", "麻烦"), ("我", "俺"), ("了", "啦"), ("订单", "单子"), ("怎么", "如何"),
                 ("能", "可以"), ("什么时候", "何时"), ("已经", "早就")]
        present = [(a, b) for a, b in swaps if a in text]
        if present:
            a, b = _pick(rng, present)
            return text.replace(a, b, 1)
        cut = text.rstrip("。！？")
        return cut + "啊" + text[len(cut):]
    swaps = [("please", "kindly"), ("my", "the"), ("can", "could"), ("I'd", "I would"), ("order", "purchase"),
             ("still", "yet"), ("want", "need"), ("the", "this"), ("Hi", "Hello")]
    present = [(a, b) for a, b in swaps if re.search(rf"\b{re.escape(a)}\b", text)]
    if present:
        a, b = _pick(rng, present)
        return re.sub(rf"\b{re.escape(a)}\b", b, text, count=1)
    return text.rstrip(".!?") + " now" + text[len(text.rstrip(".!?")):]


def _case_ws_variant(rng: _Draw, text: str, lang: str) -> str:
    """The same text after normalization: changed case and/or extra whitespace."""
    if lang == "en" and rng.random() < 0.6:
        text = text.upper() if rng.random() < 0.3 else text.lower()
    else:
        words = text.split(" ")
        if len(words) > 1:
            i = int(rng.integers(1, len(words)))
            words[i] = " " + words[i]
            text = " ".join(words)
    out = _pick(rng, ["  ", " ", "\t", ""]) + text + _pick(rng, [" ", "  ", "\n", ""])
    return out if out != text else text + " "


def _truncate(rng: _Draw, text: str) -> str:
    terminal = set(".!?。！？…;；~～,，、:： \"”“’)）")
    cut = int(len(text) * (0.45 + 0.3 * rng.random()))
    out = text[:cut].rstrip()
    while out and (out[-1] in terminal or not out[-1].isalnum()):
        out = out[:-1].rstrip()
    return out


def _plant(rng: _Draw, samples: list[dict[str, Any]], n_ref: int) -> None:
    """Plant the documented problems in place (text first: labels and models follow the text)."""
    ref = np.arange(n_ref)
    cur = np.arange(n_ref, len(samples))
    perm_ref = [int(i) for i in rng.permutation(ref)]
    perm_cur = [int(i) for i in rng.permutation(cur)]

    def take(pool: list[int], k: int) -> list[int]:
        out = pool[:k]
        del pool[:k]
        return out

    for s in samples:
        s["planted"], s["planted_detail"], s["missing"] = None, None, None

    # Duplicates: targets and their sources are all distinct samples.
    exact_t, exact_s = take(perm_ref, 20), take(perm_ref, 20)
    near_t, near_s = take(perm_ref, 20), take(perm_ref, 20)
    for j, (t, src) in enumerate(zip(exact_t, exact_s)):
        a, b = samples[t], samples[src]
        for f in ("instruction", "input", "output", "true_label", "alt", "lang", "hard"):
            a[f] = b[f]
        if j % 2:
            a["instruction"] = _case_ws_variant(rng, b["instruction"], b["lang"])
        a["planted"], a["planted_detail"] = "exact_duplicate", b["id"]
    for t, src in zip(near_t, near_s):
        a, b = samples[t], samples[src]
        for f in ("input", "output", "true_label", "alt", "lang", "hard"):
            a[f] = b[f]
        edited = _near_edit(rng, b["instruction"], b["lang"])
        if len(_key(b)) > 80 and rng.random() < 0.5:
            edited = _near_edit(rng, edited, b["lang"])
        a["instruction"] = edited
        a["planted"], a["planted_detail"] = "near_duplicate", b["id"]

    # PII in the instruction: 24 reference + 6 current samples.
    pii_kinds = ["phone"] * 14 + ["email"] * 9 + ["cn_id"] * 4 + ["bank_card"] * 3
    pii_ids = take(perm_ref, 24) + take(perm_cur, 6)
    order = [int(i) for i in rng.permutation(len(pii_kinds))]
    for idx, k in zip(pii_ids, (pii_kinds[i] for i in order)):
        s = samples[idx]
        value = {"phone": _cn_mobile, "email": _email, "cn_id": _cn_id, "bank_card": _bank_card}[k](rng)
        s["instruction"] = s["instruction"] + _pii_sentence(k, value, s["lang"])
        s["planted"], s["planted_detail"] = "pii", k

    # Empty outputs: 15 "" and 10 whitespace-only; 20 reference + 5 current.
    empty_ids = take(perm_ref, 20) + take(perm_cur, 5)
    blanks = [""] * 15 + [" ", "  ", "\n", "\t", " \n ", "\u3000", "   ", "\r\n", " \t", "\n\n"]
    for idx, value in zip(empty_ids, (blanks[int(i)] for i in rng.permutation(len(blanks)))):
        samples[idx]["output"] = value
        samples[idx]["planted"] = "empty_output"
        samples[idx]["planted_detail"] = "empty" if value == "" else "whitespace"

    for idx in take(perm_ref, 6):
        s = samples[idx]
        s["output"] = _truncate(rng, s["output"])
        s["planted"] = "truncated_output"

    html_forms = {"zh": ["<p>{o}</p>", "您好，<br>{o}", "<b>重要提示：</b>{o}", "{o}<br/><br/>"],
                  "en": ["<p>{o}</p>", "Hello,<br>{o}", "<b>Note:</b> {o}", "{o}<br/><br/>"]}
    for j, idx in enumerate(take(perm_ref, 4)):
        s = samples[idx]
        s["output"] = html_forms[s["lang"]][j].format(o=s["output"])
        s["planted"] = "html"
    for j, idx in enumerate(take(perm_ref, 4)):
        s = samples[idx]
        if j < 2:
            link = ("详情请访问 https://help.shop-demo.cn/{p}?ref=cs 查看。" if s["lang"] == "zh"
                    else " See https://help.shop-demo.com/{p}?ref=cs for details.")
            s["output"] = s["output"] + link.format(p=s["true_label"].replace("_", "-"))
            s["planted_detail"] = "output"
        else:
            link = ("商品链接 https://item.shop-demo.cn/p/{n} 。" if s["lang"] == "zh"
                    else " Link: https://www.shop-demo.com/p/{n} .")
            s["instruction"] = s["instruction"] + link.format(n=int(rng.integers(10000, 99999)))
            s["planted_detail"] = "instruction"
        s["planted"] = "url"

    for idx in take(perm_ref, 40):
        s = samples[idx]
        wrong = s["alt"] or _pick(rng, _NEIGHBOURS[s["true_label"]])
        s["planted"], s["planted_detail"] = "label_error", wrong

    missing = ["chen"] * 8 + ["bo"] * 2 + ["alice"] * 2
    for idx, who in zip(take(perm_ref, 9) + take(perm_cur, 3), missing):
        s = samples[idx]
        s["planted"], s["planted_detail"], s["missing"] = "missing_rating", who, who


# ---------------------------------------------------------------------------------------------
# Labels and predictions
# ---------------------------------------------------------------------------------------------
def _confusion_label(rng: Any, true: str, alt: str | None) -> str:
    return alt or _pick(rng, _NEIGHBOURS[true])


def _annotate(rng: np.random.Generator, samples: list[dict[str, Any]]) -> None:
    n = len(samples)
    hard = np.array([s["hard"] for s in samples])
    for name in ANNOTATORS:
        rate, neighbour_share, slope = _ANNOTATOR_ERR[name]
        weight = np.exp(slope * hard)
        weight /= weight.mean()
        p_err = np.clip(rate * weight, 0.0, 0.85)
        err = rng.random(n) < p_err
        to_neighbour = rng.random(n) < neighbour_share
        for i, s in enumerate(samples):
            true = s["true_label"]
            if s["planted"] == "label_error":
                label = s["planted_detail"]
            elif not err[i]:
                label = true
            elif to_neighbour[i]:
                label = _confusion_label(rng, true, s["alt"])
            else:
                label = _pick(rng, [lab for lab in DEMO_LABELS if lab != true])
            s.setdefault("labels", {})[name] = label


def _round_probs(p: np.ndarray) -> np.ndarray:
    """Round to 6 decimals; the largest entry absorbs the rounding so each row sums to 1."""
    r = np.round(p, 6)
    top = r.argmax(axis=1)
    rows = np.arange(r.shape[0])
    r[rows, top] = np.round(r[rows, top] + (1.0 - r.sum(axis=1)), 6)
    return r


def _predict(rng: np.random.Generator, ref: list[dict[str, Any]]) -> list[np.ndarray]:
    """Per model round an (n, 8) probability matrix over the reference samples."""
    n, k = len(ref), len(DEMO_LABELS)
    true = np.array([_L[s["true_label"]] for s in ref])
    hard = np.array([s["hard"] for s in ref])
    forced = np.array([s["planted"] == "label_error" for s in ref])
    confusion = np.array([_L[_confusion_label(rng, s["true_label"], s["alt"])] for s in ref])
    rows = np.arange(n)
    out = []
    for err_rate, unc_rate in zip(_MODEL_ERR, _MODEL_UNCERTAIN):
        score = hard + rng.normal(0.0, 0.7, n)
        score[forced] = -np.inf
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(-score, kind="stable")] = np.arange(n)
        n_wrong = int(round(err_rate * n))
        wrong = rank < n_wrong
        half = int(round(unc_rate * n / 2))
        uncertain = (rank >= n_wrong - half) & (rank < n_wrong + half) & ~forced
        # A wrong prediction goes to the sample's confusable label, sometimes anywhere else.
        random_other = (true + rng.integers(1, k, n)) % k
        wrong_label = np.where(rng.random(n) < 0.85, confusion, random_other)
        pred = np.where(wrong, wrong_label, true)
        second = np.where(wrong, true, confusion)

        logits = np.clip(rng.normal(-0.6, 0.6, (n, k)), -3.0, 0.4)
        top = rng.uniform(3.2, 6.5, n)                        # confident and right
        runner = rng.uniform(-0.5, 2.2, n)
        w_top = rng.uniform(2.5, 5.0, n)                      # wrong but over-confident
        w_run = w_top - rng.uniform(0.6, 2.5, n)
        u_top = rng.uniform(1.0, 2.6, n)                      # genuinely uncertain
        u_run = u_top - rng.uniform(0.03, 0.35, n)
        f_top = rng.uniform(4.0, 6.5, n)                      # planted label errors: model is right
        f_run = rng.uniform(0.0, 1.5, n)
        top = np.select([uncertain, wrong, forced], [u_top, w_top, f_top], top)
        runner = np.select([uncertain, wrong, forced], [u_run, w_run, f_run], runner)
        logits[rows, second] = np.maximum(runner, logits[rows, second])
        logits[rows, pred] = top
        temp = rng.uniform(0.9, 1.2, n)[:, None]
        z = logits / temp
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        out.append(_round_probs(p))
    return out


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def _counts(shares: list[float], size: int) -> list[int]:
    """Integer counts summing to ``size`` in the given proportions (largest remainder)."""
    raw = [w * size for w in shares]
    counts = [int(x) for x in raw]
    by_rest = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in by_rest[: size - sum(counts)]:
        counts[i] += 1
    return counts


def _draw(rng: _Draw, mix: dict[str, float], zh_share: float, size: int) -> tuple[list[str], list[str]]:
    """Exactly the label mix and Chinese share asked for, in random order."""
    labels = [lab for lab, c in zip(DEMO_LABELS, _counts([mix[lab] for lab in DEMO_LABELS], size)) for _ in range(c)]
    n_zh = _counts([zh_share, 1 - zh_share], size)[0]
    langs = ["zh"] * n_zh + ["en"] * (size - n_zh)
    return [labels[i] for i in rng.permutation(size)], [langs[i] for i in rng.permutation(size)]


def _shingles(text: str) -> set[str]:
    return {text[i : i + 3] for i in range(max(1, len(text) - 2))}


def _jaccard(a: set[str], b: set[str]) -> float:
    common = len(a & b)
    return common / (len(a) + len(b) - common) if a or b else 1.0


def _build_samples(rng: _Draw) -> list[dict[str, Any]]:
    plan: list[tuple[str, int, str, str]] = []
    for r, (batch, size) in enumerate(BATCH_SIZES.items(), start=1):
        labels, langs = _draw(rng, _REF_MIX, _ZH_SHARE_REF, size)
        plan += [(batch, r, lab, lang) for lab, lang in zip(labels, langs)]
    labels, langs = _draw(rng, _CUR_MIX, _ZH_SHARE_CUR, CURRENT_SIZE)
    plan += [("current", len(BATCH_SIZES) + 1, lab, lang) for lab, lang in zip(labels, langs)]

    samples: list[dict[str, Any]] = []
    # Only planted duplicates may be near-duplicates: an accidental one (same templates, similar
    # slots) is redrawn. Texts from different instruction or reply templates are never that close.
    by_template: dict[tuple[str, str, int, int], list[set[str]]] = {}
    for i, (batch, rnd, label, lang) in enumerate(plan, start=1):
        for _ in range(100):
            msg = _message(rng, label, lang, long=batch == "current")
            sh = _shingles(_key(msg))
            if all(_jaccard(sh, other) < _ACCIDENTAL_MAX for other in by_template.get(msg["template"], ())):
                break
        by_template.setdefault(msg["template"], []).append(sh)
        alt = msg["alt"]
        hard = rng.normal() + (1.3 if alt else 0.0)
        samples.append({
            "id": f"cs-{i:05d}", "batch": batch, "round": rnd, "true_label": label, "lang": lang,
            "channel": _CHANNELS[int(rng.choice(3, p=[0.5, 0.35, 0.15]))],
            "created_at": f"2024-{_MONTH[batch]:02d}-{int(rng.integers(1, 29)):02d}",
            "instruction": msg["instruction"], "input": msg["input"], "output": msg["output"],
            "alt": alt, "hard": hard,
        })
    return samples


def _long_frame(samples: list[dict[str, Any]]) -> pl.DataFrame:
    rows = []
    for s in samples:
        for name in ANNOTATORS:
            if s.get("missing") == name:
                continue
            rows.append({
                "id": s["id"], "batch": s["batch"], "round": s["round"], "annotator": name,
                "label": s["labels"][name], "instruction": s["instruction"], "input": s["input"],
                "output": s["output"], "channel": s["channel"], "lang": s["lang"], "created_at": s["created_at"],
            })
    schema = {"id": pl.Utf8, "batch": pl.Utf8, "round": pl.Int64, "annotator": pl.Utf8, "label": pl.Utf8,
              "instruction": pl.Utf8, "input": pl.Utf8, "output": pl.Utf8, "channel": pl.Utf8, "lang": pl.Utf8,
              "created_at": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def generate_demo_frames(seed: int = 7) -> dict[str, pl.DataFrame]:
    """The demo data as polars frames: ``annotations``, ``predictions``, ``current`` and ``truth``.

    ``annotations`` and ``current`` are the long-form import files (one row per sample and
    annotator); ``predictions`` has ``id, pred_round, model, probs`` with ``probs`` a struct
    of one Float64 field per label in :data:`DEMO_LABELS` order. ``truth`` (never written to
    the import files) has one row per sample: ``id, batch, round, lang, true_label, planted,
    planted_detail`` (see the module docstring for the planted problems).
    """
    streams = np.random.SeedSequence(seed).spawn(4)
    text_rng, plant_rng, ann_rng, pred_rng = (np.random.default_rng(s) for s in streams)
    text_rng, plant_rng = _Draw(text_rng), _Draw(plant_rng)
    samples = _build_samples(text_rng)
    n_ref = sum(BATCH_SIZES.values())
    _plant(plant_rng, samples, n_ref)
    _annotate(ann_rng, samples)
    ref, cur = samples[:n_ref], samples[n_ref:]
    probs = _predict(pred_rng, ref)

    ids = [s["id"] for s in ref]
    pred_parts = []
    for r, p in enumerate(probs, start=1):
        pred_parts.append(pl.DataFrame({
            "id": ids,
            "pred_round": [r] * len(ids),
            "model": [f"intent-clf-r{r}"] * len(ids),
            "probs": pl.DataFrame({lab: p[:, j] for j, lab in enumerate(DEMO_LABELS)}).to_struct("probs"),
        }, schema_overrides={"pred_round": pl.Int64}))
    truth = pl.DataFrame({
        "id": [s["id"] for s in samples],
        "batch": [s["batch"] for s in samples],
        "round": [s["round"] for s in samples],
        "lang": [s["lang"] for s in samples],
        "true_label": [s["true_label"] for s in samples],
        "planted": [s["planted"] for s in samples],
        "planted_detail": [s["planted_detail"] for s in samples],
    }, schema={"id": pl.Utf8, "batch": pl.Utf8, "round": pl.Int64, "lang": pl.Utf8, "true_label": pl.Utf8,
               "planted": pl.Utf8, "planted_detail": pl.Utf8})
    return {
        "annotations": _long_frame(ref),
        "predictions": pl.concat(pred_parts),
        "current": _long_frame(cur),
        "truth": truth,
    }


def _write_jsonl(frame: pl.DataFrame, path: Path) -> None:
    """One JSON object per line, UTF-8 as is (no \\u escapes for CJK), struct columns as objects."""
    frame.write_ndjson(path)


def generate_demo(out_dir: Path, seed: int = 7) -> dict[str, Path]:
    """Write the three demo import files into ``out_dir`` (created if missing); return their paths.

    Keys ``annotations``, ``predictions``, ``current``; import them in that order with
    ``import_file(store, path, DEMO_DATASET, labels=DEMO_LABELS)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = generate_demo_frames(seed)
    paths = {}
    for key, name in FILE_NAMES.items():
        path = out_dir / name
        _write_jsonl(frames[key], path)
        paths[key] = path
    return paths
