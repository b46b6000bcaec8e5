"""Guardrails: nothing a customer writes can make the bot send what its sources don't say.

The ticket is data, never instructions, and the LLM is not trusted to know that. Two
deterministic checks run on every outcome, whatever drafted it:

- `injection_signals(ticket)`: something the customer controls (the subject, any of their
  messages, their display name) tries to steer the bot: ignore your rules, reveal the prompt or
  internal notes, add this link, promise a refund, play another role, break out of the prompt's
  delimiters. Such a ticket is never auto-sent. Asking for another language or a simpler tone,
  for the article's link, or what the bot is, is not an attack and is not flagged.
- `reply_problems(ticket, draft, sources)`: the draft itself carries a link that is neither a
  cited source's nor on the company's domains, a `javascript:` or `data:` URL, a commitment
  (refund, credit, ...) its sources don't make, a statement that an action was or will be taken
  on the account (the bot can act on nothing), text from an internal note or from the system
  prompt, or a sentence that its source passage does not support (groundedness.py: numbers,
  plans, names and negation must match), or a redaction placeholder ("write to [email]")
  where the customer needs the real thing.

`hold_unsafe` turns an auto-send with any finding into an escalation that lists them, and
`allowed_links` / `strip_foreign_links` keep foreign links out of anything rendered.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

import tldextract

from helpdesk_bot.domain import Decision, Draft, Source, Ticket, in_language
from helpdesk_bot.groundedness import sentence_support
from helpdesk_bot.policy import ESCALATED_TAG, Policy
from helpdesk_bot.redaction import PLACEHOLDER
from helpdesk_bot.language import language_name
from helpdesk_bot.text import reading, stopwords

SHINGLE = 6  # words in a row copied from an internal note or the prompt count as a leak

_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufeff\uffa0]")
# A link is any URL, or any word with dots whose ending is a public suffix of the Public Suffix
# List (tldextract's bundled snapshot, never fetched): "orbitask-help.support", "login.example.de".
_PUBLIC_SUFFIXES = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
_LINK = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s<>\"'`)\]]+|(?<![@\w.-])(?:[\w-]+\.)+[\w-]{2,}\.?"
                   r"(?::\d{1,5})?(?:[/?#][^\s<>\"'`)\]]*)?")
# URLs that run code or carry content when clicked: never a link, whoever wrote them.
UNSAFE_SCHEME = re.compile(r"(?i)\b(?:javascript|vbscript|data|file)\s*:")
_EMAIL = re.compile(r"(?i)\b[\w.%+'-]+@[\w-]+(?:\.[\w-]+)+\b")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)

_STEERING_TARGETS = r"(instruction|rule|guideline|prompt|directive|polic|restriction|guardrail|programming|constraint)"
# Each pattern names what it catches; they run on normalised text (see `_normalise`). They aim at
# what only an attack says: "ignore your previous instructions", not "can I skip the 2FA rules?".
INJECTION_PATTERNS: tuple[tuple[str, re.Pattern], ...] = tuple((name, re.compile(pattern, re.I)) for name, pattern in (
    ("overrides the bot's instructions",
     rf"\b(ignore|disregard|forget|override)\s+(all\s+|any\s+|of\s+)*(your|the|previous|prior|above|"
     rf"earlier|preceding|system|these|those|safety|my previous)\s+(\w+\s+)?{_STEERING_TARGETS}|"
     rf"\b(bypass|drop|skip)\s+(all\s+|any\s+)*(your|previous|prior|system|safety)\s+(\w+\s+)?{_STEERING_TARGETS}|"
     rf"\bforget (everything|all|what) (you|you've|you were)\b|"
     r"\bnew (instruction|rule|task|directive|policy|system prompt)s?\b\s*:|\b(answer|reply|respond) (to )?every "
     r"(question|ticket|message) with\b|\b(your|the) (previous|prior|above|old) (instructions|rules) (are|were|no longer)\b"),
    ("asks for the bot's prompt or configuration",
     r"\b(system|initial|hidden|original|developer|secret)\s+(prompt|instruction|message|configuration)|"
     r"\b(reveal|show|print|repeat|output|display|paste|dump|leak|tell me|share|give me)\b[^.!?\n]{0,30}"
     r"\byour (\w+ )?(prompt|instructions|rules|configuration|guidelines|directives)\b"),
    ("asks for internal notes or data",
     r"\b(reveal|show|print|repeat|output|display|paste|dump|leak|tell me|share|give me|include|quote|read)\b"
     r"[^.!?\n]{0,50}\b(internal|private|agent|staff|hidden|confidential)\s+(note|comment|message|data|info)"),
    ("tries to change the bot's role",
     r"\b(you are now|you're now|from now on,? you|pretend (to be|you are|you're)|roleplay|role-play|role play|"
     r"new persona|jailbreak|developer mode|dan mode|do anything now|simulate being|switch (to|into) .{0,20}mode|"
     r"your new (role|name|task|instructions?)|act as (if you|an? (unrestricted|unfiltered|different|evil)))\b"),
    ("asks for a reply in a style no support team writes",
     r"\b(reply|respond|answer|write|speak|talk)\b[^.!?\n]{0,30}\b(in|using|as|like)\s+(rhymes?|verse|a poem|"
     r"a pirate|pirate|klingon|pig latin|emojis?|all caps|l33t|leetspeak)"),
    ("asks the bot to add a link",
     r"\b(add|include|insert|put|append|paste|embed|attach|mention|send)\b[^.!?\n]{0,40}\b(this|that|my|following|"
     r"these|below|our|the new)\s+(link|url|hyperlink|website|address|domain)\b|"
     r"\b(add|include|insert|put|append|embed|mention)\b[^.!?\n]{0,40}(https?://|www\.)"),
    ("asks the bot to promise something",
     r"\b(promise|guarantee|confirm in writing|commit to|state that|say that|tell (me|them) that|write that|"
     r"put in writing)\b[^.!?\n]{0,60}\b(refund|reimburse|credit|compensat|discount|free|money back|waive|"
     r"upgrade|cancel)"),
    ("carries prompt markup",
     r"<\|?(im_start|im_end|system|endoftext)\|?>|\[/?(inst|sys)\]|</?(ticket|system|assistant|instructions?)>|"
     r"^\s*(system|assistant|developer)\s*:|###\s*(system|instruction)|\bBEGIN (SYSTEM|INSTRUCTIONS)\b"),
    ("hides text from the reader",
     r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|color\s*:\s*(white|#fff\b|#ffffff)|"
     r"opacity\s*:\s*0(\.0+)?\b|<!--"),
))

# Asking to be answered in a language is an ordinary request, however it is put ("from now on,
# answer in Spanish", "switch to German", "a French-speaking agent"): it is taken out before the
# scan, so only what else the text says can flag it.
_LANGUAGE_NAMES = (r"(?:english|spanish|espa[ñn]ol|castellano|german|deutsch|french|fran[çc]ais|portuguese|portugu[êe]s|"
                   r"italian|italiano|dutch|nederlands|polish|polski|swedish|svenska|danish|dansk|norwegian|norsk|"
                   r"finnish|suomi|czech|turkish|t[üu]rk[çc]e|greek|russian|ukrainian|japanese|chinese|mandarin|"
                   r"korean|arabic|hebrew|hindi|romanian|hungarian|catalan|catal[àa]|indonesian|vietnamese|thai|"
                   r"inglés|ingl[êe]s|englisch|anglais|inglese|engels|alem[áa]n|allemand|tedesco|duits|franc[ée]s|"
                   r"franz[öo]sisch|francese|frans|spanisch|espagnol|spagnolo|spaans)")
_LANGUAGE_REQUEST = re.compile(
    rf"(?i)(?:\bfrom now on,?\s+(?:you\s+|please\s+)?(?:can\s+you\s+)?)?"
    rf"\b(?:answer|reply|respond|write|speak|talk|switch|change|continue|communicate|chat)(?:\s+(?:back|me|to me|"
    rf"only|always|please|to|into|over to|in|using|with me in))*\s+(?:plain\s+|simple\s+)?{_LANGUAGE_NAMES}"
    rf"(?:\s+(?:mode|language|please|only|instead|from now on))*\b|"
    rf"\b(?:you are now|you're now)\s+(?:an?\s+)?{_LANGUAGE_NAMES}[- ]speaking\s+(?:agent|assistant|person)\b|"
    rf"\b(?:an?\s+)?{_LANGUAGE_NAMES}[- ]speaking\s+(?:agent|assistant|person)\b")


_COMMITMENTS = re.compile(
    r"\b(refund\w*|reimburs\w*|credit(ed|s)?|compensat\w*|discount\w*|money back|free (of charge|month|months|upgrade)|"
    r"waiv\w+|guarantee\w*|we will pay|on the house)\b", re.I)


# A sentence saying the bot did, or will do, something to the account: it can do nothing.
# Said under a condition ("if you cancel within 14 days, you will receive ...") it is a policy,
# and left to the sentence-level support check.
_ACTION_VERBS = (r"(refund|cancel|chang|reset|disabl|enabl|remov|delet|upgrad|downgrad|credit|issu|process|unlock|"
                 r"restor|updat|extend|reactivat|approv|waiv|appli|apply|add|transferr?|escalat|forward|fix|clos|"
                 r"turn|switch|activat|deactivat|unblock|verif|restart|renew|merg)\w*")
_ACTION_TAKEN = re.compile(
    rf"\b(we|i)\s*(have|'ve|’ve|will|'ll|’ll|are going to|am going to|just|already|now)\s+(also\s+|now\s+|just\s+|"
    rf"already\s+|gone ahead and\s+|go ahead and\s+)*{_ACTION_VERBS}|"
    r"\b(has|have)\s+(now\s+)?been\s+(successfully\s+)?" + _ACTION_VERBS + r"|"
    r"\b(is|are)\s+now\s+(switched|turned|set|fully|officially|permanently)?\s*(off|on|active|inactive|free|"
    + _ACTION_VERBS + r")\b|"
    r"\byou\s+(will|'ll|’ll|are going to)\s+(now\s+)?(receive|get|be given|see)\s+(a|an|the|your)?\s*"
    r"(full\s+|partial\s+)?(refund|credit|reimbursement|compensation|discount|money|payment|free)", re.I)
_CONDITION = re.compile(r"(?i)\b(if|when|whenever|once|after|within|unless|until|as soon as|as long as|automatically)\b")


def _normalise(text: str) -> str:
    """Fold look-alike characters and drop invisible ones, so "i g n o r e" tricks lose."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))


