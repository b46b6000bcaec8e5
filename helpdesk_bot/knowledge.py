"""Knowledge: articles in, chunks out, and the index kept in step with the help center."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import markdown as markdown_lib

from helpdesk_bot.domain import (ARTICLE, HELP_CENTER, PAST_TICKET, Article, Chunk, HelpCenterChanges, PastTickets,
                                 Resolution, translation_id)
from helpdesk_bot.embedding import Embedder
from helpdesk_bot.errors import BadInput
from helpdesk_bot.redaction import redact
from helpdesk_bot.text import escape, html_to_blocks
from helpdesk_bot.vectorstore import KnowledgeStore

T = TypeVar("T")

CHUNK_WORDS = 160  # MiniLM reads 256 word pieces; ~160 words with the title stays inside
OVERLAP_WORDS = 30
MAX_UNIT_WORDS = 320  # a list or table up to this long stays whole in one chunk
_LIST_OR_ROW = re.compile(r"^\s*(?:- |\d{1,2}[.)] |\|)")


def chunk_article(article: Article) -> list[Chunk]:
    """Split an article along its headings into chunks of about CHUNK_WORDS words.

    Each chunk keeps its heading path, and consecutive chunks of one section overlap a little,
    so a step that straddles a boundary is whole in at least one chunk.
    """
    sections: list[tuple[str, list[str]]] = []
    path: list[tuple[int, str]] = [(0, article.breadcrumb)] if article.breadcrumb else []
    for level, text in html_to_blocks(article.body_html):
        if level:
            path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, text)]
            sections.append((" › ".join(title for _, title in path), []))
        else:
            if not sections:
                sections.append((article.breadcrumb, []))
            sections[-1][1].append(text)

    chunks: list[Chunk] = []
    for heading, paragraphs in sections:
        for text in _windows(paragraphs):
            chunks.append(
                Chunk(
                    id=f"{article.id}#{len(chunks)}",
                    article_id=article.id,
                    title=article.title,
                    text=text,
                    url=article.url,
                    heading=heading,
                    **_scope(article),
                )
            )
    if not chunks:  # an article with a title and no body still answers "where is X"
        chunks.append(Chunk(id=f"{article.id}#0", article_id=article.id, title=article.title, text=article.title,
                            url=article.url, heading=article.breadcrumb, **_scope(article)))
    return chunks


def _scope(article: Article) -> dict:
    return {"kind": article.kind, "locale": article.locale, "brand": article.brand}


def _windows(paragraphs: list[str]) -> Iterable[str]:
    """Cut a section's paragraphs into chunks of about CHUNK_WORDS words, overlapping a little.

    A list or a table, with the line that introduces it, is never cut unless it is longer than
    MAX_UNIT_WORDS: the steps of a procedure or the rows of a plan table are answered from one chunk.
    """
    current: list[str] = []  # lines
    words = 0
    for unit in _units(paragraphs):
        n = sum(len(line.split()) for line in unit)
        whole = len(unit) > 1 and n <= MAX_UNIT_WORDS
        if current and words + n > (MAX_UNIT_WORDS if whole else CHUNK_WORDS):
            yield "\n".join(current)
            tail: list[str] = []
            while current and sum(len(x.split()) for x in tail) < OVERLAP_WORDS and not _structured(current[-1]):
                tail.insert(0, current.pop())
            current, words = tail, sum(len(x.split()) for x in tail)
            if words + n > (MAX_UNIT_WORDS if whole else CHUNK_WORDS):
                current, words = [], 0
        if whole:
            current += unit
            words += n
            continue
        for line in unit:
            n = len(line.split())
            if current and words + n > CHUNK_WORDS:
                yield "\n".join(current)
                tail = []
                while current and sum(len(x.split()) for x in tail) < OVERLAP_WORDS:
                    tail.insert(0, current.pop())
                current, words = tail, sum(len(x.split()) for x in tail)
                if words + n > CHUNK_WORDS:
                    current, words = [], 0
            if n > CHUNK_WORDS:  # one enormous line (a long paragraph): cut it by words
                tokens = line.split()
                for start in range(0, len(tokens), CHUNK_WORDS - OVERLAP_WORDS):
                    yield " ".join(tokens[start : start + CHUNK_WORDS])
                continue
            current.append(line)
            words += n
    if current:
        yield "\n".join(current)


def _structured(line: str) -> bool:
    """A list item ("- ", "1. ") or a table row ("| a | b |"), as `html_to_blocks` writes them."""
    return bool(_LIST_OR_ROW.match(line))


def _units(paragraphs: list[str]) -> list[list[str]]:
    """The lines that belong together: a list or a table with the line introducing it; a paragraph's lines one by one."""
    units: list[list[str]] = []
    for paragraph in paragraphs:
        lines = paragraph.split("\n")
        if any(_structured(line) for line in lines):
            if units and len(units[-1]) == 1 and units[-1][0].rstrip().endswith(":"):
                units[-1] = units[-1] + lines
            else:
                units.append(lines)
        else:
            units += [[line] for line in lines]
    return units


