"""The evaluation commands on a tiny labelled set whose answers are known."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from helpdesk_bot.cli import main
from helpdesk_bot.evaluation import RetrievalScores, auroc

KB = [
    {"id": "refunds", "title": "Refund policy", "body": "Annual plans can be refunded within 14 days of payment. Monthly plans are not refunded."},
    {"id": "sso", "title": "Single sign-on with SAML", "body": "Configure SAML single sign-on under Settings, Security. Okta and Azure AD are supported."},
    {"id": "export", "title": "Exporting your data", "body": "Download a full export of projects, tasks and attachments from Settings, Data, Export."},
    {"id": "mobile", "title": "Mobile apps", "body": "The iOS and Android apps keep your recent projects available offline."},
]
QUESTIONS = [
    {"id": "q1", "question": "Can I get my money back on a yearly plan?", "gold_ids": ["refunds"], "answerable": True, "type": "Paraphrased"},
    {"id": "q2", "question": "How do I set up SAML SSO with Okta?", "gold_ids": ["sso"], "answerable": True, "type": "Normal"},
    {"id": "q3", "question": "How do I export all my tasks and attachments?", "gold_ids": ["export"], "answerable": True, "type": "Normal"},
    {"id": "q4", "question": "Does the Android app work offline?", "gold_ids": ["mobile"], "answerable": True, "type": "Normal",
     "conversation": [{"speaker": "user", "text": "I travel a lot without signal."}, {"speaker": "agent", "text": "Which device?"}]},
    {"id": "q5", "question": "Is there a HIPAA business associate agreement for hospitals?", "gold_ids": [], "answerable": False},
]


@pytest.fixture
def files(tmp_path):
    kb, questions = tmp_path / "kb.jsonl", tmp_path / "questions.jsonl"
    kb.write_text("\n".join(json.dumps(row) for row in KB))
    questions.write_text("\n".join(json.dumps(row) for row in QUESTIONS))
    return kb, questions


def test_retrieval_scores_count_hits_recall_and_reciprocal_rank():
    scores = RetrievalScores()
    scores.add(["a", "b", "c"], ("a",))
    scores.add(["x", "b", "c", "d", "e", "a"], ("a", "b"))  # first gold at rank 2; primary at 6
    scores.add(["x", "y"], ("a",))
    assert scores.as_dict() == {"n": 3, "hit@1": 0.3333, "hit@5": 0.6667, "recall@5": 0.3333, "mrr@10": 0.5}


def test_auroc_handles_ties_and_perfect_separation():
    assert auroc([3, 4], [1, 2]) == 1.0
    assert auroc([1, 2], [3, 4]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5


def test_eval_retrieval_json(files, monkeypatch, tmp_path):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    kb, questions = files
    result = CliRunner().invoke(main, ["eval", "retrieval", "--kb", str(kb), "--questions", str(questions), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 4  # the unanswerable question has no gold ids
    assert report["hit@5"] == 1.0 and report["hit@1"] >= 0.75
    assert set(report["by_type"]) == {"Normal", "Paraphrased"}


def test_eval_answering_json_and_report(files, monkeypatch, tmp_path):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    kb, questions = files
    report = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["eval", "answering", "--kb", str(kb), "--questions", str(questions),
                                       "--target-precision", "0.9", "--report", str(report), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert set(summary) == {"n", "auroc", "threshold", "precision", "coverage", "curve"}
    assert summary["n"] == 5 and len(summary["curve"]) == 101
    assert summary["auroc"] > 0.5
    assert "<svg" in report.read_text()