def injection_signals(ticket: Ticket) -> list[str]:
    """What in the customer's own words tries to steer the bot; empty for an ordinary ticket."""
    text = _LANGUAGE_REQUEST.sub(" ", _normalise("\n".join(customer_controlled(ticket))))
    return [f"possible prompt injection: the ticket {name}" for name, pattern in INJECTION_PATTERNS
            if pattern.search(text)]


def customer_controlled(ticket: Ticket) -> list[str]:
    """Everything on the ticket the customer wrote or chose: their name, the subject, every
    message of theirs in every turn. (Custom fields and attachment names never leave the
    helpdesk integration: the `Ticket` carries neither, so neither can reach the model.)"""
    return [ticket.requester_name, ticket.subject] + [m.text for m in ticket.messages if m.author == "customer"]


def allowed_links(sources: list[Source]) -> set[str]:
    """Links a reply may carry: the sources' own addresses and the links written in them."""
    allowed = set()
    for source in sources:
        if source.chunk.public_url:  # a past ticket's agent link never reaches a customer
            allowed.add(_link_key(source.chunk.public_url))
        allowed.update(_link_key(u) for u in find_links(f"{source.chunk.title}\n{source.chunk.text}"))
        allowed.update(e.lower() for e in _EMAIL.findall(source.chunk.text))
    return allowed


