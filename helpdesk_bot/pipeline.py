"""The pipeline, top to bottom: fetch → next turn → retrieve → draft → score → decide → act → record.

The web app has already verified, normalised and recorded the webhook event and queued its
id; a worker calls `handle_event` with that id (see workers/tasks.py). The same path serves a
new ticket and every customer message after it: `next_turn` (conversation.py) says whether
the latest message is answered, handed over at once, or left to the human who has the ticket.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from helpdesk_bot import confidence
from helpdesk_bot.calibration import Calibration
from helpdesk_bot.conversation import UNRESOLVED, Turn, conversation_summary, handover_note, next_turn, taken_over
from helpdesk_bot.domain import Confidence, Decision, Draft, Message, Outcome, Ticket, TicketEvent
from helpdesk_bot.drafting import SYSTEM_PROMPT, Drafter, cited_sources, reply_html
from helpdesk_bot.errors import ActionInProgress, PermanentError, Throttled
from helpdesk_bot.guardrails import hold_unsafe, is_web_link
from helpdesk_bot.language import with_language
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.policy import ESCALATED_TAG, Policy, PolicyFile, decide
from helpdesk_bot.retrieval import Retriever
from helpdesk_bot.text import escape
from helpdesk_bot.helpdesk import Helpdesk

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
    default_language: str = "en"  # of tickets too short to tell (HELPDESK_DEFAULT_LANGUAGE)

    def answer(self, ticket: Ticket, timings: dict[str, float] | None = None) -> Outcome:
        """Retrieve, draft, score and decide for a ticket; no side effects."""
        timings = {} if timings is None else timings
        ticket = with_language(ticket, self.default_language)
        with _timed(timings, "retrieve"):
            sources = self.retriever.retrieve(ticket.search_query, brand=ticket.brand_id, locale=ticket.locale,
                                              language=ticket.language)
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
    helpdesks: dict[str, Helpdesk]  # by name: "zendesk", "intercom"
    ledger: Ledger
    action_lease_seconds: float = ACTION_LEASE_SECONDS
    default_language: str = "en"  # of tickets too short to tell (HELPDESK_DEFAULT_LANGUAGE)

    def handle_event(self, event_id: int) -> str:
        """Process one recorded webhook event; safe to run twice for the same event."""
        stored = self.ledger.get_event(event_id)
        if stored is None:
            return "unknown event"
        if stored.status == "done":
            return "already done"
        if stored.status == "dead":  # a human was told; only `deadletter replay` runs it again
            return "already dead-lettered"
        helpdesk = self.helpdesk_for(stored.event)
        timings: dict[str, float] = {}
        with _timed(timings, "fetch"):
            ticket = with_language(helpdesk.fetch_ticket(stored.event.ticket_id), self.default_language)
        turn = next_turn(ticket)
        if turn.follow_up in UNRESOLVED:  # the customer came back to say the answer did not do: a reopen
            self.ledger.record_reopen(ticket.helpdesk, ticket.id)
        if turn.step == "stay_silent":
            self.ledger.set_status(event_id, "done")
            return f"silent: {turn.reason}"
        key = action_key(stored.event, turn.message)
        existing = self.ledger.action(key)
        if existing and (existing["state"] == "done" or _held_by_another(existing, event_id, self.action_lease_seconds)):
            # Another delivery of the same customer message answered it, or is answering it now.
            self.ledger.set_status(event_id, "done")
            return f"{existing['kind']} to this message {existing['state']} by event {existing['event_id']}"
        if turn.step == "hand_over":
            outcome = handover(ticket, turn, self.answerer.policy.current())
        else:
            outcome = self.answerer.answer(ticket, timings)
        with _timed(timings, "act"):
            human = None if existing else self._taken_over_while_drafting(helpdesk, outcome)
            if human:  # nothing is said, but the draft was made and paid for: it goes on record all the same
                outcome = held_back(outcome, human)
                result, acted = f"silent: {human} since the reply was drafted", True
            else:
                result, acted = self.act(helpdesk, event_id, key, outcome, turn)
        if acted:  # one decision per thing said, however many deliveries asked for it; one per draft held back
            self.ledger.record_decision(event_id, outcome, timings)
            # What it quoted, so an answer is checked again when an article it cited changes.
            cited = [] if outcome.decision.action == "held_back" else cited_sources(outcome.draft, list(outcome.sources))
            self.ledger.record_citations(event_id, [source.chunk for source in cited])
        self.ledger.set_status(event_id, "done")
        return result

    def _taken_over_while_drafting(self, helpdesk: Helpdesk, outcome: Outcome) -> str | None:
        """Drafting with an LLM takes seconds: an agent who answered the customer or took the
        ticket meanwhile is not talked over. (A note goes out regardless: it is for the agents;
        a reply already claimed is finished by `act`, which checks the ticket itself.)"""
        if outcome.decision.action != "auto_send":
            return None
        return taken_over(helpdesk.fetch_ticket(outcome.ticket.id, requester=False))

    def helpdesk_for(self, event: TicketEvent) -> Helpdesk:
        try:
            return self.helpdesks[event.helpdesk]
        except KeyError:
            raise PermanentError(f"no helpdesk named {event.helpdesk!r} is configured") from None

    def act(self, helpdesk: Helpdesk, event_id: int, key: str, outcome: Outcome, turn: Turn) -> tuple[str, bool]:
        """Post the reply or the note, at most once per action key; (what happened, whether this event acted)."""
        decision, ticket = outcome.decision, outcome.ticket
        kind = "reply" if decision.action == "auto_send" else "note"
        if kind == "reply":
            body = reply_html(outcome.draft, list(outcome.sources), outcome.ticket,
                              self.answerer.policy.current().link_domains)
        elif turn.step == "hand_over":
            body = handover_note(ticket, turn.reason)
        else:
            body = escalation_note(outcome)
            if turn.follow_up:  # the agent needs the earlier turns too
                body += conversation_summary(ticket)
        if self.ledger.claim_action(key, event_id, kind, body) is None:
            existing = self.ledger.action(key)
            if existing["state"] == "done":
                return f"already {existing['kind']} posted", False
            if _held_by_another(existing, event_id, self.action_lease_seconds):  # its own task finishes it, or is redelivered
                return f"{existing['kind']} being posted by event {existing['event_id']}", False
            # Claimed but never finished: a worker died mid-call or is calling right now.
            if helpdesk.has_bot_comment(ticket.id, existing["body"]):
                self.ledger.finish_action(key, {"reconciled": True})
                return f"{existing['kind']} found already posted", True
            if not self.ledger.reclaim_stale_action(key, existing["claimed_at"], self.action_lease_seconds):
                raise ActionInProgress("another worker holds this ticket's action", retry_after=self.action_lease_seconds)
            kind, body = existing["kind"], existing["body"]  # finish what was started, as it was
        try:
            if kind == "reply":
                result = helpdesk.post_reply(ticket.id, body, decision.status_after_reply, decision.tags)
            else:
                result = helpdesk.post_note(ticket.id, body, decision.escalation_group_id, decision.tags)
        except Throttled:
            self.ledger.release_action(key)  # refused before anything was posted: a retry may act at once
            raise
        except Exception:
            # A 5xx or a timeout may still have posted, so the claim stays; but no call is running
            # under it any more, and the retry must not wait out a lease meant for a live call.
            self.ledger.end_attempt(key, event_id)
            raise
        self.ledger.finish_action(key, result)
        return f"{kind} posted", True

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
            key = failure_key(stored.event)
            try:
                if self._outcome_posted(stored):
                    notified = True  # the reply or note is on the ticket: a second comment would be noise
                elif self.ledger.claim_action(key, event_id, "note", html) is not None:
                    group = self.answerer.policy.current().escalation_group_for(stored.event.helpdesk)
                    result = self.helpdesk_for(stored.event).post_note(stored.event.ticket_id, html, group, (ESCALATED_TAG,))
                    self.ledger.finish_action(key, result)
                notified = True
            except Exception:  # the helpdesk itself may be what failed; the dead letter remains
                notified = False
        self.ledger.add_dead_letter(event_id, error, human_notified=notified)
        self.ledger.set_status(event_id, "dead", error)


    def _outcome_posted(self, stored) -> bool:
        """Whether the ticket already shows the reply or note this event claimed."""
        for action in self.ledger.actions_of_event(stored.id):
            if action["key"].endswith(":failure"):
                continue
            if action["state"] == "done":
                return True
            if self.helpdesk_for(stored.event).has_bot_comment(stored.event.ticket_id, action["body"]):
                self.ledger.finish_action(action["key"], {"reconciled": True})
                return True
        return False


def action_key(event: TicketEvent, message: Message | None) -> str:
    """What must happen at most once: the bot's answer to one customer message.

    Keyed on the message, not on the delivery, so neither a redelivered webhook nor a
    "created" and an "updated" webhook about the same message can make the bot speak twice.
    """
    if message is not None and message.id:
        return f"{event.helpdesk}:{event.ticket_id}:message:{message.id}"
    return f"{event.helpdesk}:{event.ticket_id}:{event.kind}"


def _held_by_another(action: dict, event_id: int, lease_seconds: float = ACTION_LEASE_SECONDS) -> bool:
    """A fresh claim by another event: a concurrent delivery of the same customer message."""
    return (action["state"] == "claimed" and action["event_id"] != event_id
            and time.time() - action["claimed_at"] < lease_seconds)


def failure_key(event: TicketEvent) -> str:
    """One failure note per ticket creation, and one per follow-up delivery."""
    if event.kind == "ticket.created":
        return f"{event.helpdesk}:{event.ticket_id}:{event.kind}:failure"
    return f"{event.helpdesk}:{event.ticket_id}:{event.kind}:{event.delivery_id}:failure"


def handover(ticket: Ticket, turn: Turn, policy: Policy) -> Outcome:
    """The outcome of handing over at once: no retrieval, no draft, nothing for an LLM to fail at."""
    rule = policy.rule_for(ticket)
    decision = Decision(action="escalate", threshold=rule.threshold if rule else policy.threshold, rule=turn.reason,
                        reasons=(turn.reason,), escalation_group_id=policy.escalation_group_for(ticket.helpdesk),
                        tags=(ESCALATED_TAG,), code=turn.code,
                        policy_version=policy.version)
    draft = Draft(text="", cited=(), declined=True, drafter="none", decline_reason=turn.reason)
    return Outcome(ticket=ticket, sources=(), draft=draft, confidence=Confidence(score=0, components=()),
                   decision=decision)


def held_back(outcome: Outcome, human: str) -> Outcome:
    """The outcome of a reply not sent because a human took the ticket while it was drafted.

    Neither sent nor handed over by the bot: the analytics count the ticket and what its draft
    cost, never a deflection, an escalation or a verdict on the reply.
    """
    decision = replace(outcome.decision, action="held_back", code="taken_over", would_send=False,
                       reasons=(f"held back: {human} since the reply was drafted", *outcome.decision.reasons))
    return replace(outcome, decision=decision)


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
        (f'<li><a href="{escape(s.chunk.url)}">{escape(s.chunk.title)}</a> ' if is_web_link(s.chunk.url)
         else f"<li>{escape(s.chunk.title)} ")
        + f"(similarity {s.dense:.2f}{', cited' if s.chunk.id in cited else ''})</li>"
        for s in outcome.sources
    )
    return (
        f"<p><strong>helpdesk-bot handed this ticket to a human.</strong> "
        f"Confidence {score.score}/100{' (learned combination)' if score.combination == 'learned' else ''}; "
        f"the {escape(decision.rule)} needs {decision.threshold}.</p>"
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
