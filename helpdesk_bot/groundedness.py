"""Does a draft say only what its sources say? A sentence-level check that needs no LLM.

A sentence is as grounded as the share of its words found in the sources; the draft is as
grounded as its weakest sentence, and overall as the share of all its words found. Words
are stemmed, so "refunded" meets "refund"; function words count too, because invented
claims bring new ones ("will", "never", "free") as much as new nouns.
"""

from __future__ import annotations

from dataclasses import dataclass

from helpdesk_bot.text import sentences, tokens


@dataclass(frozen=True)
class Grounding:
    score: float  # share of the draft's words found in the sources, 0..1
    weakest: float  # the least grounded sentence's share
    unsupported: tuple[str, ...]  # sentences with less than SENTENCE_FLOOR of their words found


SENTENCE_FLOOR = 0.8


def grounding(text: str, sources: list[str]) -> Grounding:
    known = set()
    for source in sources:
        known.update(tokens(source))
    words_found = words_total = 0
    weakest, unsupported = 1.0, []
    for sentence in sentences(text):
        words = tokens(sentence)
        if not words:
            continue
        found = sum(w in known for w in words)
        words_found, words_total = words_found + found, words_total + len(words)
        share = found / len(words)
        weakest = min(weakest, share)
        if share < SENTENCE_FLOOR:
            unsupported.append(sentence)
    score = words_found / words_total if words_total else 0.0
    return Grounding(score=score, weakest=weakest if words_total else 0.0, unsupported=tuple(unsupported))