def find_links(text: str) -> list[str]:
    """Every URL and bare domain in `text` (addresses aside), whatever its scheme or public suffix."""
    text = _EMAIL.sub(" ", _normalise(text))
    links = [m.group(0).rstrip(".,;:!?") for m in _LINK.finditer(text)]
    return [link for link in links if "://" in link or _host_of(link)]


def foreign_links(text: str, sources: list[Source], domains: tuple[str, ...] = ()) -> list[str]:
    """Links and addresses in `text` that are neither in `sources` nor on the company's `domains`."""
    allowed = allowed_links(sources)
    text = _normalise(text)
    found = [u for u in find_links(text) if not _allowed(u, allowed, domains)]
    found += [e for e in _EMAIL.findall(text) if not _allowed(e, allowed, domains)]
    return found


def strip_foreign_links(text: str, sources: list[Source], domains: tuple[str, ...] = ()) -> str:
    """Replace every link or address that is neither in the sources nor on the company's domains."""
    allowed = allowed_links(sources)
    text = _EMAIL.sub(lambda m: m.group(0) if _allowed(m.group(0), allowed, domains) else "[address removed]",
                      _normalise(text))
    text = UNSAFE_SCHEME.sub("[link removed]", text)
    return _LINK.sub(lambda m: m.group(0) if not ("://" in m.group(0) or _host_of(m.group(0)))
                     or _allowed(m.group(0), allowed, domains) else "[link removed]", text)


def is_web_link(url: str) -> bool:
    """Whether `url` may be rendered as a link: http or https only, never javascript: or data:."""
    return bool(re.match(r"(?i)https?://[^\s]", (url or "").strip()))


def reply_problems(ticket: Ticket, draft: Draft, sources: list[Source], prompts: tuple[str, ...] = (),
                   link_domains: tuple[str, ...] = ()) -> list[str]:
    """Why this draft must not go to the customer as it is; empty when nothing is wrong.

    Words are compared like with like: the draft against the sources in its own language, read
    with that language's stemmer. A draft with no source in its language cannot be checked
    word by word (a model translated it), so it is not sent by itself.
    """
    if draft.declined or not draft.text.strip():
        return []
    same_language = in_language(sources, draft.language)
    if sources and not same_language:
        return [f"no source in {language_name(draft.language)} to check the draft against (its sources are in "
                f"{', '.join(sorted({language_name(s.language) for s in sources}))})"]
    with reading(draft.language):
        return _reply_problems(ticket, draft, same_language, prompts, link_domains)


