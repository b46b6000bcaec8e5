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

from helpdesk_bot.domain import Source, original_id
from helpdesk_bot.embedding import Embedder, TokenEmbedder, on_common_scale
from helpdesk_bot.knowledge import embedding_input
from helpdesk_bot.text import key_terms, tokens
from helpdesk_bot.vectorstore import DENSE, MULTILINGUAL, Hit, KnowledgeStore, Scope

TOP_K = 5
# A ticket keeps the articles in its own language unless the default language's best article is
# closer in meaning (multilingual cosine) than its own language's best, counted with the share of
# the ticket's words that one holds: own cosine + OWN_WORDS × share ≥ default cosine + OWN_MARGIN.
# An own-language article holding all the words may be 0.02 less close; one holding none must be
# 0.08 closer. Multilingual-e5 rates text in the ticket's language higher whatever it says, so a
# wrong article in Spanish often comes close to the right one in English (values chosen on
# data/eval/multilingual: 68 of 72 right choices, and 66-69 for margins from 0.066 to 0.096).
OWN_WORDS, OWN_MARGIN = 0.1, 0.08
# That bias cannot favour an own-language article's original, which is in the default language
# too: when the ticket is further (in cosine) from the original than from the default language's
# best article by more than TRANSLATION_MARGIN, the translation is on something else (a Spanish
# "how do I turn on two-factor authentication?" kept the Spanish recovery-codes article, whose
# original is 0.028-0.035 further than the set-up article in es, de and fr). A German ticket
# about a new phone, rightly answered by the recovery codes, is 0.018 further: any margin from
# 0.019 to 0.027 makes the same choices on data/eval/multilingual.
TRANSLATION_MARGIN = 0.023
# The default language's passages searched for a foreign ticket: enough to hold the original of
# the own-language article it weighs (an article has several passages).
FALLBACK_DEPTH = 20
# The fused candidates re-scored by MaxSim, and MaxSim's weight next to the fused score (the
# rank score is their weighted mean, so it keeps the fused score's 0..1 scale). Both chosen on
# the E-Manual retrieval questions and checked unchanged on other sets (docs/retrieval-experiments.md).
# The 3 the confidence reads (token_match) and the drafter quotes from first: each chunk costs
# a forward pass of the model per ticket, and 5 cost more than the budget of a quality stage
# (BENCHMARKS.md) for +0.002 MRR@10. 10 found +0.02 hit@5, but changed the passages the drafter
# weighs its quotes against, and with them some quotes, for the worse.
RERANK_DEPTH = 3
MAXSIM_WEIGHT = 2.0


def term_coverage(question_terms: list[str], text: str, language: str = "en") -> float:
    """Share of the question's key terms that appear in `text`."""
    if not question_terms:
        return 0.0
    present = set(tokens(text, language))
    return sum(term in present for term in question_terms) / len(question_terms)


def maxsim(question: np.ndarray, chunk: np.ndarray) -> float:
    """Mean, over the question's word pieces, of the best cosine to any of the chunk's."""
    if not len(question) or not len(chunk):
        return 0.0
    return float((question @ chunk.T).max(axis=1).mean())


