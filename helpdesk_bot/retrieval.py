"""Find the knowledge chunks that best answer a ticket.

Two steps: the index's hybrid search (dense + keyword, fused in vectorstore.py), then the best
fused chunks re-scored word by word (late interaction, "MaxSim"): every word piece of the
question is matched with its closest word piece of the chunk, with the embedding model's own
token vectors. The pooled sentence vector blurs a question into one point; MaxSim sees that
"remote" and "pairing" are both in the chunk. It ranks the first article better and separates
questions the help center answers from those it does not (the confidence reads it too; see
docs/answering.md).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from helpdesk_bot.domain import Source
from helpdesk_bot.embedding import Embedder, TokenEmbedder
from helpdesk_bot.knowledge import embedding_input
from helpdesk_bot.text import key_terms, tokens
from helpdesk_bot.vectorstore import KnowledgeStore, Scope

TOP_K = 5
# The fused candidates re-scored by MaxSim, and MaxSim's weight next to the fused score (the
# rank score is their weighted mean, so it keeps the fused score's 0..1 scale). Both chosen on
# the E-Manual retrieval questions and checked unchanged on other sets (docs/retrieval-experiments.md).
# The 3 the confidence reads (token_match) and the drafter quotes from first: each chunk costs
# a forward pass of the model per ticket, and 5 cost more than the budget of a quality stage
# (BENCHMARKS.md) for +0.002 MRR@10. 10 found +0.02 hit@5, but changed the passages the drafter
# weighs its quotes against, and with them some quotes, for the worse.
RERANK_DEPTH = 3
MAXSIM_WEIGHT = 2.0


def term_coverage(question_terms: list[str], text: str) -> float:
    """Share of the question's key terms that appear in `text`."""
    if not question_terms:
        return 0.0
    present = set(tokens(text))
    return sum(term in present for term in question_terms) / len(question_terms)


def maxsim(question: np.ndarray, chunk: np.ndarray) -> float:
    """Mean, over the question's word pieces, of the best cosine to any of the chunk's."""
    if not len(question) or not len(chunk):
        return 0.0
    return float((question @ chunk.T).max(axis=1).mean())


class Retriever:
    def __init__(self, store: KnowledgeStore, embedder: Embedder, top_k: int = TOP_K, locales: tuple[str, ...] = (),
                 rerank_depth: int = RERANK_DEPTH, maxsim_weight: float = MAXSIM_WEIGHT):
        self.store = store
        self.embedder = embedder
        self.top_k = top_k
        self.locales = frozenset(locales)  # the help center locales indexed (HELPDESK_KNOWLEDGE_LOCALES)
        # Only an embedder with token vectors can re-rank (the OpenAI API gives none).
        self.rerank_depth = rerank_depth if isinstance(embedder, TokenEmbedder) else 0
        self.maxsim_weight = maxsim_weight

    def retrieve(self, question: str, brand: str | None = None, locale: str | None = None) -> list[Source]:
        """The best chunks for `question`: of the ticket's brand and locale, or for everyone.

        A locale the index does not hold is not a filter: a French ticket of an English-only help
        center still gets the English articles.
        """
        return self.search(question, self.top_k, brand, locale)

    def search(self, question: str, limit: int, brand: str | None = None, locale: str | None = None) -> list[Source]:
        """The `limit` best chunks, the first `rerank_depth` of the hybrid search re-ranked by MaxSim."""
        if not question.strip():
            return []
        locale = locale.lower() if locale else None
        scope = Scope(brand=brand, locale=locale if locale in self.locales else None)
        vector = self.embedder.embed([question])[0]
        terms = key_terms(question)
        hits = self.store.search(question, vector, limit=max(limit, self.rerank_depth), scope=scope)
        sources = [
            Source(
                chunk=hit.chunk,
                score=hit.fused,
                dense=hit.dense,
                keyword=term_coverage(terms, f"{hit.chunk.title}\n{hit.chunk.heading}\n{hit.chunk.text}"),
            )
            for hit in hits
        ]
        return self.rerank(question, sources)[:limit]

    def rerank(self, question: str, sources: list[Source]) -> list[Source]:
        """Re-score the first `rerank_depth` sources by fused score and MaxSim; the rest follow as they were.

        The question and the chunks go through the model in one call, once per ticket; the
        confidence reads the same matches (BENCHMARKS.md has the cost).
        """
        head, tail = sources[: self.rerank_depth], sources[self.rerank_depth :]
        if not head:
            return sources
        question_tokens, *chunk_tokens = self.embedder.token_vectors(
            [question] + [embedding_input(s.chunk) for s in head])
        weight = self.maxsim_weight
        rescored = []
        for source, chunk in zip(head, chunk_tokens):
            match = maxsim(question_tokens, chunk)
            rescored.append(replace(source, score=(source.score + weight * match) / (1 + weight), maxsim=match))
        return sorted(rescored, key=lambda s: s.score, reverse=True) + tail
