"""Calibration: turn the confidence into the probability that an auto-sent answer is right.

Two ways, both fitted by `helpdesk-bot calibrate` on labelled outcomes and saved as one JSON
file next to the data (workers load it at start; without it the raw score is shown as is):

- isotonic regression (pool-adjacent-violators) of correctness on the hand-weighted raw score:
  monotone, so a higher raw score never means a lower probability;
- a learned combination: a logistic model over the components and retrieval scores, read by
  name, so a component added later is weighed once `calibrate` runs again, and one the model
  does not know is ignored until then. Used instead of the isotonic mapping only when the file
  says `"combination": "learned"`.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

COMBINATIONS = ("weights", "learned")


@dataclass(frozen=True)
class LearnedCombination:
    """P(correct) = σ(intercept + Σ coefficient · (value − mean) / scale), over named inputs."""

    intercept: float
    names: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    coefficients: tuple[float, ...]

    def probability(self, inputs: Mapping[str, float]) -> float:
        # An input the model knows but the score lacks (a component since removed) counts as average.
        z = self.intercept + sum(c * (inputs.get(n, m) - m) / s
                                 for n, m, s, c in zip(self.names, self.means, self.scales, self.coefficients))
        return 1 / (1 + math.exp(-max(min(z, 30.0), -30.0)))

    def weights(self) -> dict[str, float]:
        """Each input's coefficient per unit of its value (0..1 for a component): what the model weighs."""
        return {n: round(c / s, 4) for n, s, c in zip(self.names, self.scales, self.coefficients)}

    def as_dict(self) -> dict:
        return {"intercept": self.intercept, "inputs": [
            {"name": n, "mean": m, "scale": s, "coefficient": c}
            for n, m, s, c in zip(self.names, self.means, self.scales, self.coefficients)]}

    @classmethod
    def from_dict(cls, data: dict) -> LearnedCombination:
        rows = data["inputs"]
        return cls(float(data["intercept"]), tuple(r["name"] for r in rows), tuple(float(r["mean"]) for r in rows),
                   tuple(float(r["scale"]) for r in rows), tuple(float(r["coefficient"]) for r in rows))


@dataclass(frozen=True)
class Calibration:
    scores: tuple[float, ...]  # raw scores (ascending) where the isotonic mapping steps
    probabilities: tuple[float, ...]
    learned: LearnedCombination | None = None
    combination: str = "weights"  # which one `probability` uses: "weights" (isotonic) or "learned"

    def apply(self, raw: float) -> float:
        """The probability of a correct answer for a raw score (0-100), by the isotonic mapping."""
        i = bisect_right(self.scores, raw) - 1
        return self.probabilities[max(i, 0)] if self.scores else raw / 100

    def probability(self, raw: float, inputs: Mapping[str, float]) -> float:
        """The probability of a correct answer, by the combination this calibration was told to use."""
        if self.combination == "learned" and self.learned is not None:
            return self.learned.probability(inputs)
        return self.apply(raw)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data: dict = {"combination": self.combination, "scores": self.scores, "probabilities": self.probabilities}
        if self.learned is not None:
            data["learned"] = self.learned.as_dict()
        path.write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, path: Path) -> Calibration | None:
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        learned = LearnedCombination.from_dict(data["learned"]) if data.get("learned") else None
        return cls(tuple(data["scores"]), tuple(data["probabilities"]), learned, data.get("combination", "weights"))


def fit(raw_scores: list[float], correct: list[bool]) -> Calibration:
    """Isotonic regression of correctness on raw score."""
    blocks: list[list[float]] = []  # [lowest score, sum correct, count]
    for score, label in sorted(zip(raw_scores, correct)):
        blocks.append([score, float(label), 1.0])
        # Merge backwards while the means decrease: the pool-adjacent-violators step.
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            _, s, n = blocks.pop()
            blocks[-1][1] += s
            blocks[-1][2] += n
    return Calibration(tuple(b[0] for b in blocks), tuple(round(b[1] / b[2], 4) for b in blocks))


