"""The conversation after the first reply: what the customer's latest message calls for.

`next_turn` is a pure function of the ticket, in this order (first match wins):
1. a human agent is assigned, or has written on the ticket → stay silent, it is theirs;
2. the bot already handed the ticket over → stay silent;
3. nothing from the customer is waiting for an answer → stay silent;
4. the customer asks for a person → hand over at once, whatever else they wrote;
5. after a bot answer, the customer says it did not help, still has the problem, already
   tried it, or gets the same error → hand over;
6. the customer asks the team for what only a person can do (raise a limit, change a plan,
   delete data) → hand over;
7. after a bot answer, the customer only says thanks → stay silent;
8. otherwise → answer, with the whole conversation as context.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from helpdesk_bot.domain import Message, Ticket
from helpdesk_bot.policy import ESCALATED_TAG
from helpdesk_bot.text import escape

Step = Literal["answer", "hand_over", "stay_silent"]
FollowUp = Literal["question", "not_helped", "human_requested", "thanks"]
# What a customer writing after the bot's answer says about that answer: only these count as a
# reopen (a bad reply). Thanks is not one, nor is a next question: a customer who goes on to ask
# how to export their invoices has not said the answer on downloading them was wrong.
UNRESOLVED: frozenset[str] = frozenset({"not_helped", "human_requested"})

# --- What a customer message says --------------------------------------------------------

_PERSON = (r"(?:a |an |the |some |one of your |your )?(?:real |actual |live |human |support |customer service )?"
           r"(?:person|human|humans|people|agent|someone|somebody|representative|rep|operator|staff|"
           r"team member|member of (?:staff|the team|your team)|support team|support agent)")
_ASK_FOR_PERSON = [
    # "can I talk to a person", "let me speak with someone", "connect me to an agent"
    rf"\b(?:talk|speak|chat|get through)\s+(?:to|with)\s+{_PERSON}\b",
    rf"\b(?:connect|transfer|pass|put|hand|escalate|forward|redirect|send)\s+(?:me|this|my \w+)\s+"
    rf"(?:on\s+)?(?:to|with|through to)\s+{_PERSON}\b",
    # "I want a human", "I need a real person to help me", but not "I need a person to approve"
    r"\b(?:want|need|prefer|get me|give me|request|like)\s+(?:to\s+(?:have|reach)\s+)?"
    r"(?:a |an |some )?(?:real |actual |live |human )?(?:person|human|representative|operator)\b"
    r"(?!\s+(?:to\s+(?!help|talk|speak|assist|call|contact)|who|that|for|in|on|from|responsible))",
    r"\b(?:get|give) me\s+(?:a |an )?(?:real |live |human )?agent\b",
    r"\b(?:real|actual|live)\s+(?:person|human|agent|people)\b",
    r"\bhuman\s+(?:agent|being|support|help)\b",
    r"\b(?:stop|no more|not)\s+(?:the\s+|a\s+|this\s+)?(?:bot|robot|automated)\b",
    r"\bare you a (?:bot|robot)\b",
    r"^\W*(?:human|agent|operator|representative|person)\W*(?:please\W*)?$",
]
# The same requests in the other languages support teams most often serve (es, fr, de, pt, it,
# nl): a verb of talking with a person, or "a real person"; a bare noun ("un agente") is not one.
_ASK_FOR_PERSON += [
    r"\b(?:hablar|comunicarme|chatear)\s+con\s+(?:(?:una|un|alg[uú]n|alguna)\s+)?"
    r"(?:persona|humano|agente|asesor|operador|representante|alguien)\b",
    r"\b(?:p[aá]same|transfi[eé]reme|comun[ií]came)\s+(?:con|a)\s+(?:una\s+|un\s+)?(?:persona|humano|agente|alguien)\b",
    r"\b(?:persona|agente)\s+(?:real|humano|humana)\b",
    r"\bparler\s+(?:à|a|avec)\s+(?:(?:une|un)\s+)?(?:vraie\s+|vrai\s+)?"
    r"(?:personne|humain|agent|conseill[eè]re?|op[ée]rat(?:eur|rice)|quelqu['’]un)",
    r"\b(?:une\s+vraie\s+personne|un\s+vrai\s+humain|un\s+[êe]tre\s+humain|(?:conseiller|agent)\s+humain)\b",
    r"\bmit\s+(?:jemandem|(?:einem|einer)\s+(?:echten\s+|richtigen\s+|realen\s+)?"
    r"(?:menschen|person|mitarbeiter(?:in)?|berater(?:in)?|support-?mitarbeiter(?:in)?))\s+(?:sprechen|reden|chatten)\b",
    r"\b(?:echten|richtigen|realen)\s+(?:menschen|person|mitarbeiter)\b",
    r"\bfalar\s+com\s+(?:(?:uma|um|algum|alguma)\s+)?(?:pessoa|humano|atendente|agente|algu[eé]m|operador|representante)\b",
    r"\b(?:atendente|agente|pessoa)\s+(?:humano|humana|real)\b",
    r"\bparlare\s+con\s+(?:(?:una|un|uno|qualche)\s+)?(?:persona|umano|operat(?:ore|rice)|agente|qualcuno|consulente)\b",
    r"\b(?:persona\s+reale|operatore\s+umano|essere\s+umano)\b",
    r"\b(?:spreken|praten|chatten)\s+met\s+(?:iemand|een\s+(?:echte\s+)?(?:mens|persoon|medewerker))\b",
    r"\bmet\s+(?:iemand|een\s+(?:echte\s+)?(?:mens|persoon|medewerker))\s+(?:spreken|praten|chatten)\b",
    r"\been\s+echte?\s+(?:mens|persoon)\b",
]
_ASK_FOR_PERSON_RE = [re.compile(p, re.IGNORECASE) for p in _ASK_FOR_PERSON]
# "I don't need to talk to a person" is not a request for one.
_NO_PERSON_RE = re.compile(r"\b(?:don'?t|do not|no need to|won'?t)\s+(?:need|want|have)\s+to\s+(?:talk|speak)\b",
                           re.IGNORECASE)

_NOT_HELPED_RE = re.compile(
    r"\b(?:did ?n[o']t|does ?n[o']t|do ?n[o']t|did not|does not|do not|wo ?n[o']t|is ?n[o']t|was ?n[o']t|not)\s+"
    r"(?:really\s+|actually\s+|quite\s+)?(?:help|helpful|work|working|answer|solve|fix|apply|relevant|what i)\w*\b"
    r"|\bstill\s+(?:not|no|n[o']t|can'?t|cannot|unable|broken|the same|having|getting|stuck|doesn'?t|don'?t|won'?t)\b"
    r"|\b(?:not|wasn'?t|isn'?t)\s+what\s+i\s+(?:asked|meant|need|wanted|was asking)\b"
    r"|\b(?:wrong|useless|unhelpful|irrelevant)\s+(?:answer|reply|response|article|link)\b"
    r"|\b(?:that|this|it)(?:'s| is| was)\s+(?:wrong|useless|unhelpful|irrelevant|not it|not right)\b"
    r"|\bno\s+(?:luck|joy|change|difference)\b"
    r"|\b(?:already|i've|i have)\s+(?:tried|done)\s+(?:that|this|those|it)\b"
    # "we already back off and still get 429s", "same error as before"
    r"|\bstill\s+(?:get|gets|getting|got|see|sees|seeing|receive|receiving|hit|hitting|fail|fails|failing|failed|"
    r"happen|happens|happening|show|shows|showing|return|returns|returning|has|have|had|the|a|an|on|broken|nothing)\b"
    r"|\balready\s+(?:tried|try|did|do|done|doing|followed|follow|checked|check|back(?:ed)? off|wait|waited|waiting|"
    r"use|used|using|set|reset|restarted|reinstalled|updated|enabled|disabled|turned|retried|retry|cleared|"
    r"logged|signed|have|had|went|gone|clicked)\b"
    r"|\bsame\s+(?:error|problem|issue|message|result|thing|response|code)\b"
    r"|\b(?:tried|did)\s+(?:that|this|those|it|everything)\s+(?:already|before|twice)\b"
    # es, fr, de, pt, it, nl
    r"|\bno\s+(?:me\s+)?(?:ha\s+)?(?:funcion[oó]|funciona|funcionado|sirvi[oó]|sirve|servido|ayud[oó]|ayuda|ayudado|resolvi[oó])\b"
    r"|\bsigue\s+sin\s+funcionar\b"
    r"|\b(?:n['’]a|ne\s+m['’]a|ne)\s+(?:pas|toujours\s+pas)\s+(?:marché|fonctionné|aidé|résolu|marche|fonctionne)\b"
    r"|\bne\s+(?:marche|fonctionne)\s+(?:pas|toujours\s+pas)\b"
    r"|\b(?:hat|hilft|funktioniert|klappt)\s+(?:mir\s+)?(?:leider\s+)?(?:immer\s+noch\s+)?nicht\b|\bnicht\s+geholfen\b"
    r"|\bn[aã]o\s+(?:me\s+)?(?:funcionou|funciona|ajudou|ajuda|resolveu|resolve)\b|\bcontinua\s+sem\s+funcionar\b"
    r"|\bnon\s+(?:mi\s+)?(?:ha\s+)?(?:funzionato|funziona|aiutato|aiuta|risolto)\b"
    r"|\b(?:werkt|helpt|hielp|werkte)\s+(?:nog\s+steeds\s+)?niet\b|\bniet\s+geholpen\b",
    re.IGNORECASE,
)

_THANKS_RE = re.compile(
    r"^\W*(?:(?:ok(?:ay)?|great|perfect|awesome|brilliant|excellent|super|cool|nice|wonderful|lovely|amazing|yes|yep|"
    r"perfecto|genial|vale|parfait|génial|top|perfekt|prima|gut|perfeito|ótimo|perfetto|ottimo|sí|oui|ja|sim)\W+)*"
    r"(?:thanks?|thank you|thx|ty|cheers|many thanks|much appreciated|appreciated|that (?:worked|works|helped|did it|fixed it)|"
    r"it (?:worked|works)|(?:all )?(?:sorted|solved|fixed|resolved)|got it|found it|all good|perfect|great|"
    # es, fr, de, pt, it, nl
    r"(?:muchas )?gracias|ya funciona|funcion[oó]|merci(?: beaucoup)?|ça marche|c'est bon|(?:vielen )?dank(?:e)?(?: schön)?|"
    r"hat geklappt|obrigad[oa]|funcionou|(?:mille )?grazie|ha funzionato|bedankt|dank je(?: wel)?|dankjewel|het werkt)\b",
    re.IGNORECASE,
)
_THANKS_MAX_WORDS = 15
# "but", "also", "how" (and "but", "also" in es, fr, de, pt, it, nl): a thank-you with more to it.
# Not "como", "wie", "come" or "comment": they also say "as always" or mean something in English.
_MORE_TO_IT_RE = re.compile(r"\b(?:but|also|how|pero|también|mais|aussi|aber|auch|mas|também|anche|maar|ook)\b",
                            re.IGNORECASE)


# What only a person on the team can do, asked of the team: "can you raise our limit", "please
# delete my data", "change our plan to annual". ("How do I change my plan?" is a question the
# help center answers.)
_TO_THE_TEAM = r"(?:(?:can|could|would|will)\s+(?:you|someone|somebody|your team|support)\s+(?:please\s+)?|please\s+|i need you to\s+|i'?d like you to\s+|we need you to\s+)"
_PERSON_ONLY_RE = re.compile(
    rf"\b{_TO_THE_TEAM}(?:raise|increase|lift|bump|extend|remove|waive)\s+(?:\w+\s+){{0,3}}(?:limits?|quotas?|caps?|allowance)\b"
    rf"|\b(?:raise|increase|lift|bump)\s+(?:our|my|the)\s+(?:\w+\s+){{0,3}}(?:limits?|quotas?)\s+(?:for us|for me|please)\b"
    rf"|\b{_TO_THE_TEAM}(?:change|switch|move|upgrade|downgrade|convert)\s+(?:(?:our|my|the)\s+)?(?:\w+\s+){{0,2}}"
    r"(?:plan|subscription|billing|contract|seats?)\b"
    rf"|\b{_TO_THE_TEAM}(?:delete|erase|remove|wipe|purge|destroy)\s+(?:(?:all|our|my|the)\s+)+(?:\w+\s+){{0,2}}"
    r"(?:data|account|information|records|history|workspace|personal data)\b",
    re.IGNORECASE,
)


def asks_for_what_only_a_person_can_do(text: str) -> bool:
    """Whether the customer asks the team to do what the bot cannot: raise a limit, change a plan, delete data."""
    return bool(_PERSON_ONLY_RE.search(text))


def asks_for_a_person(text: str) -> bool:
    """Whether the customer asks to be put through to a human, in any of the usual phrasings."""
    if _NO_PERSON_RE.search(text):
        return False
    return any(pattern.search(text) for pattern in _ASK_FOR_PERSON_RE)


def says_not_helped(text: str) -> bool:
    """Whether a follow-up says the previous answer did not solve the problem."""
    return bool(_NOT_HELPED_RE.search(text))


def only_thanks(text: str) -> bool:
    """A short thank-you or "that worked", with no new question in it."""
    words = text.split()
    return (bool(_THANKS_RE.search(text)) and "?" not in text and len(words) <= _THANKS_MAX_WORDS
            and not says_not_helped(text) and not _MORE_TO_IT_RE.search(text))


def classify_follow_up(text: str) -> FollowUp:
    if asks_for_a_person(text):
        return "human_requested"
    if says_not_helped(text):
        return "not_helped"
    if only_thanks(text):
        return "thanks"
    return "question"


# --- What the bot does next --------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    step: Step
    reason: str
    message: Message | None = None  # the customer message this turn answers or hands over
    follow_up: FollowUp | None = None  # set when that message came after a bot answer
    code: str = ""  # a handover's reason as a decision code the dashboard counts


def taken_over(ticket: Ticket) -> str | None:
    """Why the ticket is a human's now (the bot keeps quiet on it), or None."""
    if ticket.human_assignee:
        return f"a human agent ({ticket.human_assignee}) is assigned"
    if any(m.author == "agent" for m in ticket.messages):
        return "a human agent has written on the ticket"
    if ESCALATED_TAG in ticket.tags:
        return "the ticket was already handed to a human"
    return None


