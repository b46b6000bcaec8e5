"""Calibration: turn the raw confidence into the probability that an auto-sent answer is right.

Fitted by isotonic regression (pool-adjacent-violators) on labelled outcomes, so the mapping
is monotone: a higher raw score never means a lower probability. Saved as JSON next to the
data; workers load it at start. Without a calibration file the raw score is shown as is.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Calibration:
    scores: tuple[float, ...]  # raw scores (ascending) where the mapping steps
    probabilities: tuple[float, ...]

    def apply(self, raw: float) -> float:
        """The probability of a correct answer for a raw score (0-100)."""
        i = bisect_right(self.scores, raw) - 1
        return self.probabilities[max(i, 0)] if self.scores else raw / 100

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"scores": self.scores, "probabilities": self.probabilities}, indent=1))

    @classmethod
    def load(cls, path: Path) -> Calibration | None:
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(tuple(data["scores"]), tuple(data["probabilities"]))


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
    predicted = [0.0] * len(raw_scores)
    for k in range(folds):
        train = [i for i in range(len(raw_scores)) if i % folds != k]
        mapping = fit([raw_scores[i] for i in train], [correct[i] for i in train])
        for i in range(k, len(raw_scores), folds):
            predicted[i] = mapping.apply(raw_scores[i])
    return {
        "ece_raw": expected_calibration_error([s / 100 for s in raw_scores], correct),
        "ece_calibrated": expected_calibration_error(predicted, correct),
    }
