"""The pipeline, top to bottom: fetch → retrieve → draft → score → decide → act → record.

The web app has already verified, normalised and recorded the webhook event and queued its
id; a worker calls `handle_event` with that id (see workers/tasks.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from helpdesk_bot import confidence
from helpdesk_bot.calibration import Calibration
from helpdesk_bot.domain import Outcome, Ticket
from helpdesk_bot.drafting import SYSTEM_PROMPT, Drafter, cited_sources, reply_html
from helpdesk_bot.errors import ActionInProgress, Throttled
from helpdesk_bot.guardrails import hold_unsafe
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.policy import ESCALATED_TAG, Policy, PolicyFile, decide
from helpdesk_bot.retrieval import Retriever
from helpdesk_bot.text import escape
from integrations.helpdesk import Helpdesk

# A claim on an action older than this belongs to a worker that died mid-call: the helpdesk
# HTTP timeout is 15 s (ZENDESK_TIMEOUT_SECONDS), so a live call has ended by then.
ACTION_LEASE_SECONDS = 30
AI_UNAVAILABLE = "AI unavailable"


@dataclass
class Answerer:
    """Retrieve → draft → score → decide: the part of the pipeline with no side effects."""

    retriever: Retriever
    drafter: Drafter
    policy: Policy | PolicyFile  # a PolicyFile is re-read when it changes
    calibration: Calibration | None = None

    def answer(self, ticket: Ticket, timings: dict[str, float] | None = None) -> Outcome:
        """Retrieve, draft, score and decide for a ticket; no side effects."""
        timings = {} if timings is None else timings
        with _timed(timings, "retrieve"):
            sources = self.retriever.retrieve(ticket.search_query)
        with _timed(timings, "draft"):
            draft = self.drafter.draft(ticket, sources)
        with _timed(timings, "score"):
            score = confidence.score(ticket, sources, draft, self.calibration)
            policy = self.policy.current()
            decision = decide(ticket, draft, score, policy)
            decision = hold_unsafe(decision, ticket, draft, list(sources), policy, prompts=(SYSTEM_PROMPT,))
        return Outcome(ticket=ticket, sources=tuple(sources), draft=draft, confidence=score, decision=decision)


@dataclass
class Pipeline:
    answerer: Answerer
    helpdesk: Helpdesk
    ledger: Ledger
    action_lease_seconds: float = ACTION_LEASE_SECONDS

    def handle_event(self, event_id: int) -> str:
        """Process one recorded webhook event; safe to run twice for the same event."""
        stored = self.ledger.get_event(event_id)
        if stored is None:
            return "unknown event"
        if stored.status == "done":
            return "already done"
        if stored.status == "dead":  # a human was told; only `deadletter replay` runs it again
            return "already dead-lettered"
        timings: dict[str, float] = {}
        with _timed(timings, "fetch"):
            ticket = self.helpdesk.fetch_ticket(stored.event.ticket_id)
        outcome = self.answerer.answer(ticket, timings)
        with _timed(timings, "act"):
            result = self.act(event_id, action_key(stored.event), outcome)
        self.ledger.record_decision(event_id, outcome, timings)
        self.ledger.set_status(event_id, "done")
        return result

    def act(self, event_id: int, key: str, outcome: Outcome) -> str:
        """Post the reply or the note, at most once per action key."""
        decision, ticket = outcome.decision, outcome.ticket
        kind = "reply" if decision.action == "auto_send" else "note"
        body = reply_html(outcome.draft, list(outcome.sources), outcome.ticket) if kind == "reply" else escalation_note(outcome)
        if self.ledger.claim_action(key, event_id, kind, body) is None:
            existing = self.ledger.action(key)
            if existing["state"] == "done":
                return f"already {existing['kind']} posted"
            # Claimed but never finished: a worker died mid-call or is calling right now.
            if self.helpdesk.has_bot_comment(ticket.id, existing["body"]):
                self.ledger.finish_action(key, {"reconciled": True})
                return f"{existing['kind']} found already posted"
            if not self.ledger.reclaim_stale_action(key, existing["claimed_at"], self.action_lease_seconds):
                raise ActionInProgress("another worker holds this ticket's action", retry_after=self.action_lease_seconds)
            kind, body = existing["kind"], existing["body"]  # finish what was started, as it was
        try:
            if kind == "reply":
                result = self.helpdesk.post_reply(ticket.id, body, decision.status_after_reply, decision.tags)
            else:
                result = self.helpdesk.post_note(ticket.id, body, decision.escalation_group_id, decision.tags)
        except Throttled:
            self.ledger.release_action(key)  # refused before anything was posted: a retry may act at once
            raise
        self.ledger.finish_action(key, result)
        return f"{kind} posted"

    def report_failure(self, event_id: int, error: str, ai_unavailable: bool = False) -> None:
        """After the last attempt: a dead letter, and a note so a human picks the ticket up."""
        stored = self.ledger.get_event(event_id)
        notified = False
        if stored is not None:
            cause = (f"{AI_UNAVAILABLE}: the knowledge index or the language model could not be reached"
                     if ai_unavailable else "a helpdesk error or a fault in helpdesk-bot")
            html = (
                "<p><strong>helpdesk-bot could not process this ticket</strong>; please handle it.</p>"
                f"<p>{escape(cause)}.</p><p>Reason: {escape(error[:500])}</p>"
                "<p>The event is in the dead-letter list and can be replayed.</p>"
            )
            key = f"{action_key(stored.event)}:failure"
            try:
                if self._outcome_posted(action_key(stored.event)):
                    notified = True  # the reply or note is on the ticket: a second comment would be noise
                elif self.ledger.claim_action(key, event_id, "note", html) is not None:
                    result = self.helpdesk.post_note(stored.event.ticket_id, html, self.answerer.policy.current().escalation_group_id, (ESCALATED_TAG,))
                    self.ledger.finish_action(key, result)
                notified = True
            except Exception:  # the helpdesk itself may be what failed; the dead letter remains
                notified = False
        self.ledger.add_dead_letter(event_id, error, human_notified=notified)
        self.ledger.set_status(event_id, "dead", error)


    def _outcome_posted(self, key: str) -> bool:
        """Whether the ticket already shows the bot's reply or note for this action."""
        existing = self.ledger.action(key)
        if existing is None:
            return False
        if existing["state"] == "done":
            return True
        stored = self.ledger.get_event(existing["event_id"])
        if stored and self.helpdesk.has_bot_comment(stored.event.ticket_id, existing["body"]):
            self.ledger.finish_action(key, {"reconciled": True})
            return True
        return False


