"""core.privacy: personal data masked for everyone by default; raw only for a team lead, and audited."""

from __future__ import annotations

import json

import polars as pl
import pytest
from test_auth import users_toml

from core import privacy
from core.checks.pii import pii_report
from core.export import export_gold, gold_records
from core.ingest import import_file
from core.roles import PermissionDenied

PHONE, MAIL = "13812345678", "li.lei@example.com"


@pytest.fixture
def team(tmp_path, monkeypatch):
    path = tmp_path / "users.toml"
    path.write_text(users_toml(alice="lead", rita="reviewer", sam="stakeholder"), encoding="utf-8")
    monkeypatch.setenv("QUALITY_USERS_FILE", str(path))
    return path


@pytest.fixture
def pii_store(store, tmp_path):
    rows = [{"id": "s1", "text": f"请拨打{PHONE}或写信到{MAIL}", "annotator": "a1", "label": "refund"},
            {"id": "s2", "messages": [{"role": "user", "content": f"my phone is {PHONE}"},
                                      {"role": "assistant", "content": "noted"}], "annotator": "a1", "label": "other"}]
    path = tmp_path / "pii.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    import_file(store, path, "d", labels=["refund", "other"], actor="cli")
    return store


def reveals(store) -> pl.DataFrame:
    return store.audit_log(action=privacy.REVEAL_ACTION)


@pytest.mark.parametrize("actor, role", [("rita", "reviewer"), ("sam", "stakeholder"), ("mallory", None)])
def test_an_unmasked_export_by_anyone_but_a_lead_raises_and_writes_nothing(pii_store, team, tmp_path, actor, role):
    out = tmp_path / "gold.jsonl"
    with pytest.raises(PermissionDenied, match=f"^{actor} "):
        export_gold(pii_store, "d", out, mask_pii=False, actor=actor)
    assert not out.exists() and reveals(pii_store).height == 0
    with pytest.raises(PermissionDenied):
        gold_records(pii_store, "d", mask_pii=False, actor=actor)
    with pytest.raises(PermissionDenied, match="named team lead"):
        export_gold(pii_store, "d", out, mask_pii=False)  # no actor: nobody to audit
    assert reveals(pii_store).height == 0


def test_an_unmasked_export_by_a_lead_is_audited(pii_store, team, tmp_path):
    out = tmp_path / "gold.jsonl"
    assert export_gold(pii_store, "d", out, fmt="jsonl", mask_pii=False, actor="alice") == 2
    text = out.read_text(encoding="utf-8")
    assert PHONE in text and MAIL in text
    [row] = reveals(pii_store).to_dicts()
    assert (row["actor"], row["dataset"], row["new_value"]) == ("alice", "d", "gold export (jsonl)")


def test_the_export_is_masked_by_default_for_everyone_and_not_audited(pii_store, team, tmp_path):
    out = tmp_path / "gold.csv"
    export_gold(pii_store, "d", out, fmt="csv", actor="sam")
    text = out.read_text(encoding="utf-8")
    assert PHONE not in text and MAIL not in text and "***5678" in text
    assert reveals(pii_store).height == 0


def test_a_reveal_is_a_leads_audited_decision_and_cannot_be_forged(pii_store, team):
    for actor in ("rita", "sam"):
        with pytest.raises(PermissionDenied):
            privacy.reveal(pii_store, actor, "d", "data quality page")
    assert reveals(pii_store).height == 0
    decision = privacy.reveal(pii_store, "alice", "d", "data quality page")
    assert reveals(pii_store)["actor"].to_list() == ["alice"]
    assert privacy.is_revealed(decision, "d") and not privacy.is_revealed(decision, "other")
    forged = privacy.Reveal("alice", "d", "data quality page")
    assert not privacy.is_revealed(forged, "d")
    assert privacy.mask_text(PHONE, forged, "d") == "***5678"
    assert privacy.mask_text(PHONE, decision, "d") == PHONE
    assert privacy.may_reveal("alice") and not privacy.may_reveal("rita") and not privacy.may_reveal("sam")
    # a reveal already made (and audited) is not audited again by the export it allows
    rows = gold_records(pii_store, "d", mask_pii=False, reveal=decision)
    assert PHONE in json.dumps(rows, ensure_ascii=False) and reveals(pii_store).height == 1


