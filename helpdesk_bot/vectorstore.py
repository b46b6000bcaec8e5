"""The knowledge index: a dense vector and a keyword (sparse, IDF) vector per chunk.

Two engines behind one small interface:
- `ServerEngine`: a Qdrant server or cluster through qdrant-client (`QDRANT_URL`); tests also
  run it on qdrant-client's local mode. Runs write in place, except a rebuild: it fills a new
  collection and then points the collection alias (QDRANT_COLLECTION) at it in one request.
- `EmbeddedEngine`: Qdrant's in-process engine (qdrant-edge) on disk, the default. A writer
  (one at a time) works on a staging copy and publishes it by swapping folders; every reading
  process queries a private copy of the last published version and switches to a newer one
  when it appears. So any number of worker processes share one index, indexing never blocks
  them, and nobody sees a half-written index.

Dense and keyword results are fused here, not in the engine, so both engines rank alike.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from helpdesk_bot.domain import ARTICLE, HELP_CENTER, Chunk
from helpdesk_bot.embedding import Embedder
from helpdesk_bot.errors import AIUnavailable, ConfigError
from helpdesk_bot.text import index_terms

DENSE = "dense"
# The multilingual embedder's vector (multilingual-e5-small), beside the default embedder's: tickets
# in other languages search with it, and it finds an article across languages.
MULTILINGUAL = "multilingual"
KEYWORDS = "keywords"
_NAMESPACE = uuid.UUID("6f0d2b1e-5c1a-4b8e-9a3e-1f2d3c4b5a69")

# BM25's term-frequency saturation is applied at index time; the engine's IDF modifier adds
# inverse document frequency at query time, so adding a chunk never rewrites the others.
_K1, _B, _AVG_LEN = 0.9, 0.4, 60.0
# Fused score = KEYWORD_WEIGHT × keyword score / best keyword score + (1 - it) × cosine.
KEYWORD_WEIGHT = 0.5
CANDIDATES = 40  # per signal, before fusion


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        pass
    return True


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


def keyword_vector(text: str, query: bool = False, language: str = "en") -> SparseVector:
    """BM25 term weights of `text` analysed in `language`: its stemmer and stopwords.

    Terms outside English carry their language ("es:export"), so a Spanish stem never matches an
    English word that happens to look alike; English terms have no prefix, as before languages.
    """
    terms = index_terms(text, language)
    if language != "en":
        terms = [f"{language}:{term}" for term in terms]
    counts = Counter(terms)
    length = sum(counts.values()) or 1
    weights: dict[int, float] = {}
    for term, tf in counts.items():
        # crc32 collisions are rare; engines reject duplicate indices, so merge them.
        index = zlib.crc32(term.encode()) & 0x7FFFFFFF
        weight = 1.0 if query else tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * length / _AVG_LEN))
        weights[index] = weights.get(index, 0.0) + weight
    return SparseVector(indices=list(weights), values=list(weights.values()))


def point_id(chunk_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, chunk_id))


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    fused: float
    dense: float  # cosine similarity to the query
    keyword: float  # keyword (BM25) score relative to the best one, 0..1


@dataclass(frozen=True)
class Scope:
    """A ticket's brand and locale: it retrieves what is written for them, and what is for everyone.

    `language`, when set, keeps only chunks in that language; with `unlabelled` also those with
    no language (indexed before languages, or from files in the default language).
    """

    brand: str | None = None
    locale: str | None = None
    language: str | None = None
    unlabelled: bool = False

    def fields(self) -> dict[str, str]:
        return {k: v for k, v in (("brand", self.brand), ("locale", self.locale)) if v}

    def __bool__(self) -> bool:
        return bool(self.fields() or self.language)


@dataclass(frozen=True)
class Point:
    id: str
    dense: dict[str, list[float]]  # by vector name: DENSE, and MULTILINGUAL when the index has it
    keywords: SparseVector
    payload: dict


class Engine(Protocol):
    def upsert(self, points: list[Point]) -> None: ...
    def delete_articles(self, article_ids: list[str]) -> None: ...
    def payloads(self, fields: list[str]) -> list[dict]: ...
    def count(self) -> int: ...
    def nearest(self, using: str, vector, limit: int, scope: Scope | None = None,
                with_vector: str | None = DENSE) -> list[tuple[dict, float, list[float] | None]]: ...
    def has_vector(self, name: str) -> bool: ...
    def close(self, publish: bool = True) -> None: ...


class KnowledgeStore:
    """The index. With a `multilingual` embedder each chunk also has its vector, which tickets
    outside `default_language` search with."""

    def __init__(self, engine: Engine, dimension: int, multilingual: Embedder | None = None,
                 default_language: str = "en"):
        self.engine = engine
        self.dimension = dimension
        self.multilingual = multilingual
        self.default_language = default_language

    @classmethod
    def open(cls, settings, dimension: int, writable: bool = False, rebuild: bool = False,
             multilingual: Embedder | None = None) -> KnowledgeStore:
        """`rebuild`: start from an empty index that replaces the current one when closed."""
        dimensions = {DENSE: dimension, **({MULTILINGUAL: multilingual.dimension} if multilingual else {})}
        if settings.qdrant_url:
            from qdrant_client import QdrantClient

            client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, timeout=10)
            engine = ServerEngine(client, settings.qdrant_collection, dimensions, rebuild=rebuild)
        else:
            folder = settings.data_dir / "knowledge" / settings.qdrant_collection
            engine = EmbeddedEngine(folder, dimensions, writable=writable or rebuild, rebuild=rebuild)
        return cls(engine, dimension, multilingual, settings.default_language)

    @classmethod
    def in_memory(cls, dimension: int, collection: str = "knowledge", multilingual: Embedder | None = None,
                  default_language: str = "en") -> KnowledgeStore:
        from qdrant_client import QdrantClient

        dimensions = {DENSE: dimension, **({MULTILINGUAL: multilingual.dimension} if multilingual else {})}
        return cls(ServerEngine(QdrantClient(":memory:"), collection, dimensions), dimension, multilingual,
                   default_language)

    def language_of(self, chunk: Chunk) -> str:
        """The language a chunk is written in: its locale's, else the help center's default."""
        return chunk.language or self.default_language

    @property
    def searches_across_languages(self) -> bool:
        """Whether the index holds multilingual vectors (one indexed before them does not)."""
        return self.multilingual is not None and self.engine.has_vector(MULTILINGUAL)

    def close(self, publish: bool = True) -> None:
        """Close; a writer publishes what it wrote, or with `publish=False` (a failed run) drops it."""
        self.engine.close(publish)

    def upsert(self, chunks: list[Chunk], vectors: np.ndarray, content_hash: dict[str, str],
               source: str = HELP_CENTER, multilingual: np.ndarray | None = None) -> None:
        """Write chunks with their vectors; `multilingual` (the multilingual embedder's) when the index has it."""
        self.engine.upsert([
            Point(
                id=point_id(chunk.id),
                dense={DENSE: vector.tolist(), **({MULTILINGUAL: multilingual[i].tolist()} if multilingual is not None else {})},
                keywords=keyword_vector(f"{chunk.title}\n{chunk.heading}\n{chunk.text}", language=self.language_of(chunk)),
                payload={"chunk_id": chunk.id, "article_id": chunk.article_id, "title": chunk.title,
                         "heading": chunk.heading, "text": chunk.text, "url": chunk.url,
                         "content_hash": content_hash[chunk.article_id], "source": source,
                         "kind": chunk.kind, "locale": chunk.locale, "brand": chunk.brand,
                         "language": self.language_of(chunk)},
            )
            for i, (chunk, vector) in enumerate(zip(chunks, vectors))
        ])

    def delete_articles(self, article_ids: list[str]) -> None:
        if article_ids:
            self.engine.delete_articles(article_ids)

    def article_hashes(self, kind: str | None = None) -> dict[str, str]:
        """The content hash of every indexed article (of one kind), to re-embed only what changed."""
        return {article_id: content_hash for article_id, (content_hash, _) in self.article_sources(kind).items()}

    def article_sources(self, kind: str | None = None) -> dict[str, tuple[str, str]]:
        """(content hash, source) of every indexed article of one kind."""
        # Indexes of older versions hold no kind and no source: they held help center articles.
        return {p["article_id"]: (p["content_hash"], p.get("source") or HELP_CENTER)
                for p in self.engine.payloads(["article_id", "content_hash", "kind", "source"])
                if kind is None or (p.get("kind") or ARTICLE) == kind}

    def chunks(self, kind: str) -> list[Chunk]:
        """Every indexed chunk of one kind, with its text."""
        fields = ["chunk_id", "article_id", "title", "heading", "text", "url", "kind", "locale", "brand"]
        return [_chunk(p) for p in self.engine.payloads(fields) if (p.get("kind") or ARTICLE) == kind]

    def count(self) -> int:
        return self.engine.count()

    def search(self, query_text: str, query_vector: np.ndarray, limit: int = 5, scope: Scope | None = None,
               language: str = "en", using: str = DENSE) -> list[Hit]:
        """Hybrid search: dense (`using`: DENSE or MULTILINGUAL) and keyword candidates, the query's
        keywords analysed in `language`, fused by normalised score."""
        scope = scope if scope else None
        try:
            dense = self.engine.nearest(using, query_vector.tolist(), CANDIDATES, scope, with_vector=None)
            keyword = self.engine.nearest(KEYWORDS, keyword_vector(query_text, query=True, language=language),
                                          CANDIDATES, scope, with_vector=using)
        except AIUnavailable:
            raise
        except Exception as exc:  # connection refused, timeouts, a server error: all mean "AI unavailable"
            raise AIUnavailable(f"knowledge index unavailable: {exc}") from exc
        best_keyword = max((score for _, score, _ in keyword), default=0.0) or 1.0
        payloads = {payload["chunk_id"]: payload for payload, _, _ in dense + keyword}
        # Vectors are unit length and the collection's distance is cosine: the dense search's
        # scores are the cosines; only keyword-only candidates need theirs computed.
        cosines = {payload["chunk_id"]: score for payload, score, _ in dense}
        for payload, _, vector in keyword:
            if payload["chunk_id"] not in cosines:
                cosines[payload["chunk_id"]] = float(np.dot(np.asarray(vector, dtype=np.float32), query_vector))
        keywords = {payload["chunk_id"]: score / best_keyword for payload, score, _ in keyword}
        fused = {chunk_id: KEYWORD_WEIGHT * keywords.get(chunk_id, 0.0) + (1 - KEYWORD_WEIGHT) * cosine
                 for chunk_id, cosine in cosines.items()}
        best = sorted(fused, key=fused.__getitem__, reverse=True)[:limit]
        return [Hit(chunk=_chunk(payloads[c]), fused=fused[c], dense=cosines[c], keyword=keywords.get(c, 0.0)) for c in best]


def _chunk(payload: dict) -> Chunk:
    return Chunk(id=payload["chunk_id"], article_id=payload["article_id"], title=payload["title"],
                 text=payload["text"], url=payload.get("url", ""), heading=payload.get("heading", ""),
                 kind=payload.get("kind") or ARTICLE, locale=payload.get("locale"), brand=payload.get("brand"))


INDEXED_FIELDS = ("article_id", "kind", "brand", "locale", "language")  # deletes by article, retrieval's scope


def _scope_filter(models, scope: Scope | None, unset):
    """Each scoped field matches the ticket's value or is unset (null or missing: for everyone);
    the language matches, or is unset only when the scope says unlabelled chunks count.

    `unset(key)` is the engine's is-empty condition; the other classes are alike in both.
    """
    if scope is None:
        return None
    conditions = [
        models.Filter(should=[models.FieldCondition(key=key, match=models.MatchValue(value=value)), unset(key)])
        for key, value in scope.fields().items()
    ]
    if scope.language:
        language = models.FieldCondition(key="language", match=models.MatchValue(value=scope.language))
        conditions.append(models.Filter(should=[language, unset("language")]) if scope.unlabelled else language)
    return models.Filter(must=conditions)


# --- Qdrant server (and qdrant-client's local mode) ----------------------------------------


class ServerEngine:
    def __init__(self, client, collection: str, dimensions: dict[str, int] | int, rebuild: bool = False):
        from qdrant_client import models

        self.client, self.models = client, models
        self.dimensions = dimensions if isinstance(dimensions, dict) else {DENSE: dimensions}
        self.name = collection  # what readers query: a collection, or the alias of one after a rebuild
        self.rebuild = rebuild
        # A rebuild writes to a collection of its own; readers keep the old one until the swap.
        self.collection = f"{collection}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}" if rebuild else collection
        self._exists = False  # checked lazily: a server that is down must not stop start-up
        self._vectors: frozenset[str] | None = None  # the collection's dense vector names, once read

    def _collection_exists(self) -> bool:
        self._exists = (self._exists or self.client.collection_exists(self.collection)
                        or self._alias_target(self.collection) is not None)
        return self._exists

    def _alias_target(self, alias: str) -> str | None:
        return next((a.collection_name for a in self.client.get_aliases().aliases if a.alias_name == alias), None)

    def _publish(self) -> None:
        """Point the alias at the rebuilt collection: one aliases request, so readers switch at once."""
        m = self.models
        if not self._collection_exists():  # nothing to index: still an (empty) index
            self._create_collection()
        previous = self._alias_target(self.name)
        operations = [m.CreateAliasOperation(create_alias=m.CreateAlias(collection_name=self.collection,
                                                                        alias_name=self.name))]
        if previous is not None:
            operations.insert(0, m.DeleteAliasOperation(delete_alias=m.DeleteAlias(alias_name=self.name)))
        elif self.client.collection_exists(self.name):
            # A collection of a version before rebuilds holds the name an alias needs: this one
            # time readers find no index between the delete and the alias (a few milliseconds).
            previous = self.name
            self.client.delete_collection(self.name)
        self.client.update_collection_aliases(change_aliases_operations=operations)
        if previous is not None and previous != self.name:
            self.client.delete_collection(previous)

    def _create_collection(self) -> None:
        m = self.models
        self.client.create_collection(
            self.collection,
            vectors_config={name: m.VectorParams(size=size, distance=m.Distance.COSINE)
                            for name, size in self.dimensions.items()},
            sparse_vectors_config={KEYWORDS: m.SparseVectorParams(modifier=m.Modifier.IDF)},
        )
        with warnings.catch_warnings():  # local mode ignores payload indexes and says so
            warnings.simplefilter("ignore", UserWarning)
            for key in INDEXED_FIELDS:
                self.client.create_payload_index(self.collection, key, m.PayloadSchemaType.KEYWORD)

    def upsert(self, points: list[Point]) -> None:
        m = self.models
        if not self._collection_exists():
            self._create_collection()
        elif not all(self.has_vector(name) for name in self.dimensions):
            # A collection's vectors are fixed when it is made: one made before the multilingual
            # vector is rebuilt (a new collection behind the alias) rather than changed.
            raise ConfigError(f"the index {self.name!r} has no {', '.join(self.dimensions)} vectors yet: "
                              "run `helpdesk-bot index --from-helpdesk --rebuild`")
        structs = [
            m.PointStruct(id=p.id, payload=p.payload, vector={
                **p.dense, KEYWORDS: m.SparseVector(indices=p.keywords.indices, values=p.keywords.values)})
            for p in points
        ]
        for start in range(0, len(structs), 256):
            self.client.upsert(self.collection, structs[start : start + 256], wait=True)

    def delete_articles(self, article_ids: list[str]) -> None:
        m = self.models
        if not self._collection_exists():
            return
        condition = m.FieldCondition(key="article_id", match=m.MatchAny(any=article_ids))
        self.client.delete(self.collection, m.FilterSelector(filter=m.Filter(must=[condition])), wait=True)

    def payloads(self, fields: list[str]) -> list[dict]:
        if not self._collection_exists():
            return []
        out, offset = [], None
        while True:
            records, offset = self.client.scroll(self.collection, limit=1024, offset=offset, with_payload=fields)
            out.extend(r.payload for r in records)
            if offset is None:
                return out

    def _unset(self, key: str):
        return self.models.IsEmptyCondition(is_empty=self.models.PayloadField(key=key))

    def count(self) -> int:
        return self.client.count(self.collection, exact=True).count if self._collection_exists() else 0

    def has_vector(self, name: str) -> bool:
        if not self._collection_exists():
            return True  # the first write creates it with every vector
        if self._vectors is None:  # asked once: a collection's vectors never change
            vectors = self.client.get_collection(self.collection).config.params.vectors
            self._vectors = frozenset(vectors) if isinstance(vectors, dict) else frozenset()
        return name in self._vectors

    def nearest(self, using: str, vector, limit: int, scope: Scope | None = None, with_vector: str | None = DENSE):
        if not self._collection_exists():  # nothing indexed yet
            return []
        if isinstance(vector, SparseVector):
            vector = self.models.SparseVector(indices=vector.indices, values=vector.values)
        response = self.client.query_points(self.collection, query=vector, using=using, limit=limit,
                                            query_filter=_scope_filter(self.models, scope, self._unset),
                                            with_payload=True, with_vectors=[with_vector] if with_vector else False)
        return [(p.payload, float(p.score), p.vector[with_vector] if with_vector else None) for p in response.points]

    def close(self, publish: bool = True) -> None:
        try:
            if self.rebuild and publish:
                self._publish()
            elif self.rebuild and self.client.collection_exists(self.collection):
                self.client.delete_collection(self.collection)
        finally:
            self.client.close()


# --- Embedded: qdrant-edge on disk ----------------------------------------------------------


class EmbeddedEngine:
    """qdrant-edge shards: a published primary, and per-process read copies (see module doc)."""

    RELOAD_CHECK_SECONDS = 2.0

    def __init__(self, folder: Path, dimensions: dict[str, int] | int, writable: bool, rebuild: bool = False):
        import qdrant_edge

        self.q = qdrant_edge
        self.folder, self.writable = folder, writable
        self.dimensions = dimensions if isinstance(dimensions, dict) else {DENSE: dimensions}
        self.version_file = self._sibling(".version")
        folder.parent.mkdir(parents=True, exist_ok=True)
        self._publish_lock = open(self._sibling(".publish.lock"), "a+")  # EX to swap, SH to copy
        self._swap = threading.Lock()
        self._copy_dir: str | None = None
        self._version, self._checked_at = None, 0.0
        self.shard = None
        self._changed = False
        if writable:
            self._writer_lock = open(self._sibling(".writer.lock"), "a+")
            fcntl.flock(self._writer_lock, fcntl.LOCK_EX)  # one writer at a time
            staging = self._sibling(".staging")
            shutil.rmtree(staging, ignore_errors=True)  # left by a writer that died
            if self._published_version() is not None and not rebuild:
                self._copy_published(staging)
            self._changed = rebuild  # an empty rebuild still replaces the published index
            self.shard = self._load_or_create(staging)
            if not all(self._holds(self.shard, name) for name in self.dimensions):
                # Indexed before a vector it needs now (the multilingual one): the shard's vectors
                # are fixed when it is made, so this run starts afresh and embeds every article.
                self.shard.close()
                shutil.rmtree(staging, ignore_errors=True)
                self._changed = True
                self.shard = self._load_or_create(staging)
        else:
            self._reload()

    def _sibling(self, suffix: str) -> Path:
        return self.folder.with_name(self.folder.name + suffix)

    def _copy_published(self, target: Path | str) -> str | None:
        fcntl.flock(self._publish_lock, fcntl.LOCK_SH)
        try:
            version = self._published_version()
            shutil.copytree(self.folder, target, dirs_exist_ok=True)
            return version
        finally:
            fcntl.flock(self._publish_lock, fcntl.LOCK_UN)

    def _config(self):
        q = self.q
        return q.EdgeConfig(vectors={name: q.EdgeVectorParams(size=size, distance=q.Distance.Cosine)
                                     for name, size in self.dimensions.items()},
                            sparse_vectors={KEYWORDS: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)})

    def _load_or_create(self, path: Path):
        q = self.q
        if path.exists() and any(path.iterdir()):
            shard = q.EdgeShard.load(str(path))
        else:
            shard = q.EdgeShard.create(str(path), self._config())
        # Keyword indexes: deletes by article, and a brand- or locale-scoped search stays an
        # index walk instead of checking every point's payload (+8 ms on 20,000 chunks).
        for key in set(INDEXED_FIELDS) - set(shard.info().payload_schema):  # indexes of older versions lack some
            shard.update(q.UpdateOperation.create_field_index(key, q.PayloadSchemaType.Keyword))
        return shard

    def _published_version(self) -> str | None:
        try:
            return self.version_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    def _reload(self) -> None:
        """Switch to the last published version if it is newer than the one being read."""
        self._checked_at = time.monotonic()
        version = self._published_version()
        if version is None or version == self._version:
            return
        copy_dir = self._new_reader_copy()
        version = self._copy_published(copy_dir)
        shard = self.q.EdgeShard.load(copy_dir)
        with self._swap:
            old_dir, self.shard, self._copy_dir, self._version = self._copy_dir, shard, copy_dir, version
        if old_dir:  # queries already running keep their shard object; its files may go
            shutil.rmtree(old_dir, ignore_errors=True)

    def _new_reader_copy(self) -> str:
        """A folder for this process's copy of the published index, beside the index. Copies left by
        readers of this host that died (a killed worker cannot clean up) are removed first: each
        is a whole index, and they used to pile up in /tmp."""
        readers = self._sibling(".readers")
        readers.mkdir(exist_ok=True)
        host = socket.gethostname()
        for copy in readers.iterdir():
            owner_host, _, pid = copy.name.rpartition("-pid")
            pid = pid.split("-", 1)[0]
            if owner_host == host and pid.isdigit() and not _running(int(pid)):
                shutil.rmtree(copy, ignore_errors=True)
        return tempfile.mkdtemp(prefix=f"{host}-pid{os.getpid()}-", dir=readers)

    def _reader(self):
        if not self.writable and time.monotonic() - self._checked_at > self.RELOAD_CHECK_SECONDS:
            self._reload()
        return self.shard

    def upsert(self, points: list[Point]) -> None:
        q = self.q
        self._changed = True
        self.shard.update(q.UpdateOperation.upsert_points([
            q.Point(id=p.id, payload=p.payload,
                    vector={**p.dense, KEYWORDS: q.SparseVector(indices=p.keywords.indices, values=p.keywords.values)})
            for p in points
        ]))

    def delete_articles(self, article_ids: list[str]) -> None:
        q = self.q
        self._changed = True
        self.shard.update(q.UpdateOperation.delete_points_by_filter(
            q.Filter(must=[q.FieldCondition(key="article_id", match=q.MatchAny(any=article_ids))])))

    def payloads(self, fields: list[str]) -> list[dict]:
        shard = self._reader()
        if shard is None:
            return []
        out, offset = [], None
        while True:
            records, offset = shard.scroll(self.q.ScrollRequest(offset=offset, limit=1024, with_payload=True))
            out.extend({f: r.payload.get(f) for f in fields} for r in records)
            if offset is None:
                return out

    def count(self) -> int:
        shard = self._reader()
        return shard.count(self.q.CountRequest(exact=True)) if shard is not None else 0

    def _holds(self, shard, name: str) -> bool:
        """Whether the shard has the dense vector `name` (qdrant-edge shows no config: ask it)."""
        try:
            shard.query(self.q.QueryRequest(limit=1, query=self.q.Query.Nearest([0.0] * self.dimensions.get(name, 1),
                                                                                  using=name)))
        except Exception as exc:  # noqa: BLE001 - qdrant-edge raises a bare Exception
            if "vector name" in str(exc):
                return False
        return True

    def has_vector(self, name: str) -> bool:
        shard = self._reader()
        return shard is None or self._holds(shard, name)

    def nearest(self, using: str, vector, limit: int, scope: Scope | None = None, with_vector: str | None = DENSE):
        shard = self._reader()
        if shard is None:  # nothing indexed yet
            return []
        q = self.q
        if isinstance(vector, SparseVector):
            vector = q.SparseVector(indices=vector.indices, values=vector.values)
        points = shard.query(q.QueryRequest(limit=limit, query=q.Query.Nearest(vector, using=using),
                                            filter=_scope_filter(q, scope, q.IsEmptyCondition), with_payload=True,
                                            with_vector=[with_vector] if with_vector else False))
        return [(p.payload, float(p.score), p.vector[with_vector] if with_vector else None) for p in points]

    def close(self, publish: bool = True) -> None:
        if self.writable and self.shard is not None:
            if publish and (self._changed or self._published_version() is None):
                self.shard.optimize()  # fewer, indexed segments: millisecond queries for readers
                self.shard.flush()
                self.shard.close()
                self._publish()
            else:  # nothing changed, or a failed run: readers keep the version they have
                self.shard.close()
                shutil.rmtree(self._sibling(".staging"), ignore_errors=True)
            self.shard = None
            fcntl.flock(self._writer_lock, fcntl.LOCK_UN)
            self._writer_lock.close()
        elif self._copy_dir:
            shutil.rmtree(self._copy_dir, ignore_errors=True)
            self._copy_dir = None
        self._publish_lock.close()

    def _publish(self) -> None:
        """Swap the staging folder in; readers copy either the old or the new, never a mix."""
        previous = self._sibling(".previous")
        shutil.rmtree(previous, ignore_errors=True)
        fcntl.flock(self._publish_lock, fcntl.LOCK_EX)
        try:
            if self.folder.exists():
                self.folder.rename(previous)
            self._sibling(".staging").rename(self.folder)
            self.version_file.write_text(uuid.uuid4().hex)
        finally:
            fcntl.flock(self._publish_lock, fcntl.LOCK_UN)
        shutil.rmtree(previous, ignore_errors=True)