def expected_calibration_error(probabilities: list[float], correct: list[bool], bins: int = 10) -> float:
    """Mean gap between predicted probability and observed accuracy, weighted by bin size."""
    total, error = len(probabilities), 0.0
    for b in range(bins):
        members = [(p, c) for p, c in zip(probabilities, correct)
                   if b / bins <= p < (b + 1) / bins or (b == bins - 1 and p == 1.0)]
        if members:
            error += len(members) / total * abs(sum(p for p, _ in members) / len(members)
                                                - sum(c for _, c in members) / len(members))
    return round(error, 4)


def cross_validated_error(raw_scores: list[float], correct: list[bool], folds: int = 5) -> dict:
    """Calibration error before and after, fitting on k-1 folds and measuring on the held-out one."""
    predicted = out_of_fold(len(raw_scores), folds,
                            lambda train: fit([raw_scores[i] for i in train], [correct[i] for i in train]),
                            lambda mapping, i: mapping.apply(raw_scores[i]))
    return {
        "ece_raw": expected_calibration_error([s / 100 for s in raw_scores], correct),
        "ece_calibrated": expected_calibration_error(predicted, correct),
    }


def fit_learned(inputs: Sequence[Mapping[str, float]], correct: Sequence[bool], l2: float = 1.0,
                balanced: bool = False) -> LearnedCombination:
    """Fit the logistic model by Newton's method (deterministic: no random start, no sampling).

    Every input that varies in the training rows is used, whatever its name. Inputs are
    standardised so one L2 penalty suits them all and the components' different spreads don't
    decide their weight; the penalty keeps a few hundred rows from over-fitting ~15 inputs.
    Rows are not re-weighted by class unless `balanced`: the output is shown as the chance an
    answer is right, and balancing moves it towards one half (it changed the AUROC on the
    evaluation sets by 0.03 at most, in either direction).
    """
    names = sorted({name for row in inputs for name in row})
    x = np.array([[row.get(n, 0.0) for n in names] for row in inputs], dtype=float).reshape(len(inputs), len(names))
    y = np.array(correct, dtype=float)
    means, scales = x.mean(axis=0), x.std(axis=0)
    keep = scales > 1e-9  # a constant input carries nothing to weigh
    names = [n for n, k in zip(names, keep) if k]
    x, means, scales = (x[:, keep] - means[keep]) / scales[keep], means[keep], scales[keep]
    positives = y.sum()
    if positives in (0, len(y)):
        raise ValueError("a learned combination needs both right and wrong answers among the labelled questions")
    sample_weight = (np.where(y == 1, len(y) / (2 * positives), len(y) / (2 * (len(y) - positives))) if balanced
                     else np.ones(len(y)))
    design = np.hstack([np.ones((len(y), 1)), x])
    beta = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[0] = 0.0  # the intercept is not shrunk
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(design @ beta, -30, 30)))
        gradient = design.T @ (sample_weight * (p - y)) + penalty * beta
        hessian = (design * (sample_weight * p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return LearnedCombination(round(float(beta[0]), 6), tuple(names), tuple(round(float(m), 6) for m in means),
                              tuple(round(float(s), 6) for s in scales), tuple(round(float(b), 6) for b in beta[1:]))


def cross_validated_learned(inputs: Sequence[Mapping[str, float]], correct: Sequence[bool],
                            folds: int = 5) -> list[float]:
    """Each row's P(correct) from a learned combination fitted on the other folds (row i in fold i % folds)."""
    return out_of_fold(len(inputs), folds,
                       lambda train: fit_learned([inputs[i] for i in train], [correct[i] for i in train]),
                       lambda model, i: model.probability(inputs[i]))


def out_of_fold(n: int, folds: int, fit_on: Callable, predict: Callable) -> list[float]:
    """Each of n rows predicted by a model fitted on the other folds (row i is in fold i % folds)."""
    predicted = [0.0] * n
    for k in range(folds):
        model = fit_on([i for i in range(n) if i % folds != k])
        for i in range(k, n, folds):
            predicted[i] = predict(model, i)
    return predicted
