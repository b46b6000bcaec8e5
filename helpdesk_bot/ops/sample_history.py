"""Past solved tickets for the sample help center, so the demo can show a backtest.

Made the same way every time from `sample_data/questions.jsonl` (questions labelled with the
article that answers them, or none) and the articles themselves: each question is asked three
ways, by different customers, in Zendesk (two) and Intercom (one). The agent answers as agents
do: with the sentences of the right article that fit the question; with the sentences of a
neighbouring article for about one ticket in seven (an agent who misread the question); and
for questions the help center does not answer, with what only a person can say.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from helpdesk_bot.text import html_to_text, index_terms, sentences

SAMPLE_DATA = Path(__file__).parents[1] / "sample_data"
OFF_TOPIC_EVERY = 7  # one ticket in seven gets an answer from the wrong article

OPENINGS = ("{question}", "Hi! {question} Thanks!", "Hello team, quick question. {question}")
CUSTOMERS = ("Alex Kim", "Sam Ortiz", "Jordan Lee", "Maria Santos", "Chen Wei", "Fatima Haddad", "Lukas Brandt",
             "Aisha Bello", "Noah Fischer", "Emma Dubois", "Ravi Patel", "Olga Ivanova", "Kenji Sato")
NOT_IN_THE_HELP_CENTER = (
    "That isn't something Orbitask offers today. I've passed your request to our product team as a feature request.",
    "We don't support that at the moment, sorry. I've added your vote to the request on our roadmap board.",
    "Good question: there is nothing for that yet. Our product managers review these requests every month.",
)


@dataclass(frozen=True)
class PastTicket:
    helpdesk: str  # "zendesk" or "intercom"
    subject: str
    body: str
    requester_name: str
    requester_email: str
    tags: tuple[str, ...]
    agent_answer: str
    answer_is_right: bool  # what the generator intended: the right article's words, or not


def past_tickets() -> list[PastTicket]:
    """About three hundred solved tickets over the sample help center, always the same ones."""
    help_center = json.loads((SAMPLE_DATA / "help_center.json").read_text(encoding="utf-8"))
    published = [a for a in help_center["articles"] if not a.get("draft")]
    texts = {str(a["id"]): html_to_text(a["body"]) for a in published}
    order = [str(a["id"]) for a in published]
    questions = [json.loads(line) for line in (SAMPLE_DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    tickets = []
    for n, (question, way) in enumerate((q, w) for q in questions for w in range(len(OPENINGS))):
        name = CUSTOMERS[n % len(CUSTOMERS)]
        gold = (question.get("gold_ids") or [None])[0]
        if gold is None:
            answer, right = NOT_IN_THE_HELP_CENTER[n % len(NOT_IN_THE_HELP_CENTER)], True
        elif n % OFF_TOPIC_EVERY == OFF_TOPIC_EVERY - 1:
            neighbour = order[(order.index(gold) + 1) % len(order)]
            answer, right = best_sentences(texts[neighbour], question["question"]), False
        else:
            answer, right = best_sentences(texts[gold], question["question"]), True
        first = name.split()[0]
        tickets.append(PastTicket(
            helpdesk="intercom" if way == len(OPENINGS) - 1 else "zendesk",
            subject=question["question"].rstrip("?!. ")[:70], body=OPENINGS[way].format(question=question["question"]),
            requester_name=name, requester_email=f"{first.lower()}.{n}@example.com", tags=tuple(question["tags"]),
            agent_answer=f"Hi {first},\n\n{answer}\n\nBest regards,\nRiley", answer_is_right=right))
    return tickets


def best_sentences(text: str, question: str, count: int = 2) -> str:
    """The `count` sentences of an article sharing most words with the question, in the article's order."""
    wanted = set(index_terms(question))
    found = [s for s in sentences(text) if len(s.split()) >= 4 and s.endswith((".", "!", "?"))]  # no headings
    ranked = sorted(range(len(found)), key=lambda i: (-len(wanted & set(index_terms(found[i]))), i))[:count]
    return " ".join(found[i] for i in sorted(ranked))
