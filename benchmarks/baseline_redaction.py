"""The regular-expression redactor that python-stdnum, phonenumbers and the wider key formats
replaced: the baseline of bench_redaction.py. Not used by the product."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass

KINDS = ("SECRET", "EMAIL", "IBAN", "CARD", "PHONE")  # earlier kinds win where spans overlap


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str

    def text(self, source: str) -> str:
        return source[self.start:self.end]


_SECRET_PATTERNS = [re.compile(p) for p in (
    r"\bsk-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_-]{16,}",  # OpenAI, Anthropic-style keys
    r"\b[spr]k_(?:live|test)_[A-Za-z0-9]{12,}",  # Stripe
    r"\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}",  # GitHub
    r"\bglpat-[A-Za-z0-9_-]{20,}",  # GitLab
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
    r"\bAIza[0-9A-Za-z_-]{35}\b",  # Google API key
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWT
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----",
    r"(?i)(?<=\bbearer )[A-Za-z0-9._~+/=-]{12,}",
    r"(?i)(?<=\bbasic )[A-Za-z0-9+/]{16,}={0,2}",
    r"(?i)(?<=://)[^\s:/@]+:[^\s:/@]+(?=@)",  # user:password in a URL
)]
# `password: hunter2`, `api_key=...`, `"token": "..."`: the value after a secret's name.
_NAMED_SECRET = re.compile(
    r"""(?ix)\b(?:api[_ -]?key|apikey|access[_ -]?key|secret(?:[_ -]?key)?|client[_ -]?secret|password|passwd|pwd|
    passcode|pass|(?:access|auth|bearer|refresh|api|session)[_ -]?token|token)\b["']?\s*(?:[:=]|\bis\b)\s*["']?
    (?P<value>[^\s"',;]{6,})""")
_LONG_TOKEN = re.compile(r"(?<![\w/.-])[A-Za-z0-9_\-+/]{28,}={0,2}(?![\w/.-])")

_EMAIL = re.compile(
    r"(?i)\b[a-z0-9._%+'-]+(?:@|\s?[(\[]at[)\]]\s?)[a-z0-9-]+(?:(?:\.|\s?[(\[]dot[)\]]\s?)[a-z0-9-]+)*"
    r"(?:\.|\s?[(\[]dot[)\]]\s?)[a-z]{2,}\b")
_IBAN = re.compile(r"(?i)\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
_PHONE_INTERNATIONAL = re.compile(r"(?<![\w+])(?:\+|00)\d{1,3}[\s.-]?(?:\(0?\d{1,4}\)[\s.-]?)?\d(?:[\s.-]?\d){5,13}\b")
_PHONE_NATIONAL = re.compile(
    r"(?<![\w-])(?:\(\d{2,5}\)\s?\d{3,4}[\s.-]?\d{3,4}|\d{3}[.-]\d{3}[.-]\d{4}|\d{3} \d{3} \d{4}|"
    r"0\d{2,4}[\s.-]\d{3,4}[\s.-]?\d{3,4}|0\d{9,10})(?![\w-])")
_PHONE_CONTEXT = re.compile(r"(?i)\b(phone|tel|telephone|mobile|cell|call|text|whatsapp|fax|sms|reach me|"
                            r"(phone|mobile|cell|contact|my) number( is)?)\b")
_BARE_DIGITS = re.compile(r"(?<![\w-])\d{7,15}(?![\w-])")
_DATE_LIKE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")


def find_pii(text: str) -> list[Span]:
    """Spans of personal data and secrets in `text`, without overlaps, in order."""
    candidates: list[Span] = []
    for pattern in _SECRET_PATTERNS:
        candidates += [Span(m.start(), m.end(), "SECRET") for m in pattern.finditer(text)]
    candidates += [Span(m.start("value"), m.end("value"), "SECRET") for m in _NAMED_SECRET.finditer(text)]
    candidates += [Span(m.start(), m.end(), "SECRET") for m in _LONG_TOKEN.finditer(text) if _looks_random(m.group(0))]
    candidates += [Span(m.start(), m.end(), "EMAIL") for m in _EMAIL.finditer(text)]
    candidates += [span for m in _IBAN.finditer(text) if (span := _iban_span(m))]
    candidates += [Span(m.start(), m.end(), "CARD") for m in _CARD.finditer(text) if luhn_valid(m.group(0))]
    candidates += [Span(m.start(), m.end(), "PHONE") for m in _PHONE_INTERNATIONAL.finditer(text)
                   if 8 <= _digit_count(m.group(0)) <= 15]
    candidates += [Span(m.start(), m.end(), "PHONE") for m in _PHONE_NATIONAL.finditer(text)
                   if 9 <= _digit_count(m.group(0)) <= 12 and not _DATE_LIKE.match(m.group(0))]
    candidates += [Span(m.start(), m.end(), "PHONE") for m in _BARE_DIGITS.finditer(text)
                   if _PHONE_CONTEXT.search(text[max(0, m.start() - 30):m.start()])]
    return _without_overlaps(candidates)


def redact(text: str) -> str:
    """`text` with every span `find_pii` finds replaced by `[kind]`."""
    if not text:
        return text
    out, last = [], 0
    for span in find_pii(text):
        out += [text[last:span.start], f"[{span.kind.lower()}]"]
        last = span.end
    return "".join(out) + text[last:]


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = re.sub(r"[ -]", "", candidate).upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except ValueError:
        return False


def _iban_span(match: re.Match) -> Span | None:
    """The longest valid IBAN at the match's start: the pattern also swallows words after it."""
    candidate = match.group(0)
    while True:
        if iban_valid(candidate):
            return Span(match.start(), match.start() + len(candidate), "IBAN")
        if " " not in candidate.strip():
            return None
        candidate = candidate.rstrip().rsplit(" ", 1)[0]


def _digit_count(text: str) -> int:
    return sum(c.isdigit() for c in text)


def _looks_random(token: str) -> bool:
    """A long token with mixed character classes and high entropy: a key, not a word or a slug."""
    classes = sum(bool(re.search(p, token)) for p in (r"[a-z]", r"[A-Z]", r"\d"))
    if classes < 3 and not re.fullmatch(r"[0-9a-f]{32,}", token):
        return False
    if re.search(r"[a-z]{6,}", token) and token.count("-") >= 2:  # a slug: "360001-Resetting-your-password"
        return False
    counts = Counter(token)
    entropy = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
    return entropy >= 3.5


def _without_overlaps(spans: list[Span]) -> list[Span]:
    rank = {kind: i for i, kind in enumerate(KINDS)}
    chosen: list[Span] = []
    for span in sorted(spans, key=lambda s: (rank[s.kind], s.start, -(s.end - s.start))):
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


# --- logs (Sentry events: helpdesk_bot/scrubbing.py) ---------------------------------------------------------------------------

_previous_factory = None


def redact_log_records() -> None:
    """Redact every log record's message and traceback as it is created, whoever logs it."""
    global _previous_factory
    if _previous_factory is not None:
        return
    _previous_factory = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = _previous_factory(*args, **kwargs)
        try:
            record.msg, record.args = redact(record.getMessage()), ()
            if record.exc_info and not record.exc_text:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        except Exception:  # a log call must never fail because of redaction
            pass
        return record

    logging.setLogRecordFactory(factory)
