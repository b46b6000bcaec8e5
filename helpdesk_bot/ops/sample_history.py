"""Past solved tickets for the sample help center, so the demo can show a backtest.

Made the same way every time from `sample_data/questions.jsonl` (questions labelled with the
article that answers them and an agent's answer, or none): each question is asked three ways,
by different customers, in Zendesk (two) and Intercom (one). The agent answers with that
answer; for one ticket in twenty, with the answer to another question on another article
(an agent who misread the question); and for questions the help center does not answer, with
what only a person can say.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


SAMPLE_DATA = Path(__file__).parents[1] / "sample_data"
OFF_TOPIC_EVERY = 20  # one ticket in twenty gets the answer to another question

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
    questions = [json.loads(line) for line in (SAMPLE_DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    tickets = []
    for n, (question, way) in enumerate((q, w) for q in questions for w in range(len(OPENINGS))):
        name = CUSTOMERS[n % len(CUSTOMERS)]
        if not question.get("answer"):
            answer, right = NOT_IN_THE_HELP_CENTER[n % len(NOT_IN_THE_HELP_CENTER)], True
        elif n % OFF_TOPIC_EVERY == OFF_TOPIC_EVERY - 1:
            answer, right = misread(question, questions), False
        else:
            answer, right = question["answer"], True
        first = name.split()[0]
        tickets.append(PastTicket(
            helpdesk="intercom" if way == len(OPENINGS) - 1 else "zendesk",
            subject=question["question"].rstrip("?!. ")[:70], body=OPENINGS[way].format(question=question["question"]),
            requester_name=name, requester_email=f"{first.lower()}.{n}@example.com", tags=tuple(question["tags"]),
            agent_answer=f"Hi {first},\n\n{answer}\n\nBest regards,\nRiley", answer_is_right=right))
    return tickets


def misread(question: dict, questions: list[dict]) -> str:
    """The answer to the next question about another article: what an agent who misread sends."""
    start = questions.index(question)
    return next(q["answer"] for q in questions[start + 1:] + questions[:start]
                if q.get("answer") and q["gold_ids"] != question["gold_ids"])