class Retriever:
    def __init__(self, store: KnowledgeStore, embedder: Embedder, top_k: int = TOP_K, locales: tuple[str, ...] = (),
                 default_language: str = "en", rerank_depth: int = RERANK_DEPTH, maxsim_weight: float = MAXSIM_WEIGHT):
        self.store = store
        self.embedder = embedder
        self.top_k = top_k
        self.locales = frozenset(locales)  # the help center locales indexed (HELPDESK_KNOWLEDGE_LOCALES)
        self.default_language = default_language
        # Only an embedder with token vectors can re-rank (the OpenAI API gives none).
        self.rerank_depth = rerank_depth if isinstance(embedder, TokenEmbedder) else 0
        self.maxsim_weight = maxsim_weight

    def retrieve(self, question: str, brand: str | None = None, locale: str | None = None,
                 language: str | None = None) -> list[Source]:
        """The best chunks for `question`: of the ticket's brand and locale, or for everyone.

        A locale the index does not hold is not a filter: a French ticket of an English-only help
        center still gets the English articles. With the ticket's `language`, its own language's
        articles come first; the default language's stand in where they have none on the question.
        """
        if not question.strip():
            return []
        locale = locale.lower() if locale else None
        scope = Scope(brand=brand, locale=locale if locale in self.locales else None)
        if language is None:  # no language known: every chunk competes, as before languages
            vector = self.embedder.embed_query(question)
            return self.rerank(question, self._sources(
                question, self._search(question, vector, scope, self.default_language, DENSE), None, DENSE))
        foreign = language != self.default_language
        using = MULTILINGUAL if foreign and self.store.searches_across_languages else DENSE
        vector = self._embedder(using).embed_query(question)  # once: both searches use it
        own = self._search(question, vector, Scope(brand=brand, locale=scope.locale, language=language,
                                                   unlabelled=not foreign), language, using)
        if not foreign:
            return self.rerank(question, self._sources(question, own, language, using))
        # Across languages only meaning compares: the default language's articles are found and
        # ranked by cosine. The ticket's words are analysed in its own language, so they meet none of
        # those articles' terms; analysed as the default language's, the chance matches ("Workspace",
        # "Business") chose the top_k candidates, and at the product's top_k of 5 the closest
        # article was sometimes not among them (French on data/eval/multilingual: 21 of 24 ticket
        # pairs found the same article, 23 with candidates chosen by cosine).
        fallback = self.store.search(question, vector, limit=max(self.top_k, FALLBACK_DEPTH), language=language,
                                     scope=Scope(brand=brand, language=self.default_language, unlabelled=True),
                                     using=using)
        fallback.sort(key=lambda hit: hit.dense, reverse=True)
        own_sources = self._sources(question, own, language, using)
        fallback_sources = self._sources(question, fallback[: self.top_k], language, using)
        if own and fallback and not self._own_answers(own, own_sources, fallback, using):
            # Its language has no article on the question: the default language's answer it, and
            # its own (on something else) are not offered to be quoted.
            return fallback_sources
        return (own_sources + fallback_sources)[: self.top_k]

    @staticmethod
    def _own_answers(own: list[Hit], own_sources: list[Source], fallback: list[Hit], using: str) -> bool:
        """Whether the ticket's own language's best article is on the question (OWN_WORDS,
        OWN_MARGIN, TRANSLATION_MARGIN); `fallback` holds the default language's, closest first."""
        best, coverage = max(zip(own, own_sources), key=lambda pair: pair[0].fused)
        if best.dense + OWN_WORDS * coverage.keyword < fallback[0].dense + OWN_MARGIN:
            return False
        if using != MULTILINGUAL:  # only a multilingual model's cosines compare across languages
            return True
        original = original_id(best.chunk.article_id)
        original_dense = next((hit.dense for hit in fallback if hit.chunk.article_id == original), None)
        return original_dense is None or original_dense >= fallback[0].dense - TRANSLATION_MARGIN

    def _embedder(self, using: str) -> Embedder:
        return self.store.multilingual if using == MULTILINGUAL else self.embedder

    def _search(self, question: str, vector, scope: Scope, language: str, using: str) -> list[Hit]:
        return self.store.search(question, vector, limit=self.top_k, scope=scope, language=language, using=using)

    def _sources(self, question: str, hits: list[Hit], language: str | None, using: str) -> list[Source]:
        """Each hit as a source: its similarity on the common scale (on_common_scale), its keyword
        score the share of the question's terms its chunk holds (in the chunk's own language: a
        Spanish question's terms are not looked for in English)."""
        scale = self._embedder(using).similarity_scale
        sources = []
        for hit in hits:
            chunk_language = self.store.language_of(hit.chunk)
            terms = key_terms(question, chunk_language) if chunk_language == (language or chunk_language) else []
            sources.append(Source(chunk=hit.chunk, score=hit.fused, dense=on_common_scale(hit.dense, scale),
                                  keyword=term_coverage(terms, f"{hit.chunk.title}\n{hit.chunk.heading}\n{hit.chunk.text}",
                                                        chunk_language),
                                  language=chunk_language if language else None))
        return sources

    def rerank(self, question: str, sources: list[Source]) -> list[Source]:
        """Re-score the first `rerank_depth` sources by fused score and MaxSim; the rest follow as they were.

        Only in the default language's search: the token vectors are the English model's. The
        question and the chunks go through the model in one call, once per ticket; the
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
