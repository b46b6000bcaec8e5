"""The ledger as first released: events, actions, decisions, dead letters.

Databases created before migrations existed have exactly this schema; `Ledger.migrate()`
stamps them with this revision instead of creating the tables again.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("helpdesk", sa.String(32), nullable=False),
        sa.Column("delivery_id", sa.String(200), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("helpdesk", "delivery_id", name="uq_event_delivery"),
    )
    op.create_table(
        "actions",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("claimed_at", sa.Float, nullable=False),
        sa.Column("done_at", sa.Float),
        sa.Column("result", sa.Text),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False, unique=True),
        sa.Column("helpdesk", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("sources", sa.Text, nullable=False),
        sa.Column("draft", sa.Text, nullable=False),
        sa.Column("drafter", sa.String(32), nullable=False),
        sa.Column("confidence", sa.Integer, nullable=False),
        sa.Column("components", sa.Text, nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("threshold", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("latency_ms", sa.Text, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("human_notified", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("replayed_at", sa.Float),
    )


def downgrade() -> None:
    for table in ("dead_letters", "decisions", "actions", "ticket_events"):
        op.drop_table(table)