def embedding_input(chunk: Chunk) -> str:
    return "\n".join(part for part in (chunk.title, chunk.heading, chunk.text) if part)


# --- Loading articles --------------------------------------------------------------------


def read_json_lines(path: Path, make: Callable[[dict], T], what: str) -> list[T]:
    """One object a line, built by `make`; a bad line is a BadInput naming file and line."""
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            items.append(make(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise BadInput(f"{path}:{number}: not {what} ({exc})") from None
    return items


def load_jsonl(path: Path) -> list[Article]:
    """Articles from JSON Lines: {"id", "title", "body" (text or HTML), "url"?, "locale"?} a line.

    A line with a `locale` is that locale's translation of the article `id` (translations share
    an id, as in Zendesk's Help Center); a line without one is in the default language.
    """
    return read_json_lines(path, lambda row: Article(id=translation_id(str(row["id"]), row.get("locale")),
                                                     title=row.get("title", ""), body_html=_as_html(row["body"]),
                                                     url=row.get("url") or "",
                                                     locale=(row.get("locale") or "").lower() or None),
                           "an article line")


def load_folder(folder: Path) -> list[Article]:
    """Articles from Markdown (.md) and HTML (.html, .htm) files; the id is the relative path."""
    articles = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in (".md", ".markdown", ".html", ".htm") or not path.is_file():
            continue
        raw = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".md", ".markdown"):
            body = markdown_lib.markdown(raw, extensions=["tables", "fenced_code"])
        else:
            body = raw
        blocks = html_to_blocks(body)
        title = next((text for level, text in blocks if level), path.stem.replace("-", " ").replace("_", " "))
        articles.append(Article(id=str(path.relative_to(folder)), title=title, body_html=body))
    return articles


# The sample help center shipped with the package (helpdesk_bot/sample_data/README.md).
SAMPLE_HELP_CENTER = Path(__file__).parent / "sample_data" / "help_center.json"


def load_help_center_export(path: Path, export: dict) -> list[Article]:
    """Published articles from a help center export shaped like Zendesk's Help Center API
    (`{"categories", "sections", "articles"}`); drafts and restricted articles are left out.

    An article listed again in another `locale` than its `source_locale` is that translation.
    """
    try:
        categories = {c["id"]: c.get("name", "") for c in export.get("categories") or ()}
        sections = {s["id"]: f"{categories.get(s.get('category_id'), '')} › {s.get('name', '')}".strip(" ›")
                    for s in export.get("sections") or ()}
        return [Article(id=translation_id(str(a["id"]), locale), title=a.get("title") or "",
                        body_html=a.get("body") or "", url=a.get("html_url") or "",
                        breadcrumb=sections.get(a.get("section_id"), ""), locale=locale)
                for a in export["articles"] if not a.get("draft") and a.get("user_segment_id") is None
                for locale in [_translated_locale(a)]]
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadInput(f"{path}: not a help center export ({exc!r})") from None


def _translated_locale(article: dict) -> str | None:
    """The locale of a translation; None for an article in its source locale (the default language's)."""
    locale = (article.get("locale") or "").lower()
    return locale if locale and locale != (article.get("source_locale") or locale).lower() else None


HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def load_openapi(path: Path) -> list[Article]:
    """API docs from an OpenAPI 3 description (JSON or YAML): one article per operation.

    A JSON file with an "articles" list is a help center export instead, read as its articles.
    """
    import yaml

    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not JSON or YAML ({exc})") from None
    if isinstance(spec, dict) and isinstance(spec.get("articles"), list):
        return load_help_center_export(path, spec)
    if not isinstance(spec, dict) or not str(spec.get("openapi", "")).startswith("3"):
        raise BadInput(f"{path}: not an OpenAPI 3 description (no `openapi: 3.x`)")
    articles = []
    for route, item in (spec.get("paths") or {}).items():
        shared_parameters = item.get("parameters", []) if isinstance(item, dict) else []
        for method in HTTP_METHODS:
            operation = item.get(method) if isinstance(item, dict) else None
            if not isinstance(operation, dict):
                continue
            summary = operation.get("summary") or operation.get("operationId") or ""
            articles.append(Article(
                id=f"{path.name}#{method.upper()} {route}",
                title=f"{method.upper()} {route}" + (f": {summary}" if summary else ""),
                body_html=_operation_html(spec, operation, shared_parameters),
            ))
    return articles


def _operation_html(spec: dict, operation: dict, shared_parameters: list) -> str:
    parts = [f"<p>{escape(operation.get('description') or operation.get('summary') or '')}</p>"]
    parameters = [_resolve(spec, p) for p in shared_parameters + operation.get("parameters", [])]
    if parameters:
        items = "".join(
            f"<li>{escape(str(p.get('name')))} ({escape(str(p.get('in')))}"
            f"{', required' if p.get('required') else ''}): {escape(p.get('description') or '')}</li>"
            for p in parameters if isinstance(p, dict)
        )
        parts.append(f"<h2>Parameters</h2><ul>{items}</ul>")
    body = _resolve(spec, operation.get("requestBody") or {})
    if body:
        kinds = ", ".join(escape(k) for k in (body.get("content") or {}))
        parts.append(f"<h2>Request body</h2><p>{escape(body.get('description') or '')} ({kinds})</p>")
    responses = operation.get("responses") or {}
    if responses:
        items = "".join(f"<li>{escape(str(code))}: {escape(_resolve(spec, r).get('description') or '')}</li>"
                        for code, r in responses.items())
        parts.append(f"<h2>Responses</h2><ul>{items}</ul>")
    return "".join(parts)


def _resolve(spec: dict, node) -> dict:
    """Follow a local `$ref` ("#/components/parameters/Page"); unknown references resolve to {}."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 10:
        target = spec
        for key in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target.get(key, {}) if isinstance(target, dict) else {}
        node, seen = target, seen + 1
    return node if isinstance(node, dict) else {}


def load_articles(source: Path) -> list[Article]:
    """Articles from a JSONL file, an OpenAPI description, a help center export (JSON), or a folder
    of Markdown/HTML files.

    A source with no article is refused: indexing it would only remove what it indexed before.
    """
    if source.is_dir():
        articles = load_folder(source)
    elif source.suffix.lower() in (".jsonl", ".ndjson"):
        articles = load_jsonl(source)
    elif source.suffix.lower() in (".json", ".yaml", ".yml"):
        articles = load_openapi(source)
    else:
        raise BadInput(f"{source}: expected .jsonl articles, an OpenAPI .json/.yaml, a help center export .json, "
                       "or a folder of Markdown/HTML files")
    if not articles:
        raise BadInput(f"{source}: no articles in it (Markdown/HTML files, JSON lines or API operations); nothing indexed")
    return articles


def _as_html(body: str) -> str:
    if "<" in body and ">" in body:
        return body
    paragraphs = (p for p in body.split("\n\n") if p.strip())
    return "".join("<p>" + "<br>".join(escape(line) for line in p.split("\n")) + "</p>" for p in paragraphs)


# --- Keeping the index in step -----------------------------------------------------------


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    mode: str = "full"  # "incremental": only articles changed since the last run were read
    removed_ids: list[str] = field(default_factory=list)  # for the ledger, not the report
    written: list[Chunk] = field(default_factory=list)  # the changed articles' new chunks: for the change log

    def as_dict(self) -> dict:
        return {k: getattr(self, k)
                for k in ("added", "updated", "unchanged", "deleted", "chunks", "errors", "seconds", "mode")}


EMBED_BATCH = 256


def sync_index(
    store: KnowledgeStore, embedder: Embedder, articles: list[Article], remove_missing: bool = True,
    progress: Callable[[int, int], None] | None = None, kind: str = ARTICLE,
    still_published: Iterable[str] | None = None, source: str = HELP_CENTER,
) -> IndexReport:
    """Bring the index's articles of `kind` from `source` in line with `articles`, re-embedding
    only what changed.

    Other kinds and other sources are left alone: a help center run never removes past tickets
    or articles indexed from a folder, nor the reverse.
    `still_published` (incremental runs) names the articles that still exist but did not change
    since the last run, so they are kept; anything else of `kind` and `source` not in `articles`
    is removed. `progress(done, total)` is called as chunks are embedded.
    """
    started = time.perf_counter()
    everywhere = store.article_sources(kind)
    indexed = {article_id: content_hash for article_id, (content_hash, from_source) in everywhere.items()
               if from_source == source}
    report = IndexReport(mode="full" if still_published is None else "incremental")
    changed: list[Article] = []
    for article in articles:
        known = indexed.get(article.id)
        if known == article.content_hash:
            report.unchanged += 1
            continue
        changed.append(article)
        if known is None:
            report.added += 1
        else:
            report.updated += 1

    # Replace a changed article's chunks wholesale (its chunk count may have shrunk), also when
    # another source had indexed an article of that id: it moves to this source.
    store.delete_articles([a.id for a in changed if a.id in everywhere])
    # Customers' personal data and secrets never reach the index (helpdesk_bot/redaction.py); a
    # published article is not redacted: its own addresses and phone numbers are the answer.
    chunks = [replace(chunk, text=redact(chunk.text)) if chunk.kind == PAST_TICKET else chunk
              for article in changed for chunk in chunk_article(article)]
    hashes = {a.id: a.content_hash for a in changed}
    for start in range(0, len(chunks), EMBED_BATCH):
        batch = chunks[start : start + EMBED_BATCH]
        texts = [embedding_input(c) for c in batch]
        store.upsert(batch, embedder.embed(texts), hashes, source,
                     multilingual=store.multilingual.embed(texts) if store.multilingual else None)
        if progress:
            progress(start + len(batch), len(chunks))
    report.chunks, report.written = len(chunks), chunks

    if remove_missing:
        given = {a.id for a in articles}
        kept = given | set(still_published or ())
        report.unchanged += len((kept - given) & set(indexed))
        report.removed_ids = sorted(set(indexed) - kept)
        store.delete_articles(report.removed_ids)
        report.deleted = len(report.removed_ids)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


# --- The nightly help center run -------------------------------------------------------------

# The incremental export's start_time is compared with Zendesk's clock, not ours; starting a
# little early costs a few articles fetched again (their hashes match), never a missed one.
CURSOR_MARGIN_SECONDS = 300


@dataclass
class HelpCenterRun:
    report: IndexReport
    articles: list[Article]  # the articles read (all of them on a full run, the changed ones otherwise)
    cursor: int | None  # None: the helpdesk has no incremental export (Intercom)


def refresh_help_center(store: KnowledgeStore, embedder: Embedder, helpdesk, cursor: int | None,
                        progress: Callable[[int, int], None] | None = None) -> HelpCenterRun:
    """Bring the index in step with the helpdesk's published articles.

    With a cursor (the last successful run's end_time) only the articles the incremental export
    returns are read and compared; deletions, archiving and articles turned draft or restricted
    never appear in that export, so the ids of the published articles are compared with the
    index instead. Without a cursor, or when the index lacks a published article the export did
    not return (an index rebuilt or lost since), every article is read.
    """
    incremental = getattr(helpdesk, "article_changes", None)
    if cursor is not None and incremental is not None:
        changes = incremental(cursor)
        indexed = set(store.article_hashes(ARTICLE))
        if not changes.published - indexed - {a.id for a in changes.changed}:
            report = sync_index(store, embedder, changes.changed, progress=progress,
                                still_published=changes.published)
            return HelpCenterRun(report, changes.changed, changes.end_time)
    started = int(time.time()) - CURSOR_MARGIN_SECONDS
    articles = helpdesk.articles()
    report = sync_index(store, embedder, articles, progress=progress)
    return HelpCenterRun(report, articles, started if incremental is not None else None)


# --- Past tickets ------------------------------------------------------------------------------


def past_ticket_id(ticket_id: str) -> str:
    return f"ticket:{ticket_id}"


def past_ticket_article(resolution: Resolution) -> Article:
    """A solved ticket as an article: the question and the answer in one passage, so a chunk that
    matches the question carries its answer. Redacted here, title included: the chunk text is
    redacted again on indexing, but a subject is indexed as it is."""
    subject = redact(resolution.subject) or "(no subject)"
    body = (f"<p>Customer question: {escape(redact(resolution.question))}</p>"
            f"<p>Agent answer: {escape(redact(resolution.answer))}</p>")
    return Article(id=past_ticket_id(resolution.ticket_id), title=f"Past ticket: {subject}", body_html=body,
                   url=resolution.link, kind=PAST_TICKET, brand=resolution.brand_id)


@dataclass
class PastTicketsRun:
    report: IndexReport
    cursor: int  # the next run's start_time


def refresh_past_tickets(store: KnowledgeStore, embedder: Embedder, helpdesk, start_time: int,
                         progress: Callable[[int, int], None] | None = None) -> PastTicketsRun:
    """Index the tickets solved since `start_time`; drop indexed ones that were reopened since."""
    started = int(time.time()) - CURSOR_MARGIN_SECONDS
    export = helpdesk.past_resolutions(start_time)
    articles = [past_ticket_article(r) for r in export.resolutions]
    no_longer_good = {past_ticket_id(t) for t in export.exported} - {a.id for a in articles}
    kept = set(store.article_hashes(PAST_TICKET)) - no_longer_good
    report = sync_index(store, embedder, articles, progress=progress, kind=PAST_TICKET, still_published=kept)
    return PastTicketsRun(report, started)
