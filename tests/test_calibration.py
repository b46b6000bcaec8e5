"""Calibration: monotone, loaded by the pipeline, and it never lifts a capped score."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from helpdesk_bot.calibration import Calibration, expected_calibration_error, fit
from helpdesk_bot.ops.cli import main
from helpdesk_bot.confidence import score
from helpdesk_bot.domain import Chunk, Draft, Message, Source, Ticket


def test_fit_is_monotone_and_matches_observed_rates():
    raw = [10, 20, 30, 40, 50, 60, 70, 80]
    correct = [False, False, True, False, True, True, True, True]
    mapping = fit(raw, correct)
    probabilities = [mapping.apply(s) for s in range(0, 101, 5)]
    assert probabilities == sorted(probabilities)
    assert mapping.apply(10) == 0.0 and mapping.apply(35) == 0.5 and mapping.apply(95) == 1.0


def test_expected_calibration_error():
    assert expected_calibration_error([0.9] * 10, [True] * 9 + [False]) == 0.0
    assert expected_calibration_error([1.0, 1.0], [False, False]) == 1.0


def test_calibration_maps_the_score_but_gates_still_hold(tmp_path):
    chunk = Chunk(id="a#0", article_id="a", title="Trial", text="Every workspace can try Business free for 14 days.")
    sources = [Source(chunk=chunk, score=1.0, dense=0.9, keyword=1.0)]
    draft = Draft(text="Every workspace can try Business free for 14 days. [1]", cited=("a#0",), declined=False, drafter="extractive")
    generous = Calibration(scores=(0.0,), probabilities=(0.99,))
    calm = Ticket("zendesk", "1", "", (Message("customer", "Can we try Business free for 14 days?"),))
    assert score(calm, sources, draft, generous).score == 99
    uncited = Draft(text="Every workspace can try Business free for 14 days.", cited=(), declined=False, drafter="extractive")
    result = score(calm, sources, uncited, generous)
    assert result.score == 0 and result.raw > 0  # an answer citing nothing is never sent

    path = tmp_path / "calibration.json"
    generous.save(path)
    assert Calibration.load(path) == generous and Calibration.load(tmp_path / "missing.json") is None


def test_calibrate_command_saves_what_workers_load(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    fixtures = Path(__file__).parent / "fixtures"
    kb, questions = fixtures / "tiny_kb.jsonl", fixtures / "tiny_questions.jsonl"
    result = CliRunner().invoke(main, ["calibrate", "--kb", str(kb), "--questions", str(questions), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 5 and 0 <= report["ece_calibrated"] <= 1
    saved = Calibration.load(tmp_path / "data" / "calibration.json")
    assert saved is not None and list(saved.probabilities) == sorted(saved.probabilities)
