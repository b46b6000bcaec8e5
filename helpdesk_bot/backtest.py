"""The backtest: past solved tickets replayed through the answerer, each draft judged against
what the agent actually answered, and a threshold per tag only where the tickets support one.

A draft agrees with the agent when it says what the agent's answer says, judged on the words:
- `answer_recall`: the share of the agent answer's content words (stemmed, stop words dropped)
  that the draft holds: at least AGREEMENT_RECALL;
- and the groundedness check turned around (`sentence_support` with the draft as the source):
  at least AGREEMENT_SUPPORT of the agent's claim-bearing sentences supported by a passage of
  the draft with the same numbers, plans, names and negation. An agent who reworded the article
  ("you can invite 2 guests per paid seat" for "Team plan — Free guests: 2 per paid seat") is
  often not supported sentence by sentence; then the draft must hold every number the agent
  gave, since a number is where a reworded answer goes wrong in a way its words do not show.
An agent answer with no claim to check ("Done, thanks!") is not judged, and is left out.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

from helpdesk_bot.evaluation import answer_recall, auroc, curve_chart
from helpdesk_bot.groundedness import sentence_support
from helpdesk_bot.helpdesk import SolvedTicketsFeed
from helpdesk_bot.pipeline import Answerer
from helpdesk_bot.text import escape

# Cut-offs read off drafts whose first cited article is right or wrong, against the reference
# answer (docs/evaluation.md, "How the backtest judges a draft"): a draft this rule calls agreeing
# is right 81-100% of the time on four sets (the single cosine >= 0.6 used before: 65-98%), and
# it finds 59-94% of the right ones. Stricter cut-offs miss more right drafts whose agent
# reworded the article; looser ones let more wrong drafts agree.
AGREEMENT_RECALL = 0.4
AGREEMENT_SUPPORT = 0.3
MIN_SENT = 10  # tickets a threshold must send, per tag, for its precision to be a recommendation


@dataclass(frozen=True)
class Agreement:
    agrees: bool
    recall: float  # share of the agent answer's content words in the draft
    support: float  # share of the agent answer's claim sentences the draft supports
    claims: int  # claim-bearing sentences in the agent's answer; 0: nothing to judge


# An agent's greeting ("Hi Sam,") and sign-off ("Best regards,\nRiley") are no claims of the answer.
_GREETING = re.compile(r"(?i)^\s*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening))\b[^\n]{0,40}[,!.]?\s*\n")
_SIGN_OFF = re.compile(r"(?im)^\s*(?:(?:best|kind|warm|many)?\s*(?:regards|wishes)|best|cheers|thanks|thank you|"
                       r"sincerely|all the best|take care)\s*[,!.]?\s*$")


def what_the_agent_said(answer: str) -> str:
    """The agent's answer without its greeting and sign-off."""
    answer = _GREETING.sub("", answer, count=1)
    sign_off = _SIGN_OFF.search(answer)
    return answer[:sign_off.start()] if sign_off else answer


def agreement(draft: str, agent_answer: str) -> Agreement:
    """Whether a draft says what the agent said (see the module docstring)."""
    agent_answer = what_the_agent_said(agent_answer)
    checked = sentence_support(agent_answer, [("", draft)]) if draft else []
    claims = len(checked) if draft else len(sentence_support(agent_answer, [("", agent_answer)]))
    support = sum(s.supported for s in checked) / len(checked) if checked else 0.0
    recall = answer_recall(draft, agent_answer) if draft else 0.0
    said = support >= AGREEMENT_SUPPORT or figures(agent_answer) <= figures(draft)
    return Agreement(agrees=bool(draft) and recall >= AGREEMENT_RECALL and said,
                     recall=round(recall, 4), support=round(support, 4), claims=claims)


def figures(text: str) -> set[str]:
    """The numbers a text states, as written without thousands separators ("1,000" is "1000")."""
    return {re.sub(r"(?<=\d),(?=\d{3}\b)", "", n) for n in re.findall(r"\d+(?:[.,]\d+)*", text)}


@dataclass(frozen=True)
class Replayed:
    helpdesk: str
    ticket_id: str
    tags: tuple[str, ...]
    confidence: int
    held: bool  # a risk signal hands it to a person at any threshold
    agreement: Agreement

    def as_dict(self) -> dict:
        return {**asdict(self), "tags": list(self.tags)}


def run_backtest(helpdesks: Iterable[SolvedTicketsFeed], answerer: Answerer, since: int, limit: int,
                 progress: Callable[[int, int], None] | None = None) -> list[Replayed]:
    """Each solved ticket of each helpdesk (up to `limit` each) answered again, and judged."""
    pairs = [(helpdesk, ticket, answer) for helpdesk in helpdesks
             for ticket, answer in helpdesk.solved_tickets(since=since, limit=limit)]
    rows = []
    for done, (helpdesk, ticket, answer) in enumerate(pairs, 1):
        outcome = answerer.answer(ticket)
        draft = "" if outcome.draft.declined else outcome.draft.text
        judged = agreement(strip_citations(draft), answer)
        rows.append(Replayed(helpdesk=ticket.helpdesk, ticket_id=ticket.id, tags=tuple(sorted(ticket.tags)),
                             confidence=outcome.confidence.score, held=outcome.decision.code == "risk",
                             agreement=judged))
        if progress:
            progress(done, len(pairs))
    return rows


def strip_citations(text: str) -> str:
    return re.sub(r"\s*\[\d+\]", "", text)


