"""Calibration: monotone, loaded by the pipeline, and it never lifts a capped score."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from helpdesk_bot.calibration import Calibration, LearnedCombination, expected_calibration_error, fit, fit_learned
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


def test_the_learned_combination_reads_components_by_name_and_is_deterministic():
    # Wrong answers come with a weak best passage; the margin carries nothing here.
    inputs = [{"retrieval_strength": s / 10, "retrieval_margin": (s * 7 % 10) / 10} for s in range(10)] * 3
    correct = [s >= 5 for s in range(10)] * 3
    model = fit_learned(inputs, correct)
    assert model == fit_learned(inputs, correct)  # no randomness
    assert set(model.names) == {"retrieval_strength", "retrieval_margin"}
    assert model.weights()["retrieval_strength"] > abs(model.weights()["retrieval_margin"])
    strong, weak = model.probability({"retrieval_strength": 0.9}), model.probability({"retrieval_strength": 0.1})
    assert strong > 0.8 and weak < 0.2  # a missing input counts as average
    # A component added later is ignored until calibrate runs again; then it is weighed by its name.
    assert model.probability({"retrieval_strength": 0.9, "maxsim": 0.0}) == strong
    refitted = fit_learned([{**row, "maxsim": row["retrieval_strength"]} for row in inputs], correct)
    assert "maxsim" in refitted.names


def test_a_learned_calibration_weighs_the_score_but_gates_still_hold(tmp_path):
    chunk = Chunk(id="a#0", article_id="a", title="Trial", text="Every workspace can try Business free for 14 days.")
    sources = [Source(chunk=chunk, score=1.0, dense=0.9, keyword=1.0)]
    draft = Draft(text="Every workspace can try Business free for 14 days. [1]", cited=("a#0",), declined=False, drafter="extractive")
    calm = Ticket("zendesk", "1", "", (Message("customer", "Can we try Business free for 14 days?"),))
    # Trusts only the keyword match: this draft's 1.0 gives a high chance; the isotonic map says 0.10.
    learned = LearnedCombination(intercept=0.0, names=("keyword_match",), means=(0.5,), scales=(0.1,), coefficients=(1.0,))
    chosen = Calibration(scores=(0.0,), probabilities=(0.10,), learned=learned, combination="learned")
    result = score(calm, sources, draft, chosen)
    assert result.score == round(100 * learned.probability({"keyword_match": 1.0})) == 99
    assert result.combination == "learned" and result.inputs["keyword_match"] == 1.0 and "top_dense" in result.inputs
    assert score(calm, sources, draft, Calibration((0.0,), (0.10,), learned, "weights")).score == 10  # opt-in only
    uncited = Draft(text="Every workspace can try Business free for 14 days.", cited=(), declined=False, drafter="extractive")
    assert score(calm, sources, uncited, chosen).score == 0

    path = tmp_path / "calibration.json"
    chosen.save(path)
    assert Calibration.load(path) == chosen


def test_calibrate_compares_the_learned_combination_and_saves_the_one_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    sample = Path(__file__).parents[1] / "helpdesk_bot" / "sample_data"
    # The sample help center's own export is a knowledge base as it is; its labelled questions ship with it.
    result = CliRunner().invoke(main, ["calibrate", "--kb", str(sample / "help_center.json"),
                                       "--questions", str(sample / "questions.jsonl"),
                                       "--combination", "learned", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 103 and report["combination"] == "learned"
    assert 0.5 < report["weights"]["auroc"] <= 1 and 0.5 < report["learned"]["auroc"] <= 1
    assert "retrieval_strength" in report["learned"]["weights"]
    saved = Calibration.load(tmp_path / "data" / "calibration.json")
    assert saved.combination == "learned" and "keyword_match" in saved.learned.names
