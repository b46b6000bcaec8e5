"""sync_cursors: where the next incremental run of a knowledge source starts.

The nightly help center run reads only the articles changed since the last successful run
(Zendesk's incremental article export, from its stored end_time); past tickets likewise.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("sync_cursors"):  # created by metadata.create_all
        return
    op.create_table(
        "sync_cursors",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("cursor", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sync_cursors")
