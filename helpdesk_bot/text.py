"""Text handling shared by indexing, retrieval, drafting and scoring."""

from __future__ import annotations

import html
import re
import threading
from contextlib import contextmanager
from contextvars import ContextVar
import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Iterable

import snowballstemmer
import stop_words
from bs4 import BeautifulSoup, NavigableString, Tag

_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script: "exportación" is one word
_stemmers = threading.local()  # a snowball stemmer keeps state while it works: one per thread
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[¿¡]?[A-Z0-9À-ÖØ-Þ])")
_CONTRACTION = re.compile(r"['’](s|t|re|ve|ll|d|m)\b")
# Snowball's names for the languages whose text is stemmed; others are only lower-cased.
SNOWBALL = {"en": "english", "es": "spanish", "de": "german", "fr": "french", "pt": "portuguese",
            "it": "italian", "nl": "dutch", "da": "danish", "sv": "swedish", "no": "norwegian",
            "fi": "finnish", "ro": "romanian", "ca": "catalan", "ru": "russian", "tr": "turkish"}

# Contractions appear here as _words() leaves them: "don't" → "don", "it's" → "it".
STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren as at be because been
    before being below between both but by can cannot could couldn did didn do does doesn
    doing don down during each few for from further had hadn has hasn have haven having he her
    here hers herself him himself his how i if in into is isn it its itself just let me more
    most mustn my myself no nor not now of off on once only or other ought our ours ourselves
    out over own same shan she should shouldn so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was wasn
    we were weren what when where which while who whom why will with won would wouldn you your
    yours yourself yourselves hi hello hey thanks thank please regards cheers dear get got also
    still anyone someone something way ask asking help need want able know like use using used
    one two since already really much many question questions""".split()
)


# The language the text being handled is read in: the ticket's, while it is drafted, scored and
# checked (`reading`); functions given no language read in it, so a Spanish draft is stemmed as
# Spanish throughout without every helper passing the language along.
_READING: ContextVar[str] = ContextVar("reading", default="en")


@contextmanager
def reading(language: str | None):
    """Read text in `language` inside this block (English when None)."""
    token = _READING.set(language or "en")
    try:
        yield
    finally:
        _READING.reset(token)


def reading_language() -> str:
    return _READING.get()


def _words(text: str, language: str | None = None) -> list[str]:
    language = language or _READING.get()
    text = text.lower()
    if language == "en":  # possessives and contractions ("team's", "don't") fold to the word before the apostrophe
        text = _CONTRACTION.sub("", text)
    return _WORD.findall(text)


def stopwords(language: str | None = None) -> frozenset[str]:
    return _stopwords(language or _READING.get())


@lru_cache(maxsize=64)
def _stopwords(language: str) -> frozenset[str]:
    """Words that carry no question of their own, in `language` (the stop-words package; ours for English)."""
    if language == "en":
        return STOPWORDS
    try:
        return frozenset(stop_words.get_stop_words(language)) | _GREETINGS.get(language, frozenset())
    except stop_words.StopWordError:  # a language it has no list for: every word counts
        return frozenset()


# Greetings and courtesies the stop-word lists leave in: they carry no question either.
_GREETINGS = {language: frozenset(words.split()) for language, words in {
    "es": "hola gracias saludos favor buenas buenos días tardes ayuda quiero necesito puedo",
    "de": "hallo danke grüße bitte guten tag hilfe möchte brauche kann ich",
    "fr": "bonjour merci cordialement svp plaît salut aide veux voudrais besoin peux",
    "pt": "olá ola obrigado obrigada cumprimentos favor bom dia ajuda quero preciso posso",
    "it": "ciao grazie saluti favore buongiorno aiuto voglio vorrei bisogno posso",
    "nl": "hallo hoi bedankt dank groeten alstublieft alsjeblieft graag hulp wil wilt kan",
}.items()}


def tokens(text: str, language: str | None = None) -> list[str]:
    """Lower-cased, stemmed word tokens, so 'invoices' meets 'invoice' (and 'facturas' 'factura')."""
    language = language or _READING.get()
    return [_stem(w, language) for w in _words(text, language)]


def index_terms(text: str, language: str | None = None) -> list[str]:
    """Stemmed tokens without stopwords, repeated as often as they occur: what keyword search counts."""
    language = language or _READING.get()
    unwanted = stopwords(language)
    return [_stem(w, language) for w in _words(text, language) if w not in unwanted]


def key_terms(text: str, language: str | None = None) -> list[str]:
    """The words that carry the question: stemmed, without stopwords, in order, unique."""
    return list(dict.fromkeys(t for t in index_terms(text, language) if len(t) > 1))


def words_for_stems(texts: Iterable[str], language: str | None = None) -> dict[str, str]:
    """Each stem's most frequent whole word in these texts, to show people ("authent" →
    "authentication"); ties go to the shorter word."""
    language = language or _READING.get()
    seen: dict[str, Counter] = {}
    unwanted = stopwords(language)
    for text in texts:
        for word in _words(text, language):
            if word not in unwanted:
                seen.setdefault(_stem(word, language), Counter())[word] += 1
    return {s: min(words, key=lambda w: (-words[w], len(w), w)) for s, words in seen.items()}


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if not text[limit - 1].isspace() and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-–—") + "…"


def stem(word: str, language: str | None = None) -> str:
    """Snowball stem in `language` (Porter2 for English).

    Outside English the stem is also stripped of accents: customers often leave them out
    ("exportacion", "donnees").
    """
    return _stem(word, language or _READING.get())


@lru_cache(maxsize=200_000)
def _stem(word: str, language: str) -> str:
    """Pure Python, so cached: a corpus repeats its words."""
    algorithm = SNOWBALL.get(language)
    if algorithm is None:
        return word
    stemmer = getattr(_stemmers, algorithm, None)
    if stemmer is None:
        stemmer = snowballstemmer.stemmer(algorithm)
        setattr(_stemmers, algorithm, stemmer)
    stemmed = stemmer.stemWord(word)
    if language == "en":
        return stemmed
    return "".join(c for c in unicodedata.normalize("NFKD", stemmed) if not unicodedata.combining(c))


def sentences(text: str) -> list[str]:
    """Split text into sentences, keeping list items and short lines as their own units."""
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip(" \t-•*")
        if not line:
            continue
        out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return out


# --- HTML to text -------------------------------------------------------------------------

_BLOCKS = {"p", "div", "section", "article", "blockquote", "br", "tr", "table", "ul", "ol", "pre"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


def html_to_blocks(markup: str) -> list[tuple[int, str]]:
    """Turn article HTML into (heading level, text) blocks; level 0 is body text.

    Headings, list items, table rows and code survive as separate lines, so chunks can follow
    the article's structure and a quoted step reads as it did on the page: "1. " starts a
    numbered step, "- " a bullet, and a table row reads "| cell | cell |".
    """
    soup = BeautifulSoup(markup or "", "html.parser")
    for dropped in soup(["script", "style", "noscript", "template"]):
        dropped.decompose()
    blocks: list[tuple[int, str]] = []
    buffer: list[str] = []

    def flush() -> None:
        text = re.sub(r"[ \t\r\f\v]+", " ", "".join(buffer)).strip()
        text = re.sub(r"\s*\n\s*", "\n", text)
        if text:
            blocks.append((0, text))
        buffer.clear()

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                # In HTML a newline in the source is just a space; breaks come from the tags.
                buffer.append(re.sub(r"\s+", " ", str(child)))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name in _HEADINGS:
                flush()
                title = child.get_text(" ", strip=True)
                if title:
                    blocks.append((int(name[1]), title))
            elif name == "li":
                # A numbered step keeps its number: the drafter quotes a procedure as the ordered list it is.
                numbered = child.parent is not None and child.parent.name == "ol"
                position = len(child.find_previous_siblings("li")) + 1
                buffer.append(f"\n{position}. " if numbered else "\n- ")
                walk(child)
                buffer.append("\n")
            elif name in ("td", "th"):
                buffer.append(" ")
                walk(child)
                buffer.append(" |")
            elif name == "tr":
                buffer.append("\n|")
                walk(child)
                buffer.append("\n")
            elif name == "pre":
                flush()
                code = child.get_text()
                if code.strip():
                    blocks.append((0, code.strip("\n")))
            elif name == "br":
                buffer.append("\n")
            elif name in _BLOCKS:
                buffer.append("\n")
                walk(child)
                buffer.append("\n")
                if name in ("p", "div", "table", "ul", "ol", "blockquote"):
                    flush()
            else:
                walk(child)

    walk(soup)
    flush()
    return blocks


def html_to_text(markup: str) -> str:
    return "\n".join(text for _, text in html_to_blocks(markup))


def escape(text: str) -> str:
    return html.escape(text, quote=True)


stem.cache_clear = _stem.cache_clear  # type: ignore[attr-defined]  # the cache `stem` reads through is _stem's
