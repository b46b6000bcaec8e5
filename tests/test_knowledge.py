"""Knowledge: HTML to chunks, loading articles, keeping a real Qdrant index in step, retrieval."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from qdrant_client import QdrantClient

from helpdesk_bot.domain import PAST_TICKET
from helpdesk_bot.embedding import MiniLMEmbedder
from helpdesk_bot.errors import AIUnavailable, BadInput
from helpdesk_bot.knowledge import CHUNK_WORDS, Article, chunk_article, load_folder, load_jsonl, sync_index
from helpdesk_bot.retrieval import Retriever, term_coverage
from helpdesk_bot.text import html_to_blocks, key_terms
from helpdesk_bot.vectorstore import EmbeddedEngine, KnowledgeStore, ServerEngine

ARTICLES = [
    Article("reset-password", "Resetting your password",
            "<p>Forgot your password? On the sign-in page click <b>Forgot password</b> and enter your email.</p>"
            "<p>We send a reset link that works for one hour. Choose a new password of at least 12 characters.</p>",
            "https://help.example.com/reset-password"),
    Article("invoices", "Downloading invoices",
            "<p>Workspace owners and billing admins can download invoices.</p>"
            "<p>Open Settings, choose Billing and click Invoice history. Each invoice is a PDF.</p>",
            "https://help.example.com/invoices"),
    Article("export-projects", "Exporting a project",
            "<p>Project owners can export every task in a project to a CSV file.</p>"
            "<p>Open the project menu and choose Export, then CSV.</p>"),
    Article("two-factor", "Turning on two-factor authentication",
            "<p>Two-factor authentication asks for a one-time code from an authenticator app at sign-in.</p>"
            "<p>Turn it on under Profile, Security. Keep your backup codes somewhere safe.</p>"),
    Article("delete-workspace", "Deleting a workspace",
            "<p>Only the workspace owner can delete a workspace, from Settings, General, Delete workspace.</p>"
            "<p>Deleted workspaces are kept for 30 days and then removed for good.</p>"),
    Article("slack", "Connecting Slack",
            "<p>The Slack integration posts task updates to a Slack channel of your choice.</p>"
            "<p>Go to Integrations, click Slack and pick the channel.</p>"),
]


def article(id: str) -> Article:
    return next(a for a in ARTICLES if a.id == id)


def words(n: int, word: str = "word") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def write_jsonl(path, *rows) -> None:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def open_engine(kind: str, folder) -> KnowledgeStore:
    """Every store test runs on both engines: the embedded one and qdrant-client (local mode)."""
    if kind == "embedded":
        return KnowledgeStore(EmbeddedEngine(folder / "kb", 384, writable=True), 384)
    return KnowledgeStore(ServerEngine(QdrantClient(":memory:"), "kb", 384), 384)


@pytest.fixture(params=["embedded", "qdrant-client"])
def store(request, tmp_path):
    store = open_engine(request.param, tmp_path)
    yield store
    store.close()


@pytest.fixture(scope="module", params=["embedded", "qdrant-client"])
def retriever(request, minilm, tmp_path_factory):
    store = open_engine(request.param, tmp_path_factory.mktemp("kb"))
    sync_index(store, minilm, ARTICLES)
    yield Retriever(store, minilm)
    store.close()


# --- HTML to blocks, articles to chunks --------------------------------------------------------

STRUCTURED = """
<h1>Billing</h1><p>How billing works.</p>
<h2>Refunds</h2><p>Refunds take five days.</p>
<h3>Partial refunds</h3><p>Partial refunds are pro rata.</p>
<h2>Plans</h2><p>Our plans.</p>
<h1>API</h1><p>Use the API.</p>
"""


def test_headings_become_heading_paths():
    chunks = chunk_article(Article("billing", "Billing guide", STRUCTURED))
    assert [(c.heading, c.text) for c in chunks] == [
        ("Billing", "How billing works."),
        ("Billing › Refunds", "Refunds take five days."),
        ("Billing › Refunds › Partial refunds", "Partial refunds are pro rata."),
        ("Billing › Plans", "Our plans."),
        ("API", "Use the API."),
    ]


def test_text_before_the_first_heading_has_no_heading_path():
    chunks = chunk_article(Article("a", "A", "<p>Welcome.</p><h2>Setup</h2><p>Install it.</p>"))
    assert [(c.heading, c.text) for c in chunks] == [("", "Welcome."), ("Setup", "Install it.")]


def test_list_items_stay_one_a_line():
    blocks = html_to_blocks("<p>To export:</p><ul><li>Open the <b>project</b></li><li>Click Export</li></ul>")
    assert blocks == [(0, "To export:"), (0, "- Open the project\n- Click Export")]


def test_table_rows_stay_one_a_line():
    blocks = html_to_blocks("<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Team</td><td>$8</td></tr></table>")
    assert blocks == [(0, "| Plan | Price |\n| Team | $8 |")]


def test_table_rows_of_indented_html_stay_one_a_line():
    # The HTML Markdown and most editors produce: a newline between every tag.
    blocks = html_to_blocks("<table>\n<tr>\n<th>Plan</th>\n<th>Price</th>\n</tr>\n<tr>\n<td>Team</td>\n<td>$8</td>\n</tr>\n</table>")
    assert blocks == [(0, "| Plan | Price |\n| Team | $8 |")]


def test_hard_wrapped_html_paragraph_is_one_line():
    assert html_to_blocks("<p>Invoices are listed\n   under Billing.</p>") == [(0, "Invoices are listed under Billing.")]


def test_code_keeps_its_lines_and_indentation():
    code = "curl -X POST https://api.example.com/v1/tasks \\\n  -d '{\"name\": \"x\"}'"
    chunks = chunk_article(Article("api", "API", f"<h2>Create a task</h2><pre><code>{code}</code></pre>"))
    assert chunks[0].text == code


def test_scripts_and_styles_are_dropped():
    blocks = html_to_blocks("<style>p{color:red}</style><p>Visible</p><script>track()</script>")
    assert blocks == [(0, "Visible")]


def test_article_without_body_is_one_chunk_holding_its_title():
    (chunk,) = chunk_article(Article("42", "Where is the API key?", "", "https://help.example.com/42"))
    assert (chunk.id, chunk.text, chunk.url) == ("42#0", "Where is the API key?", "https://help.example.com/42")


LONG = Article("long", "Long article", "".join(
    [f"<p>{words(45, f'p{n}w')}</p>" for n in range(12)] + [f"<p>{words(500, 'huge')}</p>", "<p>The end.</p>"]
))


def test_chunks_stay_within_chunk_words():
    chunks = chunk_article(LONG)
    assert len(chunks) > 4
    assert max(len(c.text.split()) for c in chunks) <= CHUNK_WORDS


def test_every_paragraph_is_whole_in_some_chunk():
    chunks = chunk_article(LONG)
    for n in range(12):
        paragraph = words(45, f"p{n}w")
        assert any(paragraph in c.text.split("\n") for c in chunks), n


def test_consecutive_chunks_of_a_section_overlap():
    first, second = chunk_article(LONG)[:2]
    assert set(first.text.split("\n")) & set(second.text.split("\n"))


def test_every_word_of_a_huge_paragraph_is_kept():
    kept = {w for c in chunk_article(LONG) for w in c.text.split()}
    assert set(words(500, "huge").split()) <= kept


def test_numbered_steps_keep_their_numbers():
    blocks = html_to_blocks("<ol><li>Open Settings</li><li>Click Export</li></ol><ul><li>Note</li></ul>")
    assert blocks == [(0, "1. Open Settings\n2. Click Export"), (0, "- Note")]


def test_a_procedure_stays_whole_in_one_chunk_with_its_heading_and_lead_line():
    steps = "".join(f"<li>{words(18, f's{n}w')}</li>" for n in range(8))  # 144 words of steps
    body = f"<h2>Before you start</h2><p>{words(100, 'intro')}</p><h2>Export a project</h2><p>{words(60, 'p')}</p>" \
           f"<p>To export:</p><ol>{steps}</ol><p>Done.</p>"
    chunks = chunk_article(Article("export", "Exporting", body))
    holding = [c for c in chunks if "1. s0w" in c.text]
    assert len(holding) == 1 and holding[0].heading == "Export a project"
    assert "To export:\n1. s0w" in holding[0].text and "8. s7w" in holding[0].text


def test_a_table_stays_whole_in_one_chunk():
    rows = "".join(f"<tr><td>Plan {n}</td><td>{words(12, f'c{n}w')}</td></tr>" for n in range(12))
    chunks = chunk_article(Article("plans", "Plans", f"<p>{words(120, 'intro')}</p><table>{rows}</table>"))
    assert [sum(f"| Plan {n} |" in c.text for c in chunks) for n in range(12)] == [1] * 12
    assert len({c.id for c in chunks if "| Plan 0 |" in c.text or "| Plan 11 |" in c.text}) == 1


def test_chunk_ids_are_the_article_id_and_position_and_stable():
    first, again = chunk_article(LONG), chunk_article(replace(LONG))
    assert [c.id for c in first] == [f"long#{n}" for n in range(len(first))]
    assert first == again


# --- loading articles --------------------------------------------------------------------------


def test_load_jsonl_reads_text_and_html_bodies(tmp_path):
    path = tmp_path / "articles.jsonl"
    write_jsonl(path,
                {"id": 7, "title": "Invoices", "body": "Open Billing.\nClick Invoices.\n\n<not html", "url": "https://h/7"},
                "",
                {"id": "8", "title": "Export", "body": "<p>Choose <b>Export</b>.</p>"})
    first, second = load_jsonl(path)
    assert (first.id, first.title, first.url) == ("7", "Invoices", "https://h/7")
    assert first.body_html == "<p>Open Billing.<br>Click Invoices.</p><p>&lt;not html</p>"
    assert (second.id, second.body_html, second.url) == ("8", "<p>Choose <b>Export</b>.</p>", "")


@pytest.mark.parametrize("bad_line", [
    "{not json",
    '{"title": "no id", "body": "x"}',
    '{"id": 3, "title": "no body"}',
    '["a", "list"]',
    '{"id": 3, "body": 5}',
])
def test_load_jsonl_names_the_bad_line(tmp_path, bad_line):
    path = tmp_path / "articles.jsonl"
    write_jsonl(path, {"id": 1, "title": "Fine", "body": "Fine."}, bad_line)
    with pytest.raises(BadInput, match=f"{path}:2: not an article line"):
        load_jsonl(path)


def test_load_folder_reads_markdown_and_html(tmp_path):
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "export.md").write_text("# Exporting projects\n\nOpen the **project** menu.\n", encoding="utf-8")
    (tmp_path / "reset.html").write_text("<h1>Resetting your password</h1><p>Click Forgot password.</p>", encoding="utf-8")
    (tmp_path / "billing_faq.md").write_text("No heading, just text.\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not an article", encoding="utf-8")
    articles = {a.id: a for a in load_folder(tmp_path)}
    assert set(articles) == {"guides/export.md", "reset.html", "billing_faq.md"}
    assert articles["guides/export.md"].title == "Exporting projects"
    assert "<strong>project</strong>" in articles["guides/export.md"].body_html
    assert articles["reset.html"].title == "Resetting your password"
    assert articles["billing_faq.md"].title == "billing faq"  # no heading: the file name
    assert chunk_article(articles["reset.html"])[0].text == "Click Forgot password."


# --- keeping the index in step ----------------------------------------------------------------------


def total_chunks(articles) -> int:
    return sum(len(chunk_article(a)) for a in articles)


def test_first_sync_adds_every_article(store, minilm):
    report = sync_index(store, minilm, ARTICLES)
    assert (report.added, report.updated, report.unchanged, report.deleted) == (6, 0, 0, 0)
    assert report.chunks == total_chunks(ARTICLES)
    assert store.count() == report.chunks
    assert store.article_hashes() == {a.id: a.content_hash for a in ARTICLES}


def test_second_sync_embeds_nothing(store, minilm):
    sync_index(store, minilm, ARTICLES)
    report = sync_index(store, minilm, ARTICLES)
    assert {k: v for k, v in report.as_dict().items() if k != "seconds"} == {"added": 0, "updated": 0, "unchanged": 6, "deleted": 0, "chunks": 0, "errors": [], "mode": "full"}
    assert store.count() == total_chunks(ARTICLES)


def test_changed_article_is_the_only_one_re_embedded(store, minilm):
    sync_index(store, minilm, ARTICLES)
    before = store.article_hashes()
    shrunk = replace(article("invoices"), body_html="<p>Invoices now live under Settings, Payments.</p>")
    articles = [shrunk if a.id == "invoices" else a for a in ARTICLES]
    report = sync_index(store, minilm, articles)
    assert (report.added, report.updated, report.unchanged, report.deleted, report.chunks) == (0, 1, 5, 0, 1)
    after = store.article_hashes()
    assert after["invoices"] == shrunk.content_hash != before["invoices"]
    assert {k: v for k, v in after.items() if k != "invoices"} == {k: v for k, v in before.items() if k != "invoices"}
    assert store.count() == total_chunks(articles)


def test_published_articles_keep_their_contacts_and_past_tickets_are_redacted(store, minilm):
    published = Article("billing", "Billing contact", "<p>Email billing@orbitask.com or call +1 415 555 0134.</p>")
    past = Article("ticket-9", "Invoice question", "<p>Customer question: mail me at casey@example.com</p>",
                   kind=PAST_TICKET)
    sync_index(store, minilm, [published])
    sync_index(store, minilm, [past], kind=PAST_TICKET)
    texts = {hit.chunk.article_id: hit.chunk.text for hit in store.search("email", minilm.embed(["email"])[0], limit=5)}
    assert texts["billing"] == "Email billing@orbitask.com or call +1 415 555 0134."
    assert "casey@example.com" not in texts["ticket-9"] and "[email]" in texts["ticket-9"]


def test_changed_article_loses_its_old_chunks(store, minilm):
    long_invoices = replace(article("invoices"), body_html="".join(f"<h2>Part {n}</h2><p>Step {n}.</p>" for n in range(4)))
    sync_index(store, minilm, [long_invoices])
    assert store.count() == 4
    sync_index(store, minilm, [article("invoices")])
    assert store.count() == len(chunk_article(article("invoices")))


def test_removed_article_is_deleted_from_the_index(store, minilm):
    sync_index(store, minilm, ARTICLES)
    remaining = [a for a in ARTICLES if a.id != "slack"]
    report = sync_index(store, minilm, remaining)
    assert (report.deleted, report.unchanged, report.chunks) == (1, 5, 0)
    assert "slack" not in store.article_hashes()
    assert store.count() == total_chunks(remaining)


def test_partial_sync_keeps_articles_it_was_not_given(store, minilm):
    sync_index(store, minilm, ARTICLES)
    report = sync_index(store, minilm, ARTICLES[:2], remove_missing=False)
    assert report.deleted == 0
    assert set(store.article_hashes()) == {a.id for a in ARTICLES}


# --- retrieval ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("question, expected", [
    ("I can't remember my login, how do I get back into my account?", "reset-password"),
    ("Where do I find the bills we paid last month?", "invoices"),
    ("Can I get all my tasks out as a spreadsheet?", "export-projects"),
    ("How do I add an extra code from my phone when I log in?", "two-factor"),
    ("We want task notifications in our team chat channel", "slack"),
    ("How do we close down our whole workspace permanently?", "delete-workspace"),
])
def test_paraphrased_question_finds_its_article(retriever, question, expected):
    sources = retriever.retrieve(question)
    assert sources[0].chunk.article_id == expected, [(s.chunk.article_id, round(s.dense, 2)) for s in sources]


def test_retrieved_sources_are_few_and_scored_in_range(retriever):
    sources = retriever.retrieve("How do I download an invoice as a PDF?")
    assert 0 < len(sources) <= 5
    for s in sources:
        assert -1.0 <= s.dense <= 1.0
        assert 0.0 <= s.keyword <= 1.0
    assert sources[0].chunk.article_id == "invoices"
    assert sources[0].keyword == 1.0  # download, invoice and pdf are all in it
    assert [s.score for s in sources] == sorted((s.score for s in sources), reverse=True)


@pytest.mark.parametrize("question, text", [
    ("Where are my tasks?", "Each task has an owner."),
    ("How do I export a project?", "Projects are exported from the project menu."),
    ("Which categories are there?", "Every category has sections."),
])
def test_keyword_match_meets_other_word_forms(question, text):
    assert term_coverage(key_terms(question), text) == 1.0


@pytest.mark.parametrize("question, text", [
    ("Where are my invoices?", "Each invoice is a PDF."),
    ("Where is my invoice?", "Download invoices from Billing."),
    ("Are there changes to the pages?", "Each page shows its change history."),
])
def test_keyword_match_meets_plurals_in_es(question, text):
    assert term_coverage(key_terms(question), text) == 1.0


def test_possessive_meets_the_plain_word():
    assert term_coverage(key_terms("Where is my team's dashboard?"), "Every team has a dashboard.") == 1.0


def test_the_best_fused_chunks_are_reranked_by_their_word_by_word_match(retriever):
    question = "How do I download an invoice as a PDF?"
    depth = retriever.rerank_depth
    sources = retriever.retrieve(question)
    assert all(0.0 < s.maxsim <= 1.0 for s in sources[:depth])
    assert all(s.maxsim is None for s in sources[depth:])  # the rest follow in fused order
    # MaxSim alone decides when it outweighs the fused score; without re-ranking there is none.
    by_match = Retriever(retriever.store, retriever.embedder, maxsim_weight=1e6).retrieve(question)
    assert [s.maxsim for s in by_match[:depth]] == sorted((s.maxsim for s in by_match[:depth]), reverse=True)
    fused_only = Retriever(retriever.store, retriever.embedder, rerank_depth=0).retrieve(question)
    assert all(s.maxsim is None for s in fused_only)
    assert {s.chunk.id for s in by_match[:depth]} == {s.chunk.id for s in fused_only[:depth]}  # re-ordered, not replaced


def test_blank_question_retrieves_nothing(retriever):
    assert retriever.retrieve("   \n") == []


def test_unreachable_qdrant_is_ai_unavailable(minilm):
    # Nothing listens on port 1; skip the client's version probe, which would only warn.
    client = QdrantClient(url="http://127.0.0.1:1", timeout=1, check_compatibility=False)
    store = KnowledgeStore(ServerEngine(client, "kb", 384), 384)
    try:
        with pytest.raises(AIUnavailable, match="knowledge index unavailable"):
            Retriever(store, minilm).retrieve("Where is my invoice?")
        with pytest.raises(AIUnavailable):
            store.search("invoice", np.zeros(384, dtype=np.float32))
    finally:
        store.close()


def test_stemming_is_safe_from_many_threads():
    # Worker threads tokenize at the same time; a shared snowball stemmer corrupts its state.
    from concurrent.futures import ThreadPoolExecutor

    from helpdesk_bot.text import stem, tokens

    words = [f"{base}{suffix}" for base in ("invoice", "connect", "schedule", "refund", "export")
             for suffix in ("", "s", "ing", "ed", "ation", "ions")]
    text = " ".join(words * 20)
    expected = tokens(text)
    stem.cache_clear()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: tokens(text), range(64)))
    assert all(r == expected for r in results)


def test_embedded_readers_switch_to_a_newly_published_index(tmp_path, minilm, monkeypatch):
    # Workers read private copies; a writer's changes appear only when it publishes on close.
    monkeypatch.setattr(EmbeddedEngine, "RELOAD_CHECK_SECONDS", 0.0)
    folder = tmp_path / "kb"
    reader = KnowledgeStore(EmbeddedEngine(folder, 384, writable=False), 384)
    assert reader.count() == 0  # nothing published yet: searches find nothing, they don't fail

    writer = KnowledgeStore(EmbeddedEngine(folder, 384, writable=True), 384)
    sync_index(writer, minilm, ARTICLES[:2])
    assert reader.count() == 0  # still unpublished
    writer.close()
    first = reader.count()
    assert first > 0

    writer = KnowledgeStore(EmbeddedEngine(folder, 384, writable=True), 384)
    report = sync_index(writer, minilm, ARTICLES)
    writer.close()
    assert report.added == len(ARTICLES) - 2 and reader.count() > first
    assert reader.search("invoice", minilm.embed(["invoice"])[0])

    writer = KnowledgeStore(EmbeddedEngine(folder, 384, writable=True), 384)
    version = (tmp_path / "kb.version").read_text()
    assert sync_index(writer, minilm, ARTICLES).unchanged == len(ARTICLES)
    writer.close()
    assert (tmp_path / "kb.version").read_text() == version  # a no-op run publishes nothing
    reader.close()


def test_a_reader_that_died_leaves_no_copy_of_the_index_behind(tmp_path, minilm, monkeypatch):
    # A killed worker cannot remove its copy (a whole index); the next reader of this host does.
    monkeypatch.setattr(EmbeddedEngine, "RELOAD_CHECK_SECONDS", 0.0)
    folder = tmp_path / "kb"
    writer = KnowledgeStore(EmbeddedEngine(folder, 384, writable=True), 384)
    sync_index(writer, minilm, ARTICLES[:2])
    writer.close()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    readers = tmp_path / "kb.readers"
    readers.mkdir()
    left = readers / f"{socket.gethostname()}-pid{dead.stdout.strip()}-x1y2"
    elsewhere = readers / f"another-host-pid{dead.stdout.strip()}-x1y2"  # on a shared volume: not ours to judge
    left.mkdir(), elsewhere.mkdir()

    reader = KnowledgeStore(EmbeddedEngine(folder, 384, writable=False), 384)
    assert reader.count() > 0
    assert not left.exists() and elsewhere.exists()
    [own] = [p for p in readers.iterdir() if p != elsewhere]
    assert own.name.startswith(f"{socket.gethostname()}-pid{os.getpid()}-")
    reader.close()
    assert not own.exists()


# --- Brands and locales ------------------------------------------------------------------------

SCOPED = [
    Article("acme-refunds", "Refunds at Acme", "<p>Acme refunds annual plans within 30 days.</p>", brand="1"),
    Article("globex-refunds", "Refunds at Globex", "<p>Globex refunds annual plans within 14 days.</p>", brand="2"),
    Article("refunds-de", "Rückerstattungen", "<p>Jahrespläne werden innerhalb von 14 Tagen erstattet.</p>",
            locale="de"),
    Article("refund-methods", "Refund methods", "<p>Refunds go back to the card the plan was paid with.</p>"),
]


@pytest.fixture(scope="module", params=["embedded", "qdrant-client"])
def scoped_store(request, minilm, tmp_path_factory):
    store = open_engine(request.param, tmp_path_factory.mktemp("kb"))
    sync_index(store, minilm, SCOPED)
    yield store
    store.close()


@pytest.mark.parametrize("brand, locale, expected", [
    (None, None, {"acme-refunds", "globex-refunds", "refunds-de", "refund-methods"}),
    ("1", None, {"acme-refunds", "refunds-de", "refund-methods"}),
    ("2", "de", {"globex-refunds", "refunds-de", "refund-methods"}),
    ("3", "en-us", {"refund-methods"}),
])
def test_a_ticket_retrieves_its_brand_and_locale_and_what_is_for_everyone(scoped_store, minilm, brand, locale, expected):
    retriever = Retriever(scoped_store, minilm, top_k=10, locales=("en-us", "de"))
    found = {s.chunk.article_id for s in retriever.retrieve("How are refunds of annual plans made?", brand, locale)}
    assert found == expected


def test_a_locale_the_index_does_not_hold_filters_nothing(scoped_store, minilm):
    retriever = Retriever(scoped_store, minilm, top_k=10, locales=("en-us", "de"))
    assert len(retriever.retrieve("refunds", locale="fr")) == len(SCOPED)


def test_scope_fields_are_stored_on_every_chunk(scoped_store):
    payloads = {p["article_id"]: p for p in scoped_store.engine.payloads(["article_id", "brand", "locale", "kind"])}
    assert (payloads["acme-refunds"]["brand"], payloads["refunds-de"]["locale"]) == ("1", "de")
    assert {p["kind"] for p in payloads.values()} == {"article"}


def test_unscoped_articles_hash_their_content_and_the_way_articles_are_chunked():
    """The hash changes with the chunking (so a new way of chunking re-embeds once), and with a scope."""
    import hashlib

    from helpdesk_bot.domain import CHUNKING

    before = hashlib.sha256(f"T\0https://x\0Billing\0<p>x</p>\0{CHUNKING}".encode()).hexdigest()[:32]
    assert Article("a", "T", "<p>x</p>", "https://x", "Billing").content_hash == before
    assert Article("a", "T", "<p>x</p>", "https://x", "Billing", locale="de").content_hash != before
