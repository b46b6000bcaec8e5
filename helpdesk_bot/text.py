"""Text handling shared by indexing, retrieval, drafting and scoring."""

from __future__ import annotations

import html
import re

from bs4 import BeautifulSoup, NavigableString, Tag

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")

STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each few for from further had hadn't has hasn't have
    haven't having he her here hers herself him himself his how i i'm i've if in into is isn't
    it it's its itself just let's me more most mustn't my myself no nor not now of off on once
    only or other ought our ours ourselves out over own same shan't she should shouldn't so
    some such than that that's the their theirs them themselves then there there's these they
    this those through to too under until up very was wasn't we we're were weren't what what's
    when where which while who whom why will with won't would wouldn't you you're your yours
    yourself yourselves hi hello hey thanks thank please regards cheers dear team get got
    also still anyone someone something way ask asking help need want able know like would
    could use using used one two since already really""".split()
)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens, stemmed lightly so 'invoices' meets 'invoice'."""
    return [stem(w) for w in _WORD.findall(text.lower().replace("’", "'"))]


def key_terms(text: str) -> list[str]:
    """The words that carry the question: tokens without stopwords, in order, unique."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower().replace("’", "'")):
        if word in STOPWORDS or len(word) < 2:
            continue
        seen.setdefault(stem(word), None)
    return list(seen)


def stem(word: str) -> str:
    """A tiny suffix stripper: enough to match plurals and verb forms, never clever."""
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                return word
            return word[: len(word) - len(suffix)] + keep
    return word


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
    the article's structure and a quoted step reads as it did on the page.
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
                buffer.append(str(child))
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
                buffer.append("\n- ")
                walk(child)
                buffer.append("\n")
            elif name in ("td", "th"):
                walk(child)
                buffer.append(" | ")
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
