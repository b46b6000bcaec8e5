"""Draft feedback from the agents' sidebar app: every click, with the decision it was about.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "draft_feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("helpdesk", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.Integer),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_draft_feedback_ticket", "draft_feedback", ["helpdesk", "ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_draft_feedback_ticket", table_name="draft_feedback")
    op.drop_table("draft_feedback")
