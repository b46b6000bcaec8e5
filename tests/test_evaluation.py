"""The evaluation commands on a tiny labelled set whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpdesk_bot.ops.cli import main
from helpdesk_bot.evaluation import RetrievalScores, auroc

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
    assert set(summary) == {"n", "auroc", "threshold", "precision", "coverage", "curve"}
    assert summary["n"] == 5 and len(summary["curve"]) == 101
    assert summary["auroc"] > 0.5
    assert "<svg" in report.read_text()


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
