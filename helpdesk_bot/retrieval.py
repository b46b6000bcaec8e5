"""Find the knowledge chunks that best answer a ticket."""

from __future__ import annotations

from helpdesk_bot.domain import Source
from helpdesk_bot.embedding import Embedder
from helpdesk_bot.text import key_terms, tokens
from helpdesk_bot.vectorstore import KnowledgeStore, Scope

TOP_K = 5


def term_coverage(question_terms: list[str], text: str) -> float:
    """Share of the question's key terms that appear in `text`."""
    if not question_terms:
        return 0.0
    present = set(tokens(text))
    return sum(term in present for term in question_terms) / len(question_terms)


class Retriever:
    def __init__(self, store: KnowledgeStore, embedder: Embedder, top_k: int = TOP_K, locales: tuple[str, ...] = ()):
        self.store = store
        self.embedder = embedder
        self.top_k = top_k
        self.locales = frozenset(locales)  # the help center locales indexed (HELPDESK_KNOWLEDGE_LOCALES)

    def retrieve(self, question: str, brand: str | None = None, locale: str | None = None) -> list[Source]:
        """The best chunks for `question`: of the ticket's brand and locale, or for everyone.

        A locale the index does not hold is not a filter: a French ticket of an English-only help
        center still gets the English articles.
        """
        if not question.strip():
            return []
        locale = locale.lower() if locale else None
        scope = Scope(brand=brand, locale=locale if locale in self.locales else None)
        vector = self.embedder.embed([question])[0]
        terms = key_terms(question)
        return [
            Source(
                chunk=hit.chunk,
                score=hit.fused,
                dense=hit.dense,
                keyword=term_coverage(terms, f"{hit.chunk.title}\n{hit.chunk.heading}\n{hit.chunk.text}"),
            )
            for hit in self.store.search(question, vector, limit=self.top_k, scope=scope)
        ]
