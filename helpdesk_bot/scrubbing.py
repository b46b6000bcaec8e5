"""Personal data out of what leaves the product's hands: error reports and stored questions.

A pattern-based redactor: emails, phone numbers, card-like numbers, bearer tokens and API
keys become placeholders. It errs on the side of removing; a stricter redactor can replace
`redact_text` without touching its callers.
"""

from __future__ import annotations

import re

_PATTERNS = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 [secret]"),
    (re.compile(r"(?i)\b(token|api[_-]?key|secret|password|passwd)\b(\s*[:=]\s*)(?!\[)\S+"), r"\1\2[secret]"),
    (re.compile(r"\b(?:sk|pk|rk|ghp|gho|xox[abp])[-_][A-Za-z0-9_-]{12,}\b"), "[secret]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{5,}\b"), "[secret]"),  # JWT
    (re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), "[number]"),  # card and account numbers
)
_PHONE = re.compile(r"(?<![\w/])\+?\(?\d[\d\s().-]{7,}\d(?![\w/])")


def _phone(match: re.Match) -> str:
    # Nine digits or more: shorter runs are order numbers, dates and versions.
    return "[phone]" if sum(ch.isdigit() for ch in match.group()) >= 9 else match.group()

# Keys whose values are secrets or personal data wherever they appear in an error report.
_SENSITIVE_KEYS = re.compile(r"(?i)(authorization|cookie|password|passwd|secret|token|api[_-]?key|email|phone|"
                             r"csrf|session|signature)")


def redact_text(text: str) -> str:
    """The text with emails, phone numbers, long numbers and tokens replaced by placeholders."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _PHONE.sub(_phone, text)


def scrub(value, depth: int = 0):
    """Redact every string in a JSON-like structure; values under sensitive keys are dropped."""
    if depth > 20:
        return "[deep]"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: ("[redacted]" if isinstance(k, str) and _SENSITIVE_KEYS.search(k) and v not in (None, "")
                    else scrub(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub(v, depth + 1) for v in value)
    return value


def scrub_sentry_event(event: dict, hint: dict | None = None) -> dict:
    """Sentry's before_send: no email, phone, token or cookie leaves in an error report."""
    return scrub(event)
