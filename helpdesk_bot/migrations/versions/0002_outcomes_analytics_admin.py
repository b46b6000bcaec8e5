"""Outcomes, feedback, admin users, policy audit, indexed articles, topics; richer decisions.

decisions.rule becomes TEXT: a rule naming many tags describes itself in more than 200
characters, which PostgreSQL refused as VARCHAR(200).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.alter_column("rule", type_=sa.Text, existing_type=sa.String(200), existing_nullable=False)
        batch.add_column(sa.Column("brand_id", sa.String(64)))
        batch.add_column(sa.Column("channel", sa.String(32)))
        batch.add_column(sa.Column("code", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("would_send", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("policy_version", sa.String(16)))
        batch.add_column(sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"))
        batch.create_index("ix_decisions_created_at", ["created_at"])
        batch.create_index("ix_decisions_ticket", ["helpdesk", "ticket_id"])
    # Decisions recorded before codes existed: sent ones are would-send, escalations are coded
    # from their reasons as well as the old text allows.
    op.execute("UPDATE decisions SET would_send = (action = 'auto_send')")
    op.execute("UPDATE decisions SET code = 'declined' WHERE action = 'escalate' AND reasons LIKE '%no answer in the knowledge base%'")
    op.execute("UPDATE decisions SET code = 'always_human' WHERE action = 'escalate' AND rule = 'always-human tags'")
    op.execute("UPDATE decisions SET code = 'below_threshold' WHERE action = 'escalate' AND code = ''")

    op.create_table(
        "outcomes",
        sa.Column("helpdesk", sa.String(32), primary_key=True),
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("answered_at", sa.Float, nullable=False),
        sa.Column("reopened", sa.Boolean),
        sa.Column("reopened_at", sa.Float),
        sa.Column("agent_reply", sa.Text),
        sa.Column("draft_similarity", sa.Float),
        sa.Column("csat", sa.String(16)),
        sa.Column("csat_comment", sa.Text),
        sa.Column("status", sa.String(16)),
        sa.Column("checked_at", sa.Float),
        sa.Column("final", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_outcomes_answered_at", "outcomes", ["answered_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("helpdesk", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("rating", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("agent", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("helpdesk", "ticket_id", "source", "agent", name="uq_feedback_once"),
    )
    op.create_table(
        "admin_users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(200), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_login_at", sa.Float),
    )
    op.create_table(
        "policy_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("changed_at", sa.Float, nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("before_toml", sa.Text, nullable=False),
        sa.Column("after_toml", sa.Text, nullable=False),
    )
    op.create_table(
        "indexed_articles",
        sa.Column("article_id", sa.String(64), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False, server_default=""),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("first_indexed_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("removed_at", sa.Float),
    )
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("keywords", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("computed_at", sa.Float, nullable=False),
    )
    op.create_table(
        "topic_members",
        sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), primary_key=True),
        sa.Column("topic_id", sa.Integer, sa.ForeignKey("topics.id", ondelete="CASCADE"), nullable=False),
        sa.Column("similarity", sa.Float, nullable=False),
    )
    op.create_index("ix_topic_members_topic", "topic_members", ["topic_id"])
    op.create_table(
        "question_vectors",
        sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    for table in ("question_vectors", "topic_members", "topics", "indexed_articles", "policy_changes",
                  "admin_users", "feedback", "outcomes"):
        op.drop_table(table)
    with op.batch_alter_table("decisions") as batch:
        batch.drop_index("ix_decisions_ticket")
        batch.drop_index("ix_decisions_created_at")
        for column in ("cost_usd", "policy_version", "would_send", "code", "channel", "brand_id"):
            batch.drop_column(column)
        batch.alter_column("rule", type_=sa.String(200), existing_type=sa.Text, existing_nullable=False)
