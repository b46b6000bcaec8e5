"""A full rebuild: a new index filled while readers keep the old one, then swapped in at once.

On a Qdrant server the swap is a collection alias; qdrant-client's local mode implements
aliases too, so the same engine code runs here on it (on disk, so a later client sees it)."""

from __future__ import annotations

import numpy as np
import pytest
from qdrant_client import QdrantClient

from helpdesk_bot.domain import Chunk
from helpdesk_bot.vectorstore import EmbeddedEngine, KnowledgeStore, ServerEngine

DIMENSION = 4


def chunk(article_id: str) -> Chunk:
    return Chunk(id=f"{article_id}#0", article_id=article_id, title=article_id, text=f"about {article_id}")


def write(store: KnowledgeStore, *article_ids: str) -> None:
    vectors = np.eye(DIMENSION, dtype=np.float32)[: len(article_ids)]
    store.upsert([chunk(a) for a in article_ids], vectors, {a: f"hash-{a}" for a in article_ids})


def articles(store: KnowledgeStore) -> set[str]:
    return set(store.article_hashes())


@pytest.fixture
def client(tmp_path):
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    yield client
    client.close()


def server(client, rebuild: bool = False) -> KnowledgeStore:
    return KnowledgeStore(ServerEngine(client, "knowledge", DIMENSION, rebuild=rebuild), DIMENSION)


def swap(engine: ServerEngine, publish: bool = True) -> None:
    """ServerEngine.close without closing the client the test shares between engines."""
    if publish:
        engine._publish()
    else:
        engine.client.delete_collection(engine.collection)


def test_rebuild_fills_a_new_collection_and_swaps_the_alias(client):
    write(server(client), "old-a", "old-b")  # a collection named "knowledge", as before rebuilds existed
    rebuild = server(client, rebuild=True)
    write(rebuild, "new-a")
    assert articles(server(client)) == {"old-a", "old-b"}  # readers see the old index meanwhile
    assert articles(rebuild) == {"new-a"}

    swap(rebuild.engine)
    assert articles(server(client)) == {"new-a"}
    assert {a.alias_name: a.collection_name for a in client.get_aliases().aliases} == {"knowledge": rebuild.engine.collection}
    assert {c.name for c in client.get_collections().collections} == {rebuild.engine.collection}


def test_next_rebuild_moves_the_alias_and_drops_the_previous_collection(client):
    first = server(client, rebuild=True)
    write(first, "a")
    swap(first.engine)
    write(server(client), "b")  # nightly runs write through the alias
    assert articles(server(client)) == {"a", "b"}

    second = server(client, rebuild=True)
    write(second, "c")
    swap(second.engine)
    assert articles(server(client)) == {"c"}
    assert {c.name for c in client.get_collections().collections} == {second.engine.collection}


def test_failed_rebuild_leaves_the_index_as_it_was(client):
    write(server(client), "a")
    rebuild = server(client, rebuild=True)
    write(rebuild, "half")
    swap(rebuild.engine, publish=False)
    assert articles(server(client)) == {"a"}
    assert {c.name for c in client.get_collections().collections} == {"knowledge"}


def test_server_engine_close_publishes_or_drops(tmp_path):
    path = str(tmp_path / "qdrant")
    rebuild = KnowledgeStore(ServerEngine(QdrantClient(path=path), "knowledge", DIMENSION, rebuild=True), DIMENSION)
    write(rebuild, "kept")
    rebuild.close()
    failed = KnowledgeStore(ServerEngine(QdrantClient(path=path), "knowledge", DIMENSION, rebuild=True), DIMENSION)
    write(failed, "dropped")
    failed.close(publish=False)
    reader = KnowledgeStore(ServerEngine(QdrantClient(path=path), "knowledge", DIMENSION), DIMENSION)
    try:
        assert articles(reader) == {"kept"} and reader.count() == 1
    finally:
        reader.close()


def test_embedded_rebuild_starts_empty_and_replaces_on_close(tmp_path):
    folder = tmp_path / "kb"
    store = KnowledgeStore(EmbeddedEngine(folder, DIMENSION, writable=True), DIMENSION)
    write(store, "old")
    store.close()
    rebuild = KnowledgeStore(EmbeddedEngine(folder, DIMENSION, writable=True, rebuild=True), DIMENSION)
    assert articles(rebuild) == set()
    write(rebuild, "new")
    rebuild.close()
    failed = KnowledgeStore(EmbeddedEngine(folder, DIMENSION, writable=True, rebuild=True), DIMENSION)
    failed.close(publish=False)
    reader = KnowledgeStore(EmbeddedEngine(folder, DIMENSION, writable=False), DIMENSION)
    try:
        assert articles(reader) == {"new"}
    finally:
        reader.close()
