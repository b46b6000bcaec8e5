"""The evaluation commands on a tiny labelled set whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpdesk_bot.ops.cli import main
from helpdesk_bot.evaluation import RetrievalScores, answer_recall, at_precision, auroc

FIXTURES = Path(__file__).parent / "fixtures"
KB, QUESTIONS = FIXTURES / "tiny_kb.jsonl", FIXTURES / "tiny_questions.jsonl"  # 4 articles; 4 answerable, 1 not


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


def test_eval_retrieval_json(monkeypatch, tmp_path):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    kb, questions = KB, QUESTIONS
    result = CliRunner().invoke(main, ["eval", "retrieval", "--kb", str(kb), "--questions", str(questions), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 4  # the unanswerable question has no gold ids
    assert report["hit@5"] == 1.0 and report["hit@1"] >= 0.75
    assert set(report["by_type"]) == {"Normal", "Paraphrased"}


def test_eval_answering_json_and_report(monkeypatch, tmp_path):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    kb, questions = KB, QUESTIONS
    report = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["eval", "answering", "--kb", str(kb), "--questions", str(questions),
                                       "--target-precision", "0.9", "--report", str(report), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert set(summary) == {"n", "answerable", "auroc", "threshold", "precision", "coverage", "at_precision", "by_set",
                            "by_type", "sent_by_default_policy", "answer_recall", "curve"}
    assert summary["answer_recall"] is None  # no reference answers in this set
    assert summary["n"] == 5 and len(summary["curve"]) == 101
    assert summary["auroc"] > 0.5
    assert set(summary["at_precision"]) == {"0.90", "0.95"}
    assert summary["by_set"] == {}  # one file
    # Per type label; the unlabelled question is in the overall figures only. No unanswerable
    # question is labelled, so no type has an AUROC.
    assert {name: figures["n"] for name, figures in summary["by_type"].items()} == {"Normal": 3, "Paraphrased": 1}
    assert all(figures["auroc"] is None for figures in summary["by_type"].values())
    html = report.read_text()
    assert "<svg" in html and "coverage at precision 0.95" in html and "<td>Paraphrased</td>" in html


def test_eval_answering_reports_each_questions_file_as_a_set(monkeypatch, tmp_path):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    lines = QUESTIONS.read_text().splitlines()
    first, second = tmp_path / "billing.jsonl", tmp_path / "security.jsonl"
    first.write_text("\n".join(lines[:1] + lines[4:]) + "\n")  # refunds, and the unanswerable one
    second.write_text("\n".join(lines[1:4]) + "\n")
    result = CliRunner().invoke(main, ["eval", "answering", "--kb", str(KB), "--questions", str(first),
                                       "--questions", str(second), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["n"] == 5
    billing, security = summary["by_set"]["billing.jsonl"], summary["by_set"]["security.jsonl"]
    assert (billing["n"], billing["answerable"], security["n"], security["answerable"]) == (2, 1, 3, 3)
    assert billing["auroc"] is not None and security["auroc"] is None  # security has no unanswerable question
    assert set(billing) == {"n", "answerable", "auroc", "coverage@0.90", "coverage@0.95"}


def test_coverage_at_a_precision_is_read_at_the_lowest_threshold_that_reaches_it():
    curve = [{"threshold": 0, "sent": 10, "precision": 0.8, "coverage": 0.9},
             {"threshold": 1, "sent": 8, "precision": 0.9, "coverage": 0.8},
             {"threshold": 2, "sent": 5, "precision": 0.96, "coverage": 0.5},
             {"threshold": 3, "sent": 0, "precision": 1.0, "coverage": 0.0}]
    assert at_precision(curve, 0.90) == {"threshold": 1, "precision": 0.9, "coverage": 0.8}
    assert at_precision(curve, 0.95) == {"threshold": 2, "precision": 0.96, "coverage": 0.5}
    assert at_precision(curve, 0.99) == {"threshold": None, "precision": None, "coverage": 0.0}  # nothing sent counts not


BAD_FILES = {
    "not-json": ("bad.jsonl", b'{"id": "a", "question": "Refunds?"}\nnot json\n', "bad.jsonl:2"),
    "a-field-missing": ("bad.jsonl", b'{"id": "q1"}\n', "bad.jsonl:1: not a question line"),
    "not-utf8": ("bad.jsonl", b"\xff\xfe\x00\x01", "not UTF-8"),
    "empty": ("bad.jsonl", b"", "no questions"),
}


@pytest.mark.parametrize("command", [["eval", "retrieval"], ["eval", "answering"], ["calibrate"]])
@pytest.mark.parametrize("bad", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_malformed_questions_file_is_a_one_line_error(monkeypatch, tmp_path, command, bad):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    name, content, message = bad
    (tmp_path / name).write_bytes(content)
    result = CliRunner().invoke(main, [*command, "--kb", str(FIXTURES / "tiny_kb.jsonl"),
                                       "--questions", str(tmp_path / name)])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "data" / "calibration.json").exists()  # nothing saved from nothing


def test_a_groundedness_file_without_its_columns_is_a_one_line_error(tmp_path):
    tsv = tmp_path / "labels.tsv"
    tsv.write_text("text\tlabel\nhello\tok\n")
    result = CliRunner().invoke(main, ["eval", "groundedness", str(tsv)])
    assert result.exit_code == 1 and "no begin_label, knowledge, response column" in result.output


def test_answer_recall_is_the_share_of_the_references_content_words_in_the_draft():
    reference = "Annual plans are refunded within 14 days of the payment."
    assert answer_recall("Annual plans can be refunded within 14 days of payment.", reference) == 1.0
    assert answer_recall("Annual plans: ask us.", reference) == 2 / 7  # of annual, plan, refund, within, 14, day, payment
    assert answer_recall("", reference) == 0.0


def test_eval_answering_reports_answer_recall_of_sent_and_answerable_drafts(monkeypatch, tmp_path):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    answers = {"q2": "Configure SAML single sign-on under Settings, Security; Okta is supported.",
               "q3": "Download a full export from Settings, Data, Export.", "q4": "Yes, recent projects work offline."}
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({**row, **({"answer": answers[row["id"]]} if row["id"] in answers else {})}) + "\n"
                                 for row in map(json.loads, QUESTIONS.read_text().splitlines())))
    result = CliRunner().invoke(main, ["eval", "answering", "--kb", str(KB), "--questions", str(questions), "--json"])
    assert result.exit_code == 0, result.output
    recall = json.loads(result.output)["answer_recall"]
    assert recall["n_answerable"] == 3 and 0 < recall["n_sent"] <= 3
    assert 0.5 <= recall["sent"] <= 1.0 and 0.5 <= recall["answerable"] <= 1.0
    assert 5 <= recall["median_words_sent"] <= 150
    text = CliRunner().invoke(main, ["eval", "answering", "--kb", str(KB), "--questions", str(questions)]).output
    assert "answer_recall" in text and "sent by the default policy" in text
