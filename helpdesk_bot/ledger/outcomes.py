"""What the bot decided on each event and what became of its answer: decisions, outcomes
(reopens, the agent's reply, CSAT) and agents' feedback on drafts.
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from helpdesk_bot.domain import Outcome
from helpdesk_bot.ledger.database import Database
from helpdesk_bot.ledger.events import backdate_event
from helpdesk_bot.ledger.tables import actions, decisions, draft_feedback, feedback, outcomes, ticket_events
from helpdesk_bot.scrubbing import redact_text

DRAFT_VERDICTS = ("good", "bad")


class OutcomeStore(Database):
    """`decisions`, `outcomes`, `feedback` and `draft_feedback`."""

    price_per_mtok: tuple[float, float] = (0.0, 0.0)  # LLM price in USD per million (prompt, completion) tokens

    # --- decisions -----------------------------------------------------------------------

    def backdate(self, event_id: int, seconds: float) -> None:
        """Move an event, its decision and its outcome `seconds` into the past: the demo's history."""
        with self.engine.begin() as db:
            backdate_event(db, event_id, seconds)
            db.execute(decisions.update().where(decisions.c.event_id == event_id).values(
                created_at=decisions.c.created_at - seconds))
            db.execute(outcomes.update().where(outcomes.c.event_id == event_id).values(
                answered_at=outcomes.c.answered_at - seconds))

    def record_decision(self, event_id: int, outcome: Outcome, latency_ms: dict[str, float]) -> None:
        ticket, draft, confidence, decision = outcome.ticket, outcome.draft, outcome.confidence, outcome.decision
        now = time.time()
        cost = (draft.prompt_tokens * self.price_per_mtok[0] + draft.completion_tokens * self.price_per_mtok[1]) / 1e6
        row = dict(
            event_id=event_id, helpdesk=ticket.helpdesk, ticket_id=ticket.id,
            tags=json.dumps(sorted(ticket.tags)), question=redact_text(ticket.question),
            sources=json.dumps([{"id": s.chunk.id, "title": s.chunk.title, "score": s.score, "dense": s.dense,
                                 "keyword": s.keyword,
                                 # n of the draft's [n] marker for this source; 0: not cited
                                 "cited": draft.cited.index(s.chunk.id) + 1 if s.chunk.id in draft.cited else 0}
                                for s in outcome.sources]),
            draft=draft.text, drafter=draft.drafter, confidence=confidence.score,
            components=json.dumps(confidence.as_dict()), rule=decision.rule, threshold=decision.threshold,
            action=decision.action, reasons=json.dumps(list(decision.reasons)),
            latency_ms=json.dumps({k: round(v, 1) for k, v in latency_ms.items()}),
            prompt_tokens=draft.prompt_tokens, completion_tokens=draft.completion_tokens, created_at=now,
            brand_id=ticket.brand_id, channel=ticket.channel, code=decision.code,
            would_send=decision.would_send, policy_version=decision.policy_version or None,
            cost_usd=round(cost, 6), language=ticket.language,
        )
        # One row per event; a retried event replaces its decision. Two workers may finish the
        # same event at once (a redelivered task): the loser's insert collides, and it updates.
        for _ in range(3):
            try:
                with self.engine.begin() as db:
                    updated = db.execute(decisions.update().where(decisions.c.event_id == event_id).values(**row))
                    if not updated.rowcount:
                        db.execute(decisions.insert().values(**row))
                    self._record_first_answer(db, ticket, event_id, decision.action, now)
                return
            except IntegrityError:
                continue
        raise RuntimeError(f"could not record the decision for event {event_id}")

    @staticmethod
    def _record_first_answer(db, ticket, event_id: int, action: str, now: float) -> None:
        # The ticket's first answer is the one whose fate the outcomes job follows.
        exists = db.execute(sa.select(outcomes.c.event_id).where(
            outcomes.c.helpdesk == ticket.helpdesk, outcomes.c.ticket_id == ticket.id)).first()
        if exists is None:
            db.execute(outcomes.insert().values(helpdesk=ticket.helpdesk, ticket_id=ticket.id, event_id=event_id,
                                                action=action, answered_at=now, final=False))
        elif exists.event_id == event_id:
            db.execute(outcomes.update().where(outcomes.c.event_id == event_id).values(action=action))

    def decisions_of_events(self, event_ids: list[int]) -> dict[int, dict]:
        """The decisions recorded for these events, by event id."""
        columns = (decisions.c.id, decisions.c.event_id, decisions.c.helpdesk, decisions.c.ticket_id,
                   decisions.c.draft, decisions.c.action, decisions.c.created_at)
        found = {}
        with self.engine.connect() as db:
            for start in range(0, len(event_ids), 500):
                rows = db.execute(sa.select(*columns).where(decisions.c.event_id.in_(event_ids[start : start + 500])))
                found.update((r.event_id, dict(r._mapping)) for r in rows)
        return found

    def decisions_for(self, ticket_id: str, helpdesk: str | None = None) -> list[dict]:
        query = sa.select(decisions).where(decisions.c.ticket_id == ticket_id)
        if helpdesk is not None:
            query = query.where(decisions.c.helpdesk == helpdesk)
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query.order_by(decisions.c.id))]

    def latest_decision(self, helpdesk: str, ticket_id: str) -> dict | None:
        """The newest decision on a ticket (its draft, confidence and sources), or None."""
        with self.engine.connect() as db:
            row = db.execute(sa.select(decisions).where(decisions.c.helpdesk == helpdesk, decisions.c.ticket_id == ticket_id)
                             .order_by(decisions.c.id.desc()).limit(1)).first()
        return dict(row._mapping) if row else None

    # --- what became of the first answer ----------------------------------------------------

    def outcome(self, helpdesk: str, ticket_id: str) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(outcomes).where(outcomes.c.helpdesk == helpdesk,
                                                       outcomes.c.ticket_id == ticket_id)).first()
        return dict(row._mapping) if row else None

    def outcomes_to_check(self, since: float) -> list[dict]:
        """Answers whose outcome may still change: answered since `since`, window not closed."""
        query = (sa.select(outcomes, decisions.c.draft).join(decisions, decisions.c.event_id == outcomes.c.event_id)
                 .where(outcomes.c.answered_at >= since, outcomes.c.final.is_(False)).order_by(outcomes.c.answered_at))
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query)]

    def update_outcome(self, helpdesk: str, ticket_id: str, **values) -> None:
        if "agent_reply" in values and values["agent_reply"]:
            values["agent_reply"] = redact_text(values["agent_reply"])
        with self.engine.begin() as db:
            db.execute(outcomes.update().where(outcomes.c.helpdesk == helpdesk, outcomes.c.ticket_id == ticket_id)
                       .values(checked_at=time.time(), **values))

    def record_reopen(self, helpdesk: str, ticket_id: str, at: float | None = None) -> bool:
        """The customer came back after the bot's answer; True if this is news."""
        at = at or time.time()
        with self.engine.begin() as db:
            result = db.execute(outcomes.update().where(
                outcomes.c.helpdesk == helpdesk, outcomes.c.ticket_id == ticket_id,
                sa.or_(outcomes.c.reopened.is_(None), outcomes.c.reopened.is_(False)),
                outcomes.c.answered_at <= at,
            ).values(reopened=True, reopened_at=at))
        return result.rowcount == 1

    def add_feedback(self, helpdesk: str, ticket_id: str, rating: str, reason: str = "", source: str = "sidebar",
                     agent: str = "") -> None:
        """Record an agent's verdict on a draft; the same agent and source again replaces it."""
        if rating not in ("good", "bad"):
            raise ValueError(f"rating must be good or bad, got {rating!r}")
        values = dict(rating=rating, reason=(reason or "")[:2000], created_at=time.time())
        where = (feedback.c.helpdesk == helpdesk, feedback.c.ticket_id == ticket_id, feedback.c.source == source,
                 feedback.c.agent == agent)
        for _ in range(2):  # an insert racing another insert becomes an update
            with self.engine.begin() as db:
                if db.execute(feedback.update().where(*where).values(**values)).rowcount:
                    return
                try:
                    with db.begin_nested():
                        db.execute(feedback.insert().values(helpdesk=helpdesk, ticket_id=ticket_id, source=source,
                                                            agent=agent, **values))
                    return
                except IntegrityError:
                    continue

    def feedback_for(self, helpdesk: str, ticket_id: str) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(feedback).where(feedback.c.helpdesk == helpdesk, feedback.c.ticket_id == ticket_id)
                              .order_by(feedback.c.created_at))
            return [dict(r._mapping) for r in rows]

    # --- agents' feedback on drafts --------------------------------------------------------

    def record_draft_feedback(self, helpdesk: str, ticket_id: str, verdict: str, reason: str, agent_id: str,
                              decision_id: int | None = None) -> int:
        """Keep an agent's verdict (good or bad, with a reason) on a ticket's draft; return its id.

        Every click stays in `draft_feedback`; the agent's latest verdict is also what the
        metrics read (`feedback`, as for the ai_draft_good/bad tags).
        """
        if verdict not in DRAFT_VERDICTS:
            raise ValueError(f"verdict must be one of {DRAFT_VERDICTS}, got {verdict!r}")
        with self.engine.begin() as db:
            result = db.execute(draft_feedback.insert().values(
                helpdesk=helpdesk, ticket_id=ticket_id, decision_id=decision_id, verdict=verdict,
                reason=(reason or "")[:2000], agent_id=str(agent_id)[:64], created_at=time.time(),
            ))
            feedback_id = result.inserted_primary_key[0]
        self.add_feedback(helpdesk, ticket_id, verdict, reason, source="sidebar", agent=str(agent_id))
        return feedback_id

    def draft_feedback_for(self, helpdesk: str, ticket_id: str) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(draft_feedback).where(draft_feedback.c.helpdesk == helpdesk,
                                                              draft_feedback.c.ticket_id == ticket_id)
                              .order_by(draft_feedback.c.id))
            return [dict(r._mapping) for r in rows]

    # --- read by analytics and metrics ---------------------------------------------------

    def answered_tickets(self, since: float, until: float, helpdesk: str | None = None,
                         brand: str | None = None) -> list[dict]:
        """Each ticket's first answer decided in [since, until), oldest first: the decision's
        columns, what became of it, when its event arrived and when its reply or note was posted."""
        query = (
            sa.select(decisions, outcomes.c.reopened, outcomes.c.final, outcomes.c.draft_similarity,
                      outcomes.c.agent_reply, outcomes.c.csat, ticket_events.c.received_at, actions.c.done_at)
            .join(outcomes, outcomes.c.event_id == decisions.c.event_id)
            .join(ticket_events, ticket_events.c.id == decisions.c.event_id)
            .outerjoin(actions, sa.and_(actions.c.event_id == decisions.c.event_id, actions.c.state == "done",
                                        actions.c.key.notlike("%:failure")))
            .where(decisions.c.created_at >= since, decisions.c.created_at < until)
            .order_by(decisions.c.created_at)
        )
        if helpdesk:
            query = query.where(decisions.c.helpdesk == helpdesk)
        if brand:
            query = query.where(decisions.c.brand_id == brand)
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query)]

    def latest_verdicts(self) -> dict[tuple[str, str], tuple[str, str]]:
        """(helpdesk, ticket id) → the latest agent verdict on its draft: (rating, reason)."""
        with self.engine.connect() as db:
            rows = db.execute(sa.select(feedback.c.helpdesk, feedback.c.ticket_id, feedback.c.rating, feedback.c.reason)
                              .order_by(feedback.c.created_at, feedback.c.id))
            return {(r.helpdesk, r.ticket_id): (r.rating, r.reason) for r in rows}  # the latest wins

    def decision_totals(self) -> list[tuple[str, str, int, float]]:
        """(action, reason code, decisions, LLM cost in USD) over every decision recorded."""
        with self.engine.connect() as db:
            rows = db.execute(sa.select(decisions.c.action, decisions.c.code, sa.func.count(),
                                        sa.func.coalesce(sa.func.sum(decisions.c.cost_usd), 0))
                              .group_by(decisions.c.action, decisions.c.code)).all()
        return [(action, code or "", count, float(cost or 0)) for action, code, count, cost in rows]

    def feedback_counts(self) -> dict[str, int]:
        """How many agent verdicts are good and how many bad."""
        with self.engine.connect() as db:
            return dict(db.execute(sa.select(feedback.c.rating, sa.func.count()).group_by(feedback.c.rating)).all())
