"""Zendesk value formats: timestamps, comment HTML and its plain text, ULIDs."""

from __future__ import annotations

import html
import re
import secrets
import time
from datetime import datetime, timezone
from html.parser import HTMLParser

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> datetime:
    # Zendesk timestamps have whole seconds.
    return datetime.now(timezone.utc).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(ISO_FORMAT)


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def epoch(value: str) -> int:
    return int(parse_iso(value).timestamp())


def normalize_iso(value: str | None, default: str) -> str:
    """Any ISO 8601 input (with fractions or offsets) in Zendesk's form, so string order is time order."""
    return iso(parse_iso(value)) if value else default


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid() -> str:
    """A ULID (48-bit millisecond time + 80 random bits), the form of Zendesk webhook and event ids."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def comment_html(inner: str) -> str:
    # Zendesk wraps every stored comment body in this div (see ticket_comments_list.json).
    return f'<div class="zd-comment" dir="auto">{inner}</div>'


def text_to_html(text: str) -> str:
    """Plain comment text as Zendesk renders it: one <p dir="auto"> per paragraph, <br> for line breaks."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    rendered = (f'<p dir="auto">{html.escape(p.strip(), quote=False)}</p>'.replace("\n", "\n<br>")
                for p in paragraphs)
    return "\n\n".join(rendered)


_BLOCK_TAGS = {"p", "div", "ul", "ol", "blockquote", "pre", "table",
               "h1", "h2", "h3", "h4", "h5", "h6", "hr"}
_LINE_TAGS = {"br", "li", "tr"}
_SKIPPED_TAGS = {"script", "style"}


class _TextExtractor(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _LINE_TAGS:
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self._skipping:
            # Whitespace in HTML source is layout, not content.
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """The plain text Zendesk stores as `body`/`plain_body` when a comment was sent as `html_body`."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    lines = (line.strip() for line in "".join(extractor.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def slugify(title: str) -> str:
    # Help Center URLs end in "<id>-Title-With-Dashes".
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")