def backtest_report(rows: list[Replayed], target_precision: float = 0.95, min_tickets: int = 20,
                    min_sent: int = MIN_SENT) -> dict:
    """Precision and coverage against the threshold, overall and per tag, and the threshold to set
    where the tickets support one; otherwise no recommendation and the reason."""
    judged = [r for r in rows if r.agreement.claims]
    tags = sorted({t for r in judged for t in r.tags})
    per_tag = {tag: summary([r for r in judged if tag in r.tags], target_precision, min_tickets, min_sent)
               for tag in tags}
    return {**summary(judged, target_precision, min_tickets, min_sent), "replayed": len(rows),
            "not_judged": len(rows) - len(judged), "target_precision": target_precision,
            "min_tickets": min_tickets, "min_sent": min_sent, "per_tag": per_tag}


def summary(rows: list[Replayed], target_precision: float, min_tickets: int, min_sent: int) -> dict:
    curve = []
    for threshold in range(0, 101):
        # As in the answering report: confidence 0 is never sent, nor a ticket held for a risk.
        sent = [r for r in rows if r.confidence >= threshold and r.confidence > 0 and not r.held]
        good = sum(r.agreement.agrees for r in sent)
        curve.append({"threshold": threshold, "sent": len(sent), "agree": good,
                      "precision": round(good / len(sent), 4) if sent else 1.0,
                      "coverage": round(good / len(rows), 4) if rows else 0.0})
    agreeing = [r.confidence for r in rows if r.agreement.agrees]
    other = [r.confidence for r in rows if not r.agreement.agrees]
    result = {"n": len(rows), "agreeing": len(agreeing),
              "auroc": round(auroc(agreeing, other), 4) if agreeing and other else None,
              "threshold": None, "precision": None, "precision_low": None, "coverage": 0.0, "sent": 0,
              "reason": "", "curve": curve}
    if len(rows) < min_tickets:
        result["reason"] = f"only {len(rows)} tickets; {min_tickets} are needed to recommend a threshold"
        return result
    supported = [p for p in curve if p["sent"] >= min_sent and p["precision"] >= target_precision]
    if not supported:
        best = max((p for p in curve if p["sent"] >= min_sent), key=lambda p: p["precision"], default=None)
        result["reason"] = (f"no threshold that sends {min_sent} or more tickets reaches precision {target_precision}"
                            + (f" (best {best['precision']:.2f} at {best['threshold']}, {best['sent']} sent)" if best else ""))
        return result
    point = supported[0]
    # The lowest confidence actually seen among the tickets sent there, never below it: a
    # threshold under every ticket replayed ("send everything") is a guess about tickets not seen.
    threshold = min(r.confidence for r in rows if r.confidence >= point["threshold"] and r.confidence > 0 and not r.held)
    result.update(threshold=threshold, precision=point["precision"], coverage=point["coverage"], sent=point["sent"],
                  precision_low=round(wilson_lower_bound(point["agree"], point["sent"]), 4))
    return result


def wilson_lower_bound(successes: int, n: int, z: float = 1.96) -> float:
    """The lower end of the 95% Wilson interval of a proportion: how low the precision may really be."""
    if not n:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / (1 + z * z / n)


def write_backtest_report(path: Path, summary: dict) -> None:
    """The report ops set thresholds from: the overall curve, then each tag's figures and curve."""
    overall = {k: summary[k] for k in ("replayed", "not_judged", "n", "agreeing", "auroc", "target_precision",
                                       "threshold", "precision", "precision_low", "coverage", "reason")}
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in overall.items())
    tag_rows = "".join(
        f"<tr><td>{escape(tag)}</td><td>{s['n']}</td><td>{s['agreeing']}</td><td>{_shown(s['threshold'])}</td>"
        f"<td>{_shown(s['precision'])}</td><td>{_shown(s['precision_low'])}</td>"
        f"<td>{_shown(s['coverage'] if s['threshold'] is not None else None)}</td><td>{escape(s['reason'])}</td></tr>"
        for tag, s in summary["per_tag"].items())
    target = summary["target_precision"]
    charts = "".join(
        f"<figure style='display:inline-block;margin:0 1em 1em 0'><figcaption><strong>{escape(tag)}</strong> "
        f"({s['n']} tickets): {'threshold ' + str(s['threshold']) if s['threshold'] is not None else 'no recommendation'}"
        f"</figcaption>{curve_chart(s['curve'], s['threshold'], width=320, height=200, target=target, legend=False)}</figure>"
        for tag, s in summary["per_tag"].items())
    path.write_text(
        "<!doctype html><meta charset=utf-8><title>Backtest on solved tickets</title>"
        "<h1>Backtest on solved tickets</h1>"
        "<p>Each solved ticket answered again from today's knowledge. A draft agrees with the agent when it holds "
        f"at least {AGREEMENT_RECALL:.0%} of the agent answer's words and supports at least {AGREEMENT_SUPPORT:.0%} of "
        "its sentences or states every number the agent gave. Precision: the share of the drafts sent at a threshold "
        "that agree; coverage: agreeing drafts sent, over all tickets. A tag gets a threshold only with "
        f"{summary['min_tickets']} tickets or more, and only where {summary['min_sent']} or more would have been sent "
        f"at precision {target}.</p>"
        f"<table>{rows}</table>{curve_chart(summary['curve'], summary['threshold'], target=target)}"
        "<h2>Per tag</h2><table><tr><th>tag</th><th>tickets</th><th>agree</th><th>threshold</th><th>precision</th>"
        f"<th>precision, 95% lower bound</th><th>coverage</th><th>why no threshold</th></tr>{tag_rows}</table>"
        f"<div>{charts}</div>",
        encoding="utf-8",
    )


def _shown(value) -> str:
    return "-" if value is None else str(value)
