"""Personal data out of what leaves the product's hands: error reports and stored questions.

`redact_text` is helpdesk_bot/redaction.py's redactor (emails, phone numbers, Luhn-checked
card numbers, IBANs, keys and tokens); `scrub` applies it to every string of a JSON-like
structure and drops the values of sensitive keys (cookies, authorization, passwords).
"""

from __future__ import annotations

import re

from helpdesk_bot.redaction import redact

# Keys whose values are secrets or personal data wherever they appear in an error report.
_SENSITIVE_KEYS = re.compile(r"(?i)(authorization|cookie|password|passwd|secret|token|api[_-]?key|email|phone|"
                             r"csrf|session|signature)")


def redact_text(text: str) -> str:
    """The text with personal data and secrets replaced by placeholders such as `[email]`."""
    return redact(text)


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
