"""Find the knowledge chunks that best answer a ticket."""

from __future__ import annotations

from helpdesk_bot.domain import Source
from helpdesk_bot.embedding import Embedder
from helpdesk_bot.text import key_terms, tokens
from helpdesk_bot.vectorstore import KnowledgeStore

TOP_K = 5


def term_coverage(question_terms: list[str], text: str) -> float:
    """Share of the question's key terms that appear in `text`."""
    if not question_terms:
        return 0.0
    present = set(tokens(text))
    return sum(term in present for term in question_terms) / len(question_terms)


class Retriever:
    def __init__(self, store: KnowledgeStore, embedder: Embedder, top_k: int = TOP_K):
        self.store = store
        self.embedder = embedder
        self.top_k = top_k

    def retrieve(self, question: str) -> list[Source]:
        if not question.strip():
            return []
        vector = self.embedder.embed([question])[0]
        terms = key_terms(question)
        return [
            Source(
                chunk=hit.chunk,
                score=hit.fused,
                dense=hit.dense,
                keyword=term_coverage(terms, f"{hit.chunk.title}\n{hit.chunk.heading}\n{hit.chunk.text}"),
            )
            for hit in self.store.search(question, vector, limit=self.top_k)
        ]