def test_mask_frame_masks_text_and_nested_strings_but_not_ids():
    frame = pl.DataFrame({"sample_id": [PHONE], "preview": [f"call {PHONE}"], "n": [1],
                          "votes": [[{"annotator": MAIL, "label": "x"}]]})
    masked = privacy.mask_frame(frame)
    assert masked["sample_id"][0] == PHONE and masked["preview"][0] == "call ***5678" and masked["n"][0] == 1
    assert masked["votes"][0][0]["annotator"] == "***.com"
    assert privacy.mask_record({"a": [PHONE, 3]}) == {"a": ["***5678", 3]}


def test_pii_findings_are_masked_in_core_with_no_half_match_in_the_context():
    text = f"{MAIL} {PHONE}"  # the phone lies in the e-mail's context window
    frame = pii_report(pl.DataFrame({"sample_id": ["a"], "text": [text]}), ["text"])
    dumped = json.dumps(frame.to_dicts(), ensure_ascii=False)
    assert PHONE not in dumped and MAIL not in dumped and "1234" not in dumped.replace("***5678", "")
    assert frame["match"].to_list() == ["***.com", "***5678"]
    assert frame["start"].to_list() == [0, len(MAIL) + 1]


def test_cli_export_is_masked_unless_raw_and_a_raw_export_is_audited(pii_store, tmp_path, team):
    from core.__main__ import main

    db = str(pii_store.path)
    masked, raw = tmp_path / "m.jsonl", tmp_path / "r.jsonl"
    assert main(["--db", db, "export", "--dataset", "d", "--format", "jsonl", "--out", str(masked)]) == 0
    assert PHONE not in masked.read_text(encoding="utf-8")
    assert main(["--db", db, "export", "--dataset", "d", "--format", "jsonl", "--out", str(raw),
                 "--raw", "--actor", "rita"]) == 1  # a reviewer may not
    assert not raw.exists()
    assert main(["--db", db, "export", "--dataset", "d", "--format", "jsonl", "--out", str(raw), "--raw"]) == 0
    assert PHONE in raw.read_text(encoding="utf-8")
    assert reveals(pii_store)["actor"].to_list() == ["cli"]


def test_mask_report_masks_every_check_and_keeps_ids(store, tmp_path):
    from core.quality_report import report_to_dict, run_report

    rows = [{"id": f"s{i}", "text": f"退款请打{PHONE}，邮件{MAIL}" + ("<br>" if i == 0 else ""),
             "annotator": "a1", "label": "refund"} for i in range(3)]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    import_file(store, path, "r", labels=["refund"], actor="cli")
    report = run_report(store, "r")
    raw_text = json.dumps(report_to_dict(report), ensure_ascii=False, default=str)
    assert PHONE in raw_text  # the duplicate and cleaning checks show the texts
    masked = privacy.mask_report(report)
    text = json.dumps(report_to_dict(masked), ensure_ascii=False, default=str)
    assert PHONE not in text and MAIL not in text
    assert masked.flagged_ids("exact_duplicates") == report.flagged_ids("exact_duplicates")
    assert report.results is not masked.results  # the cached report is not changed


def test_masked_and_revealed_findings_come_in_the_same_order(pii_store):
    from core.checks.pii import pii_findings

    masked = pii_findings(pii_store, "d")
    raw = pii_findings(pii_store, "d", privacy.reveal(pii_store, "cli", "d", "test"))
    assert masked.select("sample_id", "field", "kind", "start", "end").equals(
        raw.select("sample_id", "field", "kind", "start", "end"))
    assert masked["masked"].to_list() == raw["masked"].to_list()