def action_key(event) -> str:
    """What must happen at most once: the bot's first answer on a ticket, whatever delivered it."""
    return f"{event.helpdesk}:{event.ticket_id}:{event.kind}"


def escalation_note(outcome: Outcome) -> str:
    """The internal note an agent reads: why the bot handed over, and the draft it would have sent."""
    draft, score, decision = outcome.draft, outcome.confidence, outcome.decision
    reasons = "".join(f"<li>{escape(r)}</li>" for r in decision.reasons + score.caps)
    components = "".join(
        f"<tr><td>{escape(c.name)}</td><td>{c.value:.2f}</td><td>{c.weight:.2f}</td><td>{escape(c.detail)}</td></tr>"
        for c in score.components
    )
    if draft.declined:
        draft_part = "<p>No draft: the knowledge base does not hold the answer.</p>"
    else:
        draft_part = "<p><strong>Suggested reply (not sent):</strong></p>" + reply_html(draft, list(outcome.sources), outcome.ticket)
    cited = {s.chunk.id for s in cited_sources(draft, list(outcome.sources))}
    sources = "".join(
        f'<li><a href="{escape(s.chunk.url)}">{escape(s.chunk.title)}</a> '
        f"(similarity {s.dense:.2f}{', cited' if s.chunk.id in cited else ''})</li>"
        for s in outcome.sources
    )
    return (
        f"<p><strong>helpdesk-bot handed this ticket to a human.</strong> "
        f"Confidence {score.score}/100; the {escape(decision.rule)} needs {decision.threshold}.</p>"
        f"<ul>{reasons}</ul>{draft_part}"
        f"<p>Confidence components:</p><table><tr><th>component</th><th>value</th><th>weight</th><th>why</th></tr>"
        f"{components}</table>"
        + (f"<p>Sources retrieved:</p><ul>{sources}</ul>" if sources else "<p>No sources retrieved.</p>")
    )


class _timed:
    def __init__(self, timings: dict[str, float], stage: str):
        self.timings, self.stage = timings, stage

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.timings[self.stage] = (time.perf_counter() - self.start) * 1000