def next_turn(ticket: Ticket) -> Turn:
    """Decide what the latest customer message calls for; a pure function of the ticket."""
    human = taken_over(ticket)
    if human:
        return Turn("stay_silent", human)
    waiting = ticket.pending_customer_messages
    if not waiting:
        return Turn("stay_silent", "no customer message is waiting for an answer")
    message = waiting[-1]
    text = "\n".join(m.text for m in waiting)
    follow_up = classify_follow_up(text) if ticket.is_follow_up else None
    if asks_for_a_person(text):
        return Turn("hand_over", "the customer asked for a person", message, follow_up, code="human_requested")
    if follow_up == "not_helped":
        return Turn("hand_over", "the customer says the answer did not help", message, follow_up, code="not_helped")
    if asks_for_what_only_a_person_can_do(text):
        return Turn("hand_over", "the customer asks for what only a person can do (a limit raised, a plan changed, "
                    "data deleted)", message, follow_up, code="needs_a_person")
    if follow_up == "thanks":
        return Turn("stay_silent", "the customer says the answer helped", message, follow_up)
    return Turn("answer", "a follow-up question" if follow_up else "a new ticket", message, follow_up)


# --- The note a human reads when the bot hands over ---------------------------------------

SUMMARY_CHARS = 300
_LABELS = {"customer": "Customer", "bot": "helpdesk-bot", "agent": "Agent", "system": "Automation"}


def handover_note(ticket: Ticket, reason: str) -> str:
    """An internal note: why the bot handed over, and the conversation so far in short."""
    return f"<p><strong>helpdesk-bot handed this ticket to a human</strong>: {escape(reason)}.</p>" + conversation_summary(ticket)


def conversation_summary(ticket: Ticket) -> str:
    """Who said what, each public message cut to a few lines, for the agent who takes over."""
    turns = [m for m in ticket.messages if m.public and m.text.strip()]
    customer = sum(1 for m in turns if m.author == "customer")
    answers = sum(1 for m in turns if m.author == "bot")
    lines = "".join(f"<li><strong>{_LABELS[m.author]}:</strong> {escape(_shorten(m.text))}</li>" for m in turns)
    return (f"<p>The customer wrote {customer} message(s); the bot answered {answers} time(s). "
            f"Conversation so far:</p><ol>{lines}</ol>")


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1].rsplit(" ", 1)[0] + "…"
