"""Risk signals: ticket content that should hold the bot back whatever the knowledge says.

Each signal caps the confidence score; a cap of 0 means a human must handle the ticket.
Patterns are deliberately plain (word lists, not a model) so ops can read and predict them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from helpdesk_bot.domain import Ticket


@dataclass(frozen=True)
class RiskSignal:
    name: str
    cap: int  # the confidence score may not exceed this
    reason: str


def _words(*phrases: str) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(phrases) + r")\b", re.IGNORECASE)


# (name, cap, pattern, reason) in order of severity.
_CONTENT_SIGNALS = (
    ("legal", 0, _words(r"lawyers?", r"attorneys?", r"lawsuit", r"sue", r"suing", r"legal action", r"court",
                        r"small claims", r"gdpr (?:request|complaint)", r"data protection authority"),
     "mentions legal action"),
    ("security", 0, _words(r"hack(?:ed|er)?", r"compromised", r"account takeover", r"unauthori[sz]ed (?:access|login|charge)s?",
                           r"someone (?:else )?(?:logged|signed) in", r"phishing", r"stolen", r"breach"),
     "reports a security problem or account takeover"),
    ("billing_dispute", 0, _words(r"chargeback", r"dispute (?:the|this|a) (?:charge|payment)", r"charged twice",
                                  r"double charged", r"fraud(?:ulent)?", r"report (?:you|this) to my bank"),
     "disputes a charge"),
    ("refund", 75, _words(r"refunds?", r"refunded", r"money back", r"reimburse(?:ment)?"), "asks for money back"),
    ("cancellation", 60, _words(r"cancel(?:l?ing|l?ed|lation)?", r"close my account", r"delete my account", r"terminate"),
     "wants to cancel or leave"),
    ("angry", 50, _words(r"unacceptable", r"ridiculous", r"outrageous", r"terrible", r"worst", r"disgusting",
                         r"furious", r"scam", r"useless", r"wtf", r"fed up", r"sick of"), "angry tone"),
    ("urgent", 65, _words(r"urgent(?:ly)?", r"asap", r"immediately", r"right now", r"emergency", r"production is down",
                          r"critical"), "urgent tone"),
)
_PRIORITY_TAGS = frozenset({"vip", "priority", "urgent", "high_priority", "enterprise"})
_VOICE_CHANNELS = frozenset({"voice", "phone", "call"})
SEVERAL_QUESTIONS = 3


def risk_signals(ticket: Ticket) -> list[RiskSignal]:
    text = "\n".join(m.text for m in ticket.messages if m.author == "customer") + "\n" + ticket.subject
    signals = [RiskSignal(name, cap, reason) for name, cap, pattern, reason in _CONTENT_SIGNALS if pattern.search(text)]
    shouting = [w for w in re.findall(r"\b[A-Z]{4,}\b", text) if w not in {"HTTP", "HTML", "JSON", "HTTPS", "SAML", "CSV"}]
    if len(shouting) >= 2 or text.count("!!") >= 1:
        signals.append(RiskSignal("angry", 50, "shouting (capitals or repeated exclamation marks)"))
    if ticket.latest_customer_message.count("?") >= SEVERAL_QUESTIONS:
        signals.append(RiskSignal("several_questions", 60, f"asks {SEVERAL_QUESTIONS} or more questions at once"))
    priority = sorted(ticket.tags & _PRIORITY_TAGS)
    if priority:
        signals.append(RiskSignal("priority_ticket", 60, f"priority ticket (tagged {', '.join(priority)})"))
    if (ticket.channel or "").lower() in _VOICE_CHANNELS:
        signals.append(RiskSignal("voice_channel", 0, "came in by phone: a written reply is not what the customer expects"))
    return signals
