"""Guardrails: nothing a customer writes can make the bot send what its sources don't say.

The ticket is data, never instructions, and the LLM is not trusted to know that. Two
deterministic checks run on every outcome, whatever drafted it:

- `injection_signals(ticket)`: the ticket tries to steer the bot (ignore your rules, reveal the
  prompt or internal notes, add this link, promise a refund, answer as someone else or in
  another language, break out of the prompt's delimiters). Such a ticket is never auto-sent.
- `reply_problems(ticket, draft, sources)`: the draft itself carries a link its sources don't
  have, a commitment (refund, credit, ...) they don't make, text from an internal note or from
  the system prompt, words they don't contain (another language, a persona), or a redaction
  placeholder ("write to [email]") where the customer needs the real thing.

`hold_unsafe` turns an auto-send with any finding into an escalation that lists them, and
`allowed_links` / `strip_foreign_links` keep foreign links out of anything rendered.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

from helpdesk_bot.domain import Decision, Draft, Source, Ticket
from helpdesk_bot.policy import ESCALATED_TAG, Policy
from helpdesk_bot.redaction import KINDS
from helpdesk_bot.text import STOPWORDS

# Share of a draft's content words that must be found in its cited sources.
MIN_SUPPORTED_SHARE = 0.6
SHINGLE = 6  # words in a row copied from an internal note or the prompt count as a leak

_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufeff\uffa0]")
_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'`)\]]+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|"
                  r"info|biz|xyz|ru|cn|top|ly|me|app|dev|link|click|example)(?:/[^\s<>\"'`)\]]*)?")
_EMAIL = re.compile(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)

_LANGUAGES = ("english|french|spanish|german|italian|portuguese|dutch|russian|chinese|japanese|korean|arabic|"
              "hindi|polish|turkish|swedish|latin|klingon|pig latin|emoji|français|español|deutsch")
# Each pattern names what it catches; they run on normalised text (see `_normalise`).
INJECTION_PATTERNS: tuple[tuple[str, re.Pattern], ...] = tuple((name, re.compile(pattern, re.I)) for name, pattern in (
    ("overrides the bot's instructions",
     r"\b(ignore|disregard|forget|override|bypass|skip|drop)\b[^.!?\n]{0,40}\b(instruction|rule|guideline|prompt|"
     r"directive|polic|restriction|guardrail|programming|training|constraint)|\bforget (everything|all|what)\b|"
     r"\bnew (instruction|rule|task|directive|policy|system prompt)s?\b\s*:|\b(answer|reply|respond) (to )?every "
     r"(question|ticket|message) with\b"),
    ("asks for the bot's prompt or configuration",
     r"\b(system|initial|hidden|original|developer|secret)\s+(prompt|instruction|message|rule|configuration)|"
     r"\b(reveal|show|print|repeat|output|display|paste|dump|leak|tell me|share|give me)\b[^.!?\n]{0,40}"
     r"\b(prompt|instructions|rules you|your rules|configuration|guidelines)\b"),
    ("asks for internal notes or data",
     r"\b(reveal|show|print|repeat|output|display|paste|dump|leak|tell me|share|give me|include|quote|read)\b"
     r"[^.!?\n]{0,50}\b(internal|private|agent|staff|hidden|confidential)\s+(note|comment|message|data|info)"),
    ("tries to change the bot's role",
     r"\b(you are now|you're now|from now on,? you|act as|acting as|pretend (to be|you are|you're)|roleplay|"
     r"role-play|role play|new persona|jailbreak|developer mode|dan mode|do anything now|simulate being|"
     r"switch (to|into) .{0,20}mode|your new (role|name|task|instructions?))\b"),
    ("asks for a reply in another language or style",
     rf"\b(reply|respond|answer|write|speak|talk)\b[^.!?\n]{{0,30}}\b(only |exclusively |entirely )?"
     rf"(in|using)\s+({_LANGUAGES}|rhymes?|verse|a poem|pirate)"),
    ("asks the bot to add a link",
     r"\b(add|include|insert|put|append|paste|embed|attach|mention)\b[^.!?\n]{0,40}\b(link|url|hyperlink|website|"
     r"address)\b|\bclick here\b"),
    ("asks the bot to promise something",
     r"\b(promise|guarantee|confirm in writing|commit to|state that|say that|tell (me|them) that|write that|"
     r"confirm that)\b[^.!?\n]{0,60}\b(refund|reimburse|credit|compensat|discount|free|money back|waive|"
     r"upgrade|cancel)"),
    ("carries prompt markup",
     r"<\|?(im_start|im_end|system|endoftext)\|?>|\[/?(inst|sys)\]|</?(ticket|system|assistant|instructions?)>|"
     r"^\s*(system|assistant|developer)\s*:|###\s*(system|instruction)|\bBEGIN (SYSTEM|INSTRUCTIONS)\b"),
    ("hides text from the reader",
     r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|color\s*:\s*(white|#fff\b|#ffffff)|"
     r"opacity\s*:\s*0(\.0+)?\b|<!--"),
))

# What redaction.py leaves in place of personal data: a reply saying "write to [email]" answers nothing.
_PLACEHOLDER = re.compile(r"\[(?:" + "|".join(kind.lower() for kind in KINDS) + r")\]")
_COMMITMENTS = re.compile(
    r"\b(refund\w*|reimburs\w*|credit(ed|s)?|compensat\w*|discount\w*|money back|free (of charge|month|months|upgrade)|"
    r"waiv\w+|guarantee\w*|we will pay|on the house)\b", re.I)


def _normalise(text: str) -> str:
    """Fold look-alike characters and drop invisible ones, so "i g n o r e" tricks lose."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))


