"""A small store with planted quality problems, shared by the report and page tests.

Dataset ``qa`` (labels refund / cancel_order, annotators alice and bo, predictions of round 1):

- ``q21`` is a byte-identical copy of ``q01``; ``q22`` equals ``q02`` after case/whitespace folding;
- ``q23`` is ``q03`` (Chinese) with one character changed (a near duplicate);
- ``q05`` has a Chinese mobile number inside Chinese text;
- ``q06`` has an empty output;
- ``q08`` has an HTML tag in its output;
- ``q07`` is about a refund, but both annotators say cancel_order; the model says refund.

Dataset ``textonly``: a ``text`` field only, no labels, no predictions.
"""

from __future__ import annotations

from pathlib import Path

from factories import write_jsonl as _write

LABELS = ["refund", "cancel_order"]
PHONE = "13812345678"

_BASE = [
    ("How do I get my money back for order A100?", "Open the order page and choose Refund."),
    ("I want to cancel order B200 before it ships.", "Cancel it under My Orders while it is pending."),
    ("我上周买的蓝牙耳机有杂音，申请退款需要寄回原包装吗？", "需要寄回原包装和发票，收到后三个工作日内退款。"),
    ("Please stop the subscription renewal for my account.", "Your subscription renewal has been cancelled."),
    (f"请拨打{PHONE}联系我，退款到现在还没有到账", "我们已加急处理，款项将在两天内到账。"),
    ("Can you cancel the second item in my basket order?", ""),
    ("The blender arrived broken, I need a refund please.", "Sorry to hear that, the refund is on its way."),
    ("取消明天配送的生鲜订单，我临时出差了", "好的，<br>订单已取消，费用原路退回。"),
    ("Why was my refund for the jacket only partial?", "Shipping fees are not refunded for returns."),
    ("订单还没发货，请帮我取消并删除收货信息", "已为您取消订单，收货信息已清除。"),
    ("Return label for the shoes, refund to my card?", "Print the label; the refund goes to your card."),
    ("I ordered twice by mistake, cancel the duplicate.", "The duplicate order has been cancelled."),
    ("退货已经签收一周了，钱什么时候退给我", "签收后五个工作日内完成退款，请耐心等待。"),
    ("Stop my pre-order of the new console, thanks.", "Your pre-order is cancelled, no charge was made."),
    ("The hotel booking was refundable, where is my money?", "The refund was issued to your wallet today."),
    ("预约的上门安装不需要了，麻烦取消", "上门安装预约已取消，欢迎再次预约。"),
    ("Gift card purchase failed but I was charged, refund?", "We reversed the charge; expect it in 3 days."),
    ("Cancel the recurring flower delivery on Fridays.", "The Friday flower delivery is now stopped."),
    ("商品降价了，能退差价吗？", "可以，差价已退回到您的账户余额。"),
    ("Please cancel my table reservation for tonight.", "Your reservation for tonight is cancelled."),
]


def planted_rows() -> tuple[list[dict], list[dict]]:
    """(annotation rows, prediction rows) of dataset ``qa``."""
    samples = []
    for i, (ins, out) in enumerate(_BASE, start=1):
        samples.append({"id": f"q{i:02d}", "instruction": ins, "output": out,
                        "true": "refund" if i % 2 else "cancel_order"})
    samples.append({**samples[0], "id": "q21"})
    samples.append({**samples[1], "id": "q22", "instruction": "  i WANT to cancel   order b200 before it ships.",
                    "output": "CANCEL it under my orders while it is pending."})
    samples.append({**samples[2], "id": "q23", "instruction": samples[2]["instruction"].replace("杂音", "噪音")})
    rows, preds = [], []
    for s in samples:
        given = "cancel_order" if s["id"] == "q07" else s["true"]
        for annotator in ("alice", "bo"):
            rows.append({"id": s["id"], "instruction": s["instruction"], "output": s["output"],
                         "annotator": annotator, "label": given, "batch": "b1", "round": 1})
        p = 0.92
        preds.append({"id": s["id"], "pred_round": 1, "model": "clf-r1",
                      "probs": {lab: (p if lab == s["true"] else round(1 - p, 6)) for lab in LABELS}})
    return rows, preds


def build_planted_store(store, tmp_path: Path, predictions: bool = True, textonly: bool = False):
    """Import dataset ``qa`` (and optionally ``textonly``) into ``store``; returns the store."""
    from core.ingest import import_file

    rows, preds = planted_rows()
    import_file(store, _write(tmp_path / "qa.jsonl", rows), "qa", labels=LABELS)
    if predictions:
        import_file(store, _write(tmp_path / "qa_preds.jsonl", preds), "qa", labels=LABELS)
    if textonly:
        text_rows = [{"id": f"t{i}", "text": f"{ins} {PHONE if i == 1 else ''}".strip()}
                     for i, (ins, _) in enumerate(_BASE[:6], start=1)]
        import_file(store, _write(tmp_path / "textonly.jsonl", text_rows), "textonly", labels=LABELS)
    return store
