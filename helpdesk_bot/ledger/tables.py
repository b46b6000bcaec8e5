"""The ledger's tables: one schema, shared by the stores that own them.

Which store writes which table:

- `events.EventStore`: ticket_events, actions
- `outcomes.OutcomeStore`: decisions, outcomes, feedback, draft_feedback
- `accounts.AccountStore`: admin_users, policy_changes
- `index_runs.IndexStore`: index_runs, sync_cursors, indexed_articles
- `topics.TopicStore`: topics, topic_members, question_vectors
- `dead_letters.DeadLetterStore`: dead_letters

The Alembic migrations in `helpdesk_bot/migrations` create and evolve these tables; a change
here needs a migration there.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ticket_events = sa.Table(
    "ticket_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("helpdesk", sa.String(32), nullable=False),
    sa.Column("delivery_id", sa.String(200), nullable=False),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    # received → queued → done | dead; "received" rows older than a minute were never queued
    sa.Column("status", sa.String(16), nullable=False, default="received"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("received_at", sa.Float, nullable=False),
    # When a queue message for the event was last published (first queueing, a retry, a
    # re-queue): a "queued" event whose message is older than the broker's data was lost.
    sa.Column("queued_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.UniqueConstraint("helpdesk", "delivery_id", name="uq_event_delivery"),
)

actions = sa.Table(
    "actions",
    metadata,
    # One row per thing we may say on a ticket; its key is what must never happen twice.
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # reply | note
    sa.Column("state", sa.String(16), nullable=False),  # claimed | done
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("done_at", sa.Float),
    sa.Column("result", sa.Text),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False, unique=True),
    sa.Column("helpdesk", sa.String(32), nullable=False),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("question", sa.Text, nullable=False),  # redacted: no emails, phone numbers or tokens
    sa.Column("sources", sa.Text, nullable=False),
    sa.Column("draft", sa.Text, nullable=False),
    sa.Column("drafter", sa.String(32), nullable=False),
    sa.Column("confidence", sa.Integer, nullable=False),
    sa.Column("components", sa.Text, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("threshold", sa.Integer, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("latency_ms", sa.Text, nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("completion_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("brand_id", sa.String(64)),
    sa.Column("channel", sa.String(32)),
    sa.Column("code", sa.String(32), nullable=False, server_default=""),  # Decision.code
    sa.Column("would_send", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("policy_version", sa.String(16)),
    sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
    sa.Column("language", sa.String(8)),  # the ticket's (ISO 639-1); NULL before languages were recorded
    sa.Index("ix_decisions_created_at", "created_at"),
    sa.Index("ix_decisions_language", "language"),
    sa.Index("ix_decisions_ticket", "helpdesk", "ticket_id"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("human_notified", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("replayed_at", sa.Float),
)

outcomes = sa.Table(
    "outcomes",
    metadata,
    # What became of the bot's first answer on a ticket: filled in by the outcomes job.
    sa.Column("helpdesk", sa.String(32), primary_key=True),
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # what the bot did: auto_send | escalate | held_back
    sa.Column("answered_at", sa.Float, nullable=False),
    sa.Column("reopened", sa.Boolean),  # None until known
    sa.Column("reopened_at", sa.Float),
    sa.Column("agent_reply", sa.Text),  # the agent's first public reply after the bot's note, redacted
    sa.Column("draft_similarity", sa.Float),  # 0..1: how much of the draft the agent kept
    sa.Column("csat", sa.String(16)),  # good | bad | offered
    sa.Column("csat_comment", sa.Text),
    sa.Column("status", sa.String(16)),
    sa.Column("checked_at", sa.Float),
    sa.Column("final", sa.Boolean, nullable=False, server_default=sa.false()),  # the 72 h window has closed
    sa.Index("ix_outcomes_answered_at", "answered_at"),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("helpdesk", sa.String(32), nullable=False),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("rating", sa.String(8), nullable=False),  # good | bad
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("source", sa.String(16), nullable=False),  # tag | sidebar
    sa.Column("agent", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("helpdesk", "ticket_id", "source", "agent", name="uq_feedback_once"),
)

admin_users = sa.Table(
    "admin_users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(200), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_login_at", sa.Float),
)

policy_changes = sa.Table(
    "policy_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("changed_at", sa.Float, nullable=False),
    sa.Column("changed_by", sa.String(200), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("before_toml", sa.Text, nullable=False),
    sa.Column("after_toml", sa.Text, nullable=False),
)

indexed_articles = sa.Table(
    "indexed_articles",
    metadata,
    # When each article entered the index: a knowledge gap's "before and after" splits here.
    sa.Column("article_id", sa.String(64), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False, server_default=""),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("first_indexed_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("removed_at", sa.Float),
)

topics = sa.Table(
    "topics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("keywords", sa.Text, nullable=False),  # JSON list
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("computed_at", sa.Float, nullable=False),
)

topic_members = sa.Table(
    "topic_members",
    metadata,
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), primary_key=True),
    sa.Column("topic_id", sa.Integer, sa.ForeignKey("topics.id", ondelete="CASCADE"), nullable=False),
    sa.Column("similarity", sa.Float, nullable=False),  # to the topic's centre
    sa.Index("ix_topic_members_topic", "topic_id"),
)

question_vectors = sa.Table(
    "question_vectors",
    metadata,
    # Embeddings of recorded questions, so topics are recomputed without embedding them again.
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),
)

index_runs = sa.Table(
    "index_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("finished_at", sa.Float, nullable=False),
    sa.Column("report", sa.Text, nullable=False),  # IndexReport.as_dict() as JSON
)

# Where each incremental source's next run starts: the help center's end_time, past tickets'
# start_time. Written only after a run's index is published, so a failed run is read again.
sync_cursors = sa.Table(
    "sync_cursors",
    metadata,
    sa.Column("source", sa.String(200), primary_key=True),  # "zendesk help center", "zendesk past tickets"
    sa.Column("cursor", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)


# Agents' verdicts on drafts, sent from the sidebar app (helpdesk_bot/web/agent_app.py). Append-only:
# each click is kept, with the decision it was about when the app showed a stored draft.
draft_feedback = sa.Table(
    "draft_feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("helpdesk", sa.String(32), nullable=False),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("decision_id", sa.Integer),  # None: a regenerated draft, never stored
    sa.Column("verdict", sa.String(8), nullable=False),  # good | bad
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("agent_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_draft_feedback_ticket", "helpdesk", "ticket_id"),
)


# When an article changes, the answers that cited it are checked again (helpdesk_bot/impact.py):
# each help center chunk as indexed now, what each re-index changed chunk by chunk, decision →
# cited chunk (with the hash of the text quoted), and the verdicts on the answers touched.
indexed_chunks = sa.Table(
    "indexed_chunks",
    metadata,
    sa.Column("chunk_id", sa.String(500), primary_key=True),
    sa.Column("article_id", sa.String(500), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False, server_default=""),
    sa.Column("text_hash", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("indexed_at", sa.Float, nullable=False),
    sa.Index("ix_indexed_chunks_article", "article_id"),
)

article_changes = sa.Table(
    "article_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("article_id", sa.String(500), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False, server_default=""),
    sa.Column("change", sa.String(16), nullable=False),  # updated | removed
    sa.Column("source", sa.String(200), nullable=False),  # the index run: "zendesk help center", a file
    sa.Column("changed_at", sa.Float, nullable=False),
    # None until the answers that cited the article were checked: a run that died in between
    # leaves the change for the next check.
    sa.Column("checked_at", sa.Float),
    sa.Index("ix_article_changes_checked_at", "checked_at"),
)

chunk_changes = sa.Table(
    "chunk_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("article_change_id", sa.Integer, sa.ForeignKey("article_changes.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("chunk_id", sa.String(500), nullable=False),
    sa.Column("old_hash", sa.String(32), nullable=False),
    sa.Column("new_hash", sa.String(32)),  # None: the chunk is gone
    sa.Column("old_text", sa.Text, nullable=False),
    sa.Column("new_text", sa.Text),
    sa.Index("ix_chunk_changes_change", "article_change_id"),
    sa.Index("ix_chunk_changes_old_hash", "old_hash"),  # an old answer's quoted text, by its hash
)

cited_chunks = sa.Table(
    "cited_chunks",
    metadata,
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), primary_key=True),
    sa.Column("chunk_id", sa.String(500), primary_key=True),
    sa.Column("text_hash", sa.String(32)),  # None: cited before this was kept (any change touches it)
    sa.Column("cited_at", sa.Float, nullable=False),
    sa.Index("ix_cited_chunks_chunk", "chunk_id", "cited_at"),
)

answer_impacts = sa.Table(
    "answer_impacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("article_change_id", sa.Integer, sa.ForeignKey("article_changes.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
    sa.Column("decision_id", sa.Integer, nullable=False),
    sa.Column("helpdesk", sa.String(32), nullable=False),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("answer", sa.String(8), nullable=False),  # reply | note: how the draft reached the ticket
    sa.Column("answered_at", sa.Float, nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),  # VERDICTS
    sa.Column("sentences", sa.Text, nullable=False),  # JSON: the answer's sentences the change touches
    sa.Column("passages", sa.Text, nullable=False),  # JSON: the ids of the cited chunks the change touched
    sa.Column("ticket_status", sa.String(32)),  # when checked; None: not looked up (still supported)
    sa.Column("note", sa.String(16), nullable=False),  # NOTE_STATES
    sa.Column("note_error", sa.Text),
    sa.Column("checked_at", sa.Float, nullable=False),
    sa.UniqueConstraint("article_change_id", "event_id", name="uq_answer_impact"),
    sa.Index("ix_answer_impacts_checked_at", "checked_at"),
)
