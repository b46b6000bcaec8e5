"""The knowledge index in Qdrant: a dense vector and a keyword (sparse, IDF) vector per chunk,
queried together and fused with reciprocal rank fusion.

The same code serves a Qdrant server or cluster (`QDRANT_URL`) and Qdrant's embedded local
mode on disk (the default, one process at a time) or in memory (tests).
"""

from __future__ import annotations

import uuid
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass

import numpy as np
from qdrant_client import QdrantClient, models

from helpdesk_bot.domain import Chunk
from helpdesk_bot.errors import AIUnavailable
from helpdesk_bot.text import tokens

DENSE = "dense"
KEYWORDS = "keywords"
_NAMESPACE = uuid.UUID("6f0d2b1e-5c1a-4b8e-9a3e-1f2d3c4b5a69")

# BM25's term-frequency saturation is applied at index time; Qdrant's IDF modifier adds the
# inverse document frequency at query time, so the index never needs a global pass.
_K1, _B, _AVG_LEN = 1.2, 0.75, 150.0


def keyword_vector(text: str, query: bool = False) -> models.SparseVector:
    counts = Counter(tokens(text))
    length = sum(counts.values()) or 1
    indices, values = [], []
    for term, tf in counts.items():
        indices.append(zlib.crc32(term.encode()) & 0x7FFFFFFF)
        if query:
            values.append(1.0)
        else:
            values.append(tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * length / _AVG_LEN)))
    # crc32 collisions are rare but possible; Qdrant rejects duplicate indices.
    merged: dict[int, float] = {}
    for i, v in zip(indices, values):
        merged[i] = merged.get(i, 0.0) + v
    return models.SparseVector(indices=list(merged), values=list(merged.values()))


def point_id(chunk_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, chunk_id))


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    fused: float
    dense: float


class KnowledgeStore:
    def __init__(self, client: QdrantClient, collection: str, dimension: int):
        self.client = client
        self.collection = collection
        self.dimension = dimension

    @classmethod
    def open(cls, settings, dimension: int) -> KnowledgeStore:
        if settings.qdrant_url:
            client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, timeout=10)
        else:
            path = settings.data_dir / "qdrant"
            path.mkdir(parents=True, exist_ok=True)
            client = QdrantClient(path=str(path))
        return cls(client, settings.qdrant_collection, dimension)

    def close(self) -> None:
        self.client.close()

    def ensure_collection(self) -> None:
        if self.client.collection_exists(self.collection):
            return
        self.client.create_collection(
            self.collection,
            vectors_config={DENSE: models.VectorParams(size=self.dimension, distance=models.Distance.COSINE)},
            sparse_vectors_config={KEYWORDS: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        with warnings.catch_warnings():  # local mode ignores payload indexes and says so; servers need them
            warnings.simplefilter("ignore", UserWarning)
            for field in ("article_id", "content_hash"):
                self.client.create_payload_index(self.collection, field, models.PayloadSchemaType.KEYWORD)

    def upsert(self, chunks: list[Chunk], vectors: np.ndarray, content_hash: dict[str, str]) -> None:
        points = [
            models.PointStruct(
                id=point_id(chunk.id),
                vector={DENSE: vector.tolist(), KEYWORDS: keyword_vector(f"{chunk.title}\n{chunk.heading}\n{chunk.text}")},
                payload={
                    "chunk_id": chunk.id,
                    "article_id": chunk.article_id,
                    "title": chunk.title,
                    "heading": chunk.heading,
                    "text": chunk.text,
                    "url": chunk.url,
                    "content_hash": content_hash[chunk.article_id],
                },
            )
            for chunk, vector in zip(chunks, vectors)
        ]
        for start in range(0, len(points), 256):
            self.client.upsert(self.collection, points[start : start + 256], wait=True)

    def delete_articles(self, article_ids: list[str]) -> None:
        if not article_ids:
            return
        self.client.delete(
            self.collection,
            models.FilterSelector(
                filter=models.Filter(must=[models.FieldCondition(key="article_id", match=models.MatchAny(any=article_ids))])
            ),
            wait=True,
        )

    def article_hashes(self) -> dict[str, str]:
        """The content hash of every indexed article, to re-embed only what changed."""
        hashes: dict[str, str] = {}
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.collection, limit=1024, offset=offset, with_payload=["article_id", "content_hash"]
            )
            for record in records:
                hashes[record.payload["article_id"]] = record.payload["content_hash"]
            if offset is None:
                return hashes

    def count(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return self.client.count(self.collection, exact=True).count

    def search(self, query_text: str, query_vector: np.ndarray, limit: int = 5, candidates: int = 30) -> list[Hit]:
        try:
            response = self.client.query_points(
                self.collection,
                prefetch=[
                    models.Prefetch(query=query_vector.tolist(), using=DENSE, limit=candidates),
                    models.Prefetch(query=keyword_vector(query_text, query=True), using=KEYWORDS, limit=candidates),
                ],
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                limit=limit,
                with_payload=True,
                with_vectors=[DENSE],
            )
        except Exception as exc:  # connection refused, timeouts, a server error: all mean "AI unavailable"
            raise AIUnavailable(f"knowledge index unavailable: {exc}") from exc
        hits = []
        for point in response.points:
            payload = point.payload
            dense = float(np.dot(np.asarray(point.vector[DENSE], dtype=np.float32), query_vector))
            chunk = Chunk(
                id=payload["chunk_id"],
                article_id=payload["article_id"],
                title=payload["title"],
                text=payload["text"],
                url=payload.get("url", ""),
                heading=payload.get("heading", ""),
            )
            hits.append(Hit(chunk=chunk, fused=float(point.score), dense=dense))
        return hits
