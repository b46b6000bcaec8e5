"""Redaction per ticket: what `redact` costs on everything a ticket sends the LLM (subject and
conversation), against the regular-expression redactor it replaced, in the same process.

    python -m benchmarks redaction

Tickets are built from the sample tickets' bodies and the labelled sentences of
tests/data/pii_corpus.jsonl (personal data and near misses alike), 2 to 12 sentences and one
to three turns each, seeded. The baseline is the previous redactor, kept in
benchmarks/baseline_redaction.py. Timings are wall-clock per ticket, after a warm-up that loads
phonenumbers' metadata for every region (a worker pays it once).
"""

from __future__ import annotations

import json
import random
import time

from benchmarks import baseline_redaction
from benchmarks.common import ROOT, emit, log, machine, summary
from helpdesk_bot.redaction import redact

TICKETS = 600
ROUNDS = 3


def tickets(n: int, seed: int = 17) -> list[str]:
    rng = random.Random(seed)
    corpus = [json.loads(line)["text"] for line in (ROOT / "tests/data/pii_corpus.jsonl").read_text().splitlines()]
    samples = json.loads((ROOT / "helpdesk_bot/sample_data/tickets.json").read_text())
    plain = [s["body"] for s in samples] + [s["subject"] for s in samples]
    out = []
    for _ in range(n):
        turns = []
        for _ in range(rng.randint(1, 3)):
            sentences = [rng.choice(corpus if rng.random() < 0.4 else plain) for _ in range(rng.randint(2, 12))]
            turns.append("customer: " + " ".join(sentences))
        out.append(f"{rng.choice(samples)['subject']}\n" + "\n".join(turns))
    return out


def timed(function, texts: list[str]) -> list[float]:
    times = []
    for text in texts:
        start = time.perf_counter()
        function(text)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    texts = tickets(TICKETS)
    log(f"{len(texts)} tickets, median {sorted(map(len, texts))[len(texts) // 2]} characters; warming up")
    for text in texts[:50]:
        redact(text)
        baseline_redaction.redact(text)
    redact("call me on 612 345 678")  # every region's metadata, as a labelled number loads it
    current, baseline = [], []
    for round_ in range(ROUNDS):  # interleaved, so load on the machine hits both alike
        log(f"round {round_ + 1}/{ROUNDS}")
        current += timed(redact, texts)
        baseline += timed(baseline_redaction.redact, texts)
    emit("redaction", {
        "machine": machine(),
        "tickets": len(texts),
        "characters_per_ticket_median": sorted(map(len, texts))[len(texts) // 2],
        "ms_per_ticket": summary(current, 2),
        "baseline_ms_per_ticket": summary(baseline, 2),
        "p95_ratio_to_baseline": round(summary(current, 3)["p95"] / max(summary(baseline, 3)["p95"], 1e-9), 2),
    })


if __name__ == "__main__":
    main()