def _reply_problems(ticket: Ticket, draft: Draft, sources: list[Source], prompts: tuple[str, ...],
                    link_domains: tuple[str, ...]) -> list[str]:
    cited = [s for s in sources if s.chunk.id in draft.cited] or list(sources)
    text = _normalise(re.sub(r"\[\d+\]", " ", draft.text))
    source_text = _normalise(" ".join(f"{s.chunk.title} {s.chunk.heading} {s.chunk.text}" for s in cited))
    problems = []
    if UNSAFE_SCHEME.search(text):
        problems.append("the draft has a javascript:, data: or file: URL")
    links = foreign_links(text, cited, link_domains)
    if links:
        problems.append(f"the draft has links that are neither its sources' nor the company's: "
                        f"{', '.join(sorted(set(links))[:3])}")
    promised = sorted({m.group(0).lower() for m in _COMMITMENTS.finditer(text)} - _commitments_in(source_text))
    if promised:
        problems.append(f"the draft commits to what its sources don't: {', '.join(promised[:3])}")
    actions = [m.group(0) for sentence in _sentences(text) if not _CONDITION.search(sentence)
               for m in [_ACTION_TAKEN.search(sentence)] if m]
    if actions:
        problems.append(f"the draft says an action was or will be taken on the account, which the bot cannot do: "
                        f"{actions[0]!r}")
    # What redaction.py leaves in place of personal data: a reply saying "write to [email]" answers nothing.
    placeholders = sorted(set(PLACEHOLDER.findall(text)))
    if placeholders:
        problems.append(f"the draft holds a redaction placeholder instead of what it stands for: {', '.join(placeholders)}")
    notes = [m.text for m in ticket.messages if not m.public]
    if any(_shares_run(text, note) for note in notes):
        problems.append("the draft repeats an internal note")
    if any(_shares_run(text, prompt) for prompt in prompts):
        problems.append("the draft repeats the bot's instructions")
    words = [w for w in _words(text) if w not in stopwords() and len(w) > 2]
    if len(words) < 3:
        problems.append(f"the draft is too short ({len(words)} content words) to carry an answer from its sources")
    # Against every source the drafter was given: a sentence rests on one of them, cited or not.
    context = [(f"{s.chunk.title} {s.chunk.heading}", _normalise(s.chunk.text)) for s in sources]
    for check in sentence_support(text, context):
        if check.supported:
            continue
        why = "; ".join(check.mismatches) or f"only {check.share:.0%} of its words are in the passage it rests on"
        problems.append(f"a sentence is not supported by its source ({why}): {check.sentence[:120]!r}")
    return problems


def hold_unsafe(decision: Decision, ticket: Ticket, draft: Draft, sources: list[Source], policy: Policy,
                prompts: tuple[str, ...] = ()) -> Decision:
    """Escalate instead of auto-sending when the ticket or the draft trips a guardrail."""
    findings = injection_signals(ticket) + reply_problems(ticket, draft, sources, prompts, policy.link_domains)
    if not findings:
        return decision
    if decision.action == "escalate":
        return replace(decision, reasons=decision.reasons + tuple(findings), would_send=False)
    return replace(decision, action="escalate", rule="guardrails", code="guardrail", would_send=False,
                   reasons=("held back by a guardrail, whatever the confidence",) + tuple(findings),
                   escalation_group_id=policy.escalation_group_id, tags=(ESCALATED_TAG,))


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def _host_of(link: str) -> str:
    """The host of `link` when its ending is a public suffix ("evil.support"), else ""."""
    host = re.sub(r"(?i)^[a-z][a-z0-9+.-]*://", "", link).split("/")[0].split("?")[0].split("#")[0]
    host = host.rsplit("@", 1)[-1].split(":")[0].rstrip(".").lower()
    parts = _PUBLIC_SUFFIXES(host)
    return host if parts.suffix and parts.domain else ""


def _allowed(link: str, allowed: set[str], domains: tuple[str, ...]) -> bool:
    """In the sources (as written), or on one of the company's domains or a subdomain of one."""
    if "@" in link and "://" not in link:
        if link.lower() in allowed:
            return True
        host = link.rsplit("@", 1)[1].lower()
    else:
        if _link_key(link) in allowed:
            return True
        host = _host_of(link) or _link_key(link).split("/")[0].split(":")[0]
    return any(host == d or host.endswith("." + d) for d in domains)


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