def injection_signals(ticket: Ticket) -> list[str]:
    """What in the customer's own words tries to steer the bot; empty for an ordinary ticket."""
    text = _normalise("\n".join([ticket.subject] + [m.text for m in ticket.messages if m.author == "customer"]))
    return [f"possible prompt injection: the ticket {name}" for name, pattern in INJECTION_PATTERNS
            if pattern.search(text)]


def allowed_links(sources: list[Source]) -> set[str]:
    """Links a reply may carry: the sources' own addresses and the links written in them."""
    allowed = set()
    for source in sources:
        if source.chunk.public_url:  # a past ticket's agent link never reaches a customer
            allowed.add(_link_key(source.chunk.public_url))
        allowed.update(_link_key(u) for u in _URL.findall(f"{source.chunk.title}\n{source.chunk.text}"))
        allowed.update(e.lower() for e in _EMAIL.findall(source.chunk.text))
    return allowed


def foreign_links(text: str, sources: list[Source]) -> list[str]:
    allowed = allowed_links(sources)
    text = _normalise(text)
    found = [u for u in _URL.findall(_EMAIL.sub(" ", text)) if _link_key(u) not in allowed]
    found += [e for e in _EMAIL.findall(text) if e.lower() not in allowed]
    return found


def strip_foreign_links(text: str, sources: list[Source]) -> str:
    """Replace every link or address the sources don't contain with "[link removed]"."""
    allowed = allowed_links(sources)
    text = _EMAIL.sub(lambda m: m.group(0) if m.group(0).lower() in allowed else "[address removed]", _normalise(text))
    return _URL.sub(lambda m: m.group(0) if _link_key(m.group(0)) in allowed else "[link removed]", text)


def reply_problems(ticket: Ticket, draft: Draft, sources: list[Source], prompts: tuple[str, ...] = ()) -> list[str]:
    """Why this draft must not go to the customer as it is; empty when nothing is wrong."""
    if draft.declined or not draft.text.strip():
        return []
    cited = [s for s in sources if s.chunk.id in draft.cited] or list(sources)
    text = _normalise(re.sub(r"\[\d+\]", " ", draft.text))
    source_text = _normalise(" ".join(f"{s.chunk.title} {s.chunk.heading} {s.chunk.text}" for s in cited))
    problems = []
    links = foreign_links(text, list(sources))
    if links:
        problems.append(f"the draft has links its sources don't: {', '.join(sorted(set(links))[:3])}")
    promised = sorted({m.group(0).lower() for m in _COMMITMENTS.finditer(text)} - _commitments_in(source_text))
    if promised:
        problems.append(f"the draft commits to what its sources don't: {', '.join(promised[:3])}")
    placeholders = sorted(set(_PLACEHOLDER.findall(text)))
    if placeholders:
        problems.append(f"the draft holds a redaction placeholder instead of what it stands for: {', '.join(placeholders)}")
    notes = [m.text for m in ticket.messages if not m.public]
    if any(_shares_run(text, note) for note in notes):
        problems.append("the draft repeats an internal note")
    if any(_shares_run(text, prompt) for prompt in prompts):
        problems.append("the draft repeats the bot's instructions")
    words = [w for w in _words(text) if w not in STOPWORDS and len(w) > 2]
    if len(words) < 4:
        problems.append(f"the draft is too short ({len(words)} content words) to carry an answer from its sources")
    else:
        known = set(_words(source_text)) | set(_words(ticket.requester_name))
        unsupported = [w for w in words if w not in known]
        if len(unsupported) / len(words) > 1 - MIN_SUPPORTED_SHARE:
            problems.append(f"{len(unsupported)} of {len(words)} words in the draft are not in its sources "
                            f"(e.g. {', '.join(unsupported[:4])})")
    return problems


def hold_unsafe(decision: Decision, ticket: Ticket, draft: Draft, sources: list[Source], policy: Policy,
                prompts: tuple[str, ...] = ()) -> Decision:
    """Escalate instead of auto-sending when the ticket or the draft trips a guardrail."""
    findings = injection_signals(ticket) + reply_problems(ticket, draft, sources, prompts)
    if not findings:
        return decision
    if decision.action == "escalate":
        return replace(decision, reasons=decision.reasons + tuple(findings), would_send=False)
    return replace(decision, action="escalate", rule="guardrails", code="guardrail", would_send=False,
                   reasons=("held back by a guardrail, whatever the confidence",) + tuple(findings),
                   escalation_group_id=policy.escalation_group_id, tags=(ESCALATED_TAG,))


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _commitments_in(text: str) -> set[str]:
    return {m.group(0).lower() for m in _COMMITMENTS.finditer(text)}


def _shares_run(text: str, other: str, size: int = SHINGLE) -> bool:
    """Whether `text` contains `size` words in a row from `other`."""
    theirs = _words(_normalise(other))
    if len(theirs) < size:
        return bool(theirs) and " ".join(theirs) in " ".join(_words(text))
    runs = {" ".join(theirs[i:i + size]) for i in range(len(theirs) - size + 1)}
    ours = _words(text)
    return any(" ".join(ours[i:i + size]) in runs for i in range(len(ours) - size + 1))


def _link_key(url: str) -> str:
    """Compare links without scheme, "www.", case of the host or trailing punctuation."""
    url = url.strip().rstrip(".,;:!?)]}>'\"")
    url = re.sub(r"(?i)^https?://", "", url)
    url = re.sub(r"(?i)^www\.", "", url)
    host, _, rest = url.partition("/")
    return host.lower() + ("/" + rest.rstrip("/") if rest.rstrip("/") else "")
