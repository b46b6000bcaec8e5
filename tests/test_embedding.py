"""Embedders: the bundled offline model, and OpenAI-compatible embeddings over HTTP."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from helpdesk_bot.embedding import MiniLMEmbedder, OpenAIEmbedder, TokenEmbedder, make_embedder
from helpdesk_bot.errors import AIUnavailable, ConfigError
from helpdesk_bot.retrieval import maxsim
from helpdesk_bot.settings import Settings


class EmbeddingsStandIn(BaseHTTPRequestHandler):
    """OpenAI's POST /v1/embeddings: one vector per input, derived from the text's length."""

    requests: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if body["input"] == ["fail"]:
            self.send_response(503)
            self.end_headers()
            return
        data = [{"object": "embedding", "index": i, "embedding": [float(len(text)), 1.0, 0.0, 0.0][: body["dimensions"]]}
                for i, text in enumerate(body["input"])]
        payload = json.dumps({"object": "list", "data": list(reversed(data)), "model": body["model"],
                              "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def standin():
    server = ThreadingHTTPServer(("127.0.0.1", 0), EmbeddingsStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_openai_embeddings_are_ordered_and_normalised(standin):
    embedder = OpenAIEmbedder(api_key="k", base_url=standin, model="text-embedding-3-small", dimension=4)
    vectors = embedder.embed(["a", "abc"])
    assert vectors.shape == (2, 4)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[1][0] > vectors[0][0]  # "abc" is longer: rows follow the input, not the response order
    assert EmbeddingsStandIn.requests[-1]["dimensions"] == 4


def test_openai_embeddings_down_is_ai_unavailable(standin):
    embedder = OpenAIEmbedder(api_key="k", base_url=standin, model="m", dimension=4)
    embedder.client = embedder.client.with_options(max_retries=0)
    with pytest.raises(AIUnavailable):
        embedder.embed(["fail"])


def test_minilm_puts_paraphrases_close():
    vectors = MiniLMEmbedder().embed(["How do I reset my password?", "I forgot my login password", "Invoice PDF download"])
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_embedder_is_chosen_by_setting(tmp_path, standin):
    base = {"HELPDESK_DATA_DIR": str(tmp_path)}
    assert isinstance(make_embedder(Settings.from_env(base)), MiniLMEmbedder)
    chosen = make_embedder(Settings.from_env({**base, "HELPDESK_EMBEDDER": "openai", "OPENAI_BASE_URL": standin}))
    assert isinstance(chosen, OpenAIEmbedder) and chosen.dimension == 512
    with pytest.raises(ConfigError, match="HELPDESK_EMBEDDER"):
        Settings.from_env({**base, "HELPDESK_EMBEDDER": "word2vec"})


def test_minilm_token_vectors_are_the_word_pieces_without_special_tokens():
    embedder = MiniLMEmbedder()
    assert isinstance(embedder, TokenEmbedder)
    texts = ["Reset your password", "How do I pair the remote control with the TV?"]
    vectors = embedder.token_vectors(texts)
    pieces = [len(embedder._tokenizer.encode(text, add_special_tokens=False).ids) for text in texts]
    assert [len(v) for v in vectors] == pieces  # no [CLS], [SEP] or padding, in input order
    assert all(np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5) for v in vectors)
    assert embedder.token_vectors([]) == []


def test_the_openai_embedder_has_no_token_vectors(standin):
    assert not isinstance(OpenAIEmbedder(api_key="k", base_url=standin, model="m", dimension=4), TokenEmbedder)


def test_maxsim_matches_word_by_word():
    embedder = MiniLMEmbedder()
    question, answer, unrelated = embedder.token_vectors([
        "How do I pair the remote control?",
        "To pair the remote control, hold the Return and Play buttons for 3 seconds.",
        "Invoices can be downloaded as PDF files from the billing page.",
    ])
    assert maxsim(question, question) == pytest.approx(1.0, abs=1e-5)
    assert maxsim(question, answer) > maxsim(question, unrelated) + 0.2
    assert maxsim(question, np.zeros((0, 384), dtype=np.float32)) == 0.0
