"""Personal data never leaves in an error report, and is not stored in the ledger's questions."""

from __future__ import annotations

import pytest

from helpdesk_bot.scrubbing import redact_text, scrub_sentry_event


@pytest.mark.parametrize("text, kept, gone", [
    ("write to dana.w+x@example.co.uk please", "write to [email] please", "dana"),
    ("call +1 (415) 555-0134 today", "call [phone] today", "555"),
    ("call 020 7946 0958", "call [phone]", "7946"),
    ("card 4111 1111 1111 1111 expired", "card [number] expired", "4111"),
    ("Authorization: Bearer abc.def1234567", "Bearer [secret]", "abc.def"),
    ("api_key=sk-abcdefghijklmnop12", "api_key=[secret]", "sk-abc"),
    ("password: hunter2", "password: [secret]", "hunter2"),
])
def test_personal_data_is_replaced(text, kept, gone):
    assert kept in redact_text(text) and gone not in redact_text(text)


@pytest.mark.parametrize("text", ["order 12345 on 2026-11-24", "version 5.12.1 crashes", "error E-5031 after 60 s"])
def test_ordinary_numbers_stay(text):
    assert redact_text(text) == text


def test_sentry_event_is_scrubbed_everywhere():
    event = {
        "message": "could not post to ticket of sam@example.com",
        "request": {"headers": {"Authorization": "Basic c2FtOnB3", "Cookie": "helpdesk_bot_session=abc"},
                    "data": {"comment": "call me on +44 20 7946 0958"}},
        "exception": {"values": [{"value": "zenpy: token=abcd1234efgh rejected"}]},
        "extra": {"emails": ["a@b.example"], "attempt": 3},
    }
    scrubbed = scrub_sentry_event(event, {})
    text = repr(scrubbed)
    for secret in ("sam@example.com", "c2FtOnB3", "abc", "7946", "abcd1234efgh", "a@b.example"):
        assert secret not in text.replace("[redacted]", "").replace("[secret]", "")
    assert scrubbed["extra"]["attempt"] == 3
    assert scrubbed["request"]["headers"]["Authorization"] == "[redacted]"
