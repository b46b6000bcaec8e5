"""What became of the bot's answers: reopens within 72 hours, agent feedback, the agent's own
reply, CSAT. The outcomes job (beat-scheduled) reads them through the helpdesk interface."""

from __future__ import annotations

import logging
import re
import time
from difflib import SequenceMatcher

from helpdesk_bot.conversation import UNRESOLVED, classify_follow_up
from helpdesk_bot.domain import TicketHistory
from helpdesk_bot.errors import PermanentError, TransientError
from helpdesk_bot.ledger import Ledger

log = logging.getLogger(__name__)

REOPEN_WINDOW_SECONDS = 72 * 3600
LOOKBACK_SECONDS = 8 * 24 * 3600  # answers older than this are no longer checked
GOOD_TAG, BAD_TAG = "ai_draft_good", "ai_draft_bad"


def similarity(draft: str, reply: str) -> float:
    """How much of the draft the agent kept, 0..1: word-sequence similarity, citations ignored."""
    a = _words(re.sub(r"\[\d+\]", " ", draft))
    b = _words(reply)
    if not a or not b:
        return 0.0
    return round(SequenceMatcher(None, a, b, autojunk=False).ratio(), 3)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def assess(row: dict, history: TicketHistory, now: float) -> tuple[dict, list[tuple[str, str]]]:
    """The outcome fields for one answer, and (rating, reason) feedback found in tags."""
    answered_at = row["answered_at"]
    bot_times = [m.created_at for m in history.messages if m.author == "bot"]
    # The helpdesk's clock stamped the bot's comment; ours stamped answered_at. Take the earlier.
    since = min([answered_at, *bot_times]) if bot_times else answered_at
    window_end = since + REOPEN_WINDOW_SECONDS
    values: dict = {"status": history.status, "final": now >= answered_at + REOPEN_WINDOW_SECONDS}
    if row["action"] == "auto_send":
        came_back = [m for m in history.messages
                     if m.author == "customer" and m.public and since < m.created_at <= window_end
                     and classify_follow_up(m.text) in UNRESOLVED]
        if came_back:
            values.update(reopened=True, reopened_at=came_back[0].created_at)
        elif values["final"]:
            values["reopened"] = False
    else:
        replies = [m for m in history.messages if m.author == "agent" and m.public and m.created_at >= since]
        if replies:
            values["agent_reply"] = replies[0].text
            if row.get("draft"):
                values["draft_similarity"] = similarity(row["draft"], replies[0].text)
    if history.satisfaction in ("good", "bad", "offered"):
        values["csat"] = history.satisfaction
        values["csat_comment"] = history.satisfaction_comment or None
    verdicts = []
    if GOOD_TAG in history.tags:
        verdicts.append(("good", f"tagged {GOOD_TAG}"))
    if BAD_TAG in history.tags:
        verdicts.append(("bad", f"tagged {BAD_TAG}"))
    return values, verdicts


def check_outcomes(ledger: Ledger, helpdesks: dict, now: float | None = None) -> dict:
    """Fetch what happened to recent answers and record it; returns counts for the log."""
    now = now or time.time()
    counts = {"checked": 0, "reopened": 0, "feedback": 0, "skipped": 0, "failed": 0}
    for row in ledger.outcomes_to_check(since=now - LOOKBACK_SECONDS):
        helpdesk = helpdesks.get(row["helpdesk"])
        if helpdesk is None:
            counts["skipped"] += 1
            continue
        try:
            history = helpdesk.ticket_history(row["ticket_id"])
        except PermanentError as exc:  # the ticket was deleted: nothing more will happen to it
            log.info("outcome of %s ticket %s: %s", row["helpdesk"], row["ticket_id"], exc)
            ledger.update_outcome(row["helpdesk"], row["ticket_id"], final=True)
            counts["failed"] += 1
            continue
        except TransientError as exc:
            log.warning("outcomes: %s unavailable (%s); trying again next run", row["helpdesk"], exc)
            counts["failed"] += 1
            break
        values, verdicts = assess(row, history, now)
        ledger.update_outcome(row["helpdesk"], row["ticket_id"], **values)
        for rating, reason in verdicts:
            ledger.add_feedback(row["helpdesk"], row["ticket_id"], rating, reason, source="tag")
        counts["checked"] += 1
        counts["reopened"] += bool(values.get("reopened"))
        counts["feedback"] += len(verdicts)
    return counts
