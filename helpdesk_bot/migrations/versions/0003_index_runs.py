"""Index runs: when the knowledge was indexed, from where, and what changed.

Databases created by `metadata.create_all` after index runs existed but before migrations
already have the table: it is created only where it is missing.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("index_runs"):
        return
    op.create_table(
        "index_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("finished_at", sa.Float, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("index_runs")
